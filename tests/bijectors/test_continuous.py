"""Continuous normalizing flows (FFJORD): the bijector battery on random MLP fields, the closed-form
flow of a linear field, unbiasedness of the Hutchinson log-det, and normalisation of a 2D flow by
quadrature."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jgen.bijectors.continuous import ContinuousFlow, ContinuousFlowLayer
from tests.bijectors.battery import check_bijector
from tests.params import float64, redraw


def random_flow(dim, key, *, scale=0.5, **kwargs):
    """A ``ContinuousFlowLayer`` (two hidden layers of 16) with every weight redrawn from
    ``N(0, scale^2)`` (the zero-initialised output would make it the identity), bound to its
    parameters, and its bijector."""
    layer = ContinuousFlowLayer(hidden_sizes=(16, 16), **kwargs)
    params = layer.init(jax.random.key(0), jnp.zeros((1, dim)))
    bound = layer.bind(float64(redraw(params, key, scale)))
    return bound, bound.bijector(dim)


# RK4 with 128 steps: the round trip is off by 3e-11 and the accumulated divergence differs from
# slogdet of the Jacobian of the discrete map by 1.1e-9 at most (2.7e-7 with 32 steps, 1.7e-8 with
# 64: fourth order), against atol 1e-8. The flow moves points by up to 3 and log-dets reach 1.9.
@pytest.mark.parametrize("dim", [2, 3])
def test_battery(x64, dim):
    _, bij = random_flow(dim, jax.random.key(dim), n_steps=128)
    x = jax.random.normal(jax.random.key(10 + dim), (7, dim))
    check_bijector(bij, x, atol=1e-8)
    assert float(jnp.max(jnp.abs(bij.forward_and_log_det(x)[1]))) > 0.5


@pytest.mark.parametrize("method,n_steps", [("rk4", 128), ("dopri5", 1)])
def test_linear_field_is_the_matrix_exponential(x64, method, n_steps):
    """``dx/dt = A x`` gives ``x(1) = expm(A) x(0)`` and ``log|det| = tr(A)`` for every ``x``."""
    a = 0.6 * jax.random.normal(jax.random.key(0), (3, 3)) + 0.4 * jnp.eye(3)
    bij = ContinuousFlow(
        lambda x, t: x @ a.T, method=method, n_steps=n_steps, rtol=1e-11, atol=1e-11
    )
    x = jax.random.normal(jax.random.key(1), (5, 3))
    y, log_det = bij.forward_and_log_det(x)
    np.testing.assert_allclose(y, x @ scipy.linalg.expm(np.asarray(a)).T, atol=1e-9, rtol=0)
    np.testing.assert_allclose(log_det, np.full(5, np.trace(a)), atol=1e-9, rtol=0)
    x_back, inv_log_det = bij.inverse_and_log_det(y)
    np.testing.assert_allclose(x_back, x, atol=1e-9, rtol=0)
    np.testing.assert_allclose(inv_log_det, -log_det, atol=1e-9, rtol=0)
    assert abs(float(np.trace(a))) > 0.3  # the log-det is not trivially 0


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_log_det_is_unbiased(x64, probe):
    """The state does not depend on the probe and the log-det is linear in the divergence, so the
    RK4 Hutchinson log-det averages to the RK4 exact one; 4000 keys, within 4 standard errors."""
    bound, exact = random_flow(2, jax.random.key(5), n_steps=16)
    x = jax.random.normal(jax.random.key(6), (4, 2))
    y, log_det = exact.forward_and_log_det(x)

    def estimate(key):
        bij = ContinuousFlow(
            bound.vector_field, n_steps=16, divergence="hutchinson", key=key, probe=probe
        )
        return bij.forward_and_log_det(x)

    ys, estimates = jax.jit(jax.vmap(estimate))(jax.random.split(jax.random.key(7), 4000))
    np.testing.assert_allclose(ys, jnp.broadcast_to(y, ys.shape), atol=1e-12)
    mean, std = jnp.mean(estimates, 0), jnp.std(estimates, 0)
    assert float(jnp.min(std)) > 1e-2  # really stochastic
    assert np.all(np.abs(mean - log_det) < 4 * std / np.sqrt(4000)), (mean, log_det, std)
    # A fixed key makes it deterministic, and the inverse then gives minus the forward log-det.
    bij = ContinuousFlow(
        bound.vector_field, n_steps=16, divergence="hutchinson", key=jax.random.key(8)
    )
    y1, ld1 = bij.forward_and_log_det(x)
    np.testing.assert_allclose(bij.forward_and_log_det(x)[1], ld1, atol=0)
    np.testing.assert_allclose(bij.inverse_and_log_det(y1)[1], -ld1, atol=1e-6)


def test_flow_density_integrates_to_one(x64):
    """``log p(x) = log N(f^{-1}(x); 0, I) + log|det d f^{-1}/dx|`` by ``distrax.Transformed``,
    midpoint rule on a 140 x 140 grid of spacing 0.1 over [-7, 7]^2."""
    _, bij = random_flow(2, jax.random.key(3), n_steps=16)
    flow = distrax.Transformed(distrax.MultivariateNormalDiag(jnp.zeros(2), jnp.ones(2)), bij)
    h, half = 0.1, 7.0
    centres = jnp.arange(-half + h / 2, half, h)
    grid = jnp.stack(jnp.meshgrid(centres, centres), -1).reshape(-1, 2)
    lp = jax.jit(flow.log_prob)(grid)
    total = float(jnp.sum(jnp.exp(lp)) * h**2)
    assert abs(total - 1.0) < 1e-2, total
    # The flow is far from its base where it has mass (the check is not about the base).
    shift = jnp.abs(lp - flow.distribution.log_prob(grid))
    assert float(jnp.max(jnp.where(lp > -8.0, shift, 0.0))) > 1.0
    # The box holds the mass; sampling goes through the forward map.
    samples, sample_lp = flow.sample_and_log_prob(seed=jax.random.key(1), sample_shape=2000)
    assert float(jnp.mean(jnp.any(jnp.abs(samples) > half, axis=-1))) < 1e-3
    np.testing.assert_allclose(sample_lp, flow.log_prob(samples), atol=1e-4)


def test_jit_vmap_single_events_and_gradients(x64):
    bound, bij = random_flow(3, jax.random.key(4), n_steps=16)
    x = jax.random.normal(jax.random.key(9), (6, 3))
    y, log_det = bij.inverse_and_log_det(x)
    y_jit, ld_jit = jax.jit(bij.inverse_and_log_det)(x)
    np.testing.assert_allclose(y_jit, y, atol=1e-12)
    np.testing.assert_allclose(ld_jit, log_det, atol=1e-12)
    # Single events and extra leading axes are flattened into one batch.
    y0, ld0 = bij.inverse_and_log_det(x[0])
    assert y0.shape == (3,) and ld0.shape == ()
    np.testing.assert_allclose(y0, y[0], atol=1e-12)
    y2, ld2 = jax.vmap(bij.inverse_and_log_det)(x.reshape(2, 3, 3))
    np.testing.assert_allclose(y2.reshape(6, 3), y, atol=1e-12)
    np.testing.assert_allclose(ld2.reshape(6), log_det, atol=1e-12)

    # Reverse mode through RK4 against a central difference along a random direction.
    layer = ContinuousFlowLayer(hidden_sizes=(16, 16), n_steps=8)
    params = float64(redraw(layer.init(jax.random.key(0), x), jax.random.key(4), 0.5))
    loss = jax.jit(lambda p: jnp.mean(layer.apply(p, x)[1]))
    grads = jax.grad(loss)(params)
    direction = redraw(params, jax.random.key(11), 1.0)
    step = lambda s: jax.tree.map(lambda p, d: p + s * d, params, direction)
    numeric = (loss(step(1e-5)) - loss(step(-1e-5))) / 2e-5
    analytic = sum(
        jnp.vdot(g, d)
        for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(direction), strict=True)
    )
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6)
    assert abs(float(analytic)) > 1e-3


def test_fresh_layer_is_the_identity():
    layer = ContinuousFlowLayer()
    x = jax.random.normal(jax.random.key(0), (5, 2))
    params = layer.init(jax.random.key(1), x)
    y, log_det = layer.apply(params, x)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(log_det, jnp.zeros(5))


def test_bad_arguments_name_the_argument():
    field = lambda x, t: -x
    with pytest.raises(ValueError, match="vector_field must be callable"):
        ContinuousFlow(None)
    with pytest.raises(ValueError, match="method must be one of"):
        ContinuousFlow(field, method="rk45")
    with pytest.raises(ValueError, match="n_steps must be an integer >= 1"):
        ContinuousFlow(field, n_steps=0)
    with pytest.raises(ValueError, match="divergence must be one of"):
        ContinuousFlow(field, divergence="trace")
    with pytest.raises(ValueError, match="key must be a PRNG key"):
        ContinuousFlow(field, divergence="hutchinson")
    with pytest.raises(ValueError, match="probe must be one of"):
        ContinuousFlow(field, probe="uniform")
    with pytest.raises(ValueError, match="rtol must be finite and > 0"):
        ContinuousFlow(field, method="dopri5", rtol=0.0)
    bij = ContinuousFlow(field, n_steps=2)
    with pytest.raises(ValueError, match="x must be a floating-point array"):
        bij.forward(jnp.ones((4, 2), jnp.int32))
    with pytest.raises(ValueError, match=r"y must be a floating-point array.*got shape \(\)"):
        bij.inverse(jnp.ones(()))
    bad = ContinuousFlow(lambda x, t: x[:, :1], n_steps=2)
    with pytest.raises(ValueError, match=r"vector_field must return the shape of its input"):
        bad.forward(jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="dim must be an integer"):
        ContinuousFlowLayer().bind({}).bijector(0)
