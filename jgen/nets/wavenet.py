"""WaveNet: causal dilated 1D convolutions with gated units, residual and skip connections.

The network reads the sequence ``x_0 .. x_{L-1}`` (``(n, L, F)`` floats) shifted right by one,
``u_i = x_{i-1}`` with ``u_0 = 0``, so output ``i`` is a function of ``x_<i`` only. A 1x1
convolution maps ``u`` to ``C`` channels, ``h^0 = W_in u``; then every block ``k`` (``num_stacks``
repetitions of the dilations ``d_1 .. d_B``) applies a causal convolution of width ``K`` and
dilation ``d`` (left zero padding of ``d (K - 1)``, so position ``i`` reads
``i, i - d, .., i - d (K - 1)``) followed by the gated activation unit with global
conditioning ``c`` (Eq. 2 and Section 2.5 of the paper):

    z^k = tanh(W_f * h^{k-1} + V_f c) . sigma(W_g * h^{k-1} + V_g c)
    h^k = h^{k-1} + R^k z^k            (residual 1x1 convolution)
    s^k = S^k z^k                      (skip 1x1 convolution)

and the output is ``y = W_2 relu(W_1 relu(sum_k s^k) + b_1) + b_2`` (two 1x1 convolutions).

Each block widens the causal window by ``d (K - 1)``, so output ``i`` depends on
``u_{i-R+1} .. u_i``, that is on ``x_{i-R} .. x_{i-1}``, with the receptive field

    R = 1 + num_stacks * (K - 1) * sum_b d_b

(``receptive_field``). Doubling dilations ``1, 2, 4, ..`` with ``K = 2`` reach every position of
that window.

van den Oord, Dieleman, Zen, Simonyan, Vinyals, Graves, Kalchbrenner, Senior & Kavukcuoglu 2016,
"WaveNet: A Generative Model for Raw Audio".
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.checks import check_int
from jgen.nets.recurrent import check_sequence_inputs


def _check_architecture(dilations: Sequence[int], kernel_size: int, num_stacks: int) -> None:
    if len(dilations) == 0:
        raise ValueError(
            f"dilations must be a non-empty sequence of integers >= 1; got {dilations!r}"
        )
    for i, d in enumerate(dilations):
        check_int(f"dilations[{i}]", d)
    check_int("kernel_size", kernel_size)
    check_int("num_stacks", num_stacks)


def receptive_field(dilations: Sequence[int], kernel_size: int = 2, num_stacks: int = 1) -> int:
    """The number of past positions an output sees: ``R = 1 + S (K - 1) sum_b d_b``.

    Output ``i`` of ``WaveNet`` depends on the inputs ``x_{i-R} .. x_{i-1}`` (and no others).

    Args:
      dilations: the dilations ``d_b`` of one stack of blocks.
      kernel_size: the width ``K`` of every dilated convolution.
      num_stacks: the number of repetitions ``S`` of the dilations.

    Returns:
      ``R`` as a Python int.

    Raises:
      ValueError: naming ``dilations``, ``kernel_size`` or ``num_stacks`` when they are not
        (a non-empty sequence of) positive integers.
    """
    _check_architecture(dilations, kernel_size, num_stacks)
    return 1 + num_stacks * (kernel_size - 1) * sum(int(d) for d in dilations)


class WaveNet(nn.Module):
    """``(x (n, L, F), context (n, c) | None) -> (n, L, num_outputs)`` with output ``i`` a
    function of ``x_{i-R} .. x_{i-1}`` (and of the context) only (module docstring).

    Attributes:
      num_outputs: output parameters per position ``P``.
      channels: residual, gate and skip channels ``C``.
      dilations: dilations of one stack of blocks.
      kernel_size: width ``K`` of the dilated convolutions.
      num_stacks: repetitions of ``dilations``.
    """

    num_outputs: int
    channels: int = 64
    dilations: Sequence[int] = (1, 2, 4, 8, 16, 32)
    kernel_size: int = 2
    num_stacks: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, context: jax.Array | None = None) -> jax.Array:
        """The output parameters of every position, each from the ``R`` positions before it.

        Args:
          x: ``(n, L, F)`` floating-point inputs.
          context: ``(n, c)`` or None; global conditioning added (through a dense map without
            bias) to the filter and gate pre-activations of every block.

        Returns:
          ``(n, L, num_outputs)``.

        Raises:
          ValueError: naming ``x`` or ``context`` when their shapes are not ``(n, L, F)`` and
            ``(n, c)``, or an attribute with a bad value.
        """
        check_int("num_outputs", self.num_outputs)
        check_int("channels", self.channels)
        _check_architecture(self.dilations, self.kernel_size, self.num_stacks)
        check_sequence_inputs("x", x, context, ("n", "L", "F"))
        # The shift makes the convolutions' own position the previous input: strict causality.
        shifted = jnp.pad(x, ((0, 0), (1, 0), (0, 0)))[:, :-1]
        h = nn.Dense(self.channels, name="input")(shifted)
        blocks = [
            (s, b, int(d)) for s in range(self.num_stacks) for b, d in enumerate(self.dilations)
        ]
        skips = 0.0
        for k, (s, b, d) in enumerate(blocks):
            pre = nn.Conv(
                2 * self.channels,
                kernel_size=(self.kernel_size,),
                kernel_dilation=(d,),
                padding=((d * (self.kernel_size - 1), 0),),
                name=f"dilated_{s}_{b}",
            )(h)
            if context is not None:
                cond = nn.Dense(2 * self.channels, use_bias=False, name=f"context_{s}_{b}")
                pre = pre + cond(context)[:, None]
            filt, gate = jnp.split(pre, 2, axis=-1)
            z = jnp.tanh(filt) * nn.sigmoid(gate)
            skips = skips + nn.Dense(self.channels, name=f"skip_{s}_{b}")(z)
            if k < len(blocks) - 1:  # the last block's residual output would feed nothing
                h = h + nn.Dense(self.channels, name=f"residual_{s}_{b}")(z)
        hidden = nn.relu(nn.Dense(self.channels, name="output_hidden")(nn.relu(skips)))
        return nn.Dense(self.num_outputs, name="output")(hidden)
