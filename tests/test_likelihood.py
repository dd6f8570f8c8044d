"""Unit conversions of reported likelihoods, checked on densities known in closed form."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from jgen.losses.likelihood import bits_per_dim, dequantized_nll, nll_loss


def test_uniform_density_on_17_levels_is_log2_17_bits_per_dim():
    """The uniform density on [0, 1)^64 (NLL 0) is the uniform discrete model on {0..16}^64,
    whose NLL is 64 log 17 nats, i.e. log2(17) bits per dimension."""
    nll = dequantized_nll(0.0, 64, 17)
    assert nll == pytest.approx(64 * math.log(17))
    assert bits_per_dim(nll, 64) == pytest.approx(math.log2(17))


def test_nll_loss_is_the_mean_negative_log_density():
    def log_prob(params, x):  # N(mu, 1) in 1-D
        return -0.5 * (x[:, 0] - params) ** 2 - 0.5 * math.log(2 * math.pi)

    x = jnp.array([[0.0], [1.0], [3.0]])
    loss, aux = nll_loss(log_prob)(1.0, x, None)
    expected = 0.5 * np.array([1.0, 0.0, 4.0]) + 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(aux["nll"], expected, rtol=1e-6)
    assert float(loss) == pytest.approx(expected.mean())
