"""The container the training loop reads: three splits and the reference numbers of the data.

A split is an array ``(n, *event)``, or a pytree of arrays that share the leading (example) axis,
e.g. ``{"x": images (n, *event), "y": labels (n,) int32}`` for a class-conditional model. The
batching, sharding and evaluation code treat both alike, leaf by leaf (an array is a pytree with
one leaf); ``x`` (the array itself, or the ``"x"`` entry of a mapping) is what the model generates.
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_finite

Split = Any  # an array (n, *event), or a pytree of arrays with a common leading axis n


def inputs(split: Split):
    """The generated variable ``x`` of a split: the split itself if it is an array, else its
    ``"x"`` entry.

    Args:
      split: an array ``(n, *event)`` or a mapping holding ``"x"`` ``(n, *event)``.

    Returns:
      The array ``(n, *event)``.

    Raises:
      ValueError: when ``split`` is a mapping without an ``"x"`` entry.
    """
    if isinstance(split, Mapping):
        if "x" not in split:
            raise ValueError(
                f"a dict split must hold the examples under 'x'; got keys {sorted(split)}"
            )
        return split["x"]
    return split


def num_examples(split: Split) -> int:
    """``n``, the common leading dimension of every leaf of ``split``.

    Raises:
      ValueError: when ``split`` has no leaves, a leaf has no leading axis, or the leaves
        disagree on ``n``.
    """
    leaves, _ = jax.tree_util.tree_flatten_with_path(split)
    if not leaves:
        raise ValueError(f"a split must hold at least one array; got {split!r}")
    sizes = {jax.tree_util.keystr(path): np.shape(leaf) for path, leaf in leaves}
    if any(len(shape) == 0 for shape in sizes.values()):
        raise ValueError(f"every array of a split needs a leading example axis; got shapes {sizes}")
    lengths = {shape[0] for shape in sizes.values()}
    if len(lengths) != 1:
        raise ValueError(
            f"every array of a split must share its leading (example) axis; got shapes {sizes}"
        )
    return lengths.pop()


def check_split(name: str, split: Split) -> None:
    """Checks that ``split`` is a valid split and that its floating-point leaves are finite.

    Integer leaves (labels, raw pixel counts) cannot hold NaN and are not scanned.

    Args:
      name: the split's name in messages, e.g. ``"data.train"``; a leaf is named
        ``data.train['x']``.
      split: see :func:`num_examples` and :func:`inputs`.

    Raises:
      ValueError: as :func:`num_examples` and :func:`inputs` do, or naming the leaf and the first
        example that holds NaN or inf.
    """
    num_examples(split)
    inputs(split)
    for path, leaf in jax.tree_util.tree_flatten_with_path(split)[0]:
        if jnp.issubdtype(np.asarray(leaf).dtype, jnp.inexact):
            check_finite(name + jax.tree_util.keystr(path), leaf)


class Dataset(NamedTuple):
    """Host data for each split: arrays ``(n, *event)`` or dicts ``{"x": ..., "y": ...}``.

    Attributes:
      train: the training examples.
      validation: evaluated periodically during training.
      test: evaluated once, at the end.
      reference: numbers a model is compared with, e.g. ``{"test/true_entropy": H}`` where the
        data's true log-density is known (the test-set mean of ``-log p_data``).
    decode: for token data (text), ``samples (n, L) -> list of n strings``; the loop then writes
        samples as ``samples.txt`` instead of an image.
    """

    train: Split
    validation: Split
    test: Split
    reference: Mapping[str, float] = {}
    decode: Callable[[np.ndarray], list[str]] | None = None

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one example of ``x`` (see :func:`inputs`)."""
        return tuple(np.shape(inputs(self.train))[1:])
