"""Glow: a multi-scale image flow of actnorm, invertible 1x1 convolutions and affine couplings.

Data -> latent, for an image ``x`` of shape ``(H, W, C)`` (after the logit pre-processing):

    for each of the L scales:
        h = squeeze(h)                                   (H/2, W/2, 4C), log-det 0
        K steps: h = coupling(conv1x1(actnorm(h)))       each with its log-det
        if not the last scale:
            h, z_l = split(h)                            z_l is factored out:
            log p(z_l | h) = log N(z_l; mu(h), exp(log_sigma(h)))   (zero-initialised conv)
    log p(z_L) = log N(h; 0, I)

so ``log p(x) = sum_l log p(z_l | h_l) + log p(z_L) + sum of the steps' log-dets``. Whitening
each ``z_l`` by its prior, ``eps_l = (z_l - mu) / sigma``, makes the whole model one bijection
``x -> eps`` onto a standard normal (:meth:`Glow.to_latent`, :meth:`Glow.from_latent`); sampling
runs it backwards. The prior
of each split is ``N(0, I)`` at initialisation (its conv starts at zero) and so is every step
(zero-initialised coupling outputs, a random rotation for the 1x1 conv, actnorm initialised on
the first batch), so a fresh Glow is a rotation and a per-channel standardisation of the data.

Kingma & Dhariwal 2018, "Glow: Generative flow with invertible 1x1 convolutions"; the multi-scale
architecture of Dinh, Sohl-Dickstein & Bengio 2017, section 3.6.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.bijectors.actnorm import ActNormLayer
from jgen.bijectors.conv1x1 import Conv1x1Layer
from jgen.bijectors.coupling import AffineCouplingLayer
from jgen.bijectors.squeeze import Squeeze, merge_half, split_half
from jgen.checks import check_int
from jgen.gaussian import standard_normal_log_prob
from jgen.models.chain_flow import chain_to_data, chain_to_latent, logit_squash
from jgen.types import Array, PRNGKey


class SplitPrior(nn.Module):
    """``h -> (mu, log_sigma)`` of the factored-out half, by a zero-initialised 3x3 conv."""

    @nn.compact
    def __call__(self, h: Array) -> tuple[Array, Array]:
        out = nn.Conv(2 * h.shape[-1], (3, 3), kernel_init=nn.initializers.zeros)(h)
        return jnp.split(out, 2, axis=-1)


class Glow(nn.Module):
    """The multi-scale Glow of the module docstring; ``log_prob`` and ``sample`` as in
    :class:`jgen.models.chain_flow.ChainFlow`. Events are images ``(H, W, C)``, or ``(H, W)``
    treated as one channel; ``H`` and ``W`` must be divisible by ``2^num_scales``.

    Attributes:
      num_scales: ``L``, the number of squeezes (each but the last followed by a split).
      steps_per_scale: ``K``, Glow steps per scale.
      hidden_channels: width of each coupling's conv conditioner.
      logit_alpha: when > 0, model data in [0, 1) through ``logit(a + (1 - 2a) x)``.
    """

    num_scales: int = 2
    steps_per_scale: int = 4
    hidden_channels: int = 64
    logit_alpha: float = 0.05

    def setup(self):
        check_int("num_scales", self.num_scales)
        check_int("steps_per_scale", self.steps_per_scale)
        check_int("hidden_channels", self.hidden_channels)
        self.scales = [
            [
                layer
                for k in range(self.steps_per_scale)
                # One Glow step, latent side first: coupling, 1x1 conv, actnorm.
                for layer in (
                    AffineCouplingLayer(
                        (self.hidden_channels,), k % 2, mask="channel", network="conv"
                    ),
                    Conv1x1Layer(),
                    ActNormLayer(),
                )
            ]
            for _ in range(self.num_scales)
        ]
        self.priors = [SplitPrior() for _ in range(self.num_scales - 1)]

    def _image(self, x: Array) -> Array:
        image = x[..., None] if x.ndim == 3 else x
        if image.ndim != 4:
            raise ValueError(f"x must be images (n, H, W[, C]); got shape {x.shape}")
        size = 2**self.num_scales
        if image.shape[1] % size or image.shape[2] % size:
            raise ValueError(
                f"x must have height and width divisible by 2^num_scales = {size}; "
                f"got shape {x.shape}"
            )
        return image

    def latent_shapes(self, image_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Shapes of the factored-out latents ``z_1, ..., z_{L-1}`` and of the top ``z_L``."""
        height, width, channels = image_shape
        shapes = []
        for s in range(1, self.num_scales + 1):
            height, width, channels = height // 2, width // 2, 4 * channels
            if s < self.num_scales:
                channels //= 2
            shapes.append((height, width, channels))
        return shapes

    def to_latent(self, x: Array, key: PRNGKey | None = None) -> tuple[Array, Array]:
        """``x -> (eps, log|det d eps / dx|)`` with ``eps ~ N(0, I)`` of shape ``(n, D)``: every
        factored-out ``z_l`` whitened by its prior, ``(z_l - mu) / sigma``, and the top ``z_L``,
        flattened and concatenated in that order. ``log p(x) = log N(eps) + log|det|``. Every
        log-det is exact (``key`` is accepted for the interface shared with ``ChainFlow``)."""
        del key
        h = self._image(x)
        log_det = jnp.zeros(x.shape[:1], x.dtype)
        if self.logit_alpha > 0:
            h, log_det = logit_squash(self.logit_alpha, 3).inverse_and_log_det(h)
        pieces = []
        for s, steps in enumerate(self.scales):
            h = Squeeze().forward(h)
            h, steps_log_det = chain_to_latent(steps, h, None)
            log_det = log_det + steps_log_det
            if s < self.num_scales - 1:
                h, z = split_half(h)
                mean, log_sigma = self.priors[s](h)
                pieces.append(((z - mean) * jnp.exp(-log_sigma)).reshape(len(x), -1))
                log_det = log_det - jnp.sum(log_sigma, axis=(1, 2, 3))
        pieces.append(h.reshape(len(x), -1))
        return jnp.concatenate(pieces, axis=-1), log_det

    def from_latent(self, eps: Array, event_shape: tuple[int, ...]) -> Array:
        """The inverse of :meth:`to_latent`: ``eps (n, D)`` -> images of ``event_shape``."""
        image_shape = (*event_shape, 1)[:3]
        self._image(jnp.zeros((1, *image_shape)))
        shapes = self.latent_shapes(image_shape)
        ends = np.cumsum([math.prod(shape) for shape in shapes])
        pieces = [
            eps[:, end - math.prod(shape) : end].reshape(len(eps), *shape)
            for end, shape in zip(ends, shapes, strict=True)
        ]
        h = pieces[-1]
        for s in reversed(range(self.num_scales)):
            if s < self.num_scales - 1:
                mean, log_sigma = self.priors[s](h)
                h = merge_half(h, mean + jnp.exp(log_sigma) * pieces[s])
            h = Squeeze().inverse(chain_to_data(self.scales[s], h))
        if self.logit_alpha > 0:
            h = logit_squash(self.logit_alpha, 3).forward(h)
        return h.reshape(len(eps), *event_shape)

    def log_prob(self, x: Array, key: PRNGKey | None = None) -> Array:
        """``log p(x) = log N(eps) + log|det d eps / dx|`` per example (see :meth:`to_latent`)."""
        eps, log_det = self.to_latent(x, key)
        return standard_normal_log_prob(eps, 1) + log_det

    def sample(self, key: PRNGKey, n: int, event_shape: tuple[int, ...]) -> Array:
        """``n`` draws of events of ``event_shape``: ``from_latent`` of standard normals."""
        eps = jax.random.normal(key, (n, math.prod(event_shape)))
        return self.from_latent(eps, tuple(event_shape))
