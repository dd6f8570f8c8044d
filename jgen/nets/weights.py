"""Network weights as ``.npz`` files: one array per variable, keyed by its path in the variables
dict joined with ``/`` (``params/Conv_0/kernel``), so any framework can write or read them."""

import os
from pathlib import Path

import numpy as np
from flax import traverse_util

from jgen.types import PyTree


def flatten(variables: PyTree) -> dict[str, np.ndarray]:
    """``{"params": {"Conv_0": {"kernel": a}}}`` -> ``{"params/Conv_0/kernel": a}`` (numpy)."""
    flat = traverse_util.flatten_dict(dict(variables), sep="/")
    return {key: np.asarray(value) for key, value in flat.items()}


def save_npz(variables: PyTree, path: str | os.PathLike) -> None:
    """Writes ``variables`` to ``path`` atomically (a temporary file renamed into place), so an
    interrupted write never leaves a truncated file where a good one was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **flatten(variables))
    os.replace(tmp, path)


def load_npz(path: str | os.PathLike, template: PyTree) -> PyTree:
    """Reads variables saved by :func:`save_npz` and checks them against ``template``.

    Args:
      path: an ``.npz`` file with one array per ``/``-joined variable path.
      template: variables of the target architecture (e.g. from ``module.init`` or
        ``jax.eval_shape`` of it); only their paths, shapes and dtypes are used.

    Returns:
      The variables, a nested dict shaped like ``template``, as numpy arrays in its dtypes.

    Raises:
      FileNotFoundError: when ``path`` does not exist.
      ValueError: naming the first missing, unexpected or mis-shaped variable.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no weights file at {path}")
    expected = traverse_util.flatten_dict(dict(template), sep="/")
    with np.load(path) as stored:
        stored = dict(stored)
    missing = sorted(set(expected) - set(stored))
    if missing:
        raise ValueError(
            f"weights file {path} lacks variable {missing[0]!r} ({len(missing)} missing)"
        )
    unexpected = sorted(set(stored) - set(expected))
    if unexpected:
        raise ValueError(
            f"weights file {path} has variable {unexpected[0]!r}, which the architecture lacks "
            f"({len(unexpected)} unexpected)"
        )
    loaded = {}
    for key, ref in expected.items():
        if tuple(stored[key].shape) != tuple(np.shape(ref)):
            raise ValueError(
                f"variable {key!r} in {path} must have shape {tuple(np.shape(ref))}; "
                f"got {tuple(stored[key].shape)}"
            )
        loaded[key] = stored[key].astype(ref.dtype)
    return traverse_util.unflatten_dict(loaded, sep="/")
