"""NICE's diagonal scaling layer: the one non-volume-preserving layer of an additive flow.

With a learned ``log_scale`` of the event's shape,

    y = x * exp(log_scale),    log|det dy/dx| = sum(log_scale)

Placed last (in the data -> latent direction) it lets a chain of additive couplings weight each
latent dimension (large ``log_scale`` marks an important one).

Dinh, Krueger & Bengio 2015, "NICE: Non-linear independent components estimation", section 3.3.
"""

import distrax
import flax.linen as nn
import jax.numpy as jnp

from jgen.types import Array


class Scaling(distrax.Bijector):
    """``y = x * exp(log_scale)`` elementwise, log-det ``sum(log_scale)``.

    Args:
      log_scale: array of the event shape, e.g. ``(D,)`` for vectors or ``(H, W, C)`` for images;
        ``event_ndims = log_scale.ndim``.

    Raises:
      ValueError: if ``log_scale`` is a scalar, or (on call) the input's trailing axes do not
        match its shape.
    """

    def __init__(self, log_scale: Array):
        log_scale = jnp.asarray(log_scale)
        if log_scale.ndim < 1:
            raise ValueError(
                f"log_scale must have the event shape (at least one axis); got {log_scale.shape}"
            )
        super().__init__(event_ndims_in=log_scale.ndim, is_constant_jacobian=True)
        self._log_scale = log_scale

    def _check(self, name: str, x: Array) -> tuple[int, ...]:
        """Checks the event shape of ``x`` and returns its batch shape."""
        event_shape = self._log_scale.shape
        if x.ndim < len(event_shape) or x.shape[x.ndim - len(event_shape) :] != event_shape:
            raise ValueError(
                f"{name} must have shape (..., {', '.join(map(str, event_shape))}); "
                f"got shape {x.shape}"
            )
        return x.shape[: x.ndim - len(event_shape)]

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        batch = self._check("x", x)
        return x * jnp.exp(self._log_scale), jnp.broadcast_to(jnp.sum(self._log_scale), batch)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        batch = self._check("y", y)
        return y * jnp.exp(-self._log_scale), jnp.broadcast_to(-jnp.sum(self._log_scale), batch)


class ScalingLayer(nn.Module):
    """The parameter ``log_scale`` (zeros: the identity) of a :class:`Scaling` on events of
    ``event_shape``; ``__call__(event_shape)`` returns the bijector."""

    @nn.compact
    def __call__(self, event_shape: tuple[int, ...]) -> Scaling:
        return Scaling(self.param("log_scale", nn.initializers.zeros, tuple(event_shape)))
