"""The standard normal density shared by every model with a Gaussian base or prior."""

import math

import jax.numpy as jnp

from jgen.types import Array


def standard_normal_log_prob(z: Array, event_ndims: int) -> Array:
    """``log N(z; 0, I) = -|z|^2 / 2 - (D / 2) log(2 pi)`` summed over the last ``event_ndims``
    axes (``D`` their number of elements)."""
    axes = tuple(range(-event_ndims, 0))
    dim = math.prod(z.shape[z.ndim - event_ndims :])
    return -0.5 * jnp.sum(z**2, axis=axes) - 0.5 * dim * math.log(2 * math.pi)
