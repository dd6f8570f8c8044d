"""RecurrentLM: causality from the autodiff Jacobian, cached decoding against the full pass, and
the LSTM / GRU stack against the cell equations written out in numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.nets.recurrent import RecurrentLM
from tests.params import random_params

N, L, V, C, P = 3, 6, 5, 2, 4


def _inputs(key):
    k1, k2 = jax.random.split(key)
    x = jax.nn.one_hot(jax.random.randint(k1, (N, L), 0, V), V)
    return x, jax.random.normal(k2, (N, C))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_output_i_depends_on_exactly_the_inputs_before_i(cell):
    model = RecurrentLM(P, cell, hidden_size=8, num_layers=2)
    x, context = _inputs(jax.random.key(0))

    params = random_params(model, x, context, seed=1)

    @jax.jit  # one compilation instead of many op-by-op dispatches
    def jacobians(x, context):

        def single(v, h):
            return model.apply(params, v[None], h[None])[0]

        return jax.vmap(jax.jacfwd(single, argnums=(0, 1)))(x, context)

    jac_x, jac_c = (np.asarray(j) for j in jacobians(x, context))
    assert jac_x.shape == (N, L, P, L, V) and jac_c.shape == (N, L, P, C)
    for i in range(L):
        # Exactly zero at and after position i: structural, not small.
        np.testing.assert_array_equal(jac_x[:, i, :, i:], 0.0)
        # Every earlier position matters (random parameters), so the check is not vacuous.
        assert np.all(np.abs(jac_x[:, i, :, :i]).sum(axis=(1, 3)) > 0.0)
    # The context reaches every output, position 0 included.
    assert np.all(np.abs(jac_c).sum(axis=(2, 3)) > 0.0)


@pytest.mark.parametrize("cell,with_context", [("lstm", True), ("gru", False)])
def test_decode_steps_reproduce_the_full_pass(cell, with_context):
    model = RecurrentLM(P, cell, hidden_size=16, num_layers=2)
    x, context = _inputs(jax.random.key(3))
    context = context if with_context else None

    params = random_params(model, x, context, seed=4)

    @jax.jit
    def full_and_stepped(x, context):
        cache = model.apply(params, N, L, method=model.init_cache)
        # Call i + 1 gets token i; call 0 gets a dummy that must be ignored (start vector).
        previous = jnp.concatenate([jnp.full((N, 1, V), 7.0), x[:, :-1]], axis=1)

        def step(cache, x_prev):
            out, cache = model.apply(params, cache, x_prev, context, method=model.decode_step)
            return cache, out

        cache, outs = jax.lax.scan(step, cache, jnp.swapaxes(previous, 0, 1))
        return model.apply(params, x, context), jnp.swapaxes(outs, 0, 1), cache["index"]

    full, stepped, index = full_and_stepped(x, context)
    assert full.shape == (N, L, P) and int(index) == L
    np.testing.assert_allclose(stepped, full, atol=1e-5, rtol=0)


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _lstm_cell(p, carry, u):
    """Hochreiter & Schmidhuber's cell with Flax's parameter names: input kernels ``i*`` (no
    bias), recurrent kernels and biases ``h*``, gates i, f, g, o."""
    c, h = carry
    pre = {
        g: u @ p[f"i{g}"]["kernel"] + h @ p[f"h{g}"]["kernel"] + p[f"h{g}"]["bias"] for g in "ifgo"
    }
    c = _sigmoid(pre["f"]) * c + _sigmoid(pre["i"]) * np.tanh(pre["g"])
    h = _sigmoid(pre["o"]) * np.tanh(c)
    return (c, h), h


def _gru_cell(p, h, u):
    """Cho et al. 2014 with Flax's names and convention: ``h' = (1 - z) n + z h``."""

    def dense(name, v):
        return v @ p[name]["kernel"] + p[name].get("bias", 0.0)

    r = _sigmoid(dense("ir", u) + dense("hr", h))
    z = _sigmoid(dense("iz", u) + dense("hz", h))
    n = np.tanh(dense("in", u) + r * dense("hn", h))
    h = (1.0 - z) * n + z * h
    return h, h


def _numpy_language_model(params, cell, num_layers, hidden_size, x, context):
    """Graves 2013 Eqs. 1-3 in numpy: shifted inputs with the start vector, input skip
    connections into every layer, every layer into the output."""
    p = jax.tree.map(np.asarray, params["params"])
    n, length, _ = x.shape
    start = np.broadcast_to(p["start"]["vector"], (n, 1, x.shape[-1]))
    u = np.concatenate([start, x[:, :-1]], axis=1)
    u = np.concatenate([u, np.broadcast_to(context[:, None], (n, length, context.shape[-1]))], -1)
    zeros = np.zeros((n, hidden_size))
    carries = [(zeros, zeros) if cell == "lstm" else zeros for _ in range(num_layers)]
    step = _lstm_cell if cell == "lstm" else _gru_cell
    outs = []
    for i in range(length):
        hiddens = []
        for layer in range(num_layers):
            layer_input = u[:, i] if layer == 0 else np.concatenate([u[:, i], hiddens[-1]], -1)
            carries[layer], h = step(p["step"][f"cell_{layer}"], carries[layer], layer_input)
            hiddens.append(h)
        out = np.concatenate(hiddens, -1) @ p["step"]["output"]["kernel"]
        outs.append(out + p["step"]["output"]["bias"])
    return np.stack(outs, axis=1)


@pytest.mark.parametrize("cell,num_layers", [("gru", 1), ("gru", 2), ("lstm", 2)])
def test_stack_matches_the_cell_equations_in_numpy(x64, cell, num_layers):
    hidden_size = 5
    model = RecurrentLM(P, cell, hidden_size=hidden_size, num_layers=num_layers)
    x, context = (np.asarray(a, np.float64) for a in _inputs(jax.random.key(6)))
    params = random_params(model, x, context, seed=7, dtype=np.float64)
    expected = _numpy_language_model(params, cell, num_layers, hidden_size, x, context)

    np.testing.assert_allclose(model.apply(params, x, context), expected, atol=1e-12, rtol=0)
    # One cell step from the cache: the first output (start vector) and the second (token 0).
    cache = model.apply(params, N, L, jnp.float64, method=model.init_cache)
    out0, cache = model.apply(params, cache, np.zeros((N, V)), context, method=model.decode_step)
    out1, cache = model.apply(params, cache, x[:, 0], context, method=model.decode_step)
    np.testing.assert_allclose(out0, expected[:, 0], atol=1e-12, rtol=0)
    np.testing.assert_allclose(out1, expected[:, 1], atol=1e-12, rtol=0)
    assert out1.dtype == jnp.float64 and int(cache["index"]) == 2


def test_init_cache_needs_no_parameters():
    model = RecurrentLM(P, "lstm", hidden_size=3, num_layers=2)
    cache = model.apply({}, 2, 9, method=model.init_cache)
    shapes = jax.tree.map(jnp.shape, cache)
    assert shapes == {"carries": (((2, 3), (2, 3)),) * 2, "index": ()}
    assert all(np.all(leaf == 0) for leaf in jax.tree.leaves(cache))


@pytest.mark.parametrize(
    "kwargs,x_shape,context_shape,name",
    [
        ({"cell": "rnn"}, (2, L, V), None, "cell"),
        ({"hidden_size": 0}, (2, L, V), None, "hidden_size"),
        ({"num_layers": 1.5}, (2, L, V), None, "num_layers"),
        ({}, (2, L), None, r"x must have shape \(n, L, V\)"),
        ({}, (2, L, V), (3, C), r"context must have shape \(2, c\)"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs, x_shape, context_shape, name):
    model = RecurrentLM(P, **kwargs)
    context = None if context_shape is None else jnp.zeros(context_shape)
    with pytest.raises(ValueError, match=name):
        jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(x_shape), context)


def test_bad_decoding_arguments_raise_value_errors_naming_them():
    model = RecurrentLM(P, "gru", hidden_size=3)
    params = random_params(model, jnp.zeros((2, L, V)), None, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        model.apply(params, 0, L, method=model.init_cache)
    cache = model.apply(params, 2, L, method=model.init_cache)
    with pytest.raises(ValueError, match=r"x_prev must have shape \(n, V\)"):
        model.apply(params, cache, jnp.zeros((2, 1, V)), method=model.decode_step)
    with pytest.raises(ValueError, match="x_prev must have a floating-point dtype"):
        model.apply(params, cache, jnp.zeros((2, V), jnp.int32), method=model.decode_step)
