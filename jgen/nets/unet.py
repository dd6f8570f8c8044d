"""The DDPM U-Net for noise / score prediction on images (Ho, Jain & Abbeel 2020, "Denoising
Diffusion Probabilistic Models", appendix B; a light version of NCSN++, Song et al. 2021,
"Score-Based Generative Modeling through Stochastic Differential Equations").

``x (n, H, W[, C]), t (n,), y (n,) | None -> (n, H, W[, C])``. With ``c`` the conditioning vector
(:class:`~jgen.nets.embeddings.ConditionEmbedding`: sinusoidal features of ``t`` of width
``channels``, ``Dense(4 channels) -> swish -> Dense(4 channels)``, plus a learned class embedding
with a null class when ``num_classes > 0``):

- a ``3 x 3`` convolution to ``channels``;
- levels ``i = 0 .. L-1`` at resolution ``H / 2^i``: ``num_res_blocks`` :class:`ResBlock` s of
  width ``channels * channel_mults[i]``, each followed by an :class:`AttentionBlock` when the
  level's height is in ``attention_resolutions``; between levels a stride-2 ``3 x 3``
  convolution. Every output is kept for a skip connection;
- the middle: ``ResBlock -> AttentionBlock -> ResBlock`` at the lowest resolution;
- levels back up, ``num_res_blocks + 1`` blocks each, every block's input the concatenation of
  the current features with the matching skip; between levels nearest-neighbour upsampling by 2
  and a ``3 x 3`` convolution;
- ``GroupNorm -> swish -> 3 x 3 conv`` to ``out_channels``, initialised to zero.

:class:`ResBlock`: ``h = conv(swish(GN(x))) + Dense(swish(c))``,
``h = conv(dropout(swish(GN(h))))``, ``out = skip(x) + h`` with ``skip`` a ``1 x 1``
convolution when the width changes. As in DDPM the second convolution of every block, the
attention output projection and the final convolution start at zero, so a fresh network outputs
exactly 0 and every block starts as its skip path.

Every operation acts on one example at a time (GroupNorm normalises per example, attention mixes
positions within an image), so example ``i``'s output depends on example ``i``'s input only.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_int, check_positive
from jgen.nets.embeddings import ConditionEmbedding, check_labels, check_times
from jgen.types import Array

_zeros = nn.initializers.zeros


def _conv(features: int, name: str, *, strides: int = 1, zero: bool = False) -> nn.Conv:
    init = _zeros if zero else nn.initializers.lecun_normal()
    return nn.Conv(features, (3, 3), (strides, strides), "SAME", kernel_init=init, name=name)


class ResBlock(nn.Module):
    """DDPM's residual block (module docstring): ``(n, H, W, C_in), (n, E) -> (n, H, W, out)``.

    Attributes:
      features: the output width.
      num_groups: GroupNorm groups (must divide ``C_in`` and ``features``).
      dropout: the dropout rate before the second convolution (``"dropout"`` rng when training).
    """

    features: int
    num_groups: int = 8
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: Array, c: Array, train: bool = False) -> Array:
        """``x (n, H, W, C_in), c (n, E) -> (n, H, W, features)``."""
        h = _conv(self.features, "conv_0")(jax.nn.swish(nn.GroupNorm(self.num_groups)(x)))
        h = h + nn.Dense(self.features, name="condition")(jax.nn.swish(c))[:, None, None, :]
        h = jax.nn.swish(nn.GroupNorm(self.num_groups)(h))
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        h = _conv(self.features, "conv_1", zero=True)(h)
        if x.shape[-1] != self.features:
            x = nn.Conv(self.features, (1, 1), name="skip")(x)
        return x + h


class AttentionBlock(nn.Module):
    """``x + W_o attention(GN(x))`` over the ``H W`` positions of each image.

    With ``q = GN(x) W_q + b_q`` (likewise ``k``, ``v``; ``num_heads`` heads of width
    ``d = C / num_heads``): ``attention = softmax(q k^T / sqrt(d)) v`` per head, the heads
    concatenated and projected by ``W_o`` (zero at initialisation). Permuting the positions
    permutes the output the same way (GroupNorm statistics are sums over positions).

    Attributes:
      num_heads: must divide the width ``C``.
      num_groups: GroupNorm groups.
    """

    num_heads: int = 1
    num_groups: int = 8

    @nn.compact
    def __call__(self, x: Array) -> Array:
        """``(n, H, W, C) -> (n, H, W, C)``."""
        n, height, width, channels = x.shape
        check_int("num_heads", self.num_heads)
        if channels % self.num_heads:
            raise ValueError(
                f"num_heads must divide the attention block's width {channels}; "
                f"got num_heads = {self.num_heads}"
            )
        h = nn.GroupNorm(self.num_groups)(x).reshape(n, height * width, channels)
        heads = (self.num_heads, channels // self.num_heads)
        q, k, v = (nn.DenseGeneral(heads, name=name)(h) for name in ("query", "key", "value"))
        a = nn.dot_product_attention(q, k, v, deterministic=True)
        out = nn.DenseGeneral(channels, axis=(-2, -1), kernel_init=_zeros, name="out")(a)
        return x + out.reshape(x.shape)


def _level_heights(height: int, num_levels: int) -> list[int]:
    return [height // 2**i for i in range(num_levels)]


def check_image(x, num_levels: int) -> tuple[Array, bool]:
    """``x`` as ``(n, H, W, C)`` and whether a channel axis was given; checks that ``H`` and ``W``
    halve ``num_levels - 1`` times without remainder.

    Raises:
      ValueError: for a rank other than 3 or 4, a non-float dtype, or sizes not divisible by
        ``2^(num_levels - 1)``.
    """
    shape = tuple(np.shape(x))
    if len(shape) not in (3, 4) or not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise ValueError(
            f"x must be floating-point images (n, H, W) or (n, H, W, C); got shape {shape}, "
            f"dtype {jnp.result_type(x)}"
        )
    factor = 2 ** (num_levels - 1)
    if shape[1] % factor or shape[2] % factor:
        raise ValueError(
            f"x's height and width must be divisible by 2^(len(channel_mults) - 1) = {factor} "
            f"for {num_levels} levels; got H, W = {shape[1]}, {shape[2]} (use fewer "
            "channel_mults)"
        )
    return (x if len(shape) == 4 else x[..., None]), len(shape) == 4


class UNet(nn.Module):
    """``(x (n, H, W[, C]), t (n,), y (n,) | None) -> (n, H, W[, C'])`` (module docstring).

    The output has ``C' = out_channels`` channels (``None``: ``C``); an input without a channel
    axis gives an output without one when ``C' = 1``. With ``num_classes = K > 0``, ``y`` holds
    labels in ``[0, K]`` with ``K`` the null class of classifier-free guidance, and ``y = None``
    means all-null (label dropout is the trainer's job). Sizes for the three image resolutions of
    the project: :func:`unet_config_for`.

    Attributes:
      channels: the base width ``F`` (also the width of the sinusoidal time features; the
        conditioning vector has ``4 F``).
      channel_mults: the width multiplier of each level; ``H`` and ``W`` must be divisible by
        ``2^(len(channel_mults) - 1)``.
      num_res_blocks: residual blocks per level on the way down (one more on the way up).
      attention_resolutions: heights at which the down and up blocks are followed by attention;
        ``None``: the lowest resolution only. The middle always has one.
      dropout: the rate in every residual block; needs ``train=True`` and a ``"dropout"`` rng.
      num_groups: GroupNorm groups; must divide ``channels``.
      num_classes: ``K`` (0: unconditional).
      out_channels: ``C'`` (``None``: as the input).
      num_heads: attention heads.
      fourier_scale: ``None`` for sinusoidal time features, else Gaussian Fourier features of
        this scale (NCSN++ on ``log sigma``, scale 16).
    """

    channels: int = 64
    channel_mults: Sequence[int] = (1, 2)
    num_res_blocks: int = 2
    attention_resolutions: Sequence[int] | None = None
    dropout: float = 0.0
    num_groups: int = 8
    num_classes: int = 0
    out_channels: int | None = None
    num_heads: int = 1
    fourier_scale: float | None = None

    def _check(self) -> None:
        check_int("channels", self.channels)
        check_int("num_res_blocks", self.num_res_blocks)
        check_int("num_groups", self.num_groups)
        if not len(self.channel_mults):
            raise ValueError(f"channel_mults must be non-empty; got {self.channel_mults!r}")
        for mult in self.channel_mults:
            check_int("channel_mults", mult)
        if self.channels % self.num_groups:
            raise ValueError(
                f"num_groups must divide channels = {self.channels}; got {self.num_groups}"
            )
        check_positive("dropout", self.dropout, allow_zero=True)
        if self.dropout >= 1:
            raise ValueError(f"dropout must lie in [0, 1); got {self.dropout}")
        if self.out_channels is not None:
            check_int("out_channels", self.out_channels)

    @nn.compact
    def __call__(self, x: Array, t: Array, y: Array | None = None, train: bool = False) -> Array:
        """The network's output.

        Args:
          x: ``(n, H, W)`` or ``(n, H, W, C)`` floating-point images.
          t: ``(n,)`` times, step indices or noise levels.
          y: ``(n,)`` integer labels in ``[0, num_classes]`` or ``None``.
          train: apply dropout (with the ``"dropout"`` rng).

        Returns:
          ``(n, H, W[, C'])``; shaped like ``x`` when ``out_channels`` is ``None``.

        Raises:
          ValueError: for bad shapes, dtypes, sizes or options (the message names the argument).
        """
        self._check()
        levels = len(self.channel_mults)
        h, has_channels = check_image(x, levels)
        n, height, _, in_channels = h.shape
        check_times(t, n)
        check_labels(y, n, self.num_classes)
        heights = _level_heights(height, levels)
        if self.attention_resolutions is None:
            attention = {heights[-1]}
        else:
            attention = set(self.attention_resolutions)
            if not attention <= set(heights):
                raise ValueError(
                    f"attention_resolutions must be among the levels' heights {heights}; "
                    f"got {tuple(self.attention_resolutions)}"
                )
        c = ConditionEmbedding(
            self.channels, 4 * self.channels, self.num_classes, self.fourier_scale, name="condition"
        )(t, y)

        def res(features, name, h):
            return ResBlock(features, self.num_groups, self.dropout, name=name)(h, c, train)

        def attend(name, h):
            return AttentionBlock(self.num_heads, self.num_groups, name=name)(h)

        h = _conv(self.channels, "conv_in")(h)
        skips = [h]
        for i, mult in enumerate(self.channel_mults):
            for j in range(self.num_res_blocks):
                h = res(self.channels * mult, f"down_{i}_res_{j}", h)
                if heights[i] in attention:
                    h = attend(f"down_{i}_attn_{j}", h)
                skips.append(h)
            if i < levels - 1:
                h = _conv(h.shape[-1], f"down_{i}_downsample", strides=2)(h)
                skips.append(h)
        width = self.channels * self.channel_mults[-1]
        h = res(width, "mid_res_0", h)
        h = attend("mid_attn", h)
        h = res(width, "mid_res_1", h)
        for i in reversed(range(levels)):
            for j in range(self.num_res_blocks + 1):
                h = jnp.concatenate([h, skips.pop()], axis=-1)
                h = res(self.channels * self.channel_mults[i], f"up_{i}_res_{j}", h)
                if heights[i] in attention:
                    h = attend(f"up_{i}_attn_{j}", h)
            if i > 0:
                h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)  # nearest neighbour
                h = _conv(h.shape[-1], f"up_{i}_upsample")(h)
        out_channels = in_channels if self.out_channels is None else self.out_channels
        h = jax.nn.swish(nn.GroupNorm(self.num_groups, name="norm_out")(h))
        out = _conv(out_channels, "conv_out", zero=True)(h)
        return out if has_channels or out_channels != 1 else out[..., 0]


# Sizes per image resolution: DDPM's CIFAR-10 network at 32 x 32 (35.7M parameters; attention at
# 16 x 16, dropout 0.1), narrower ones for the 28 x 28 and 8 x 8 digits. ``small``: widths for
# CPU tests and smoke runs.
_CONFIGS = {
    (8, 8): dict(channels=32, channel_mults=(1, 2), num_res_blocks=2, num_groups=8),
    (28, 28): dict(channels=64, channel_mults=(1, 2, 2), num_res_blocks=2, num_groups=8),
    (32, 32): dict(
        channels=128,
        channel_mults=(1, 2, 2, 2),
        num_res_blocks=2,
        attention_resolutions=(16,),
        dropout=0.1,
        num_groups=32,
    ),
}
_SMALL = dict(channels=8, num_res_blocks=1, num_groups=4, attention_resolutions=None, dropout=0.0)


def unet_config_for(image_shape: Sequence[int], small: bool = False) -> dict:
    """Keyword arguments of :class:`UNet` for images of shape ``(H, W)`` or ``(H, W, C)``.

    ``8 x 8``: ``channels 32, mults (1, 2)`` (8 -> 4); ``28 x 28``: ``channels 64,
    mults (1, 2, 2)`` (28 -> 14 -> 7); ``32 x 32``: DDPM's CIFAR-10 network, ``channels 128,
    mults (1, 2, 2, 2)``, attention at 16, dropout 0.1, 32 groups (Ho et al. 2020). Attention
    elsewhere at the lowest resolution (and in the middle). ``small=True`` keeps the levels and
    takes ``channels 8, 1 block per level, 4 groups``, no dropout.

    Raises:
      ValueError: for another resolution.
    """
    key = tuple(image_shape)[:2]
    if key not in _CONFIGS:
        raise ValueError(
            f"image_shape must start with one of {sorted(_CONFIGS)}; got {tuple(image_shape)} "
            "(pass UNet's arguments directly for other sizes)"
        )
    return {**_CONFIGS[key], **(_SMALL if small else {})}
