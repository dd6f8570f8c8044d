"""Deterministic batching: the batch at a step is a pure function of (seed, step).

Each epoch is a fresh permutation drawn from ``numpy.random.default_rng([seed, epoch])``; an epoch
has ``n // batch_size`` steps (the remainder is dropped, so every batch has the same shape and
compiles once). Because the order depends on nothing but the seed and the step, a run resumed
from a checkpoint at step ``s`` sees exactly the batches an uninterrupted run sees after ``s``.
"""

import functools
from collections.abc import Iterator

import jax
import numpy as np


@functools.lru_cache(maxsize=4)
def epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
    """The order of the examples in one epoch: a permutation of ``range(num_examples)``."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def batch_indices(step: int, *, num_examples: int, batch_size: int, seed: int) -> np.ndarray:
    """Indices of the global batch used at training step ``step`` (0-based)."""
    if not 0 < batch_size <= num_examples:
        raise ValueError(
            f"batch_size must be in [1, {num_examples}] (the number of examples); got {batch_size}"
        )
    epoch, position = divmod(step, num_examples // batch_size)
    order = epoch_permutation(seed, epoch, num_examples)
    return order[position * batch_size : (position + 1) * batch_size]


def to_global_array(batch: np.ndarray, sharding: jax.sharding.Sharding | None):
    """Places a global host batch on the devices of ``sharding``.

    Every process holds the same global batch; each one hands over only its own block of rows, the
    rows of its addressable devices (``jax.make_array_from_process_local_data``), so the same code
    serves one process and many.
    """
    if sharding is None:
        return batch
    rows_per_process = len(batch) // jax.process_count()
    start = jax.process_index() * rows_per_process
    local = batch[start : start + rows_per_process]
    return jax.make_array_from_process_local_data(sharding, local, batch.shape)


def train_batches(
    data: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    start_step: int = 0,
    sharding: jax.sharding.Sharding | None = None,
) -> Iterator[tuple[int, jax.Array]]:
    """Yields ``(step, batch)`` forever from ``start_step`` on, each epoch shuffled from ``seed``.

    Args:
      data: the training examples ``(n, *event)``.
      batch_size: the global batch size (all processes together).
      seed: the shuffling seed.
      start_step: the first step to yield (the restored step when resuming).
      sharding: where batches go (batch axis sharded over the mesh); ``None`` keeps numpy.
    """
    step = start_step
    while True:
        idx = batch_indices(step, num_examples=len(data), batch_size=batch_size, seed=seed)
        yield step, to_global_array(data[idx], sharding)
        step += 1


def padded_batches(data: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
    """Yields ``(batch, num_valid)`` covering ``data`` in order, in batches of one fixed shape.

    The last batch is padded by repeating its last example, so evaluation compiles once; callers
    keep the first ``num_valid`` rows of per-example results.
    """
    for start in range(0, len(data), batch_size):
        batch = data[start : start + batch_size]
        num_valid = len(batch)
        if num_valid < batch_size:
            pad = np.repeat(batch[-1:], batch_size - num_valid, axis=0)
            batch = np.concatenate([batch, pad])
        yield batch, num_valid
