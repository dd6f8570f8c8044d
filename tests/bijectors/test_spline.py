"""Rational-quadratic splines: the elementwise map against autodiff, finite differences and
distrax's RationalQuadraticSpline; the coupling layer through the bijector battery; a 2D spline
flow's density integrated on a grid."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.bijectors.coupling import parity_mask
from jgen.bijectors.spline import (
    SplineCoupling,
    SplineCouplingLayer,
    rational_quadratic_spline,
    spline_knots,
)
from tests.bijectors.battery import check_bijector

K = 6
BOUND = 2.0


def random_params(key, batch_shape=(), num_bins=K, scale=1.0):
    """Unnormalized (widths, heights, derivatives) of a visibly non-identity spline."""
    kw, kh, kd = jax.random.split(key, 3)
    return (
        scale * jax.random.normal(kw, (*batch_shape, num_bins)),
        scale * jax.random.normal(kh, (*batch_shape, num_bins)),
        scale * jax.random.normal(kd, (*batch_shape, num_bins - 1)),
    )


def spline(x, params, inverse=False, bound=BOUND):
    return rational_quadratic_spline(x, *params, bound=bound, inverse=inverse)


def mixed_inputs(key, n):
    """Points inside and outside [-B, B], plus the boundaries themselves."""
    x = 1.5 * BOUND * jax.random.uniform(key, (n,), minval=-1.0, maxval=1.0)
    return jnp.concatenate([x, jnp.array([-BOUND, BOUND, 0.0])])


def test_inverse_round_trip_inside_and_outside(x64):
    x = mixed_inputs(jax.random.key(0), 500)
    params = random_params(jax.random.key(1), x.shape, scale=2.0)
    y, log_det = spline(x, params)
    assert not np.allclose(y, x)
    x_back, inv_log_det = spline(y, params, inverse=True)
    np.testing.assert_allclose(x_back, x, atol=1e-10, rtol=0)
    np.testing.assert_allclose(inv_log_det, -log_det, atol=1e-10, rtol=0)
    outside = np.abs(np.asarray(x)) > BOUND
    assert outside.sum() > 50
    np.testing.assert_array_equal(np.asarray(y)[outside], np.asarray(x)[outside])
    np.testing.assert_array_equal(np.asarray(log_det)[outside], 0.0)


def test_log_det_is_log_of_autodiff_derivative(x64):
    x = mixed_inputs(jax.random.key(2), 300)
    params = random_params(jax.random.key(3), x.shape)

    def elementwise_derivative(inverse):
        def scalar(v, w, h, d):
            return spline(v, (w, h, d), inverse=inverse)[0]

        return jax.jit(jax.vmap(jax.grad(scalar)))(x, *params)

    for inverse in (False, True):
        derivative = elementwise_derivative(inverse)
        np.testing.assert_allclose(
            spline(x, params, inverse=inverse)[1], jnp.log(derivative), atol=1e-10, rtol=0
        )


def test_monotone_on_a_dense_grid(x64):
    grid = jnp.linspace(-1.5 * BOUND, 1.5 * BOUND, 20001)
    # Eight splines at once, broadcast against the grid: (8, 1, K) parameters with (20001,) inputs.
    params = random_params(jax.random.key(4), (8, 1), scale=3.0)
    y, log_det = spline(grid, params)
    assert y.shape == (8, 20001)
    assert np.all(np.diff(np.asarray(y), axis=-1) > 0)
    assert np.all(np.isfinite(np.asarray(log_det)))
    x_back, _ = spline(y, params, inverse=True)
    np.testing.assert_allclose(x_back, jnp.broadcast_to(grid, y.shape), atol=1e-10, rtol=0)


def test_continuous_value_and_derivative_at_knots_and_bounds(x64):
    params = random_params(jax.random.key(5))
    x_knots, y_knots, d_knots = spline_knots(*params, bound=BOUND)
    np.testing.assert_allclose([x_knots[0], x_knots[-1]], [-BOUND, BOUND], rtol=0, atol=0)
    np.testing.assert_allclose([d_knots[0], d_knots[-1]], [1.0, 1.0], rtol=0, atol=0)

    def f(v):
        return spline(v, params)[0]

    np.testing.assert_allclose(f(x_knots), y_knots, atol=1e-12, rtol=0)
    h = 1e-6
    for side in (-1.0, 1.0):
        # Values just beside each knot (including +-B, where the tail starts) approach the knot.
        np.testing.assert_allclose(f(x_knots + side * 1e-10), y_knots, atol=1e-9, rtol=0)
        # One-sided finite differences from each side equal the knot derivative: C^1 joins.
        one_sided = side * (f(x_knots + side * h) - f(x_knots)) / h
        np.testing.assert_allclose(one_sided, d_knots, rtol=1e-3)
        # The analytic derivative just beside the knot agrees too.
        derivative = jnp.exp(spline(x_knots + side * 1e-9, params)[1])
        np.testing.assert_allclose(derivative, d_knots, rtol=1e-6)


@pytest.mark.parametrize("value", [0.0, 0.7, -3.0])
def test_identity_parameters_give_the_identity(x64, value):
    """Equal widths and heights (any constant) with unit derivatives (0 unnormalized)."""
    x = mixed_inputs(jax.random.key(6), 200)
    params = (jnp.full((K,), value), jnp.full((K,), value), jnp.zeros((K - 1,)))
    for inverse in (False, True):
        y, log_det = spline(x, params, inverse=inverse)
        np.testing.assert_allclose(y, x, atol=1e-14, rtol=0)
        np.testing.assert_allclose(log_det, 0.0, atol=1e-14)


def distrax_spline(params, bound=BOUND, min_size=1e-3):
    """The same spline in distrax's parameterisation: its ``params`` are ``[widths (K) | heights
    (K) | slopes at all K + 1 knots]`` with the same softmax/softplus maps; its minimum bin size is
    absolute (ours is a fraction of 2B), and 'identity' boundary slopes ignore the two end
    slopes, which we pad with zeros."""
    w, h, d = params
    pad = jnp.zeros(d.shape[:-1] + (1,))
    return distrax.RationalQuadraticSpline(
        jnp.concatenate([w, h, pad, d, pad], axis=-1),
        range_min=-bound,
        range_max=bound,
        boundary_slopes="identity",
        min_bin_size=2 * bound * min_size,
        min_knot_slope=min_size,
    )


# Jitted: distrax's eager jnp.vectorize dispatches op by op and is slow.
distrax_forward = jax.jit(lambda p, x: distrax_spline(p).forward_and_log_det(x))
distrax_inverse = jax.jit(lambda p, y: distrax_spline(p).inverse_and_log_det(y))


@pytest.mark.parametrize("scale", [0.0, 1.0, 3.0])
def test_matches_distrax_rational_quadratic_spline(x64, scale):
    x = mixed_inputs(jax.random.key(7), 400)
    params = random_params(jax.random.key(8), x.shape, scale=scale)
    y, log_det = spline(x, params)
    y_ref, log_det_ref = distrax_forward(params, x)
    np.testing.assert_allclose(y, y_ref, atol=1e-12, rtol=0)
    np.testing.assert_allclose(log_det, log_det_ref, atol=1e-12, rtol=0)
    x_back, inv_log_det = spline(y, params, inverse=True)
    x_ref, inv_log_det_ref = distrax_inverse(params, y)
    # The inverse solves a quadratic: the two implementations round differently (~1e-12).
    np.testing.assert_allclose(x_back, x_ref, atol=1e-10, rtol=0)
    np.testing.assert_allclose(inv_log_det, inv_log_det_ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize("use_x64", [False, True])
def test_finite_values_and_gradients_far_outside(use_x64):
    with jax.enable_x64(use_x64):
        x = jnp.array([1e3, -1e3, 1e6, -1e6])
        params = random_params(jax.random.key(9), x.shape, scale=2.0)
        for inverse in (False, True):

            def total(v, p, inverse=inverse):
                y, log_det = spline(v, p, inverse=inverse)
                return jnp.sum(y) + jnp.sum(log_det)

            y, log_det = spline(x, params, inverse=inverse)
            np.testing.assert_array_equal(y, x)
            np.testing.assert_array_equal(log_det, 0.0)
            grad_x, grad_params = jax.jit(jax.grad(total, argnums=(0, 1)))(x, params)
            np.testing.assert_array_equal(grad_x, 1.0)
            for g in grad_params:
                assert np.all(np.isfinite(np.asarray(g)))
                np.testing.assert_array_equal(g, 0.0)


def test_gradients_inside_are_finite_and_nonzero(x64):
    """The safe branch must not cut the gradient where the spline is taken."""
    x = jnp.array([-1.5, -0.2, 0.4, 1.9])
    params = random_params(jax.random.key(10), x.shape)
    grads = jax.grad(lambda p: jnp.sum(spline(x, p)[0] ** 2))(params)
    for g in grads:
        g = np.asarray(g)
        assert np.all(np.isfinite(g)) and np.all(np.abs(g).sum(axis=-1) > 0)


def random_conditioner(key, mask, num_bins=K, scale=1.0):
    """A fixed nonlinear conditioner ``(n, P) -> (n, T, 3K - 1)`` with random weights, for the
    ``P`` passed-through and ``T`` transformed elements of ``mask``."""
    k1, k2 = jax.random.split(key)
    per_element = 3 * num_bins - 1
    passed, moved = int(np.sum(mask)), int(np.sum(1 - mask))
    w1 = jax.random.normal(k1, (passed, 16)) / jnp.sqrt(passed)
    w2 = scale * jax.random.normal(k2, (16, moved * per_element)) / 2.0

    def conditioner(x_passed):
        return (jnp.tanh(x_passed @ w1 + 0.3) @ w2).reshape(*x_passed.shape[:-1], moved, -1)

    return conditioner


@pytest.mark.parametrize("dim,parity", [(2, 0), (5, 1)])
def test_spline_coupling_battery(x64, dim, parity):
    bij = SplineCoupling(
        parity_mask((dim,), parity),
        random_conditioner(jax.random.key(dim), parity_mask((dim,), parity)),
        K,
        BOUND,
    )
    x = 1.5 * jax.random.normal(jax.random.key(11), (9, dim))
    check_bijector(bij, x, atol=1e-10)
    y = bij.forward(x)
    passed = parity_mask((dim,), parity).astype(bool)
    np.testing.assert_array_equal(y[:, passed], x[:, passed])


def test_spline_coupling_layer_starts_as_identity_and_inverts(x64):
    dim = 3
    layer = SplineCouplingLayer(num_bins=4, bound=BOUND, hidden_sizes=(16,), parity=1)
    x = 1.5 * jax.random.normal(jax.random.key(12), (6, dim))
    params = layer.init(jax.random.key(13), x)
    y, log_det = layer.apply(params, x)
    np.testing.assert_allclose(y, x, atol=1e-14, rtol=0)
    np.testing.assert_allclose(log_det, 0.0, atol=1e-14)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(14), len(leaves))
    noisy = jax.tree.unflatten(
        treedef,
        [p + 0.5 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys, strict=True)],
    )

    @jax.jit
    def round_trip(variables):
        bij = layer.bind(variables).bijector((dim,))
        y, log_det = bij.forward_and_log_det(x)
        return y, log_det, *bij.inverse_and_log_det(y)

    # The battery runs on SplineCoupling above; here: the module's parameters reach the splines.
    y, log_det, x_back, inv_log_det = round_trip(noisy)
    assert np.max(np.abs(np.asarray(y - x))) > 0.1
    np.testing.assert_array_equal(y[:, 1], x[:, 1])  # parity 1 of (3,): only index 1 passes
    np.testing.assert_allclose(x_back, x, atol=1e-9, rtol=0)
    np.testing.assert_allclose(inv_log_det, -log_det, atol=1e-9, rtol=0)


def test_spline_flow_density_integrates_to_one(x64):
    layers = [
        SplineCoupling(
            parity_mask((2,), i % 2),
            random_conditioner(jax.random.key(20 + i), parity_mask((2,), i % 2), scale=0.5),
            K,
            BOUND,
        )
        for i in range(4)
    ]
    base = distrax.MultivariateNormalDiag(jnp.zeros(2))
    flow = distrax.Transformed(base, distrax.Chain(layers))
    # Midpoint rule on [-7, 7]^2: the tails outside [-B, B] are Gaussian, so the mass left out
    # is ~1e-11. With h = 0.02 the grid error is ~2e-4 (1e-5 at h = 0.01); conditioner outputs much
    # larger than these (scale 1.5) make spikes narrower than the grid resolves.
    edges = jnp.linspace(-7.0, 7.0, 701)
    centres = 0.5 * (edges[1:] + edges[:-1])
    cell = float(edges[1] - edges[0]) ** 2
    grid = jnp.stack(jnp.meshgrid(centres, centres, indexing="ij"), axis=-1).reshape(-1, 2)
    log_prob = jax.jit(flow.log_prob)(grid)
    total = float(jnp.sum(jnp.exp(log_prob)) * cell)
    assert abs(total - 1.0) < 1e-2, total
    # The flow is far from its base, so the check is not vacuous.
    assert float(jnp.max(jnp.abs(log_prob - base.log_prob(grid)))) > 0.5


GOOD = random_params(jax.random.key(30))


@pytest.mark.parametrize(
    "override,name",
    [
        ({"unnormalized_heights": jnp.zeros(K + 1)}, "unnormalized_heights"),
        ({"unnormalized_derivatives": jnp.zeros(K)}, "unnormalized_derivatives"),
        ({"unnormalized_derivatives": jnp.zeros(())}, "unnormalized_derivatives"),
        ({"unnormalized_widths": jnp.zeros(())}, "unnormalized_widths"),
        ({"bound": 0.0}, "bound"),
        ({"bound": -1.0}, "bound"),
        ({"min_bin_width": 1.0 / K}, "min_bin_width"),
        ({"min_derivative": 1.0}, "min_derivative"),
        ({"x": jnp.zeros((3, 2))}, "x of shape"),
    ],
)
def test_bad_spline_arguments_raise(override, name):
    args = {
        "x": jnp.zeros(4),
        "unnormalized_widths": GOOD[0],
        "unnormalized_heights": GOOD[1],
        "unnormalized_derivatives": GOOD[2],
        "bound": BOUND,
    }
    args["unnormalized_widths"] = jnp.zeros((4, K))
    args.update(override)
    with pytest.raises(ValueError, match=name):
        rational_quadratic_spline(**args)


def test_bad_coupling_arguments_raise():
    mask = parity_mask((3,), 0)
    cond = random_conditioner(jax.random.key(31), mask)
    with pytest.raises(ValueError, match="bound"):
        SplineCoupling(mask, cond, K, bound=0.0)
    with pytest.raises(ValueError, match="num_bins"):
        SplineCoupling(mask, cond, 0, BOUND)
    with pytest.raises(ValueError, match="conditioner output"):
        SplineCoupling(mask, cond, K + 1, BOUND).forward(jnp.zeros((2, 3)))
