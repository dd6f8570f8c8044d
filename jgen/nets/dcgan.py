"""DCGAN players for images (Radford, Metz & Chintala 2016, "Unsupervised representation learning
with deep convolutional generative adversarial networks"): strided (transposed) convolutions
instead of pooling, batch norm in the generator, ReLU in the generator and LeakyReLU 0.2 in the
discriminator, tanh outputs.

Images are batches ``(n, H, W)`` or ``(n, H, W, C)``; the generator's outputs lie in ``[-1, 1]``,
so data in ``[0, 1]`` (the digits) is compared as ``2 x - 1``. Batch statistics live in the
``"batch_stats"`` collection (``apply(..., train=True, mutable=["batch_stats"])``), spectral
normalisation vectors in ``"spectral"``. Options of the discriminator:

- ``spectral_norm``: every convolution and dense layer normalised as in Miyato et al. 2018
  (:class:`~jgen.nets.spectral_norm.SNConv`, :class:`~jgen.nets.spectral_norm.SNDense`,
  ``clip=False, coeff=1, n_iter=1``);
- ``batch_norm``: after every convolution but the first (Radford et al.). It makes each logit
  depend on the whole batch in training, so the per-example input gradients that gradient
  penalties (WGAN-GP, R1) use are no longer those of a function of one example;
- ``minibatch_std``: :func:`~jgen.nets.discriminator.minibatch_stddev` (Karras et al. 2018) before
  the last convolution, which also couples the examples;
- ``num_classes > 0``: the projection head of Miyato & Koyama 2018 on the one-hot context.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.checks import check_int
from jgen.nets.discriminator import ProjectionHead, concat_context, leaky_relu, minibatch_stddev
from jgen.nets.spectral_norm import SNConv
from jgen.types import Array


def _batch_norm(train: bool, name: str) -> nn.BatchNorm:
    # PyTorch's defaults (running average 0.9, eps 1e-5), those of the DCGAN reference code.
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


def _image_shape(image_shape: Sequence[int]) -> tuple[int, int, int, bool]:
    """``(H, W, C, channel_axis_given)`` from ``(H, W)`` or ``(H, W, C)``."""
    shape = tuple(image_shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"image_shape must be (H, W) or (H, W, C); got {image_shape!r}")
    for size in shape:
        check_int("image_shape", size)
    return (*shape[:2], shape[2] if len(shape) == 3 else 1, len(shape) == 3)


def num_upsamplings(height: int) -> int:
    """``n``: how many times ``height`` halves while it is even and ``> 4`` (8 -> 1, 28 -> 2,
    32 -> 3); the generator starts at ``height / 2^n``."""
    check_int("height", height)
    n = 0
    while height % 2 == 0 and height > 4:
        height, n = height // 2, n + 1
    return n


class DCGANGenerator(nn.Module):
    """``z (n, k) -> images (n, H, W[, C])`` in ``[-1, 1]``.

    ``Dense -> reshape (h0, w0, F 2^max(n-1, 0))``, then ``n`` stride-2 ``4 x 4`` transposed
    convolutions, the ``i``-th with ``F 2^max(n-1-i, 0)`` channels (halving down to ``F``, the
    width of the discriminator's first layer), BatchNorm and ReLU after the dense layer and after
    every transposed convolution, and a ``3 x 3`` convolution to ``C`` channels with tanh. ``h0 =
    H / 2^n`` with ``n`` from :func:`num_upsamplings` (``8 -> 4``, ``28 -> 7``, ``32 -> 4``),
    ``w0 = W / 2^n``. With ``num_classes = C > 0`` the one-hot context is concatenated to ``z``.

    Attributes:
      image_shape: ``(H, W)`` (outputs ``(n, H, W)``) or ``(H, W, C)`` (outputs ``(n, H, W, C)``);
        ``W`` must be divisible by ``2^n``.
      features: the base width ``F``.
      num_classes: ``C`` (0: unconditional).
    """

    image_shape: Sequence[int]
    features: int = 64
    num_classes: int = 0

    @nn.compact
    def __call__(self, z: Array, context: Array | None = None, train: bool = True) -> Array:
        """``(n, k), (n, C) or None -> (n, H, W[, C])``; ``train`` uses batch statistics."""
        height, width, channels, has_channels = _image_shape(self.image_shape)
        check_int("features", self.features)
        n = num_upsamplings(height)
        if width % 2**n:
            raise ValueError(
                f"image_shape width must be divisible by 2^{n} (the {n} upsamplings that height "
                f"{height} takes); got {self.image_shape!r}"
            )
        h0, w0, c0 = height // 2**n, width // 2**n, self.features * 2 ** max(n - 1, 0)
        h = concat_context(z, context, self.num_classes)
        h = nn.Dense(h0 * w0 * c0, name="dense")(h).reshape(-1, h0, w0, c0)
        h = jax.nn.relu(_batch_norm(train, "bn_0")(h))
        for i in range(1, n + 1):
            c = self.features * 2 ** max(n - 1 - i, 0)
            h = nn.ConvTranspose(c, (4, 4), strides=(2, 2), padding="SAME", name=f"deconv_{i}")(h)
            h = jax.nn.relu(_batch_norm(train, f"bn_{i}")(h))
        x = jnp.tanh(nn.Conv(channels, (3, 3), padding="SAME", name="out")(h))
        return x if has_channels else x[..., 0]


class DCGANDiscriminator(nn.Module):
    """``images (n, H, W[, C]) -> logits (n,)``.

    Stride-2 ``4 x 4`` convolutions ("SAME" padding: ``ceil`` halving) with ``F 2^i`` channels
    and LeakyReLU 0.2, as many as it takes to bring ``max(H, W)`` to ``<= 4`` (8 -> 1, 28 -> 3,
    32 -> 3), optional BatchNorm (not after the first), optional minibatch standard deviation
    before the last convolution; the flattened features ``phi`` go to a
    :class:`~jgen.nets.discriminator.ProjectionHead` (``Dense(1)``, plus ``<V y, phi>`` with
    ``num_classes > 0``). The features are sown as ``("intermediates", "features")``.

    Attributes:
      features: the width ``F`` of the first convolution.
      spectral_norm: every layer spectrally normalised (``"spectral"`` collection).
      batch_norm: BatchNorm after every convolution but the first (``"batch_stats"``); the
        logits then depend on the whole batch in training, which breaks per-example gradient
        penalties.
      minibatch_std: append the minibatch standard deviation before the last convolution.
      num_classes: ``C > 0``: projection discriminator on the one-hot context ``(n, C)``.
    """

    features: int = 64
    spectral_norm: bool = False
    batch_norm: bool = False
    minibatch_std: bool = False
    num_classes: int = 0

    @nn.compact
    def __call__(self, x: Array, context: Array | None = None, train: bool = True) -> Array:
        """``(n, H, W[, C]), (n, C) or None -> (n,)``; ``train`` uses batch statistics."""
        check_int("features", self.features)
        if jnp.ndim(x) == 3:
            x = x[..., None]
        if jnp.ndim(x) != 4:
            raise ValueError(f"x must have shape (n, H, W) or (n, H, W, C); got {jnp.shape(x)}")
        size, layers = max(x.shape[1:3]), 0
        while size > 4:
            size, layers = -(-size // 2), layers + 1
        h = x
        for i in range(layers):
            if self.minibatch_std and i == layers - 1:
                h = minibatch_stddev(h)
            c = self.features * 2**i
            if self.spectral_norm:
                conv = SNConv(c, 4, strides=2, padding="SAME", name=f"conv_{i}")
            else:
                conv = nn.Conv(c, (4, 4), strides=(2, 2), padding="SAME", name=f"conv_{i}")
            h = conv(h)
            if self.batch_norm and i > 0:
                h = _batch_norm(train, f"bn_{i}")(h)
            h = leaky_relu(h)
        if self.minibatch_std and not layers:
            h = minibatch_stddev(h)
        phi = h.reshape(h.shape[0], -1)
        self.sow("intermediates", "features", phi)
        return ProjectionHead(self.num_classes, self.spectral_norm, name="head")(phi, context)
