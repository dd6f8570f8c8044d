"""Autoregressive likelihoods against scipy: categorical log-softmax and the PixelCNN++ mixture of
discretised logistics (bin masses as logistic CDF differences)."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from jgen.losses.autoregressive import (
    categorical_log_likelihood,
    discretized_logistic_mixture_log_likelihood,
    split_logistic_mixture,
    tokens_to_grid,
)
from jgen.losses.elbo import discretized_logistic_log_likelihood


def test_categorical_equals_scipy_log_softmax(x64):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 5, 7)) * 3
    tokens = rng.integers(0, 7, size=(3, 4, 5))
    expected = np.take_along_axis(special.log_softmax(logits, -1), tokens[..., None], -1)
    got = categorical_log_likelihood(jnp.asarray(logits), jnp.asarray(tokens))
    np.testing.assert_allclose(got, expected.sum(axis=(1, 2, 3)), rtol=1e-12)
    # A single example (batch of one) gives its own sum.
    one = categorical_log_likelihood(jnp.asarray(logits[:1]), jnp.asarray(tokens[:1]))
    np.testing.assert_allclose(one, got[:1], rtol=1e-12)


def test_categorical_checks_its_inputs():
    logits = jnp.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="tokens must have an integer dtype"):
        categorical_log_likelihood(logits, jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"logits must have shape \(2, 4, 'P'\)"):
        categorical_log_likelihood(logits, jnp.zeros((2, 4), jnp.int32))


def _mixture_reference(x, weights, means, log_scales, num_levels):
    """``log sum_m w_m [F_m(x + h) - F_m(x - h)]`` with the edge bins open, by scipy's logistic
    CDF in float64 (fine away from the far tails, which the parameters below avoid)."""
    h = 1.0 / (num_levels - 1)
    scales = np.exp(log_scales)
    x = x[..., None]
    upper = np.where(x > 1 - h, 1.0, stats.logistic.cdf(x + h, means, scales))
    lower = np.where(x < -1 + h, 0.0, stats.logistic.cdf(x - h, means, scales))
    probs = np.sum(special.softmax(weights, -1) * (upper - lower), axis=-1)
    return np.log(probs).reshape(len(x), -1).sum(axis=1)


@pytest.mark.parametrize("num_levels", [2, 17, 256])
def test_logistic_mixture_equals_cdf_differences(x64, num_levels):
    rng = np.random.default_rng(num_levels)
    shape, m = (4, 3, 2), 5
    tokens = rng.integers(0, num_levels, size=shape)
    x = np.asarray(tokens_to_grid(tokens, num_levels))
    weights, means = rng.normal(size=(*shape, m)), rng.uniform(-1, 1, size=(*shape, m))
    log_scales = rng.uniform(-3, 0, size=(*shape, m))
    got = discretized_logistic_mixture_log_likelihood(
        *map(jnp.asarray, (x, weights, means, log_scales)), num_levels
    )
    np.testing.assert_allclose(
        got, _mixture_reference(x, weights, means, log_scales, num_levels), rtol=1e-9
    )


def test_one_component_is_the_discretised_logistic(x64):
    rng = np.random.default_rng(1)
    x = np.asarray(tokens_to_grid(rng.integers(0, 17, size=(5, 8)), 17))
    means, log_scales = rng.uniform(-1, 1, size=(5, 8)), rng.uniform(-4, 0, size=(5, 8))
    got = discretized_logistic_mixture_log_likelihood(
        jnp.asarray(x), jnp.zeros((5, 8, 1)), means[..., None], log_scales[..., None], 17
    )
    np.testing.assert_allclose(
        got, discretized_logistic_log_likelihood(x, means, log_scales, 17), rtol=1e-12
    )


def test_logistic_mixture_sums_to_one_over_the_levels(x64):
    rng = np.random.default_rng(2)
    num_levels, m = 17, 3
    levels = jnp.arange(num_levels)[:, None]  # every level as its own "example" of one element
    params = [np.broadcast_to(rng.normal(size=(1, 1, m)), (num_levels, 1, m)) for _ in range(3)]
    log_p = discretized_logistic_mixture_log_likelihood(
        tokens_to_grid(levels, num_levels), *map(jnp.asarray, params), num_levels
    )
    np.testing.assert_allclose(float(special.logsumexp(np.asarray(log_p))), 0.0, atol=1e-12)


def test_mixture_checks_shapes():
    x = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match="means must have shape"):
        discretized_logistic_mixture_log_likelihood(
            x, jnp.zeros((2, 3, 4)), jnp.zeros((2, 3, 5)), jnp.zeros((2, 3, 4)), 17
        )
    with pytest.raises(ValueError, match="params must have a last axis of 3 M"):
        split_logistic_mixture(jnp.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="num_levels"):
        discretized_logistic_mixture_log_likelihood(x, *[jnp.zeros((2, 3, 1))] * 3, 1)
