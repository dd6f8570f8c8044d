"""A time-conditioned MLP for score / noise prediction on low-dimensional data (2D toys, flattened
digits).

With ``c = TimeEmbedding(t) [+ LabelEmbedding(y)]``
(:class:`~jgen.nets.embeddings.ConditionEmbedding`), every hidden layer adds a projection of
``swish(c)`` to its pre-activation (the additive half of FiLM, Perez et al. 2018, as in the DDPM
residual blocks, Ho et al. 2020):

    h_0 = flatten(x),   h_l = swish(W_l h_{l-1} + b_l + V_l swish(c) + d_l),   out = W_o h_L + b_o,

reshaped to ``x``'s shape. Whether ``out`` is a noise prediction ``eps`` or a score is the model
file's choice; so is the scaling of ``t`` (see :mod:`jgen.nets.embeddings`). With
``num_outputs = C`` the same network returns ``(n, C)`` instead, e.g. the logits of the
time-conditioned classifier ``p(y | x_t, t)`` of classifier guidance (Dhariwal & Nichol 2021,
"Diffusion models beat GANs on image synthesis"; :mod:`jgen.losses.classifier_guidance`).
"""

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import numpy as np

from jgen.checks import check_int
from jgen.nets.embeddings import (
    ConditionEmbedding,
    check_embedding_dim,
    check_labels,
    check_times,
)
from jgen.types import Array


def check_input(x) -> None:
    """Raises ``ValueError`` unless ``x`` is a floating-point batch ``(n, *event)``."""
    if np.ndim(x) < 2 or not jax.numpy.issubdtype(jax.numpy.result_type(x), jax.numpy.floating):
        raise ValueError(
            f"x must be a floating-point batch (n, *event); got shape {np.shape(x)}, "
            f"dtype {jax.numpy.result_type(x)}"
        )


class ScoreMLP(nn.Module):
    """``(x (n, *event), t (n,), y (n,) | None) -> (n, *event)``, or ``(n, num_outputs)`` when
    ``num_outputs`` is set (module docstring).

    Class conditioning: with ``num_classes = C > 0``, ``y`` holds labels in ``[0, C]`` where
    ``C`` is the null class (unconditional), and ``y = None`` means all-null; classifier-free
    guidance combines the outputs for ``y`` and for ``None`` (Ho & Salimans 2022). Dropping labels
    to ``C`` during training is the trainer's job.

    Attributes:
      hidden_sizes: widths of the hidden layers.
      embedding_dim: width of the sinusoidal time features and of the conditioning vector.
      num_classes: ``C`` (0: unconditional; ``y`` must then be ``None``).
      activation: the nonlinearity (swish, as in DDPM).
      fourier_scale: ``None`` for sinusoidal time features, else Gaussian Fourier features of
        this scale (see :class:`~jgen.nets.embeddings.TimeEmbedding`).
      zero_init_output: initialise the output layer to zero (the initial output is exactly 0).
      num_outputs: ``None``: the output has ``x``'s shape (a noise prediction or a score); an
        integer ``>= 1``: the output is ``(n, num_outputs)`` (e.g. class logits).
    """

    hidden_sizes: Sequence[int] = (256, 256, 256)
    embedding_dim: int = 64
    num_classes: int = 0
    activation: Callable[[Array], Array] = jax.nn.swish
    fourier_scale: float | None = None
    zero_init_output: bool = False
    num_outputs: int | None = None

    @nn.compact
    def __call__(self, x: Array, t: Array, y: Array | None = None) -> Array:
        """Output of the network, shaped like ``x``.

        Args:
          x: ``(n, *event)`` floating-point inputs (flattened inside).
          t: ``(n,)`` times, step indices or noise levels.
          y: ``(n,)`` integer labels in ``[0, num_classes]`` or ``None``.

        Returns:
          ``(n, *event)``, or ``(n, num_outputs)`` when ``num_outputs`` is set.

        Raises:
          ValueError: for bad shapes, dtypes or sizes (the message names the argument).
        """
        check_input(x)
        check_embedding_dim("embedding_dim", self.embedding_dim)
        for width in self.hidden_sizes:
            check_int("hidden_sizes", width)
        if self.num_outputs is not None:
            check_int("num_outputs", self.num_outputs)
        n, event = x.shape[0], x.shape[1:]
        check_times(t, n)
        check_labels(y, n, self.num_classes)
        c = ConditionEmbedding(
            self.embedding_dim,
            self.embedding_dim,
            self.num_classes,
            self.fourier_scale,
            name="condition",
        )(t, y)
        c = self.activation(c)  # DDPM projects swish(temb) into each block
        h = x.reshape(n, -1)
        for i, width in enumerate(self.hidden_sizes):
            h = nn.Dense(width, name=f"dense_{i}")(h) + nn.Dense(width, name=f"film_{i}")(c)
            h = self.activation(h)
        init = nn.initializers.zeros if self.zero_init_output else nn.initializers.lecun_normal()
        if self.num_outputs is not None:
            return nn.Dense(self.num_outputs, kernel_init=init, name="out")(h)
        out = nn.Dense(int(np.prod(event)), kernel_init=init, name="out")(h)
        return out.reshape(x.shape)
