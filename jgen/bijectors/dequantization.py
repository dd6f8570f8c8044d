"""Uniform dequantization: a continuous density on discrete data without degenerate spikes.

Data with ``K`` levels stored as lower cell corners ``x = k / K`` become ``y = x + u / K`` with
``u ~ U[0, 1)^D``, fresh noise at every step. Maximising ``E_u log p(y)`` maximises a lower bound
on the discrete log-likelihood, ``log P(k) >= E_u log p(y) - D log K`` (Theis et al. 2016; Ho et
al. 2019). Noise fixed once per example would instead let the model memorise it.
"""

import jax

from jgen.types import Array, PRNGKey


def uniform_dequantize(key: PRNGKey, x: Array, num_levels: int) -> Array:
    """``x + u / K`` with ``u ~ U[0, 1)`` of the shape of ``x`` (``x`` holds the corners ``k / K``).

    Args:
      key: the noise key.
      x: a batch ``(n, *event)`` of values on the grid ``{0, 1/K, ..., (K-1)/K}``.
      num_levels: ``K``.
    """
    return x + jax.random.uniform(key, x.shape, x.dtype) / num_levels
