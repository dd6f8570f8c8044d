"""Input checks for public boundaries: every message names the argument, the expected and the
received value, so bad input fails early and says what to fix."""

import numbers
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
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


def concrete_or_none(value) -> np.ndarray | None:
    """``value`` as numpy, or None while it is traced under a JAX transformation (not known yet:
    such values are checked by whoever calls with concrete ones)."""
    try:
        return np.asarray(value)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def check_float_batch(name: str, x) -> None:
    """Raises ``ValueError`` unless ``x`` is a floating-point batch ``(n, *event)``, rank >= 2."""
    shape = tuple(np.shape(x))
    if len(shape) < 2:
        raise ValueError(f"{name} must be a batch of shape (n, *event), rank >= 2; got {shape}")
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise ValueError(f"{name} must have a floating-point dtype; got {jnp.result_type(x)}")


def check_int(name: str, value, minimum: int = 1) -> None:
    """Raises ``ValueError`` unless ``value`` is a Python or numpy integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")


def check_positive(name: str, value, *, allow_zero: bool = False) -> None:
    """Raises ``ValueError`` unless every element of ``value`` is finite and ``> 0`` (``>= 0``
    with ``allow_zero``). Traced values pass; ``None`` (an option left unset) passes."""
    if value is None:
        return
    v = concrete_or_none(value)
    if v is None:
        return
    ok = (
        not isinstance(value, bool)
        and v.size > 0
        and np.issubdtype(v.dtype, np.number)
        and bool(np.all(np.isfinite(v)))
        and bool(np.all(v >= 0 if allow_zero else v > 0))
    )
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}; got {value!r}")


def check_sample_shape(shape) -> tuple[int, ...]:
    """Checks a sample shape ``(n, *event)`` with at least one event axis; returns it as ints."""
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise ValueError(f"shape must be a tuple (n, *event); got {shape!r}") from None
    if len(shape) < 2 or min(shape) < 1:
        raise ValueError(
            f"shape must be (n, *event) with rank >= 2 and positive sizes; got {shape}"
        )
    return shape


def is_traced(value) -> bool:
    """Whether ``value`` is abstract (traced by ``jit``, ``vmap`` or ``grad``), so its value
    cannot be checked yet."""
    return isinstance(value, jax.Array) and concrete_or_none(value) is None


def check_events(name: str, x, dim: int) -> None:
    """Raises ``ValueError`` unless ``x`` is a floating-point array of shape ``(..., dim)``.

    Batches ``(n, dim)`` are the convention; any leading shape, including none, is accepted
    because ``distrax.Transformed`` traces and vmaps the bijector on single events ``(dim,)``.
    """
    shape = tuple(np.shape(x))
    if len(shape) < 1 or shape[-1] != dim:
        raise ValueError(f"{name} must have shape (n, {dim}) (or (..., {dim})); got shape {shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name} must have a floating-point dtype; got dtype {x.dtype}")
