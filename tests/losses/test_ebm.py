"""The EBM maximum-likelihood surrogate: its value and gradient against hand formulas, and that
descending it with exact model samples recovers a Gaussian's mean and variance (the sign and
scale of the likelihood gradient). The surrogate inside exponential tilting is checked in
tests/energies/test_tilting.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.losses.ebm import contrastive_loss


def test_value_and_gradient_of_a_linear_energy(x64):
    # E_theta(x) = theta . x: dL/dtheta = mean x+ - mean x- + 2 alpha (mean E+ x+ + mean E- x-).
    rng = np.random.default_rng(0)
    x_pos, x_neg, theta = rng.normal(size=(9, 3)), rng.normal(1, 2, (5, 3)), rng.normal(size=3)
    alpha = 0.3

    def loss(theta):
        return contrastive_loss(x_pos @ theta, x_neg @ theta, l2_weight=alpha)

    (value, aux), grad = jax.value_and_grad(loss, has_aux=True)(jnp.asarray(theta))
    e_pos, e_neg = x_pos @ theta, x_neg @ theta
    expected = e_pos.mean() - e_neg.mean() + alpha * ((e_pos**2).mean() + (e_neg**2).mean())
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    expected_grad = x_pos.mean(0) - x_neg.mean(0)
    expected_grad += (
        2 * alpha * ((e_pos[:, None] * x_pos).mean(0) + (e_neg[:, None] * x_neg).mean(0))
    )
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12)
    np.testing.assert_allclose(aux["energy_gap"], e_pos.mean() - e_neg.mean(), rtol=1e-12)


def test_descent_with_exact_model_samples_recovers_a_gaussian(x64):
    # E(x) = (x - mu)^2 / (2 s^2), exact negatives mu + s z: the fixed point is the data's mean
    # and standard deviation (maximum likelihood). 4000 data points: SE of the mean 0.016, of
    # the std 0.011; the sampling noise of the 4000 negatives adds as much, so 5 SE ~ 0.1.
    data = 1.5 + 0.7 * jax.random.normal(jax.random.key(0), (4000,))

    def loss(params, key):
        mu, log_s = params
        energy = lambda x: 0.5 * ((x - mu) / jnp.exp(log_s)) ** 2  # noqa: E731
        model = jax.lax.stop_gradient(mu + jnp.exp(log_s) * jax.random.normal(key, (4000,)))
        return contrastive_loss(energy(data), energy(model))[0]

    @jax.jit
    def train(params):
        def body(params, key):
            return params - 0.1 * jax.grad(loss)(params, key), params

        return jax.lax.scan(body, params, jax.random.split(jax.random.key(1), 600))

    _, path = train(jnp.array([0.0, 0.0]))
    mu, s = float(path[300:, 0].mean()), float(jnp.exp(path[300:, 1]).mean())
    assert mu == pytest.approx(float(data.mean()), abs=0.05)
    assert s == pytest.approx(float(data.std()), abs=0.05)


@pytest.mark.parametrize(
    "e_data, e_model, kwargs, match",
    [
        (np.ones((3, 1)), np.ones(3), {}, "energy_data"),
        (np.ones(3), np.ones(0), {}, "energy_model"),
        (np.ones(3), np.arange(3), {}, "energy_model"),
        (np.ones(3), np.ones(3), {"l2_weight": -1.0}, "l2_weight"),
    ],
)
def test_bad_input_is_named(e_data, e_model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        contrastive_loss(e_data, e_model, **kwargs)
