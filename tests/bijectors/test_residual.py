"""Residual flows: spectral norm against numpy's 2-norm, the Lipschitz bound of the SN-MLP, the
bijector battery with the exact log-det, unbiasedness of the Russian-roulette estimator, and
argument checks."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.bijectors.residual import (
    ResidualBlock,
    ResidualLayer,
    residual_log_det_estimate,
    residual_log_det_exact,
)
from jgen.nets.spectral_norm import SNDense, spectral_normalize
from tests.bijectors.battery import check_bijector
from tests.params import redraw


def to64(tree):
    return jax.tree.map(lambda p: p.astype(jnp.float64), tree)


def residual_block(dim, *, coeff=0.9, seed=0, fixed_point_iterations=300, hidden=(16, 16)):
    """A ResidualLayer block with redrawn weights (biases nonzero) and converged power
    iterations, in float64."""
    layer = ResidualLayer(
        hidden=hidden,
        coeff=coeff,
        n_power_iterations=200,
        fixed_point_iterations=fixed_point_iterations,
    )
    variables = layer.init(jax.random.key(seed), dim, method=ResidualLayer.bijector)
    variables = {
        "params": to64(redraw(variables["params"], jax.random.key(seed + 1), 1.0)),
        "spectral": to64(variables["spectral"]),
    }
    return layer.apply(variables, dim, method=ResidualLayer.bijector)


@pytest.mark.parametrize("shape", [(5, 3), (20, 7), (8, 8)])
def test_spectral_norm_matches_numpy(x64, shape):
    w = jax.random.normal(jax.random.key(shape[0]), shape)
    u0 = jax.random.normal(jax.random.key(1), shape[1:])
    w_hat, u, sigma = spectral_normalize(w, u0, 500)
    np.testing.assert_allclose(sigma, np.linalg.norm(np.asarray(w), 2), rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(w_hat), 2), 1.0, rtol=1e-4)
    assert u.shape == u0.shape


def test_sn_dense_rescales_only_above_coeff(x64):
    layer = SNDense(6, coeff=0.9, n_iter=300)
    variables = layer.init(jax.random.key(0), jnp.ones((1, 4)))
    for scale, expected in [(10.0, 0.9), (1e-3, None)]:
        params = {"params": to64(redraw(variables["params"], jax.random.key(2), scale))}
        params["spectral"] = to64(variables["spectral"])
        w = np.asarray(params["params"]["kernel"])
        w_hat, _ = layer.apply(params, 4, method=SNDense.weights)
        expected = np.linalg.norm(w, 2) if expected is None else expected
        np.testing.assert_allclose(np.linalg.norm(np.asarray(w_hat), 2), expected, rtol=1e-4)


def test_sn_dense_updates_u_only_when_mutable(x64):
    layer = SNDense(5, n_iter=1)
    variables = layer.init(jax.random.key(0), jnp.ones((1, 3)))
    x = jnp.ones((2, 3))
    _, updates = layer.apply(variables, x, mutable=["spectral"])
    assert not np.allclose(updates["spectral"]["u"], variables["spectral"]["u"])
    layer.apply(variables, x)  # immutable: reads u, must not try to write it


@pytest.mark.parametrize("coeff", [0.9, 0.5])
def test_mlp_lipschitz_at_most_coeff(x64, coeff):
    """``Lip(g) <= coeff^3 <= coeff``: the largest singular value of ``J_g`` at random points."""
    bij = residual_block(3, coeff=coeff, seed=4)
    x = 2.0 * jax.random.normal(jax.random.key(5), (200, 3))
    jac = jax.vmap(jax.jacfwd(lambda v: bij.g(v[None])[0]))(x)
    top = np.linalg.norm(np.asarray(jac), 2, axis=(1, 2)).max()
    assert 0.01 < top <= coeff**3 * (1 + 1e-6), top
    # One linear layer (redrawn weights, sigma >> coeff) is rescaled to exactly coeff.
    linear = residual_block(3, coeff=coeff, seed=4, hidden=())
    jac = jax.jacfwd(lambda v: linear.g(v[None])[0])(x[0])
    np.testing.assert_allclose(np.linalg.norm(np.asarray(jac), 2), coeff, rtol=1e-6)


@pytest.mark.parametrize("dim", [2, 4])
def test_residual_battery(x64, dim):
    bij = residual_block(dim, seed=dim)
    x = 1.5 * jax.random.normal(jax.random.key(10 + dim), (9, dim))
    check_bijector(bij, x, atol=1e-9)


def test_single_event_and_leading_axes(x64):
    bij = residual_block(2)
    x = jax.random.normal(jax.random.key(3), (4, 3, 2))
    y, ld = bij.forward_and_log_det(x)
    y_flat, ld_flat = bij.forward_and_log_det(x.reshape(12, 2))
    np.testing.assert_allclose(y, y_flat.reshape(4, 3, 2), atol=1e-12)
    np.testing.assert_allclose(ld, ld_flat.reshape(4, 3), atol=1e-12)
    y0, ld0 = bij.forward_and_log_det(x[0, 0])
    assert y0.shape == (2,) and ld0.shape == ()


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_estimator_unbiased_2d(x64, probe):
    """Mean of 4000 estimates within 4 standard errors of the exact log-det at each of 3 points.

    ``coeff = 0.6`` per layer keeps ``rho(J)^2 < 1 - p = 0.5``, so the variance is finite and the
    standard error meaningful.
    """
    bij = residual_block(2, coeff=0.6, seed=7)
    x = jax.random.normal(jax.random.key(8), (3, 2))
    exact = residual_log_det_exact(bij.g, x)
    n = 4000
    keys = jax.random.split(jax.random.key(9), n)
    est = jax.jit(jax.vmap(lambda k: residual_log_det_estimate(bij.g, x, k, probe=probe)))(keys)
    est = np.asarray(est)
    mean, se = est.mean(0), est.std(0, ddof=1) / np.sqrt(n)
    assert np.all(se > 0) and np.all(np.abs(exact) > 10 * se), (exact, se)
    np.testing.assert_array_less(np.abs(mean - exact), 4 * se)


def test_estimator_with_all_terms_exact_matches_series(x64):
    """With the geometric tail cut to nothing past ``max_terms = n_exact_terms``, the Gaussian
    probe average over many probes of the truncated series approaches the exact log-det: a
    check of the signs and 1/k weights independent of the roulette reweighting."""
    bij = residual_block(2, coeff=0.5, seed=11)
    x = jax.random.normal(jax.random.key(12), (2, 2))
    keys = jax.random.split(jax.random.key(13), 4000)
    est = jax.vmap(
        lambda k: residual_log_det_estimate(bij.g, x, k, n_exact_terms=30, max_terms=30)
    )(keys)
    est = np.asarray(est)
    se = est.std(0, ddof=1) / np.sqrt(len(est))
    np.testing.assert_array_less(np.abs(est.mean(0) - residual_log_det_exact(bij.g, x)), 4 * se)


def test_jit_grad_and_estimate_method():
    layer = ResidualLayer(hidden=(8,))
    variables = layer.init(jax.random.key(0), 3, method=ResidualLayer.bijector)
    x = jax.random.normal(jax.random.key(1), (5, 3))

    def loss(params, key):
        bij = layer.apply({**variables, "params": params}, 3, method=ResidualLayer.bijector)
        y, ld = bij.forward_and_log_det_estimate(x, key)
        return jnp.mean(jnp.sum(y**2, -1) - ld)

    grads = jax.jit(jax.grad(loss))(variables["params"], jax.random.key(2))
    leaves = jax.tree.leaves(grads)
    assert all(np.all(np.isfinite(g)) for g in leaves)
    assert any(np.any(g != 0) for g in leaves)
    bij = layer.apply(variables, 3, method=ResidualLayer.bijector)
    y = jax.jit(bij.forward)(x)
    np.testing.assert_allclose(jax.jit(bij.inverse)(y), x, atol=1e-5)


def test_bad_arguments():
    g = nn.tanh
    x = jnp.ones((4, 2))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="probe"):
        residual_log_det_estimate(g, x, key, probe="normal")
    with pytest.raises(ValueError, match="geometric_p"):
        residual_log_det_estimate(g, x, key, geometric_p=1.0)
    with pytest.raises(ValueError, match="n_exact_terms"):
        residual_log_det_estimate(g, x, key, n_exact_terms=-1)
    with pytest.raises(ValueError, match="max_terms"):
        residual_log_det_estimate(g, x, key, n_exact_terms=5, max_terms=3)
    with pytest.raises(ValueError, match="x must have shape"):
        residual_log_det_estimate(g, jnp.ones(3), key)
    with pytest.raises(ValueError, match="fixed_point_iterations"):
        ResidualBlock(g, 2, fixed_point_iterations=0)
    with pytest.raises(ValueError, match="dim"):
        ResidualBlock(g, 0)
    with pytest.raises(ValueError, match="x must have shape"):
        ResidualBlock(g, 2).forward(jnp.ones((4, 3)))
    with pytest.raises(ValueError, match="y must have shape"):
        ResidualBlock(g, 2).inverse(jnp.ones((4, 3)))
    with pytest.raises(ValueError, match="coeff"):
        ResidualLayer(coeff=1.0).init(key, 2, method=ResidualLayer.bijector)
    with pytest.raises(ValueError, match="n_iter"):
        spectral_normalize(jnp.ones((3, 2)), jnp.ones(2), 0)
    with pytest.raises(ValueError, match="u must have shape"):
        spectral_normalize(jnp.ones((3, 2)), jnp.ones(3), 5)
    with pytest.raises(ValueError, match="kernel must have shape"):
        spectral_normalize(jnp.ones(3), jnp.ones(3), 5)
