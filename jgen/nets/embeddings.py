"""Embeddings of a time, a step index or a noise level, the conditioning input of score networks.

Two fixed feature maps of a scalar ``t`` per example, and a small learned head on top:

- :func:`sinusoidal_embedding`, the transformer's position encoding (Vaswani et al. 2017, "Attention
  Is All You Need") that DDPM uses for the step index (Ho, Jain & Abbeel 2020, "Denoising
  Diffusion Probabilistic Models"): ``[sin(t f_k), cos(t f_k)]`` with geometric frequencies
  ``f_k = max_period^(-k / half)``, ``k = 0 .. half - 1``, ``half = dim / 2``. The frequencies run
  from 1 down to ``1 / max_period``, so the features resolve integer steps ``0 .. 1000``; a
  continuous time ``t in [0, 1]`` should be scaled first (Song et al. 2021 feed ``999 t``).
- :class:`GaussianFourierFeatures` (Tancik et al. 2020, "Fourier Features Let Networks Learn High
  Frequency Functions in Low Dimensional Domains"; Song et al. 2021, "Score-Based Generative
  Modeling through Stochastic Differential Equations", NCSN++ on ``log sigma``):
  ``[sin(2 pi t w_k), cos(2 pi t w_k)]`` with random frequencies ``w_k ~ N(0, scale^2)`` drawn
  once from a fixed seed. They are a constant of the module, not a parameter: they are never
  trained and need no variable collection.
- :class:`TimeEmbedding`: ``features(t) -> Dense -> swish -> Dense``, the conditioning vector
  that :class:`~jgen.nets.unet.UNet` and :class:`~jgen.nets.score_mlp.ScoreMLP` add into their
  layers.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_int, check_positive, is_traced
from jgen.types import Array


def check_embedding_dim(name: str, dim) -> None:
    """Raises ``ValueError`` unless ``dim`` is an even integer ``>= 2`` (sine and cosine halves)."""
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 2 or dim % 2:
        raise ValueError(f"{name} must be an even integer >= 2; got {dim!r}")


def check_times(t, n: int | None = None) -> Array:
    """Checks that ``t`` is a batch ``(n,)`` of real numbers; returns it as floats (integers in
    the default float dtype, floats unchanged).

    Args:
      t: times, step indices or noise levels, one per example.
      n: the batch size ``t`` must match (``None``: any).

    Raises:
      ValueError: when ``t`` is not one-dimensional, not real, or has the wrong length.
    """
    shape = tuple(np.shape(t))
    expected = "(n,)" if n is None else f"({n},) (one per example)"
    if len(shape) != 1 or (n is not None and shape[0] != n):
        raise ValueError(f"t must have shape {expected}; got shape {shape}")
    dtype = jnp.result_type(t)
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        raise ValueError(f"t must have a real (integer or floating) dtype; got dtype {dtype}")
    return jnp.asarray(t, dtype if jnp.issubdtype(dtype, jnp.floating) else float)


def sinusoidal_embedding(t: Array, dim: int, max_period: float = 10_000.0) -> Array:
    """The sinusoidal encoding ``[sin(t f_0), .., sin(t f_{h-1}), cos(t f_0), .., cos(t f_{h-1})]``.

    ``f_k = exp(-log(max_period) k / h)``, ``h = dim / 2`` (Vaswani et al. 2017, section 3.5; the
    step embedding of Ho et al. 2020). ``f_0 = 1``, the slowest frequency is
    ``max_period^(-(h-1)/h)``.

    Args:
      t: ``(n,)`` times, step indices or ``log sigma`` (integers are cast to float).
      dim: the width, even and ``>= 2``.
      max_period: ``> 0``, the longest period's scale.

    Returns:
      ``(n, dim)`` features, sines first.

    Raises:
      ValueError: for an odd or too small ``dim``, a bad ``max_period`` or ``t`` not ``(n,)``.
    """
    check_embedding_dim("dim", dim)
    check_positive("max_period", max_period)
    t = check_times(t)
    half = dim // 2
    freqs = jnp.exp(-np.log(max_period) * jnp.arange(half, dtype=t.dtype) / half)
    angles = t[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def fourier_frequencies(dim: int, scale: float, seed: int = 0) -> np.ndarray:
    """The ``dim / 2`` frequencies ``w_k ~ N(0, scale^2)`` of :class:`GaussianFourierFeatures`,
    drawn by numpy from ``seed`` (a host constant: the same on every device and every run)."""
    check_embedding_dim("dim", dim)
    check_positive("scale", scale)
    return scale * np.random.default_rng(seed).standard_normal(dim // 2)


class GaussianFourierFeatures(nn.Module):
    """``t (n,) -> [sin(2 pi t w), cos(2 pi t w)] (n, dim)`` with fixed ``w ~ N(0, scale^2)``.

    Tancik et al. 2020; Song et al. 2021 (NCSN++ embeds ``log sigma`` with ``scale = 16``). The
    frequencies come from :func:`fourier_frequencies` ``(dim, scale, seed)``: a constant, so the
    module has no variables, ``init`` returns an empty dict and no optimizer can move them.

    Attributes:
      dim: the width, even and ``>= 2``.
      scale: the standard deviation of the frequencies.
      seed: the numpy seed the frequencies are drawn from.
    """

    dim: int
    scale: float = 16.0
    seed: int = 0

    def __call__(self, t: Array) -> Array:
        """``(n,) -> (n, dim)``, sines first."""
        t = check_times(t)
        w = jnp.asarray(fourier_frequencies(self.dim, self.scale, self.seed), t.dtype)
        angles = 2.0 * jnp.pi * t[:, None] * w[None, :]
        return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class TimeEmbedding(nn.Module):
    """``t (n,) -> Dense(out) -> swish -> Dense(out)`` of fixed features of ``t``, ``(n, out)``.

    The features are :func:`sinusoidal_embedding` ``(t, dim, max_period)`` (Ho et al. 2020), or
    :class:`GaussianFourierFeatures` ``(dim, fourier_scale)`` when ``fourier_scale`` is set (Song
    et al. 2021). ``swish(a) = a sigmoid(a)``.

    Attributes:
      dim: the width of the fixed features, even and ``>= 2``.
      out_dim: the output width (``None``: ``dim``); DDPM uses ``4 dim``.
      max_period: of the sinusoidal features.
      fourier_scale: ``None`` for sinusoidal features, else the Fourier frequencies' scale.
    """

    dim: int
    out_dim: int | None = None
    max_period: float = 10_000.0
    fourier_scale: float | None = None

    @nn.compact
    def __call__(self, t: Array) -> Array:
        """``(n,) -> (n, out_dim)``."""
        out_dim = self.dim if self.out_dim is None else self.out_dim
        check_int("out_dim", out_dim)
        if self.fourier_scale is None:
            h = sinusoidal_embedding(t, self.dim, self.max_period)
        else:
            h = GaussianFourierFeatures(self.dim, self.fourier_scale, name="fourier")(t)
        h = nn.Dense(out_dim, name="dense_0")(h)
        return nn.Dense(out_dim, name="dense_1")(jax.nn.swish(h))


def check_labels(y, n: int, num_classes: int) -> Array:
    """Class labels ``(n,)`` for a network with ``num_classes`` classes plus the null class.

    Args:
      y: ``(n,)`` integers in ``[0, num_classes]`` (``num_classes`` is the null class), or
        ``None`` (every example unconditional).
      n: the batch size.
      num_classes: ``C``; ``0`` for an unconditional network, which takes no labels.

    Returns:
      ``(n,)`` int32 labels, ``None`` replaced by the null class ``C``.

    Raises:
      ValueError: for labels given to an unconditional network, a wrong shape or dtype, or
        (concrete) labels outside ``[0, C]``.
    """
    check_int("num_classes", num_classes, minimum=0)
    if num_classes == 0:
        if y is not None:
            raise ValueError("y must be None for an unconditional network (num_classes = 0)")
        return None
    if y is None:
        return jnp.full((n,), num_classes, jnp.int32)
    if tuple(np.shape(y)) != (n,) or not jnp.issubdtype(jnp.result_type(y), jnp.integer):
        raise ValueError(
            f"y must be integer labels of shape ({n},); got shape {np.shape(y)}, "
            f"dtype {jnp.result_type(y)}"
        )
    if not is_traced(y):
        y_host = np.asarray(y)  # on the host: under a jit trace jnp ops on constants are staged
        low, high = int(y_host.min()), int(y_host.max())
        if low < 0 or high > num_classes:
            raise ValueError(
                f"y must lie in [0, {num_classes}] ({num_classes} = the null class); "
                f"got values in [{low}, {high}]"
            )
    return jnp.asarray(y, jnp.int32)


class LabelEmbedding(nn.Module):
    """``y (n,) -> (n, features)``: a learned table of ``num_classes + 1`` rows, the last one the
    null class of classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion
    Guidance"). ``y = None`` means every example unconditional. Dropping labels to the null class
    in training is the trainer's job.

    Attributes:
      num_classes: ``C >= 1``.
      features: the width of the embedding.
    """

    num_classes: int
    features: int

    @nn.compact
    def __call__(self, y: Array | None, n: int) -> Array:
        """``(n,) int or None -> (n, features)``."""
        check_int("num_classes", self.num_classes)
        y = check_labels(y, n, self.num_classes)
        return nn.Embed(self.num_classes + 1, self.features, name="table")(y)


class ConditionEmbedding(nn.Module):
    """``(t (n,), y (n,) | None) -> (n, out_dim)``: :class:`TimeEmbedding` of ``t``, plus
    :class:`LabelEmbedding` of ``y`` when ``num_classes > 0``; the conditioning vector both score
    networks add into their layers.

    Attributes:
      dim: the width of the fixed time features.
      out_dim: the output width.
      num_classes: ``C`` (0: unconditional, ``y`` must be ``None``).
      fourier_scale: as in :class:`TimeEmbedding`.
    """

    dim: int
    out_dim: int
    num_classes: int = 0
    fourier_scale: float | None = None

    @nn.compact
    def __call__(self, t: Array, y: Array | None = None) -> Array:
        """``(n,), (n,) int or None -> (n, out_dim)``."""
        emb = TimeEmbedding(self.dim, self.out_dim, fourier_scale=self.fourier_scale, name="time")
        c = emb(t)
        y = check_labels(y, c.shape[0], self.num_classes)
        if y is not None:
            c = c + LabelEmbedding(self.num_classes, self.out_dim, name="label")(y, c.shape[0])
        return c
