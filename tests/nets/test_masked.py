"""MADE: the autoregressive property from the autodiff Jacobian, and the masks from the degrees;
order- and connectivity-agnostic mask sets: every mask autoregressive in its own ordering, and
Bernoulli probabilities that sum to one over all 2^10 binary vectors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.nets.masked import (
    MADE,
    MaskedDense,
    OrderAgnosticMADE,
    made_degrees,
    made_mask_set,
    made_mask_set_degrees,
    made_masks,
    mask_set_orderings,
    resolve_ordering,
)
from tests.params import float64, random_params, redraw

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


# Order- and connectivity-agnostic mask sets (Germain et al. 2015, section 3.2).


def test_every_mask_of_a_set_is_autoregressive_in_its_own_ordering():
    dim, hidden_sizes, num_masks, num_params = 6, (12, 12), 8, 2
    model = OrderAgnosticMADE(
        hidden_sizes, num_params_per_dim=num_params, num_masks=num_masks, mask_seed=4
    )
    masks, orderings = made_mask_set(dim, hidden_sizes, num_masks, 4)
    np.testing.assert_array_equal(model.orderings(dim), orderings)
    np.testing.assert_array_equal(mask_set_orderings(dim, num_masks, 4), orderings)
    # Eight different orderings (seed 3 repeats one): each triangularity check below tests a
    # different mask.
    assert len({tuple(o) for o in orderings}) == num_masks
    x = jax.random.normal(jax.random.key(0), (4, dim))
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)

    @jax.jit  # one compilation for all masks: the index is traced under vmap
    def jacobians(x):
        params = redraw(zeros, jax.random.key(2))

        def single(v, m):
            return model.apply(params, v[None], mask_index=m)[0]

        per_example = jax.vmap(jax.jacfwd(single), in_axes=(0, None))
        return jax.vmap(per_example, in_axes=(None, 0))(x, jnp.arange(num_masks))

    jac = np.asarray(jacobians(x))  # (M, n, d, P, d)
    upper = np.triu(np.ones((dim, dim), bool))  # diagonal included
    for m, order in enumerate(orderings):
        in_order = jac[m][:, order][..., order]  # rows and columns in mask m's generation order
        for p in range(num_params):
            np.testing.assert_array_equal(in_order[:, :, p][:, upper], 0.0)
            assert np.any(in_order[:, :, p][:, ~upper] != 0.0)
        # With random parameters every path through the masks carries a nonzero derivative:
        # the pattern is the connectivity of mask m (input j reaches output i).
        reach = (masks[0][m] @ masks[1][m] @ masks[2][m]) > 0  # (d_in, d_out)
        pattern = np.broadcast_to(reach.T[None, :, None, :], jac[m].shape)
        np.testing.assert_array_equal(jac[m] != 0.0, pattern)


def test_a_traced_mask_index_gives_the_outputs_of_the_python_index(x64):
    num_masks = 4
    model = OrderAgnosticMADE((8, 8), num_params_per_dim=2, num_masks=num_masks, mask_seed=1)
    x = jax.random.normal(jax.random.key(0), (3, 5))
    context = jax.random.normal(jax.random.key(1), (3, 2))
    params = random_params(model, x, context, seed=3)

    @jax.jit  # one compilation; the Python indices are static inside it
    def traced_and_static(m):
        static = [model.apply(params, x, context, mask_index=i) for i in range(num_masks)]
        return model.apply(params, x, context, mask_index=m), jnp.stack(static)

    for m in range(num_masks):
        traced, static = traced_and_static(jnp.int32(m))
        # jnp.take selects the same zeros and ones: equal up to float64 round-off.
        np.testing.assert_allclose(traced, static[m], rtol=1e-12, atol=1e-12)
    # The index selects different masks, so the comparison above is not of one function.
    assert all(np.abs(static[m] - static[0]).max() > 1e-3 for m in range(1, num_masks))
    # An index out of range under jit is loud (NaN), not a clipped mask.
    assert np.all(np.isnan(traced_and_static(jnp.int32(num_masks))[0]))


def test_mask_zero_is_the_plain_made():
    hidden_sizes, dim = (7, 5), 4
    x = jax.random.normal(jax.random.key(0), (3, dim))
    context = jax.random.normal(jax.random.key(1), (3, 2))
    made = MADE(hidden_sizes, num_params_per_dim=3)
    models = [OrderAgnosticMADE(hidden_sizes, num_params_per_dim=3, num_masks=m) for m in (1, 8)]
    # Same parameter tree, so a MADE's parameters load into a mask set and back.
    for c in (None, context):
        expected = jax.eval_shape(made.init, jax.random.key(0), x, c)
        for model in models:
            shapes = jax.eval_shape(model.init, jax.random.key(0), x, c)
            assert jax.tree.structure(shapes) == jax.tree.structure(expected)
            assert jax.tree.leaves(shapes) == jax.tree.leaves(expected)

    params = random_params(made, x, context, seed=3)

    @jax.jit  # one compilation for every module, with and without context
    def outputs():
        without = {"params": {k: v for k, v in params["params"].items() if "context" not in k}}
        one, eight = models
        cases = [(one, without, None), (one, params, context), (eight, params, context)]
        return [(model.apply(p, x, c), made.apply(p, x, c)) for model, p, c in cases]

    for ours, theirs in outputs():
        np.testing.assert_array_equal(ours, theirs)
    for num_masks in (1, 8):
        masks, orderings = made_mask_set(dim, hidden_sizes, num_masks, 0)
        np.testing.assert_array_equal(orderings[0], np.arange(dim))
        for stacked, single in zip(masks, made_masks(range(dim), hidden_sizes), strict=True):
            assert stacked.shape == (num_masks, *single.shape) and stacked.dtype == np.float32
            np.testing.assert_array_equal(stacked[0], single)


def test_bernoulli_probabilities_of_every_mask_sum_to_one(x64):
    dim, num_masks = 10, 3
    model = OrderAgnosticMADE((16, 16), num_params_per_dim=1, num_masks=num_masks, mask_seed=7)
    states = ((np.arange(2**dim)[:, None] >> np.arange(dim)) & 1).astype(np.float64)

    params = float64(random_params(model, states, seed=1, scale=1.0))

    @jax.jit  # one compilation for the three masks
    def logits_of(m):
        return model.apply(params, states, mask_index=m)[..., 0]

    log_probs = []
    for m in range(num_masks):
        logits = np.asarray(logits_of(jnp.int32(m)))
        assert logits.dtype == np.float64
        # log p(x) = sum_i x_i log sigmoid(l_i) + (1 - x_i) log sigmoid(-l_i), in numpy.
        log_sigmoid = -np.logaddexp(0.0, -logits)
        log_one_minus = -np.logaddexp(0.0, logits)
        log_p = (states * log_sigmoid + (1.0 - states) * log_one_minus).sum(1)
        np.testing.assert_allclose(np.exp(log_p).sum(), 1.0, rtol=0, atol=1e-6)
        log_probs.append(log_p)
    # Three different distributions over the 1024 states: each mask was checked on its own.
    assert all(np.abs(log_probs[m] - log_probs[0]).max() > 0.1 for m in (1, 2))


def test_hidden_degrees_are_uniform_on_the_papers_range():
    dim, hidden_sizes, num_masks, top = 6, (3, 4), 2001, 5
    degrees = made_mask_set_degrees(dim, hidden_sizes, num_masks, seed=5)
    assert [d.shape for d in degrees] == [(num_masks, dim), (num_masks, 3), (num_masks, 4)]
    for layer, det in enumerate(made_degrees(range(dim), hidden_sizes)):
        np.testing.assert_array_equal(degrees[layer][0], det)  # mask 0: deterministic
    first, second = degrees[1][1:], degrees[2][1:]
    low = first.min(1, keepdims=True)  # the second layer's lower bound, per mask
    assert first.min() >= 1 and first.max() <= top
    assert np.all(second >= low) and second.max() <= top
    assert np.any(low > 1)  # the lower bound binds somewhere: the check above can fail
    # First layer: 6000 draws, uniform on 1..5; each count within 4 binomial standard errors.
    counts = np.bincount(first.ravel(), minlength=top + 1)[1:]
    expected, se = first.size / top, np.sqrt(first.size * (1 / top) * (1 - 1 / top))
    assert np.all(np.abs(counts - expected) < 4 * se), counts
    # Second layer: uniform on low..5 given the first; the standardised sum of
    # (m - (low + 5) / 2) over the draws is N(0, 1) by the central limit theorem.
    width = top - low + 1
    z = (second - (low + top) / 2).sum() / np.sqrt(
        np.broadcast_to((width**2 - 1) / 12, second.shape).sum()
    )
    assert abs(z) < 4, z
    # Orderings: the first variable generated is uniform on 0..5, within 4 standard errors.
    orderings = mask_set_orderings(dim, num_masks, seed=5)[1:]
    counts = np.bincount(orderings[:, 0], minlength=dim)
    expected, se = len(orderings) / dim, np.sqrt(len(orderings) * (1 / dim) * (1 - 1 / dim))
    assert np.all(np.abs(counts - expected) < 4 * se), counts
    assert np.all(np.sort(orderings, axis=1) == np.arange(dim))  # permutations


def test_mask_sets_follow_the_degree_rule_and_the_flags():
    dim, hidden_sizes = 5, (6, 4)
    degrees = made_mask_set_degrees(dim, hidden_sizes, 8, seed=2)
    masks, orderings = made_mask_set(dim, hidden_sizes, 8, seed=2)
    for m in range(8):
        np.testing.assert_array_equal(degrees[0][m][orderings[m]], np.arange(1, dim + 1))
        for layer in range(2):
            prev, nxt = degrees[layer][m], degrees[layer + 1][m]
            for a in range(len(prev)):
                for b in range(len(nxt)):
                    assert masks[layer][m, a, b] == float(nxt[b] >= prev[a])
        for a in range(hidden_sizes[-1]):
            for i in range(dim):
                assert masks[2][m, a, i] == float(degrees[0][m, i] > degrees[2][m, a])
    # A smaller set with the same seed is a prefix of a larger one.
    fewer, fewer_orderings = made_mask_set(dim, hidden_sizes, 3, seed=2)
    np.testing.assert_array_equal(fewer_orderings, orderings[:3])
    for small, large in zip(fewer, masks, strict=True):
        np.testing.assert_array_equal(small, large[:3])
    # Flags: only the orderings, or only the hidden degrees, vary.
    natural = made_degrees(range(dim), hidden_sizes)
    fixed_order = made_mask_set_degrees(dim, hidden_sizes, 8, 2, order_agnostic=False)
    np.testing.assert_array_equal(fixed_order[0], np.broadcast_to(natural[0], (8, dim)))
    assert any(not np.array_equal(fixed_order[1][m], natural[1]) for m in range(1, 8))
    fixed_hidden = made_mask_set_degrees(dim, hidden_sizes, 8, 2, connectivity_agnostic=False)
    np.testing.assert_array_equal(fixed_hidden[0], degrees[0])
    for layer in (1, 2):
        np.testing.assert_array_equal(
            fixed_hidden[layer], np.broadcast_to(natural[layer], (8, hidden_sizes[layer - 1]))
        )


@pytest.mark.parametrize(
    "args,kwargs,name",
    [
        ((6, (4,), 0, 0), {}, "num_masks"),
        ((6, (4,), 2, -1), {}, "seed"),
        ((0, (4,), 2, 0), {}, "dim"),
        ((6, (4, 0), 2, 0), {}, "hidden_sizes"),
        ((6, (4,), 2, 0), {"order_agnostic": "yes"}, "order_agnostic"),
        ((6, (4,), 2, 0), {"connectivity_agnostic": None}, "connectivity_agnostic"),
    ],
)
def test_bad_mask_set_arguments_raise_value_errors_naming_them(args, kwargs, name):
    with pytest.raises(ValueError, match=name):
        made_mask_set(*args, **kwargs)


@pytest.mark.parametrize(
    "kwargs,mask_index,name",
    [
        ({}, 3, r"mask_index must be an integer scalar in \[0, 3\).*got 3"),
        ({}, -1, "mask_index"),
        ({}, 1.0, "mask_index"),
        ({}, True, "mask_index"),
        ({}, np.array([0]), "mask_index"),
        ({"num_masks": 0}, 0, "num_masks"),
        ({"mask_seed": -2}, 0, "seed"),
        ({"num_params_per_dim": 0}, 0, "num_params_per_dim"),
    ],
)
def test_bad_order_agnostic_made_arguments_raise(kwargs, mask_index, name):
    model = OrderAgnosticMADE((4,), **{"num_masks": 3, **kwargs})
    with pytest.raises(ValueError, match=name):
        model.init(jax.random.key(0), jnp.zeros((2, 3)), mask_index=mask_index)


def test_a_traced_float_mask_index_raises():
    model = OrderAgnosticMADE((4,), num_masks=3)
    x = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match="mask_index"):
        jax.eval_shape(lambda m: model.init(jax.random.key(0), x, mask_index=m), 1.0)
    with pytest.raises(ValueError, match="mask_index"):
        jax.eval_shape(lambda m: model.init(jax.random.key(0), x, mask_index=m), jnp.zeros(2, int))
    with pytest.raises(ValueError, match="x must have shape"):
        model.init(jax.random.key(0), jnp.zeros((2, 3, 1)))
