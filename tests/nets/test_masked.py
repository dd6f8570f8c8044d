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
