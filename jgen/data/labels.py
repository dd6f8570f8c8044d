"""Class-conditional batches: labelled splits ``{"x", "y"}`` (``data.labels = True``) as the data
and a one-hot class context, the convention every conditional model in jgen follows (the
conditional VAE, class-conditional autoregressive models): ``num_classes = C > 0`` conditions on
``one_hot(y, C)`` and samples cycle through the classes.
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from jgen.checks import check_batch, is_traced
from jgen.data.dataset import inputs as split_inputs
from jgen.types import Array


def class_context(num_classes: int, n: int) -> Array | None:
    """The context of ``n`` samples cycling through the classes: ``one_hot(i mod C, C)`` for
    ``i = 0 .. n - 1`` ``(n, C)``, or None when ``num_classes = 0``."""
    if not num_classes:
        return None
    return jax.nn.one_hot(jnp.arange(n) % num_classes, num_classes)


def split_batch(
    batch, event_shape: tuple[int, ...], num_classes: int, *, floating: bool = True
) -> tuple[Array, Array | None]:
    """A batch as the data and the class context ``(x, c)``.

    ``c = one_hot(y, C)`` ``(n, C)`` in ``x``'s dtype for a labelled batch ``{"x", "y"}`` when
    ``num_classes = C > 0``; ``c = None`` when ``num_classes = 0`` (the labels of a labelled
    batch are then ignored).

    Args:
      batch: an array ``(n, *event)`` or a mapping with ``"x"`` ``(n, *event)`` and, when
        conditional, integer labels ``"y"`` ``(n,)`` in ``[0, C)``.
      event_shape: the shape of one example.
      num_classes: ``C`` (0: unconditional).
      floating: whether ``x`` must be floating point (False for token data, e.g. text; the
        context is then float32).

    Returns:
      ``(x (n, *event), c (n, C) or None)``.

    Raises:
      ValueError: naming ``model.num_classes`` and ``data.labels`` when ``num_classes > 0`` and
        the batch has no labels; when ``x`` is not a floating batch of ``event_shape``; when ``y``
        is not an integer array ``(n,)`` or (checked where concrete) holds a label outside
        ``[0, C)``.
    """
    if not num_classes:
        x = split_inputs(batch)
        check_batch("x", x, event_shape, floating=floating)
        return x, None
    if not isinstance(batch, Mapping) or "y" not in batch:
        got = f"keys {sorted(batch)}" if isinstance(batch, Mapping) else "an unlabelled array"
        raise ValueError(
            f"model.num_classes={num_classes} needs labelled batches {{'x', 'y'}} "
            f"(data.labels=True); got {got}"
        )
    x, y = split_inputs(batch), batch["y"]
    check_batch("x", x, event_shape, floating=floating)
    if tuple(jnp.shape(y)) != (x.shape[0],) or not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(
            f"y must be integer labels of shape ({x.shape[0]},); got shape {tuple(jnp.shape(y))} "
            f"and dtype {y.dtype}"
        )
    # one_hot maps a label outside [0, C) to a zero vector, silently: refused where visible.
    if not is_traced(y) and (jnp.min(y) < 0 or jnp.max(y) >= num_classes):
        raise ValueError(
            f"y must hold labels in [0, {num_classes}) (model.num_classes={num_classes}); got "
            f"labels from {int(jnp.min(y))} to {int(jnp.max(y))}"
        )
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
    return x, jax.nn.one_hot(y, num_classes, dtype=dtype)
