"""Input checks for public boundaries: every message names the argument, the expected and the
received value, so bad input fails early and says what to fix."""

from collections.abc import Iterable, Sequence

import numpy as np


def check_choice(name: str, value, options: Iterable) -> None:
    """Raises ``ValueError`` unless ``value`` is one of ``options``."""
    options = tuple(options)
    if value not in options:
        raise ValueError(f"{name} must be one of {options}; got {value!r}")


def check_batch(name: str, x, event_shape: Sequence[int], *, floating: bool = True) -> None:
    """Checks that ``x`` is a batch ``(n, *event_shape)`` of floating-point values.

    Args:
      name: the argument's name, used in the message.
      x: a numpy or JAX array (concrete or traced: only shape and dtype are read).
      event_shape: the expected shape of one example.
      floating: whether a floating-point dtype is required.

    Raises:
      ValueError: when the rank, the event shape or the dtype is wrong.
    """
    expected = (None, *tuple(event_shape))
    shape = tuple(np.shape(x))
    if len(shape) != len(expected) or shape[1:] != expected[1:]:
        shown = "(n, " + ", ".join(map(str, event_shape)) + ")"
        raise ValueError(f"{name} must have shape {shown}; got shape {shape}")
    if floating and not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name} must have a floating-point dtype; got dtype {x.dtype}")


def check_finite(name: str, x) -> None:
    """Raises ``ValueError`` if the host array ``x`` holds NaN or infinite values."""
    x = np.asarray(x)
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.unique(np.nonzero(bad.reshape(len(x), -1))[0]) if x.ndim else np.array([0])
        raise ValueError(
            f"{name} contains {int(bad.sum())} non-finite values (NaN or inf) in "
            f"{len(rows)} examples, first at index {int(rows[0])}"
        )
