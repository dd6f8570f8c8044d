"""MADE: the autoregressive property from the autodiff Jacobian, and the masks from the degrees."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.nets.masked import MADE, MaskedDense, made_degrees, made_masks, resolve_ordering
from tests.params import redraw

CASES = [
    (1, (4,), "natural", 2),
    (2, (3,), "natural", 2),
    (3, (), "random", 1),
    (5, (8, 8), "random", 2),
    (6, (5, 7, 5), "random", 3),
    (8, (16,), "natural", 2),
]


@pytest.mark.parametrize("dim,hidden_sizes,ordering,num_params", CASES)
def test_jacobian_is_strictly_lower_triangular_in_the_ordering(
    x64, dim, hidden_sizes, ordering, num_params
):
    if ordering == "random":
        ordering = tuple(int(i) for i in np.random.default_rng(dim).permutation(dim))
    made = MADE(hidden_sizes, num_params_per_dim=num_params, ordering=ordering)
    x = jax.random.normal(jax.random.key(0), (4, dim))

    @jax.jit  # one compilation instead of many op-by-op dispatches
    def outputs_and_jacobian(x):
        params = redraw(made.init(jax.random.key(1), x), jax.random.key(2))

        def single(v):
            return made.apply(params, v[None])[0]

        return made.apply(params, x), jax.vmap(jax.jacfwd(single))(x)  # jac: (n, d, P, d)

    out, jac = outputs_and_jacobian(x)
    assert out.shape == (4, dim, num_params)
    order = resolve_ordering(ordering, dim)
    jac = np.asarray(jac)[:, order][..., order]  # rows and columns in generation order
    upper = np.triu(np.ones((dim, dim), bool))  # diagonal included
    for p in range(num_params):
        np.testing.assert_array_equal(jac[:, :, p][:, upper], 0.0)
        # Widths >= d - 1: every allowed dependence is present, so the test is not vacuous.
        assert np.all(jac[:, :, p][:, ~upper] != 0.0)


def test_masks_agree_with_the_degree_definition():
    dim, hidden_sizes = 5, (7, 3)
    ordering = [3, 0, 4, 1, 2]
    degrees = made_degrees(ordering, hidden_sizes)
    # Input ordering[j] has degree j + 1; hidden degrees cycle over 1..d-1.
    np.testing.assert_array_equal(degrees[0], [2, 4, 5, 1, 3])
    np.testing.assert_array_equal(degrees[1], [1, 2, 3, 4, 1, 2, 3])
    np.testing.assert_array_equal(degrees[2], [1, 2, 3])

    masks = made_masks(ordering, hidden_sizes)
    assert [m.shape for m in masks] == [(5, 7), (7, 3), (3, 5)]
    for layer in range(2):
        prev, nxt = degrees[layer], degrees[layer + 1]
        for a in range(len(prev)):
            for b in range(len(nxt)):
                assert masks[layer][a, b] == float(nxt[b] >= prev[a])
    for a in range(3):
        for i in range(dim):
            assert masks[2][a, i] == float(degrees[0][i] > degrees[2][a])
    # The first variable in the ordering (3) gets no connection; the last (2) sees all units
    # of the last hidden layer.
    np.testing.assert_array_equal(masks[2][:, 3], 0.0)
    np.testing.assert_array_equal(masks[2][:, 2], 1.0)


def test_masked_dense_multiplies_the_kernel_by_the_mask(x64):
    mask = np.array([[1, 0, 1], [0, 1, 1]], np.float32)
    layer = MaskedDense(3, mask)
    x = jax.random.normal(jax.random.key(0), (4, 2))
    params = redraw(layer.init(jax.random.key(1), x), jax.random.key(2))
    kernel, bias = params["params"]["kernel"], params["params"]["bias"]
    np.testing.assert_allclose(layer.apply(params, x), x @ (kernel * mask) + bias, atol=1e-12)


def test_zero_init_output_gives_zero_outputs():
    x = jax.random.normal(jax.random.key(0), (3, 4))
    for zero_init in (True, False):
        made = MADE((8,), num_params_per_dim=2, activation=nn.relu, zero_init_output=zero_init)
        out = jax.jit(lambda x: made.apply(made.init(jax.random.key(1), x), x))(x)  # noqa: B023
        assert np.all(out == 0.0) == zero_init


@pytest.mark.parametrize(
    "kwargs,x_shape,name",
    [
        ({"ordering": (0, 0, 1)}, (2, 3), "ordering"),
        ({"ordering": (0, 1)}, (2, 3), "ordering"),
        ({"ordering": "reverse"}, (2, 3), "ordering"),
        ({"ordering": (0.0, 1.0, 2.0)}, (2, 3), "ordering"),
        ({"num_params_per_dim": 0}, (2, 3), "num_params_per_dim"),
        ({}, (2, 3, 1), "x"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs, x_shape, name):
    made = MADE((4,), **kwargs)
    with pytest.raises(ValueError, match=name):
        made.init(jax.random.key(0), jnp.zeros(x_shape))


def test_bad_mask_arguments_raise():
    with pytest.raises(ValueError, match="hidden_sizes"):
        made_masks([0, 1, 2], (4, 0))
    with pytest.raises(ValueError, match="mask"):
        MaskedDense(3, np.ones((4, 3))).init(jax.random.key(0), jnp.zeros((1, 2)))


@pytest.mark.parametrize("hidden_sizes", [(), (8, 6)])
def test_context_keeps_the_autoregressive_property_and_changes_the_outputs(x64, hidden_sizes):
    dim, num_params, n, c = 5, 2, 3, 4
    ordering = (3, 0, 4, 1, 2)
    made = MADE(hidden_sizes, num_params_per_dim=num_params, ordering=ordering)
    x = jax.random.normal(jax.random.key(0), (n, dim))
    contexts = jax.random.normal(jax.random.key(1), (2, n, c))
    # Every parameter from N(0, 0.5^2), drawn with numpy from the shapes: compiling Flax's
    # initialisers would cost more than the test.
    rng = np.random.default_rng(2)
    shapes = jax.eval_shape(made.init, jax.random.key(0), x, contexts[0])
    params = jax.tree.map(lambda s: jnp.asarray(rng.normal(0.0, 0.5, s.shape)), shapes)
    without = {"params": {k: v for k, v in params["params"].items() if "context" not in k}}

    @jax.jit
    def jacobians_and_outputs(x, contexts):
        def single(v, h):
            return made.apply(params, v[None], h[None])[0]

        jac = jax.vmap(jax.vmap(jax.jacfwd(single, argnums=(0, 1))), in_axes=(None, 0))
        zero_context = made.apply(params, x, jnp.zeros((n, c)))
        return jac(x, contexts), zero_context, made.apply(without, x)  # jac: (2, n, d, P, d | c)

    (jac_x, jac_c), zero_context, no_context = jacobians_and_outputs(x, contexts)
    jac_x = np.asarray(jac_x)[:, :, list(ordering)][..., list(ordering)]  # in generation order
    upper = np.triu(np.ones((dim, dim), bool))  # diagonal included
    for p in range(num_params):
        np.testing.assert_array_equal(jac_x[:, :, :, p][:, :, upper], 0.0)
        if hidden_sizes:  # widths >= d - 1: every allowed dependence is present
            assert np.all(jac_x[:, :, :, p][:, :, ~upper] != 0.0)
    # Every output, the first in the ordering included, depends on the context.
    assert np.all(np.abs(np.asarray(jac_c)).sum(-1) > 0.0)
    # The context maps have no bias: a zero context is no context.
    np.testing.assert_array_equal(zero_context, no_context)


def test_context_map_starts_at_zero_with_a_zero_output_layer():
    made = MADE((), num_params_per_dim=2, zero_init_output=True)
    x, context = jnp.ones((2, 3)), jnp.ones((2, 4))
    assert np.all(made.apply(made.init(jax.random.key(0), x, context), x, context) == 0.0)


@pytest.mark.parametrize("shape", [(3, 4), (2,), (2, 4, 1)])
def test_bad_context_raises_a_value_error_naming_it(shape):
    with pytest.raises(ValueError, match=r"context must have shape \(2, c\)"):
        MADE((4,)).init(jax.random.key(0), jnp.zeros((2, 3)), jnp.zeros(shape))
