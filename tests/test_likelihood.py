"""Unit conversions of reported likelihoods, checked on densities known in closed form."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from jgen.losses.likelihood import bits_per_dim, dequantized_nll, nll_loss, rescaled_nll


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


@pytest.mark.parametrize("data_scale, shift", [(1.0, 0.0), (2.0, -1.0), (255.0 / 256.0, 0.5)])
def test_uniform_density_on_any_rescaled_interval_gives_log_k_per_dim(data_scale, shift):
    """The uniform density on the model's interval [shift, shift + data_scale)^D has NLL
    D log(data_scale); whatever the scale, it is the uniform discrete model, D log K nats."""
    d, k = 64, 17
    del shift  # a shift changes no density
    nll_model = d * math.log(data_scale)
    assert dequantized_nll(nll_model, d, k, data_scale) == pytest.approx(d * math.log(k))


def test_rescaled_nll_is_the_change_of_variables():
    """x ~ N(0, 1) in D dims seen as y = 3x: -log p_y(y) - D log 3 = -log p_x(x)."""
    x = np.array([[0.3, -1.2], [2.0, 0.1]])
    nll_x = 0.5 * np.sum(x**2, 1) + math.log(2 * math.pi)
    y = 3.0 * x
    nll_y = 0.5 * np.sum((y / 3.0) ** 2, 1) + math.log(2 * math.pi) + 2 * math.log(3.0)
    np.testing.assert_allclose(rescaled_nll(nll_y, 2, 3.0), nll_x, rtol=1e-6)
    np.testing.assert_allclose(rescaled_nll(nll_y, 2, -3.0), nll_x, rtol=1e-6)
