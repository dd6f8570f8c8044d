"""Coupling bijectors: NICE (additive) and RealNVP (affine) layers.

With a binary mask ``m`` and a conditioner ``c`` that sees only the masked-in part,

    (shift, log_scale) = c(m * x)
    y = m * x + (1 - m) * (x * exp(log_scale) + shift)
    log|det dy/dx| = sum((1 - m) * log_scale)

and the inverse is ``x = m * y + (1 - m) * (y - shift) * exp(-log_scale)`` with the same
conditioner output (``m * y = m * x``). NICE is the special case ``log_scale = 0``.

Dinh, Krueger & Bengio 2015, "NICE"; Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation
using Real NVP".
"""

from collections.abc import Callable

import distrax
import jax.numpy as jnp

from jgen.types import Array

Conditioner = Callable[[Array], tuple[Array, Array]]


class AffineCoupling(distrax.Bijector):
    """The RealNVP affine coupling layer; a conditioner returning zero ``log_scale`` gives NICE.

    Args:
      mask: array of the event shape; 1 marks the inputs passed through and fed to the
        conditioner, 0 the ones transformed.
      conditioner: ``c(m * x) -> (shift, log_scale)``, both of the shape of ``x``.
      event_ndims: number of trailing axes that form one event.
    """

    def __init__(self, mask: Array, conditioner: Conditioner, event_ndims: int = 1):
        super().__init__(event_ndims_in=event_ndims)
        self._mask = jnp.asarray(mask)
        self._conditioner = conditioner

    def _transform_params(self, x: Array) -> tuple[Array, Array]:
        shift, log_scale = self._conditioner(x * self._mask)
        return shift * (1 - self._mask), log_scale * (1 - self._mask)

    def _sum_event(self, a: Array) -> Array:
        return jnp.sum(a, axis=tuple(range(-self.event_ndims_in, 0)))

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        shift, log_scale = self._transform_params(x)
        return x * jnp.exp(log_scale) + shift, self._sum_event(log_scale)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        shift, log_scale = self._transform_params(y)
        return (y - shift) * jnp.exp(-log_scale), -self._sum_event(log_scale)


def parity_mask(event_shape: tuple[int, ...], parity: int) -> Array:
    """Checkerboard mask: 1 where the sum of the element's indices has the given parity.

    For a vector this alternates coordinates; for an image it is the RealNVP checkerboard.
    """
    grids = jnp.indices(event_shape)
    return (jnp.sum(grids, axis=0) % 2 == parity).astype(jnp.float32)
