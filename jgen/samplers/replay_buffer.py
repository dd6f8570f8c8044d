"""A pure replay buffer of persistent sampler chains for energy-based models.

Du & Mordatch 2019, "Implicit generation and modeling with energy-based models", and Grathwohl
et al. 2020, "Your classifier is secretly an energy based model and you should treat it like one"
(JEM): short-run Langevin chains are started from a buffer of earlier chain ends; each drawn chain
is restarted from noise with a small probability, so the buffer keeps exploring, and the chains'
ends are written back after the sampler ran. Typical use inside a training step::

    x, idx = replay_buffer.sample(buffer, key_buffer, batch_size, noise_fn=noise)
    x = langevin(..., x, key_chain, ...)
    buffer = replay_buffer.write(buffer, idx, x)

The buffer is a NamedTuple of one array, so it lives in a train state, passes through ``jit`` and
checkpoints like any other pytree; the functions return new buffers and never modify their input.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jgen.checks import check_int, is_traced
from jgen.types import Array, PRNGKey

NoiseFn = Callable[[PRNGKey, int], Array]  # (key, n) -> (n, *event)


class ReplayBuffer(NamedTuple):
    """Stored chain states.

    Attributes:
      samples: ``(capacity, *event)`` chain states.
    """

    samples: Array


def _noise(noise_fn: NoiseFn, key: PRNGKey, n: int, event_shape=None, dtype=None) -> Array:
    x = noise_fn(key, n)
    shape = tuple(jnp.shape(x))
    if not shape or shape[0] != n or (event_shape is not None and shape[1:] != event_shape):
        expected = f"({n}, {', '.join(map(str, event_shape))})" if event_shape else f"({n}, ...)"
        raise ValueError(f"noise_fn(key, {n}) must return shape {expected}; got shape {shape}")
    return x if dtype is None else x.astype(dtype)


def init(key: PRNGKey, capacity: int, noise_fn: NoiseFn) -> ReplayBuffer:
    """A buffer of ``capacity`` chains started from noise: ``samples = noise_fn(key, capacity)``.

    Args:
      key: PRNG key passed to ``noise_fn``.
      capacity: number of stored chains (Python int, >= 1).
      noise_fn: ``(key, n) -> (n, *event)``, the restart distribution (e.g. uniform on the data
        range, as in Du & Mordatch 2019 and JEM).

    Returns:
      A :class:`ReplayBuffer` with ``samples`` of shape ``(capacity, *event)``.
    """
    check_int("capacity", capacity)
    return ReplayBuffer(_noise(noise_fn, key, capacity))


def sample(
    buffer: ReplayBuffer,
    key: PRNGKey,
    batch_size: int,
    *,
    noise_fn: NoiseFn,
    reinit_fraction: float = 0.05,
) -> tuple[Array, Array]:
    """Draws chains to continue, restarting each from noise with probability ``reinit_fraction``.

    ``idx_j ~ Uniform{0, .., capacity - 1}`` independently (with replacement, as in JEM), and::

        x_j = noise_j   if  r_j = 1,   x_j = samples[idx_j]   otherwise,   r_j ~ Bernoulli(rho).

    JEM uses ``rho = 0.05``; Du & Mordatch 2019 start 5% of the chains from noise likewise.

    Args:
      buffer: the :class:`ReplayBuffer`.
      key: PRNG key (split for the indices, the restart coins and the noise).
      batch_size: number of chains drawn (Python int, static under ``jit``).
      noise_fn: ``(key, n) -> (n, *event)``, the restart distribution.
      reinit_fraction: the restart probability ``rho`` in ``[0, 1]``.

    Returns:
      ``(batch, indices)``: the chains' starting points ``(batch_size, *event)`` in the buffer's
      dtype, and the int32 buffer rows ``(batch_size,)`` they belong to, to pass to :func:`write`
      (restarted chains keep their row, so their ends replace the stored sample).
    """
    check_int("batch_size", batch_size)
    if not is_traced(reinit_fraction) and not 0.0 <= reinit_fraction <= 1.0:
        raise ValueError(f"reinit_fraction must be in [0, 1]; got {reinit_fraction}")
    samples = buffer.samples
    key_index, key_coin, key_noise = jax.random.split(key, 3)
    indices = jax.random.randint(key_index, (batch_size,), 0, samples.shape[0], dtype=jnp.int32)
    restart = jax.random.bernoulli(key_coin, reinit_fraction, (batch_size,))
    noise = _noise(noise_fn, key_noise, batch_size, samples.shape[1:], samples.dtype)
    restart = restart.reshape((batch_size,) + (1,) * (samples.ndim - 1))
    return jnp.where(restart, noise, samples[indices]), indices


def write(buffer: ReplayBuffer, indices: Array, new_samples: Array) -> ReplayBuffer:
    """A new buffer with ``samples[indices] = new_samples``; the input buffer is not modified.

    When ``indices`` repeats a row (possible since :func:`sample` draws with replacement) one of the
    chains written there is kept; which one is unspecified, and any of them is a valid chain state.

    Args:
      buffer: the :class:`ReplayBuffer`.
      indices: int rows ``(b,)``, as returned by :func:`sample`.
      new_samples: ``(b, *event)`` chain ends, cast to the buffer's dtype.

    Returns:
      The updated :class:`ReplayBuffer`.
    """
    samples = buffer.samples
    expected = (jnp.shape(indices)[0] if jnp.ndim(indices) == 1 else None, *samples.shape[1:])
    if jnp.ndim(indices) != 1:
        raise ValueError(f"indices must have shape (b,); got shape {tuple(jnp.shape(indices))}")
    if tuple(jnp.shape(new_samples)) != expected:
        raise ValueError(
            f"new_samples must have shape {expected} (one row per index, the buffer's event "
            f"shape); got shape {tuple(jnp.shape(new_samples))}"
        )
    return ReplayBuffer(samples.at[indices].set(jnp.asarray(new_samples, samples.dtype)))
