"""Deterministic batching: the batch at a step is a pure function of (seed, step).

Each epoch is a fresh permutation drawn from ``numpy.random.default_rng([seed, epoch])``; an epoch
has ``n // batch_size`` steps (the remainder is dropped, so every batch has the same shape and
compiles once). Because the order depends on nothing but the seed and the step, a run resumed
from a checkpoint at step ``s`` sees exactly the batches an uninterrupted run sees after ``s``.

``data`` is a split as ``jgen.data.dataset`` defines it: an array ``(n, *event)`` or a pytree of
arrays with a common leading axis (``{"x": images, "y": labels}``); every leaf is indexed with the
same rows, so each example keeps its label.
"""

import functools
from collections.abc import Iterator

import jax
import numpy as np

from jgen.data.dataset import Split, num_examples


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


def take(data: Split, rows) -> Split:
    """``data[rows]`` for every leaf: an index array or a slice of the leading axis."""
    return jax.tree.map(lambda leaf: leaf[rows], data)


def to_global_array(batch: Split, sharding: jax.sharding.Sharding | None):
    """Places a global host batch (an array or a pytree of arrays) on the devices of ``sharding``.

    Every process holds the same global batch; each one hands over only its own block of rows, the
    rows of its addressable devices (``jax.make_array_from_process_local_data``), so the same code
    serves one process and many. Each leaf is sharded along its leading axis.
    """
    if sharding is None:
        return batch
    rows_per_process = num_examples(batch) // jax.process_count()
    start = jax.process_index() * rows_per_process

    def place(leaf):
        local = leaf[start : start + rows_per_process]
        return jax.make_array_from_process_local_data(sharding, local, leaf.shape)

    return jax.tree.map(place, batch)


def train_batches(
    data: Split,
    batch_size: int,
    *,
    seed: int,
    start_step: int = 0,
    sharding: jax.sharding.Sharding | None = None,
) -> Iterator[tuple[int, Split]]:
    """Yields ``(step, batch)`` forever from ``start_step`` on, each epoch shuffled from ``seed``.

    Args:
      data: the training examples ``(n, *event)``, or a pytree of such arrays (see the module
        docstring); batches have the same structure.
      batch_size: the global batch size (all processes together).
      seed: the shuffling seed.
      start_step: the first step to yield (the restored step when resuming).
      sharding: where batches go (batch axis sharded over the mesh); ``None`` keeps numpy.
    """
    step, n = start_step, num_examples(data)
    while True:
        idx = batch_indices(step, num_examples=n, batch_size=batch_size, seed=seed)
        yield step, to_global_array(take(data, idx), sharding)
        step += 1


def padded_batches(data: Split, batch_size: int) -> Iterator[tuple[Split, int]]:
    """Yields ``(batch, num_valid)`` covering ``data`` in order, in batches of one fixed shape.

    The last batch is padded by repeating its last example (in every leaf), so evaluation compiles
    once; callers keep the first ``num_valid`` rows of per-example results.
    """
    n = num_examples(data)
    for start in range(0, n, batch_size):
        num_valid = min(batch_size, n - start)
        # Row indices, the last one repeated: one gather pads every leaf alike.
        rows = np.minimum(np.arange(start, start + batch_size), start + num_valid - 1)
        yield take(data, rows), num_valid
