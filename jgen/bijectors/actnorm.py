"""Activation normalisation (Glow): a per-channel affine map with data-dependent initialisation.

For an event ``x`` whose last axis holds ``C`` channels (an ``(H, W, C)`` image or a ``(C,)``
vector), with per-channel parameters ``log_scale, bias`` of shape ``(C,)``,

    y[..., c] = x[..., c] * exp(log_scale[c]) + bias[c]
    log|det dy/dx| = (number of spatial positions) * sum_c log_scale[c]

where the number of spatial positions is ``H * W`` for images and 1 for vectors. The parameters
are initialised so that the output on the first batch has zero mean and unit variance per channel.

Kingma & Dhariwal 2018, "Glow: Generative flow with invertible 1x1 convolutions", section 3.1.
"""

import math

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.checks import check_int
from jgen.types import Array


def check_channels(name: str, x: Array, num_channels: int, event_ndims: int) -> None:
    """Raises ``ValueError`` unless ``x`` has at least ``event_ndims`` axes and ``num_channels``
    entries on its last axis (only the static shape is read, so traced values are checked too)."""
    shape = tuple(jnp.shape(x))
    if len(shape) < event_ndims or shape[-1] != num_channels:
        raise ValueError(
            f"{name} must have shape (..., {event_ndims} event axes) with {num_channels} channels "
            f"on the last axis; got shape {shape}"
        )


def _event_sum_broadcast(per_position: Array, x: Array, event_ndims: int) -> Array:
    """``per_position`` (a scalar log-det of one spatial position) times the number of positions
    of the event, broadcast to the batch shape of ``x``."""
    positions = math.prod(x.shape[x.ndim - event_ndims : -1])
    return jnp.broadcast_to(positions * per_position, x.shape[: x.ndim - event_ndims])


class ActNorm(distrax.Bijector):
    """``y = x * exp(log_scale) + bias`` per channel (last axis); log-det ``H W sum(log_scale)``.

    Args:
      log_scale: ``(C,)`` log of the per-channel scale.
      bias: ``(C,)`` per-channel shift, added after scaling.
      event_ndims: axes of one event: 3 for ``(H, W, C)`` images, 1 for ``(C,)`` vectors (any
        value >= 1 works; all event axes but the last count as spatial positions).

    Raises:
      ValueError: if ``log_scale`` or ``bias`` is not a vector of one common length, or
        ``event_ndims < 1``.
    """

    def __init__(self, log_scale: Array, bias: Array, event_ndims: int = 3):
        check_int("event_ndims", event_ndims, minimum=1)
        log_scale, bias = jnp.asarray(log_scale), jnp.asarray(bias)
        if log_scale.ndim != 1:
            raise ValueError(f"log_scale must have shape (C,); got shape {log_scale.shape}")
        if bias.shape != log_scale.shape:
            raise ValueError(
                f"bias must have the shape of log_scale {log_scale.shape}; got shape {bias.shape}"
            )
        super().__init__(event_ndims_in=event_ndims, is_constant_jacobian=True)
        self._log_scale = log_scale
        self._bias = bias

    @property
    def num_channels(self) -> int:
        return self._log_scale.shape[0]

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        check_channels("x", x, self.num_channels, self.event_ndims_in)
        y = x * jnp.exp(self._log_scale) + self._bias
        return y, _event_sum_broadcast(jnp.sum(self._log_scale), x, self.event_ndims_in)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        check_channels("y", y, self.num_channels, self.event_ndims_in)
        x = (y - self._bias) * jnp.exp(-self._log_scale)
        return x, _event_sum_broadcast(-jnp.sum(self._log_scale), y, self.event_ndims_in)


class ActNormLayer(nn.Module):
    """The parameters of an :class:`ActNorm`, initialised from the batch seen by ``module.init``.

    Calling the layer on a batch ``x`` of shape ``(n, *event)`` (channels last) returns the
    bijector; ``event_ndims = x.ndim - 1``. Data-dependent initialisation follows from how Flax
    creates parameters: ``self.param(name, init_fn)`` computes its value with ``init_fn`` only
    while the variable does not exist yet, i.e. under ``module.init(key, x)``. The init functions
    below close over the ``x`` of that call and return

        log_scale = -log(std(x) + eps),   bias = -mean(x) * exp(log_scale)

    (statistics per channel over the batch and spatial axes), so ``forward(x)`` has per-channel
    mean 0 and standard deviation ``std / (std + eps)`` ~ 1 on the init batch. Under
    ``module.apply`` the stored parameters are used; Flax only traces ``init_fn`` abstractly
    (``jax.eval_shape``) to check the stored shapes, so no batch statistics are computed.
    In a deep flow, pass each ActNorm the activations that reach it during ``init`` (the output of
    the layers before it on the data), so every layer normalises its own input.

    The bijector's forward map is the normalising direction (data -> standardised). A flow that
    maps latents to data, like ``jgen.models.flow``, uses it through ``distrax.Inverse`` or builds
    its data -> latent chain forward and inverts the whole chain.

    Attributes:
      eps: added to the standard deviation, so constant channels do not give infinite scales.
    """

    eps: float = 1e-6

    @nn.compact
    def __call__(self, x: Array) -> ActNorm:
        if x.ndim < 2:
            raise ValueError(f"x must be a batch (n, *event, C); got shape {x.shape}")
        axes = tuple(range(x.ndim - 1))
        stats = jax.lax.stop_gradient(x)

        def init_log_scale(key, shape, dtype):
            del key
            return (-jnp.log(jnp.std(stats, axis=axes) + self.eps)).astype(dtype).reshape(shape)

        log_scale = self.param("log_scale", init_log_scale, (x.shape[-1],), x.dtype)

        def init_bias(key, shape, dtype):
            del key
            # Uses the log_scale just created, so the two are consistent by construction.
            return (-jnp.mean(stats, axis=axes) * jnp.exp(log_scale)).astype(dtype).reshape(shape)

        bias = self.param("bias", init_bias, (x.shape[-1],), x.dtype)
        return ActNorm(log_scale, bias, event_ndims=x.ndim - 1)
