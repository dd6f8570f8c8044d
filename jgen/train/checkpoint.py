"""Orbax checkpoints of the training state: every N steps, keeping the K newest, resumable.

Orbax writes each checkpoint into a temporary directory and renames it when complete, so a run
killed mid-write leaves the previous checkpoints intact and the partial one is never restored.
The loop checks the state is finite before every save, so a NaN state never replaces a good one.
"""

import os

import jax
import orbax.checkpoint as ocp

from jgen.types import PyTree


def make_manager(directory: str, keep: int) -> ocp.CheckpointManager:
    """A manager over ``directory`` (created if missing) that keeps the ``keep`` newest steps."""
    if keep < 1:
        raise ValueError(f"train.keep_checkpoints must be >= 1; got {keep}")
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def save(manager: ocp.CheckpointManager, step: int, state: PyTree) -> None:
    """Starts writing ``state`` as checkpoint ``step`` (asynchronously; see ``wait``)."""
    manager.save(step, args=ocp.args.StandardSave(state))


def wait(manager: ocp.CheckpointManager) -> None:
    """Blocks until every started checkpoint is committed to disk."""
    manager.wait_until_finished()


def restore_latest(manager: ocp.CheckpointManager, like: PyTree) -> tuple[PyTree, int | None]:
    """Restores the newest checkpoint into the structure, shapes and shardings of ``like``.

    Returns:
      ``(state, step)``, or ``(like, None)`` when the directory holds no checkpoint.
    """
    step = manager.latest_step()
    if step is None:
        return like, None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    return manager.restore(step, args=ocp.args.StandardRestore(abstract)), step
