"""The standard normal density shared by every model with a Gaussian base or prior, and the KL
divergence between two Gaussians shared by the VAE and diffusion bounds."""

import math

import jax.numpy as jnp

from jgen.types import Array


def standard_normal_log_prob(z: Array, event_ndims: int) -> Array:
    """``log N(z; 0, I) = -|z|^2 / 2 - (D / 2) log(2 pi)`` summed over the last ``event_ndims``
    axes (``D`` their number of elements)."""
    axes = tuple(range(-event_ndims, 0))
    dim = math.prod(z.shape[z.ndim - event_ndims :])
    return -0.5 * jnp.sum(z**2, axis=axes) - 0.5 * dim * math.log(2 * math.pi)


def normal_kl(mean1: Array, logvar1: Array, mean2: Array, logvar2: Array) -> Array:
    """Elementwise ``KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2)))`` in nats.

    ``KL = 1/2 [logvar2 - logvar1 + exp(logvar1 - logvar2) - 1 + (mean1 - mean2)^2 exp(-logvar2)]``
    (the ``normal_kl`` of Ho et al. 2020's code), written as ``expm1(d) - d`` with
    ``d = logvar1 - logvar2`` so that two close variances (a posterior near its prior, the usual
    case at initialisation) do not cancel catastrophically. Sums over an event give the KL of
    diagonal Gaussians (:func:`jgen.losses.elbo.gaussian_kl_between`, the diffusion bound's
    per-step terms).

    Args:
      mean1, logvar1, mean2, logvar2: arrays that broadcast together.

    Returns:
      The KL per element, of the broadcast shape.
    """
    d = logvar1 - logvar2
    return 0.5 * (jnp.expm1(d) - d + (mean1 - mean2) ** 2 * jnp.exp(-logvar2))
