"""Planar and radial flows: the bijector battery (including raw parameters that violate the
invertibility condition before the reparameterisation), the accuracy of the planar root solve in
an ill-conditioned case, and the normalisation of 2D flows of 8 layers by quadrature."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.bijectors.planar import Planar, PlanarLayer, constrained_u
from jgen.bijectors.radial import Radial, RadialLayer
from tests.bijectors.battery import check_bijector


def planar_params(key, dim, wu_raw):
    """Random ``(u, w, b)`` with ``w . u = wu_raw`` exactly before the correction."""
    ku, kw, kb = jax.random.split(key, 3)
    w = jax.random.normal(kw, (dim,))
    u = jax.random.normal(ku, (dim,))
    u = u + (wu_raw - w @ u) * w / (w @ w)
    return u, w, jax.random.normal(kb, ())


# w . u before the correction: moderate, very negative (violates w . u >= -1), large positive.
@pytest.mark.parametrize("dim", [2, 5])
@pytest.mark.parametrize("wu_raw", [0.7, -8.0, 4.0])
def test_planar_battery(x64, dim, wu_raw):
    u, w, b = planar_params(jax.random.key(dim), dim, wu_raw)
    bij = Planar(u, w, b)
    assert w @ bij.u_hat > -1.0
    x = 1.5 * jax.random.normal(jax.random.key(10 + dim), (11, dim))
    check_bijector(bij, x, atol=1e-9)


# beta_raw very negative drives beta to -alpha (the edge of invertibility); large positive beta.
@pytest.mark.parametrize("dim", [2, 5])
@pytest.mark.parametrize("alpha_raw,beta_raw", [(0.3, -0.5), (-1.0, -12.0), (1.5, 3.0)])
def test_radial_battery(x64, dim, alpha_raw, beta_raw):
    z0 = jax.random.normal(jax.random.key(dim), (dim,))
    bij = Radial(z0, jnp.asarray(alpha_raw), jnp.asarray(beta_raw))
    assert bij.beta > -bij.alpha
    x = z0 + 1.5 * jax.random.normal(jax.random.key(20 + dim), (11, dim))
    # One point near the centre, where the contraction is strongest.
    x = x.at[0].set(z0 + 1e-3)
    check_bijector(bij, x, atol=1e-9)


def test_constrained_u_only_changes_the_component_along_w(x64):
    u, w, _ = planar_params(jax.random.key(3), 4, -30.0)
    u_hat = constrained_u(u, w)
    np.testing.assert_allclose(w @ u_hat, -1.0 + jax.nn.softplus(-30.0), rtol=1e-12)
    perp = lambda v: v - (v @ w) * w / (w @ w)
    np.testing.assert_allclose(perp(u_hat), perp(u), atol=1e-12)


def test_planar_inverse_accurate_when_nearly_singular(x64):
    """``w . u_hat = -1 + softplus(-14) ~ -1 + 8e-7``: at ``w . z + b = 0`` the map is nearly
    flat along ``w`` (Jacobian determinant 8e-7); the inverse is still accurate to 1e-9,
    including points on and next to that hyperplane."""
    dim = 3
    u, w, b = planar_params(jax.random.key(7), dim, -14.0)
    bij = Planar(u, w, b)
    assert float(w @ bij.u_hat) + 1.0 < 1e-6
    x = 2.0 * jax.random.normal(jax.random.key(8), (64, dim))
    # Move some points onto / next to the hyperplane w . z + b = 0.
    offsets = jnp.concatenate([jnp.zeros(4), jnp.array([1e-6, -1e-4, 1e-3, -1e-2])])
    on_plane = x[:8] - ((x[:8] @ w + b - offsets) / (w @ w))[:, None] * w
    x = x.at[:8].set(on_plane)
    y, logdet = bij.forward_and_log_det(x)
    assert float(jnp.min(logdet)) < -13.0  # the hard points really are nearly singular
    x_back, inv_logdet = jax.jit(bij.inverse_and_log_det)(y)
    np.testing.assert_allclose(x_back, x, atol=1e-9, rtol=0)
    np.testing.assert_allclose(inv_logdet[8:], -logdet[8:], atol=1e-9, rtol=0)
    # Next to the hyperplane the log-det itself is ill-conditioned: d logdet / d(w . z) reaches
    # 1 / sqrt(8e-7) ~ 1e3, times the root's floor of float64 eps / 8e-7 ~ 3e-10.
    np.testing.assert_allclose(inv_logdet[:8], -logdet[:8], atol=1e-6, rtol=0)


def flow_log_prob(layer_cls, init_scale, key, num_layers=8, dim=2):
    """``log p(x)`` of ``x = f_K o ... o f_1(z)``, ``z ~ N(0, I)``, with freshly initialised
    layers: ``log N(f^{-1}(x); 0, I) + log|det d f^{-1}/dx|`` through ``distrax.Transformed``."""
    keys = jax.random.split(key, num_layers)
    layers = []
    for k in keys:
        module = layer_cls(init_scale=init_scale)
        params = module.init(k, dim, method=layer_cls.bijector)
        layers.append(module.apply(params, dim, method=layer_cls.bijector))
    base = distrax.MultivariateNormalDiag(jnp.zeros(dim), jnp.ones(dim))
    flow = distrax.Transformed(base, distrax.Chain(layers[::-1]))  # Chain applies the last first
    return flow, jax.jit(flow.log_prob)


# Box half-widths chosen from samples (the largest |coordinate| of 20000 is 3.4 for planar and 7.9
# for radial); at spacing 0.05 the midpoint rule is off by 1e-4 (planar) and 2e-5 (radial).
@pytest.mark.parametrize(
    "layer_cls,init_scale,half", [(PlanarLayer, 0.7, 6.0), (RadialLayer, 1.5, 8.0)]
)
def test_flow_density_integrates_to_one(x64, layer_cls, init_scale, half):
    flow, log_prob = flow_log_prob(layer_cls, init_scale, jax.random.key(0))
    h = 0.05
    centres = jnp.arange(-half + h / 2, half, h)
    grid = jnp.stack(jnp.meshgrid(centres, centres), -1).reshape(-1, 2)
    lp = log_prob(grid)
    total = float(jnp.sum(jnp.exp(lp)) * h**2)
    assert abs(total - 1.0) < 1e-2, total
    # The flow is far from its N(0, I) base where it has mass (the check is not about the base).
    shift = jnp.abs(lp - flow.distribution.log_prob(grid))
    assert float(jnp.max(jnp.where(lp > -8.0, shift, 0.0))) > 1.0
    # The box holds the mass: no sample from the flow (vmapped single events) falls outside.
    samples = flow.sample(seed=jax.random.key(1), sample_shape=4000)
    assert samples.shape == (4000, 2)
    assert float(jnp.mean(jnp.any(jnp.abs(samples) > half, axis=-1))) < 1e-3


def test_layers_are_not_the_identity_at_init():
    x = jax.random.normal(jax.random.key(0), (5, 3))
    for layer_cls in (PlanarLayer, RadialLayer):
        module = layer_cls()
        params = module.init(jax.random.key(1), 3, method=layer_cls.bijector)
        y = module.apply(params, 3, method=layer_cls.bijector).forward(x)
        assert float(jnp.max(jnp.abs(y - x))) > 1e-3, layer_cls


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="w must have the shape of u"):
        Planar(jnp.ones(3), jnp.ones(2), 0.0)
    with pytest.raises(ValueError, match=r"u must have shape \(d,\)"):
        Planar(jnp.ones((2, 2)), jnp.ones((2, 2)), 0.0)
    with pytest.raises(ValueError, match="b must be a scalar"):
        Planar(jnp.ones(2), jnp.ones(2), jnp.zeros(2))
    with pytest.raises(ValueError, match=r"z0 must have shape \(d,\)"):
        Radial(jnp.zeros(()), 0.0, 0.0)
    with pytest.raises(ValueError, match="beta_raw must be a scalar"):
        Radial(jnp.zeros(2), 0.0, jnp.zeros(1))
    planar = Planar(jnp.ones(2), jnp.ones(2), 0.0)
    radial = Radial(jnp.zeros(2), 0.0, 1.0)
    for bij in (planar, radial):
        with pytest.raises(ValueError, match=r"x must have shape \(n, 2\).*got shape \(\)"):
            bij.forward(jnp.ones(()))
        with pytest.raises(ValueError, match=r"y must have shape \(n, 2\).*got shape \(4, 3\)"):
            bij.inverse(jnp.ones((4, 3)))
        with pytest.raises(ValueError, match="x must have a floating-point dtype"):
            bij.forward(jnp.ones((4, 2), dtype=jnp.int32))
    with pytest.raises(ValueError, match="dim must be an integer"):
        PlanarLayer().init(jax.random.key(0), 0, method=PlanarLayer.bijector)
