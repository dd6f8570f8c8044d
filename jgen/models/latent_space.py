"""Walks through a latent space: linear and spherical interpolation and traversals of one
coordinate, the standard pictures of what a latent-variable model has learned."""

import jax.numpy as jnp

from jgen.checks import check_choice, check_int
from jgen.types import Array

INTERPOLATIONS = ("linear", "spherical")


def lerp(z0: Array, z1: Array, t: Array) -> Array:
    """``(1 - t) z0 + t z1`` for each ``t``: ``z0, z1`` of shape ``(d,)``, ``t`` of shape
    ``(m,)`` -> ``(m, d)``."""
    t = jnp.asarray(t)[:, None]
    return (1.0 - t) * z0 + t * z1


def slerp(z0: Array, z1: Array, t: Array) -> Array:
    """Spherical interpolation (Shoemake 1985; White 2016, "Sampling generative networks"):

        slerp(z0, z1; t) = sin((1 - t) w) / sin w * z0 + sin(t w) / sin w * z1,
        cos w = <z0, z1> / (|z0| |z1|),

    which keeps the norm of the path near that of Gaussian samples (a linear path through the
    origin of a high-dimensional Gaussian passes where the prior puts no mass). Falls back to
    :func:`lerp` when ``z0`` and ``z1`` are parallel or antiparallel.

    Args:
      z0, z1: endpoints ``(d,)``.
      t: positions ``(m,)`` in ``[0, 1]``.

    Returns:
      ``(m, d)``.
    """
    t = jnp.asarray(t)[:, None]
    cos = jnp.dot(z0, z1) / (jnp.linalg.norm(z0) * jnp.linalg.norm(z1))
    # Parallel endpoints: the great circle is undefined; the substituted cosine keeps arccos and
    # its gradient finite on the branch that jnp.where discards.
    parallel = jnp.abs(cos) > 1.0 - 1e-9
    omega = jnp.arccos(jnp.where(parallel, 0.0, cos))
    spherical = (jnp.sin((1.0 - t) * omega) * z0 + jnp.sin(t * omega) * z1) / jnp.sin(omega)
    return jnp.where(parallel, lerp(z0, z1, t[:, 0]), spherical)


def interpolate(z0: Array, z1: Array, num: int, kind: str = "spherical") -> Array:
    """``num`` evenly spaced points from ``z0`` to ``z1`` (both included), ``(num, d)``."""
    check_choice("kind", kind, INTERPOLATIONS)
    check_int("num", num, 2)
    for name, z in (("z0", z0), ("z1", z1)):
        if jnp.ndim(z) != 1:
            raise ValueError(f"{name} must be a latent vector (d,); got shape {jnp.shape(z)}")
    if jnp.shape(z0) != jnp.shape(z1):
        raise ValueError(f"z0 and z1 must have one shape; got {jnp.shape(z0)} and {jnp.shape(z1)}")
    t = jnp.linspace(0.0, 1.0, num)
    return (slerp if kind == "spherical" else lerp)(jnp.asarray(z0), jnp.asarray(z1), t)


def traversal(z: Array, values: Array) -> Array:
    """Latent traversals (Higgins et al. 2017): for each coordinate ``i`` of ``z (d,)`` and each
    value ``v`` of ``values (m,)``, ``z`` with ``z_i = v``; returns ``(d, m, d)``, row ``i``
    varying coordinate ``i``."""
    if jnp.ndim(z) != 1:
        raise ValueError(f"z must be a latent vector (d,); got shape {jnp.shape(z)}")
    z, values = jnp.asarray(z), jnp.asarray(values)
    d = z.shape[0]
    base = jnp.broadcast_to(z, (d, values.shape[0], d))
    eye = jnp.eye(d, dtype=bool)[:, None, :]
    return jnp.where(eye, values[None, :, None], base)
