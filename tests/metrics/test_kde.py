"""The Parzen-window log-density against scikit-learn's KernelDensity, its normalisation by
quadrature, chunking, and the bandwidth search against an explicit loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.neighbors import KernelDensity

from jgen.metrics.kde import log_prob, select_bandwidth


def sklearn_log_prob(x, data, h):
    """scikit-learn's exact (rtol = atol = 0) Gaussian KDE on flattened events."""
    flat = lambda a: np.asarray(a).reshape(len(a), -1)
    return KernelDensity(kernel="gaussian", bandwidth=h).fit(flat(data)).score_samples(flat(x))


@pytest.mark.parametrize("dim", [2, 64])
@pytest.mark.parametrize("h", [0.3, 1.0, 2.5])
def test_matches_sklearn(x64, dim, h):
    rng = np.random.default_rng(dim)
    data, x = rng.normal(size=(50, dim)), rng.normal(0.3, 1.2, size=(23, dim))
    np.testing.assert_allclose(
        log_prob(x, data, h), sklearn_log_prob(x, data, h), rtol=0, atol=1e-8
    )


def test_image_events_are_flattened_and_bandwidth_may_be_traced(x64):
    rng = np.random.default_rng(1)
    data, x = rng.uniform(size=(40, 4, 4, 2)), rng.uniform(size=(9, 4, 4, 2))
    jitted = jax.jit(log_prob, static_argnames="chunk_size")
    for h in (0.2, 0.7):  # one compilation, h traced
        np.testing.assert_allclose(
            jitted(x, data, jnp.asarray(h), chunk_size=4),
            sklearn_log_prob(x, data, h),
            rtol=0,
            atol=1e-8,
        )


def test_chunking_does_not_change_the_result(x64):
    rng = np.random.default_rng(2)
    data, x = rng.normal(size=(30, 5)), rng.normal(size=(17, 5))
    whole = log_prob(x, data, 0.8, chunk_size=17)
    # 1 and 4 leave a remainder of queries (17 = 4 * 4 + 1); 1024 > n is one chunk.
    for chunk_size in (1, 4, 16, 1024):
        np.testing.assert_allclose(log_prob(x, data, 0.8, chunk_size=chunk_size), whole, rtol=1e-13)


def test_one_dimensional_density_integrates_to_one(x64):
    data = np.random.default_rng(3).normal(size=(20,))  # scalar events
    h = 0.4
    # The data lie within |d| < 4, so the mass outside [-12, 12] is below Phi(-8 / 0.4) ~ 1e-88;
    # the trapezoidal rule on a smooth, vanishing integrand converges faster than any power of
    # the spacing, so 1e-10 is far above both errors (measured: ~1e-15).
    grid = np.linspace(-12.0, 12.0, 6001)
    density = np.exp(np.asarray(log_prob(grid, data, h)))
    assert abs(np.trapezoid(density, grid) - 1.0) < 1e-10


def test_select_bandwidth_matches_a_loop_over_sklearn(x64):
    rng = np.random.default_rng(4)
    # Train and validation from the same 3-D Gaussian: the best bandwidth is interior to the grid.
    train, validation = rng.normal(size=(60, 3)), rng.normal(size=(25, 3))
    bandwidths = np.geomspace(0.1, 3.0, 12)
    expected = np.array([sklearn_log_prob(validation, train, h).mean() for h in bandwidths])
    best, means = select_bandwidth(train, validation, bandwidths, chunk_size=8)
    np.testing.assert_allclose(means, expected, rtol=0, atol=1e-8)
    assert 0 < np.argmax(expected) < len(bandwidths) - 1
    assert float(best) == bandwidths[np.argmax(expected)]


def test_bad_arguments():
    data = jnp.zeros((5, 2))
    with pytest.raises(ValueError, match=r"x and data must have the same event shape; got \(3,\)"):
        log_prob(jnp.zeros((4, 3)), data, 1.0)
    with pytest.raises(ValueError, match="bandwidth must be finite and > 0; got 0.0"):
        log_prob(data, data, 0.0)
    with pytest.raises(ValueError, match=r"bandwidth must be a scalar; got shape \(2,\)"):
        log_prob(data, data, jnp.ones(2))
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1; got 0"):
        log_prob(data, data, 1.0, chunk_size=0)
    with pytest.raises(ValueError, match=r"data must be a non-empty batch .* got shape \(0, 2\)"):
        log_prob(data, jnp.zeros((0, 2)), 1.0)
    with pytest.raises(ValueError, match=r"validation and train must have the same event shape"):
        select_bandwidth(data, jnp.zeros((4, 3)), jnp.ones(3))
    with pytest.raises(ValueError, match=r"bandwidths must be finite and > 0"):
        select_bandwidth(data, data, jnp.array([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"bandwidths must have shape \(k,\); got shape \(\)"):
        select_bandwidth(data, data, 1.0)
