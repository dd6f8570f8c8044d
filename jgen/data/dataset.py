"""The container the training loop reads: three splits and the reference numbers of the data."""

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np


class Dataset(NamedTuple):
    """Host arrays ``(n, *event)`` for each split.

    Attributes:
      train: the training examples.
      validation: evaluated periodically during training.
      test: evaluated once, at the end.
      reference: numbers a model is compared with, e.g. ``{"test/true_entropy": H}`` where the
        data's true log-density is known (the test-set mean of ``-log p_data``).
    """

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    reference: Mapping[str, float] = {}

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])
