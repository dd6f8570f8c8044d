"""Multi-layer perceptrons, the conditioners and energy networks of the low-dimensional models."""

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax


class MLP(nn.Module):
    """``x -> Dense(h_1) -> act -> ... -> Dense(h_L) -> act -> Dense(out)``.

    Attributes:
      hidden_sizes: widths of the hidden layers.
      out_size: width of the output layer.
      activation: the nonlinearity between layers.
      zero_init_output: initialise the output layer to zero, so a residual or coupling layer built
        on the MLP starts as the identity (Kingma & Dhariwal 2018, Glow).
    """

    hidden_sizes: Sequence[int]
    out_size: int
    activation: Callable[[jax.Array], jax.Array] = nn.gelu
    zero_init_output: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden_sizes:
            x = self.activation(nn.Dense(width)(x))
        init = nn.initializers.zeros if self.zero_init_output else nn.initializers.lecun_normal()
        return nn.Dense(self.out_size, kernel_init=init)(x)
