"""Causal transformer: causality from the autodiff Jacobian, cached decoding against the full
pass, and attention and the whole forward pass against a direct numpy computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.nets.transformer import CausalTransformer
from tests.params import float64, random_params

N, L, V, P, C = 2, 6, 5, 3, 4
MAX_LENGTH, LAYERS, HEADS, MODEL_DIM = 8, 2, 2, 16


def make(**kwargs):
    return CausalTransformer(
        P, MAX_LENGTH, num_layers=LAYERS, num_heads=HEADS, model_dim=MODEL_DIM, **kwargs
    )


def one_hot_tokens(seed, n=N, length=L):
    tokens = np.random.default_rng(seed).integers(0, V, (n, length))
    return jax.nn.one_hot(tokens, V)


# --------------------------------------------------------------------------------------------
# A numpy reference of the architecture, read off the parameter tree.


def np_layer_norm(h, p, eps=1e-6):
    mean = h.mean(-1, keepdims=True)
    return (h - mean) / np.sqrt(h.var(-1, keepdims=True) + eps) * p["scale"] + p["bias"]


def np_gelu(a):  # the tanh approximation (GPT-2; Flax's default)
    return 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a**3)))


def np_attention(h, p):
    """``concat_k softmax(Q_k K_k^T / sqrt(d) + M) V_k W_o + b_o``, one head at a time."""
    q, k, v = (
        np.einsum("nlm,mhd->nlhd", h, p[name]["kernel"]) + p[name]["bias"]
        for name in ("query", "key", "value")
    )
    length, num_heads, head_dim = q.shape[1:]
    mask = np.where(np.tril(np.ones((length, length))) > 0, 0.0, -np.inf)
    heads = []
    for j in range(num_heads):
        scores = q[:, :, j] @ k[:, :, j].transpose(0, 2, 1) / np.sqrt(head_dim) + mask
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        heads.append(weights / weights.sum(-1, keepdims=True) @ v[:, :, j])
    return np.einsum("nlhd,hdm->nlm", np.stack(heads, 2), p["out"]["kernel"]) + p["out"]["bias"]


def np_forward(params, x, context):
    p = jax.tree.map(np.asarray, params["params"])
    x = np.asarray(x)
    n, length, _ = x.shape
    start = np.broadcast_to(p["start"], (n, 1, MODEL_DIM))
    h = np.concatenate([start, x[:, :-1] @ p["token"]["kernel"]], 1) + p["positions"][:length]
    h = h + (np.asarray(context) @ p["context"]["kernel"])[:, None]
    for layer in range(LAYERS):
        b = p[f"blocks_{layer}"]
        h = h + np_attention(np_layer_norm(h, b["attention_norm"]), b["attention"])
        hidden = np_gelu(
            np_layer_norm(h, b["mlp_norm"]) @ b["mlp_in"]["kernel"] + b["mlp_in"]["bias"]
        )
        h = h + hidden @ b["mlp_out"]["kernel"] + b["mlp_out"]["bias"]
    return np_layer_norm(h, p["final_norm"]) @ p["head"]["kernel"] + p["head"]["bias"]


def test_attention_equals_a_direct_numpy_computation(x64):
    module = make()
    x = one_hot_tokens(0)
    params = float64(random_params(module, x))
    h = np.random.default_rng(1).normal(size=(N, L, MODEL_DIM))
    attention = jax.jit(lambda h: module.bind(params).blocks[1].attention(h))
    expected = np_attention(h, jax.tree.map(np.asarray, params["params"]["blocks_1"]["attention"]))
    np.testing.assert_allclose(attention(jnp.asarray(h)), expected, rtol=1e-10, atol=1e-10)


def test_forward_pass_equals_a_direct_numpy_computation(x64):
    module = make()
    x = one_hot_tokens(0).astype(jnp.float64)
    context = np.random.default_rng(1).normal(size=(N, C))
    params = float64(random_params(module, x, context))
    out = jax.jit(module.apply)(params, x, context)
    assert out.shape == (N, L, P) and out.dtype == jnp.float64
    np.testing.assert_allclose(out, np_forward(params, x, context), rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------------------------
# Causality.


@pytest.mark.parametrize("with_context", [False, True])
def test_output_i_depends_on_exactly_the_tokens_before_i_and_on_the_context(x64, with_context):
    module = make()
    x = one_hot_tokens(2).astype(jnp.float64)
    context = jnp.asarray(np.random.default_rng(3).normal(size=(N, C))) if with_context else None
    params = float64(random_params(module, x, context))

    @jax.jit  # one compilation instead of many op-by-op dispatches
    def jacobians(v, c):
        def single(v, c):
            return module.apply(params, v[None], None if c is None else c[None])[0]

        argnums = (0, 1) if with_context else 0
        return jax.jacrev(single, argnums=argnums)(v, c)  # (L, P, L, V) and (L, P, C)

    jac = jacobians(x[0], None if context is None else context[0])
    jac_x, jac_c = jac if with_context else (jac, None)
    jac_x = np.asarray(jac_x).transpose(0, 2, 1, 3)  # (output i, input j, P, V)
    later = np.triu(np.ones((L, L), bool))  # j >= i, the diagonal included
    np.testing.assert_array_equal(jac_x[later], 0.0)
    dependence = np.abs(jac_x).sum(axis=(2, 3))
    # Random parameters: every allowed dependence is present, so the test is not vacuous.
    assert np.all(dependence[~later] > 0.0)
    if with_context:
        # Every output depends on the context, position 0 (which sees no token) included.
        assert np.all(np.abs(np.asarray(jac_c)).sum(axis=(1, 2)) > 0.0)


# --------------------------------------------------------------------------------------------
# Cached decoding.


def decode_all(module, variables, x, context, dtype):
    """``decode_step`` scanned over the positions of ``x``; call ``i`` gets token ``i - 1``,
    call 0 an unrelated token (it must be ignored). The cache holds all ``MAX_LENGTH``
    positions, so its unused tail must be masked out."""
    n, length, _ = x.shape
    garbage = one_hot_tokens(99, n, 1).astype(x.dtype)
    x_prev = jnp.concatenate([garbage, x[:, :-1]], axis=1).transpose(1, 0, 2)

    def step(cache, x_prev):
        out, cache = module.apply(variables, cache, x_prev, context, method=module.decode_step)
        return cache, out

    cache = module.apply(variables, n, MAX_LENGTH, dtype, method=module.init_cache)
    cache, outs = jax.lax.scan(step, cache, x_prev)
    return outs.transpose(1, 0, 2), cache["index"]


@pytest.mark.parametrize(
    "dtype,tol", [(jnp.float32, 1e-5), (jnp.float64, 1e-10)], ids=["float32", "float64"]
)
@pytest.mark.parametrize("with_context", [False, True])
def test_cached_decoding_equals_the_full_pass(request, dtype, tol, with_context):
    if dtype == jnp.float64:
        request.getfixturevalue("x64")
    module = make()
    x = one_hot_tokens(4).astype(dtype)
    context = (
        jnp.asarray(np.random.default_rng(5).normal(size=(N, C)), dtype) if with_context else None
    )
    params = random_params(module, x, context)
    if dtype == jnp.float64:
        params = float64(params)

    @jax.jit
    def both(x, context):
        return module.apply(params, x, context), decode_all(module, params, x, context, dtype)

    full, (cached, index) = both(x, context)
    assert cached.shape == (N, L, P) and cached.dtype == dtype
    assert int(index) == L
    np.testing.assert_allclose(cached, full, rtol=tol, atol=tol)


def test_init_cache_is_zero_keys_and_values_per_layer_and_a_position():
    module = make()
    x = one_hot_tokens(0)
    variables = jax.eval_shape(module.init, jax.random.key(0), x)
    for cache in (
        module.init_cache(3, 7, jnp.float16),
        module.apply(variables, 3, 7, jnp.float16, method=module.init_cache),
    ):
        assert cache["index"].dtype == jnp.int32 and int(cache["index"]) == 0
        assert len(cache["layers"]) == LAYERS
        for layer in cache["layers"]:
            for array in (layer["keys"], layer["values"]):
                assert array.shape == (3, 7, HEADS, MODEL_DIM // HEADS)
                assert array.dtype == jnp.float16 and not np.any(array)


# --------------------------------------------------------------------------------------------
# Bad input.


@pytest.mark.parametrize(
    "kwargs,x_shape,context_shape,match",
    [
        ({}, (N, L), None, r"x must have shape \(n, L, V\)"),
        ({}, (N, MAX_LENGTH + 1, V), None, "x must have length 1 <= L <= max_length=8"),
        ({}, (N, 0, V), None, "x must have length"),
        ({}, (N, L, V), (N + 1, C), r"context must have shape \(2, c\)"),
        ({}, (N, L, V), (N,), "context must have shape"),
        ({"num_heads": 3}, (N, L, V), None, "model_dim must be a multiple of num_heads=3"),
        ({"mlp_dim": 0}, (N, L, V), None, "mlp_dim"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs, x_shape, context_shape, match):
    module = CausalTransformer(P, MAX_LENGTH, **{"model_dim": MODEL_DIM, **kwargs})
    context = None if context_shape is None else jnp.zeros(context_shape)
    with pytest.raises(ValueError, match=match):
        module.init(jax.random.key(0), jnp.zeros(x_shape), context)


def test_integer_tokens_and_bad_cache_arguments_raise():
    module = make()
    with pytest.raises(ValueError, match="x must have a floating-point dtype"):
        module.init(jax.random.key(0), jnp.zeros((N, L, V), jnp.int32))
    with pytest.raises(ValueError, match="length must be <= max_length=8; got 9"):
        module.init_cache(N, MAX_LENGTH + 1)
    with pytest.raises(ValueError, match="batch_size"):
        module.init_cache(0, L)
    variables = jax.eval_shape(module.init, jax.random.key(0), one_hot_tokens(0))
    cache = module.init_cache(N, L)
    with pytest.raises(ValueError, match=r"x_prev must have shape \(n, V\)"):
        module.apply(variables, cache, jnp.zeros((N, 1, V)), method=module.decode_step)
    with pytest.raises(ValueError, match=r"context must have shape \(2, c\)"):
        module.apply(variables, cache, jnp.zeros((N, V)), jnp.zeros((1, C)), method="decode_step")
