"""Squeeze (space-to-depth) and the channel split of multi-scale flows.

``Squeeze`` maps an ``(H, W, C)`` event to ``(H/2, W/2, 4C)`` by moving each 2x2 block of pixels
into the channels,

    y[i, j, 4c + 2a + b] = x[2i + a, 2j + b, c],    a, b in {0, 1},

(the channel order of Glow's ``squeeze2d``). It only permutes coordinates, so
``log|det| = 0``. Couplings after a squeeze mix pixels that were spatial neighbours.

Multi-scale flows then factor out half of the channels at every scale (``split_half``): one half
goes straight to the latent, the other continues through the next block, and ``merge_half``
undoes the split on the way back. The multi-scale architecture itself lives in the flow model.

Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real NVP", section 3.6; Kingma &
Dhariwal 2018, "Glow".
"""

import distrax
import jax.numpy as jnp

from jgen.types import Array


def _check_image(name: str, x: Array) -> None:
    if x.ndim < 3:
        raise ValueError(f"{name} must have shape (..., H, W, C); got shape {x.shape}")


class Squeeze(distrax.Bijector):
    """Space-to-depth ``(..., H, W, C) -> (..., H/2, W/2, 4C)``, log-det 0.

    A shape-changing bijector: distrax only needs ``event_ndims_in = event_ndims_out = 3`` and
    methods that return the new shape (``distrax.Transformed`` infers its event shape by tracing
    ``forward``), so it composes with ``distrax.Chain`` and ``distrax.Inverse`` as any other.

    Raises (on call):
      ValueError: if ``H`` or ``W`` is odd (forward), or ``C`` is not a multiple of 4 (inverse).
    """

    def __init__(self):
        super().__init__(event_ndims_in=3, event_ndims_out=3, is_constant_jacobian=True)

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        _check_image("x", x)
        *batch, h, w, c = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"x must have even height and width (..., H, W, C); got {x.shape}")
        nb = len(batch)
        y = x.reshape(*batch, h // 2, 2, w // 2, 2, c)
        # (..., i, a, j, b, c) -> (..., i, j, c, a, b): channel index 4c + 2a + b.
        y = y.transpose(*range(nb), nb, nb + 2, nb + 4, nb + 1, nb + 3)
        return y.reshape(*batch, h // 2, w // 2, 4 * c), jnp.zeros(batch, x.dtype)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        _check_image("y", y)
        *batch, h, w, c4 = y.shape
        if c4 % 4:
            raise ValueError(f"y must have a multiple of 4 channels (..., H, W, 4C); got {y.shape}")
        nb = len(batch)
        x = y.reshape(*batch, h, w, c4 // 4, 2, 2)
        # (..., i, j, c, a, b) -> (..., i, a, j, b, c)
        x = x.transpose(*range(nb), nb, nb + 3, nb + 1, nb + 4, nb + 2)
        return x.reshape(*batch, 2 * h, 2 * w, c4 // 4), jnp.zeros(batch, y.dtype)


def split_half(x: Array) -> tuple[Array, Array]:
    """Splits the channels (last axis) into the first and second half: ``(..., C) ->
    ((..., C/2), (..., C/2))``. In a multi-scale flow the second half is factored out to the
    latent and the first continues (Dinh et al. 2017, section 3.6; Glow's ``split2d``).

    Raises:
      ValueError: if ``C`` is odd.
    """
    if x.ndim < 1 or x.shape[-1] % 2:
        raise ValueError(f"x must have an even number of channels (..., C); got {x.shape}")
    c = x.shape[-1] // 2
    return x[..., :c], x[..., c:]


def merge_half(x1: Array, x2: Array) -> Array:
    """The inverse of ``split_half``: concatenates two halves along the channels.

    Raises:
      ValueError: if the two halves do not have the same shape.
    """
    if jnp.shape(x1) != jnp.shape(x2):
        raise ValueError(f"x2 must have the shape of x1 {jnp.shape(x1)}; got shape {jnp.shape(x2)}")
    return jnp.concatenate([x1, x2], axis=-1)
