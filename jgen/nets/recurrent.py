"""Recurrent character-level language models: stacked LSTM or GRU layers scanned over time.

A sequence ``x_0 .. x_{L-1}`` of one-hot vectors is modelled autoregressively,
``p(x) = prod_i p(x_i | x_<i)``. The network reads the sequence shifted right by one, with a
learned start vector ``s`` in place of the missing ``x_{-1}``, so the input at step ``i`` is
``u_i = [x_{i-1}; c]`` (``u_0 = [s; c]``, ``c`` the optional context, repeated at every step) and
output ``i`` is a function of ``x_<i`` (and ``c``) only. The layers follow Graves 2013 (Eqs. 1-3),
with skip connections from the input to every layer and from every layer to the output:

    h^1_i = H(u_i, h^1_{i-1})
    h^l_i = H([u_i; h^{l-1}_i], h^l_{i-1})                    l = 2 .. N
    y_i   = b_y + sum_l W_{h^l y} h^l_i                       (one dense map of [h^1_i; ..; h^N_i])

with zero initial states. ``H`` is Flax's LSTM cell (``nn.OptimizedLSTMCell``, Hochreiter &
Schmidhuber 1997 without Graves' peepholes)

    i = sigma(W_ii u + W_hi h + b_i)     f = sigma(W_if u + W_hf h + b_f)
    g = tanh(W_ig u + W_hg h + b_g)      o = sigma(W_io u + W_ho h + b_o)
    c' = f * c + i * g                   h' = o * tanh(c')

or the GRU cell (``nn.GRUCell``, Cho et al. 2014)

    r = sigma(W_ir u + b_ir + W_hr h)    z = sigma(W_iz u + b_iz + W_hz h)
    n = tanh(W_in u + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h.

``__call__`` scans one time step of the whole stack over the sequence (``nn.scan``);
``decode_step`` applies the same step module once, so both paths share every parameter and a
sampler can generate one token at a time in O(L) cell steps instead of O(L^2).

Graves 2013, "Generating Sequences With Recurrent Neural Networks"; Hochreiter & Schmidhuber
1997, "Long Short-Term Memory"; Cho, van Merrienboer, Gulcehre, Bahdanau, Bougares, Schwenk &
Bengio 2014, "Learning Phrase Representations using RNN Encoder-Decoder for Statistical Machine
Translation".
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.checks import check_choice, check_int

CELLS = ("lstm", "gru")


class _StartVector(nn.Module):
    """The learned stand-in ``s`` for the input before the first position (a ``(features,)``
    parameter named ``vector``, created on first use with the width of the inputs)."""

    @nn.compact
    def __call__(self, features: int) -> jax.Array:
        return self.param("vector", nn.initializers.zeros, (features,))


class _StackStep(nn.Module):
    """One time step of the whole stack: ``(carries, u_i) -> (carries', y_i)`` (module
    docstring's equations). Carries are ``(c, h)`` pairs for the LSTM, ``h`` for the GRU."""

    cell: str
    hidden_size: int
    num_layers: int
    num_outputs: int

    @nn.compact
    def __call__(self, carries: tuple, inputs: jax.Array) -> tuple[tuple, jax.Array]:
        cell_type = nn.OptimizedLSTMCell if self.cell == "lstm" else nn.GRUCell
        new_carries, hiddens = [], []
        for layer, carry in enumerate(carries):
            layer_input = inputs if layer == 0 else jnp.concatenate([inputs, hiddens[-1]], -1)
            new_carry, h = cell_type(self.hidden_size, name=f"cell_{layer}")(carry, layer_input)
            # lax.scan needs a carry of fixed dtype; the carry's dtype is the one the caller chose.
            new_carry = jax.tree.map(lambda new, old: new.astype(old.dtype), new_carry, carry)
            new_carries.append(new_carry)
            hiddens.append(h)
        out = nn.Dense(self.num_outputs, name="output")(jnp.concatenate(hiddens, -1))
        return tuple(new_carries), out


def _apply_step(step: _StackStep, carries: tuple, inputs: jax.Array) -> tuple[tuple, jax.Array]:
    return step(carries, inputs)


class RecurrentLM(nn.Module):
    """``(x (n, L, V), context (n, c) | None) -> (n, L, num_outputs)``: a stacked LSTM or GRU
    language model whose output ``i`` depends on ``x_<i`` (and the context) only (module
    docstring).

    Attributes:
      num_outputs: output parameters per position ``P`` (e.g. ``V`` logits).
      cell: ``'lstm'`` or ``'gru'``.
      hidden_size: units per recurrent layer.
      num_layers: number of stacked recurrent layers ``N``.
    """

    num_outputs: int
    cell: str = "lstm"
    hidden_size: int = 256
    num_layers: int = 1

    def setup(self):
        check_int("num_outputs", self.num_outputs)
        check_choice("cell", self.cell, CELLS)
        check_int("hidden_size", self.hidden_size)
        check_int("num_layers", self.num_layers)
        self.start = _StartVector()
        self.step = _StackStep(self.cell, self.hidden_size, self.num_layers, self.num_outputs)

    def _zero_carries(self, batch_size: int, dtype) -> tuple:
        zeros = jnp.zeros((batch_size, self.hidden_size), dtype)
        carry = (zeros, zeros) if self.cell == "lstm" else zeros
        return (carry,) * self.num_layers

    def __call__(self, x: jax.Array, context: jax.Array | None = None) -> jax.Array:
        """The output parameters of every position, each from the positions before it.

        ``y_i = f(s, x_0, .., x_{i-1}, c)``: the stack scanned over ``u_0 = [s; c]``,
        ``u_i = [x_{i-1}; c]``.

        Args:
          x: ``(n, L, V)`` floating-point inputs (one-hot tokens).
          context: ``(n, c)`` or None; concatenated to the input of every step.

        Returns:
          ``(n, L, num_outputs)``.

        Raises:
          ValueError: naming ``x`` or ``context`` when their shapes are not ``(n, L, V)`` and
            ``(n, c)``, or an attribute (``cell``, ``hidden_size``, ...) with a bad value.
        """
        check_sequence_inputs("x", x, context, ("n", "L", "V"))
        n, length, vocab = x.shape
        start = jnp.broadcast_to(self.start(vocab).astype(x.dtype), (n, 1, vocab))
        inputs = jnp.concatenate([start, x[:, :-1]], axis=1)
        if context is not None:
            repeated = jnp.broadcast_to(
                context[:, None].astype(x.dtype), (n, length) + context.shape[1:]
            )
            inputs = jnp.concatenate([inputs, repeated], axis=-1)
        scan = nn.scan(
            _apply_step,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=1,
            out_axes=1,
        )
        _, out = scan(self.step, self._zero_carries(n, x.dtype), inputs)
        return out

    def init_cache(self, batch_size: int, length: int, dtype=jnp.float32) -> dict:
        """The decoding state before position 0: zero carries and position index 0.

        Creates and reads no parameters, so it may be called through ``apply`` with the
        variables of ``__call__``.

        Args:
          batch_size: ``n``.
          length: the sequence length ``L`` to be decoded; a recurrent state does not grow with
            it, so it is only checked (the argument keeps the interface of the transformer's).
          dtype: dtype of the carries (the dtype the step computes in).

        Returns:
          ``{'carries': per-layer carries ((c, h) pairs of (n, hidden_size) for the LSTM,
          h for the GRU), 'index': int32 scalar 0}``.

        Raises:
          ValueError: naming ``batch_size`` or ``length`` when they are not positive integers.
        """
        check_int("batch_size", batch_size)
        check_int("length", length)
        return {
            "carries": self._zero_carries(batch_size, dtype),
            "index": jnp.zeros((), jnp.int32),
        }

    def decode_step(
        self, cache: dict, x_prev: jax.Array, context: jax.Array | None = None
    ) -> tuple[jax.Array, dict]:
        """One step of the stack: the output parameters of position ``i = cache['index']``.

        ``u_i = [x_{i-1}; c]`` (``[s; c]`` at ``i = 0``, when ``x_prev`` is ignored), then
        ``(carries', y_i) = step(carries, u_i)``. Running it ``L`` times, feeding token ``i`` as
        ``x_prev`` of call ``i + 1``, reproduces ``__call__``.

        Args:
          cache: from ``init_cache`` or the previous ``decode_step``.
          x_prev: ``(n, V)`` one-hot of the previous token.
          context: ``(n, c)`` or None, as given to ``__call__``.

        Returns:
          ``(out (n, num_outputs), cache)`` with the index advanced by one.

        Raises:
          ValueError: naming ``x_prev`` or ``context`` when their shapes are not ``(n, V)`` and
            ``(n, c)``.
        """
        check_sequence_inputs("x_prev", x_prev, context, ("n", "V"))
        index = cache["index"]
        dtype = jax.tree.leaves(cache["carries"])[0].dtype
        start = self.start(x_prev.shape[-1]).astype(dtype)
        inputs = jnp.where(index == 0, start[None], x_prev.astype(dtype))
        if context is not None:
            inputs = jnp.concatenate([inputs, context.astype(dtype)], axis=-1)
        carries, out = self.step(cache["carries"], inputs)
        return out, {"carries": carries, "index": index + 1}


def check_sequence_inputs(name: str, x, context, dims: tuple[str, ...]) -> None:
    """Checks a floating-point ``x`` of rank ``len(dims)`` (e.g. ``('n', 'L', 'V')``) and a
    ``context`` of shape ``(n, c)`` or None.

    Raises:
      ValueError: naming ``name`` (wrong rank or dtype) or ``context`` (wrong shape).
    """
    shown = "(" + ", ".join(dims) + ")"
    if x.ndim != len(dims):
        raise ValueError(f"{name} must have shape {shown}; got shape {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name} must have a floating-point dtype; got dtype {x.dtype}")
    if context is not None and (context.ndim != 2 or context.shape[0] != x.shape[0]):
        raise ValueError(
            f"context must have shape ({x.shape[0]}, c) (one row per row of {name}); "
            f"got shape {context.shape}"
        )
