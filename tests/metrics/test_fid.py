"""FID against scipy's sqrtm and closed forms, KID's null mean and power, IS at its extremes and
against a numpy transcription of the original code."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.special

from jgen.metrics.fid import fid, frechet_distance, gaussian_statistics, inception_score, kid


def pytorch_fid_reference(x, y):
    """pytorch-fid's ``calculate_frechet_distance`` on ``np.cov`` statistics: a general sqrtm of
    the non-symmetric ``C1 C2``, offset by ``eps I`` if it is not finite, real part kept."""
    m1, m2 = x.mean(0), y.mean(0)
    c1, c2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(c1 @ c2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(c1)) * 1e-6
        covmean = scipy.linalg.sqrtm((c1 + offset) @ (c2 + offset))
    if np.iscomplexobj(covmean):
        assert np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3)
        covmean = covmean.real
    diff = m1 - m2
    return diff @ diff + np.trace(c1) + np.trace(c2) - 2 * np.trace(covmean)


def test_gaussian_statistics_match_numpy(x64):
    x = np.random.default_rng(0).normal(size=(30, 5))
    mean, cov = gaussian_statistics(jnp.asarray(x))
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False), rtol=1e-12)


@pytest.mark.parametrize("n,d", [(300, 16), (300, 64), (40, 64)])  # the last: rank 39 < d
def test_fid_matches_the_scipy_sqrtm_formula(x64, n, d):
    rng = np.random.default_rng(d + n)
    x = rng.normal(size=(n, d))
    # A second distribution with a shifted mean and a non-diagonal covariance, so C1 and C2 do not
    # commute and sqrtm(C1 C2) is not symmetric.
    y = rng.normal(0.3, 1.0, size=(n, d)) @ rng.normal(size=(d, d)) / np.sqrt(d)
    expected = pytorch_fid_reference(x, y)
    got = fid(jnp.asarray(x), jnp.asarray(y))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(fid(jnp.asarray(x), jnp.asarray(x)), 0.0, atol=1e-6 * expected)


def test_frechet_distance_closed_forms(x64):
    rng = np.random.default_rng(1)
    d = 6
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    dm2 = np.sum((m1 - m2) ** 2)
    # Diagonal (commuting) covariances: sum_i (sqrt(a_i) - sqrt(b_i))^2 + |m1 - m2|^2.
    a, b = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    got = frechet_distance(*map(jnp.asarray, (m1, np.diag(a), m2, np.diag(b))))
    np.testing.assert_allclose(got, np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + dm2, rtol=1e-12)
    # C2 = c C1 with a full C1 (commuting again): (1 - sqrt(c))^2 tr(C1) + |m1 - m2|^2.
    root = rng.normal(size=(d, d))
    c1, c = root @ root.T, 2.5
    got = frechet_distance(*map(jnp.asarray, (m1, c1, m2, c * c1)))
    np.testing.assert_allclose(got, (1 - np.sqrt(c)) ** 2 * np.trace(c1) + dm2, rtol=1e-10)
    # Jittable.
    jitted = jax.jit(frechet_distance)(*map(jnp.asarray, (m1, c1, m2, c * c1)))
    np.testing.assert_allclose(jitted, got, rtol=1e-12)


def test_kid_matches_brute_force_on_one_full_subset(x64):
    """With s = n = m every subset is a permutation of the whole sets, so KID is MMD_u^2 of the
    two sets with the cubic kernel, written here as explicit sums."""
    rng = np.random.default_rng(2)
    n, d = 12, 5
    x, y = rng.normal(size=(n, d)), rng.normal(0.5, 1.0, size=(n, d))
    k = lambda a, b: (a @ b.T / d + 1) ** 3
    off = ~np.eye(n, dtype=bool)
    expected = k(x, x)[off].mean() + k(y, y)[off].mean() - 2 * k(x, y).mean()
    mean, std = kid(jnp.asarray(x), jnp.asarray(y), jax.random.key(0), num_subsets=3)
    np.testing.assert_allclose(mean, expected, rtol=1e-12)
    np.testing.assert_allclose(std, 0.0, atol=1e-12 * abs(expected))


def cubic_kernel_mean(a, b):
    """``E (x.y / d + 1)^3`` for independent ``x ~ N(a, I)``, ``y ~ N(b, I)`` in closed form.

    ``S = x.y`` is a sum of independent ``z_i = x_i y_i`` with moments ``E z = a b``,
    ``E z^2 = (1 + a^2)(1 + b^2)``, ``E z^3 = (a^3 + 3a)(b^3 + 3b)``; cumulants add over ``i``.
    """
    d = len(a)
    m1, m2, m3 = a * b, (1 + a**2) * (1 + b**2), (a**3 + 3 * a) * (b**3 + 3 * b)
    k1, k2, k3 = np.sum(m1), np.sum(m2 - m1**2), np.sum(m3 - 3 * m2 * m1 + 2 * m1**3)
    s1, s2, s3 = k1, k2 + k1**2, k3 + 3 * k2 * k1 + k1**3  # raw moments of S
    return s3 / d**3 + 3 * s2 / d**2 + 3 * s1 / d + 1


DIM, SHIFT = 8, 0.5


@jax.jit
def kid_null_and_shifted(key):
    """KID of two samples of N(0, I) and of N(0, I) against N(0.5, I), d = 8, n = 400."""
    kx, ky, kz, ks = jax.random.split(key, 4)
    x, y, z = (jax.random.normal(k, (400, DIM)) for k in (kx, ky, kz))
    null = kid(x, y, ks, num_subsets=20, subset_size=200)
    shifted = kid(x, z + SHIFT, ks, num_subsets=20, subset_size=200)
    return null, shifted


def test_kid_is_unbiased_under_the_null_and_under_a_shift():
    reps = 200
    (null, _), (shifted, shifted_std) = jax.vmap(kid_null_and_shifted)(
        jax.random.split(jax.random.key(3), reps)
    )
    null, shifted, shifted_std = map(np.asarray, (null, shifted, shifted_std))
    # The subsets of one replicate share their data, so the standard error comes from the spread
    # of the independent replicates: their mean is within 4 standard errors of 0.
    se = null.std(ddof=1) / np.sqrt(reps)
    assert abs(null.mean()) < 4 * se, (null.mean(), se)
    assert (null < 0).any()  # an unbiased estimate of 0 must sometimes be negative
    # Under the shift, within 4 standard errors of the population MMD^2 (1.117).
    zero, shift = np.zeros(DIM), np.full(DIM, SHIFT)
    expected = (
        cubic_kernel_mean(zero, zero)
        + cubic_kernel_mean(shift, shift)
        - 2 * cubic_kernel_mean(zero, shift)
    )
    se_shift = shifted.std(ddof=1) / np.sqrt(reps)
    assert abs(shifted.mean() - expected) < 4 * se_shift, (shifted.mean(), expected, se_shift)
    # And in every replicate many subset standard deviations above 0 (measured: at least 6.5).
    assert np.all(shifted > 5 * shifted_std), (shifted / shifted_std).min()


def original_inception_score(logits, splits):
    """The IS of Salimans et al.'s code (``inception_score.py``) on probabilities from logits."""
    preds = scipy.special.softmax(logits, axis=1)
    n, scores = len(preds), []
    for i in range(splits):
        part = preds[(i * n // splits) : ((i + 1) * n // splits), :]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return np.mean(scores), np.std(scores)


def test_inception_score_matches_the_original_code(x64):
    logits = 3.0 * np.random.default_rng(4).normal(size=(103, 7))  # splits of 10 and 11 rows
    mean, std = inception_score(jnp.asarray(logits), num_splits=10)
    expected_mean, expected_std = original_inception_score(logits, 10)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-12)
    np.testing.assert_allclose(std, expected_std, rtol=1e-10)


def test_inception_score_extremes(x64):
    mean, std = inception_score(jnp.zeros((40, 10)), num_splits=4)  # uniform predictions
    np.testing.assert_allclose(mean, 1.0, rtol=1e-14)
    np.testing.assert_allclose(std, 0.0, atol=1e-14)
    # Predictions spread evenly over C classes (p(y) uniform): with a logit margin s, p(y|x) puts
    # 1 - eps, eps = (C - 1) / (e^s + C - 1), on its class and eps / (C - 1) on each other one,
    # and IS = C exp(-H(p(y|x))), which tends to C as s grows.
    classes = 10
    for s in (3.0, 30.0):
        logits = s * jax.nn.one_hot(jnp.arange(200) % classes, classes)
        mean, std = inception_score(logits, num_splits=5)
        eps = (classes - 1) / (np.exp(s) + classes - 1)
        entropy = -(1 - eps) * np.log(1 - eps) - eps * np.log(eps / (classes - 1))
        np.testing.assert_allclose(mean, classes * np.exp(-entropy), rtol=1e-12)
        np.testing.assert_allclose(std, 0.0, atol=1e-10)
    np.testing.assert_allclose(mean, classes, rtol=1e-10)  # s = 30: H is about 3e-11


def test_bad_arguments():
    x, key = jnp.zeros((10, 4)), jax.random.key(0)
    with pytest.raises(ValueError, match="same feature dimension; got 4 and 3"):
        fid(x, jnp.zeros((10, 3)))
    with pytest.raises(ValueError, match="same feature dimension; got 4 and 5"):
        kid(x, jnp.zeros((10, 5)), key)
    with pytest.raises(ValueError, match="subset_size must be an integer >= 2; got 1"):
        kid(x, x, key, subset_size=1)
    with pytest.raises(ValueError, match=r"features2 must have shape \(n, d\) with n >= 2"):
        fid(x, jnp.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"cov2 must have shape \(4, 4\); got shape \(4, 3\)"):
        frechet_distance(jnp.zeros(4), jnp.eye(4), jnp.zeros(4), jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="num_splits must be <= the number of samples 10"):
        inception_score(x, num_splits=11)
