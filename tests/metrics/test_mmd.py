"""The unbiased MMD^2 estimator against a brute-force double loop, its null mean, its power."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.spatial.distance
import sklearn.metrics.pairwise

from jgen.metrics.mmd import (
    gaussian_kernel,
    imq_kernel,
    median_heuristic,
    mmd2_unbiased,
    polynomial_kernel,
)


def brute_force_mmd2(x, y, k):
    """Gretton et al. 2012, Eq. 3, written as explicit loops over pairs of examples."""
    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_matches_brute_force_double_loop(x64):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 2, 3)), rng.normal(0.5, 1.2, size=(7, 2, 3))  # images are flattened
    h, c = 1.7, 0.8

    def gauss(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * h**2))

    def imq(a, b):
        return (c**2 + np.sum((a - b) ** 2)) ** -0.5

    for kernel, k in ((gaussian_kernel(h), gauss), (imq_kernel(c), imq)):
        np.testing.assert_allclose(
            mmd2_unbiased(jnp.asarray(x), jnp.asarray(y), kernel),
            brute_force_mmd2(x, y, k),
            rtol=1e-12,
        )
        gram = np.array([[k(a, b) for b in y] for a in x])
        np.testing.assert_allclose(kernel(jnp.asarray(x), jnp.asarray(y)), gram, rtol=1e-12)


def test_median_heuristic_matches_scipy(x64):
    x = np.random.default_rng(1).normal(size=(41, 3))
    expected = np.median(scipy.spatial.distance.pdist(x))
    np.testing.assert_allclose(median_heuristic(jnp.asarray(x)), expected, rtol=1e-12)


def test_polynomial_kernel_matches_sklearn(x64):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6, 2, 4)), rng.normal(size=(9, 2, 4))  # events of d = 8 values
    xf, yf = x.reshape(6, -1), y.reshape(9, -1)
    for degree, gamma, coef0 in ((3, None, 1.0), (2, 0.3, 0.0), (1, 1.5, 2.0)):
        expected = sklearn.metrics.pairwise.polynomial_kernel(
            xf, yf, degree=degree, gamma=gamma, coef0=coef0
        )
        got = polynomial_kernel(degree, gamma, coef0)(jnp.asarray(x), jnp.asarray(y))
        np.testing.assert_allclose(got, expected, rtol=1e-12)


@jax.jit
def null_and_shifted(key):
    """MMD^2 of two samples of N(0, I) and of N(0, I) against N((0.5, 0), I), n = 100, in 2D."""
    kx, ky, kz = jax.random.split(key, 3)
    x, y, z = (jax.random.normal(k, (100, 2)) for k in (kx, ky, kz))
    kernel = gaussian_kernel(1.0)
    return mmd2_unbiased(x, y, kernel), mmd2_unbiased(x, z + jnp.array([0.5, 0.0]), kernel)


def test_unbiased_under_the_null_and_positive_under_a_shift():
    reps = 400
    null, shifted = jax.vmap(null_and_shifted)(jax.random.split(jax.random.key(2), reps))
    null, shifted = np.asarray(null), np.asarray(shifted)
    # Unbiased: the mean over independent repetitions is within 4 standard errors of 0.
    se = null.std(ddof=1) / np.sqrt(reps)
    assert abs(null.mean()) < 4 * se, (null.mean(), se)
    assert (null < 0).any()  # an unbiased estimate of 0 must sometimes be negative
    # A shift of half a standard deviation: the population MMD^2 for the Gaussian kernel with
    # h = 1 between N(0, I) and N(delta, I) is 2 (h^2 / (h^2 + 2))^(d/2) (1 - exp(-|delta|^2 /
    # (2 (h^2 + 2)))) in d dimensions; here 2 / 3 (1 - exp(-1/24)) = 0.0272.
    expected = 2 / 3 * (1 - np.exp(-0.25 / 6))
    se_shift = shifted.std(ddof=1) / np.sqrt(reps)
    assert abs(shifted.mean() - expected) < 4 * se_shift, (shifted.mean(), expected, se_shift)
    # Clearly positive: 20 standard errors above 0 (measured: about 30).
    assert shifted.mean() > 20 * se_shift


def test_bad_arguments():
    x = jnp.zeros((4, 2))
    with pytest.raises(ValueError, match="bandwidth must be finite and > 0; got 0.0"):
        gaussian_kernel(0.0)
    with pytest.raises(ValueError, match="c must be finite and > 0; got -1.0"):
        imq_kernel(-1.0)
    with pytest.raises(ValueError, match=r"y must be a batch \(n, \*event\) with n >= 2"):
        mmd2_unbiased(x, jnp.zeros((1, 2)), gaussian_kernel(1.0))
    with pytest.raises(ValueError, match=r"same event shape; got \(2,\) and \(3,\)"):
        mmd2_unbiased(x, jnp.zeros((4, 3)), gaussian_kernel(1.0))
    with pytest.raises(ValueError, match="at least 2 examples"):
        median_heuristic(jnp.zeros((1, 2)))
    with pytest.raises(ValueError, match="degree must be an integer >= 1; got 0"):
        polynomial_kernel(degree=0)
    with pytest.raises(ValueError, match="gamma must be finite and > 0; got -0.5"):
        polynomial_kernel(gamma=-0.5)
    with pytest.raises(ValueError, match="same event size; got 2 and 3"):
        polynomial_kernel()(x, jnp.zeros((4, 3)))
