"""A decoder-only causal transformer over one-hot token sequences, with cached decoding.

The input ``x`` is a batch of one-hot sequences ``(n, L, V)``; output ``i`` parametrises the
conditional of token ``i`` given the tokens before it. Shifting right with a learned start
vector ``s`` makes position 0 depend on no token at all:

    e_0 = s,   e_i = x_{i-1} W_e  (i >= 1),   h_i = e_i + p_i + c W_c,

where ``x_{i-1} W_e`` is a table lookup written as a product (so the one-hot input has a
gradient), ``p_i`` a learned position embedding and ``c`` the optional context ``(n, c)``.
Then ``num_layers`` pre-LayerNorm residual blocks (GPT-2)

    h <- h + MHA(LN(h)),   h <- h + W_2 gelu(W_1 LN(h) + b_1) + b_2,

and ``out = LN(h) W_o + b_o``. Causal multi-head attention, head ``k`` of ``H``, with
``d = model_dim / H``:

    A_k = softmax(Q_k K_k^T / sqrt(d) + M) V_k,   M_ij = 0 if j <= i else -inf,

``Q_k = LN(h) W_q^k + b_q^k`` (likewise ``K_k``, ``V_k``), heads concatenated and projected back
to ``model_dim``. Row ``i`` attends to rows ``j <= i`` and row ``j`` holds ``x_{j-1}``, so
output ``i`` depends on ``x_{<i}`` only; the context reaches every position, position 0
included.

Cached decoding: ``init_cache`` allocates each layer's keys and values ``(n, length, H, d)`` and
a position ``index``; ``decode_step`` embeds one position, writes its key and value at
``index`` and attends to positions ``<= index``. Because of the mask this is exactly the full
pass's row ``index``, at ``O(index)`` cost instead of a full ``O(L^2)`` pass per token.

Vaswani, Shazeer, Parmar, Uszkoreit, Jones, Gomez, Kaiser & Polosukhin 2017, "Attention Is All
You Need"; Radford, Wu, Child, Luan, Amodei & Sutskever 2019, "Language Models are Unsupervised
Multitask Learners" (GPT-2: pre-LayerNorm blocks, a final LayerNorm, learned positions).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_int

# GPT-2 draws its embeddings from N(0, 0.02^2).
_embedding_init = nn.initializers.normal(0.02)


class CausalSelfAttention(nn.Module):
    """Multi-head attention ``concat_k softmax(Q_k K_k^T / sqrt(d) + M) V_k`` projected by
    ``W_o, b_o``, with ``Q = h W_q + b_q`` (likewise ``K``, ``V``) and a causal mask ``M``.

    Parameters: ``query``, ``key``, ``value`` with kernels ``(model_dim, H, d)`` and biases
    ``(H, d)``; ``out`` with kernel ``(H, d, model_dim)`` and bias ``(model_dim,)``.

    Attributes:
      num_heads: ``H``.
      head_dim: ``d``.
      model_dim: the width of the input and of the output.
    """

    num_heads: int
    head_dim: int
    model_dim: int

    def setup(self):
        heads = (self.num_heads, self.head_dim)
        self.query = nn.DenseGeneral(heads)
        self.key = nn.DenseGeneral(heads)
        self.value = nn.DenseGeneral(heads)
        self.out = nn.DenseGeneral(self.model_dim, axis=(-2, -1))

    def __call__(self, h: jax.Array) -> jax.Array:
        """Causal attention over the whole sequence.

        Args:
          h: ``(n, L, model_dim)``.

        Returns:
          ``(n, L, model_dim)``; row ``i`` is a function of rows ``j <= i`` only.
        """
        length = h.shape[1]
        mask = jnp.tril(jnp.ones((length, length), bool))[None, None]
        heads = nn.dot_product_attention(
            self.query(h), self.key(h), self.value(h), mask=mask, deterministic=True
        )
        return self.out(heads)

    def decode(self, h: jax.Array, keys: jax.Array, values: jax.Array, index: jax.Array):
        """One position attending to the cached keys and values of positions ``<= index``.

        Args:
          h: ``(n, 1, model_dim)`` the new position's (normalised) state.
          keys: ``(n, length, H, d)`` cached keys; entries past ``index`` are ignored.
          values: ``(n, length, H, d)`` cached values, likewise.
          index: int32 scalar (may be traced), the new position.

        Returns:
          ``(out (n, 1, model_dim), keys, values)`` with the new key and value at ``index``.
        """
        zero = jnp.zeros_like(index)  # every start index must share the index's dtype (x64)
        start = (zero, index, zero, zero)
        keys = jax.lax.dynamic_update_slice(keys, self.key(h).astype(keys.dtype), start)
        values = jax.lax.dynamic_update_slice(values, self.value(h).astype(values.dtype), start)
        mask = (jnp.arange(keys.shape[1]) <= index)[None, None, None]
        heads = nn.dot_product_attention(self.query(h), keys, values, mask=mask, deterministic=True)
        return self.out(heads), keys, values


class TransformerBlock(nn.Module):
    """GPT-2's pre-LayerNorm block: ``h <- h + MHA(LN(h))``, then
    ``h <- h + W_2 gelu(W_1 LN(h) + b_1) + b_2`` (``gelu`` in the tanh approximation GPT-2
    uses).

    Attributes:
      num_heads: ``H``.
      head_dim: ``d``.
      model_dim: the residual stream's width, ``H d``.
      mlp_dim: the feed-forward map's hidden width.
    """

    num_heads: int
    head_dim: int
    model_dim: int
    mlp_dim: int

    def setup(self):
        self.attention_norm = nn.LayerNorm()
        self.attention = CausalSelfAttention(self.num_heads, self.head_dim, self.model_dim)
        self.mlp_norm = nn.LayerNorm()
        self.mlp_in = nn.Dense(self.mlp_dim)
        self.mlp_out = nn.Dense(self.model_dim)

    def _mlp(self, h: jax.Array) -> jax.Array:
        return h + self.mlp_out(nn.gelu(self.mlp_in(self.mlp_norm(h))))

    def __call__(self, h: jax.Array) -> jax.Array:
        """``(n, L, model_dim) -> (n, L, model_dim)``, causal along ``L``."""
        return self._mlp(h + self.attention(self.attention_norm(h)))

    def decode(self, h: jax.Array, keys: jax.Array, values: jax.Array, index: jax.Array):
        """One position ``h (n, 1, model_dim)`` against the cache -> ``(h, keys, values)``
        (see :meth:`CausalSelfAttention.decode`)."""
        a, keys, values = self.attention.decode(self.attention_norm(h), keys, values, index)
        return self._mlp(h + a), keys, values


class CausalTransformer(nn.Module):
    """``(x (n, L, V) one-hot, context (n, c) | None) -> (n, L, P)`` with output ``i`` a
    function of ``x_{<i}`` (and of the context) only (module docstring).

    Parameters: ``token`` (kernel ``(V, model_dim)``, no bias), ``positions``
    ``(max_length, model_dim)``, ``start`` ``(model_dim,)``, ``context`` (kernel
    ``(c, model_dim)``, no bias; only when initialised with a context), ``blocks_0 ...``,
    ``final_norm`` and ``head`` (``model_dim -> P``).

    Attributes:
      num_outputs: ``P``, the parameters per position (e.g. ``V`` logits).
      max_length: the longest sequence (the number of learned positions).
      num_layers: the number of blocks.
      num_heads: ``H``; must divide ``model_dim``.
      model_dim: the residual stream's width.
      mlp_dim: the feed-forward hidden width; None for ``4 * model_dim``.
    """

    num_outputs: int
    max_length: int
    num_layers: int = 4
    num_heads: int = 4
    model_dim: int = 128
    mlp_dim: int | None = None

    def _head_dim(self) -> int:
        check_int("num_outputs", self.num_outputs)
        check_int("max_length", self.max_length)
        check_int("num_layers", self.num_layers)
        check_int("num_heads", self.num_heads)
        check_int("model_dim", self.model_dim)
        if self.mlp_dim is not None:
            check_int("mlp_dim", self.mlp_dim)
        if self.model_dim % self.num_heads:
            raise ValueError(
                f"model_dim must be a multiple of num_heads={self.num_heads}; got {self.model_dim}"
            )
        return self.model_dim // self.num_heads

    def setup(self):
        head_dim = self._head_dim()
        mlp_dim = self.mlp_dim or 4 * self.model_dim
        self.token = nn.Dense(self.model_dim, use_bias=False, kernel_init=_embedding_init)
        self.positions = self.param("positions", _embedding_init, (self.max_length, self.model_dim))
        self.start = self.param("start", _embedding_init, (self.model_dim,))
        self.context = nn.Dense(self.model_dim, use_bias=False)
        self.blocks = [
            TransformerBlock(self.num_heads, head_dim, self.model_dim, mlp_dim)
            for _ in range(self.num_layers)
        ]
        self.final_norm = nn.LayerNorm()
        self.head = nn.Dense(self.num_outputs)

    def _add_context(self, h: jax.Array, context: jax.Array | None) -> jax.Array:
        if context is None:
            return h
        return h + self.context(context)[:, None]

    def __call__(self, x: jax.Array, context: jax.Array | None = None) -> jax.Array:
        """The output parameters of every position.

        Args:
          x: ``(n, L, V)`` float one-hot tokens, ``1 <= L <= max_length``.
          context: ``(n, c)`` or None; ``c W_c`` is added to every position's embedding.

        Returns:
          ``(n, L, P)``; row ``i`` depends on ``x[:, :i]`` and on ``context`` only.

        Raises:
          ValueError: naming ``x`` when it is not a floating ``(n, L, V)`` array with
            ``1 <= L <= max_length``, ``context`` when it is not ``(n, c)``, or an attribute that is
            not a positive integer (``model_dim`` when ``num_heads`` does not divide it).
        """
        _check_one_hot("x", x, "(n, L, V)", 3)
        if not 1 <= x.shape[1] <= self.max_length:
            raise ValueError(
                f"x must have length 1 <= L <= max_length={self.max_length}; got shape {x.shape}"
            )
        _check_context(context, x.shape[0])
        n, length = x.shape[:2]
        tokens = self.token(x[:, :-1])
        start = jnp.broadcast_to(self.start, (n, 1, self.model_dim))
        h = jnp.concatenate([start, tokens], axis=1) + self.positions[:length]
        h = self._add_context(h, context)
        for block in self.blocks:
            h = block(h)
        return self.head(self.final_norm(h))

    def init_cache(self, batch_size: int, length: int, dtype=jnp.float32) -> dict:
        """An empty cache for :meth:`decode_step`; creates and reads no parameters.

        Args:
          batch_size: ``n``.
          length: the number of positions to decode, ``<= max_length``.
          dtype: the dtype of the cached keys and values.

        Returns:
          ``{"index": int32 0, "layers": ({"keys": zeros, "values": zeros}, ...)}``, one entry
          per block, each array ``(batch_size, length, num_heads, model_dim // num_heads)``.

        Raises:
          ValueError: naming ``batch_size`` or ``length`` when not a positive integer, or
            ``length`` when it exceeds ``max_length``.
        """
        check_int("batch_size", batch_size)
        check_int("length", length)
        if length > self.max_length:
            raise ValueError(f"length must be <= max_length={self.max_length}; got {length}")
        shape = (batch_size, length, self.num_heads, self._head_dim())
        layer = {"keys": jnp.zeros(shape, dtype), "values": jnp.zeros(shape, dtype)}
        return {"index": jnp.zeros((), jnp.int32), "layers": (layer,) * self.num_layers}

    def decode_step(
        self, cache: dict, x_prev: jax.Array, context: jax.Array | None = None
    ) -> tuple[jax.Array, dict]:
        """The output parameters of position ``i = cache["index"]`` given the token before it.

        Running it for ``i = 0 .. L-1`` with ``x_prev = x[:, i-1]`` gives ``__call__(x)[:, i]``
        (to rounding). Works under ``jit`` and ``lax.scan`` (the index stays traced). Past the
        cache's length, ``dynamic_update_slice`` clamps the write: the caller stops in time.

        Args:
          cache: from :meth:`init_cache` or the previous call.
          x_prev: ``(n, V)`` float one-hot of token ``i - 1``; ignored at ``i = 0``, where the
            start vector is used.
          context: ``(n, c)`` or None, as given to ``__call__``.

        Returns:
          ``(out (n, P), cache)`` with the cache advanced by one position.

        Raises:
          ValueError: naming ``x_prev`` when it is not a floating ``(n, V)`` array, or
            ``context`` when it is not ``(n, c)``.
        """
        _check_one_hot("x_prev", x_prev, "(n, V)", 2)
        _check_context(context, x_prev.shape[0])
        index = cache["index"]
        token = self.token(x_prev)
        h = jnp.where(index == 0, self.start, token)[:, None]
        h = h + jax.lax.dynamic_slice_in_dim(self.positions, index, 1)
        h = self._add_context(h, context)
        layers = []
        for block, layer in zip(self.blocks, cache["layers"], strict=True):
            h, keys, values = block.decode(h, layer["keys"], layer["values"], index)
            layers.append({"keys": keys, "values": values})
        out = self.head(self.final_norm(h))[:, 0]
        return out, {"index": index + 1, "layers": tuple(layers)}


def _check_one_hot(name: str, x, shape: str, ndim: int) -> None:
    if np.ndim(x) != ndim:
        raise ValueError(f"{name} must have shape {shape} (one-hot tokens); got shape {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name} must have a floating-point dtype; got dtype {x.dtype}")


def _check_context(context, n: int) -> None:
    if context is not None and (np.ndim(context) != 2 or np.shape(context)[0] != n):
        raise ValueError(
            f"context must have shape ({n}, c) (one row per example); got shape {np.shape(context)}"
        )
