"""Metrics to ``metrics.jsonl`` and TensorBoard event files (tensorboardX: no TensorFlow needed).

Each JSONL line is ``{"step": s, "<split>/<name>": value, ...}``. When a run resumes from a
checkpoint at step ``s``, the lines written after ``s`` by the interrupted run are dropped, so the
file reads as one uninterrupted run.
"""

import json
import os

import jax
from tensorboardX import SummaryWriter


def _truncate_after(path: str, step: int) -> None:
    with open(path) as f:
        kept = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.writelines(kept)
    os.replace(tmp, path)


class MetricWriter:
    """Appends metrics to JSONL and TensorBoard; only process 0 writes.

    Args:
      workdir: the run directory; writes ``metrics.jsonl`` and ``tensorboard/`` inside it.
      resume_step: the step restored from a checkpoint (None for a fresh run).
    """

    def __init__(self, workdir: str, resume_step: int | None = None):
        self.enabled = jax.process_index() == 0
        self.path = os.path.join(workdir, "metrics.jsonl")
        if not self.enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        if os.path.exists(self.path):
            if resume_step is None:
                os.remove(self.path)
            else:
                _truncate_after(self.path, resume_step)
        self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def write(self, step: int, metrics: dict[str, float]) -> None:
        """Writes one record; values must be Python or numpy scalars."""
        if not self.enabled:
            return
        record = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        for name, value in record.items():
            if name != "step":
                self._tb.add_scalar(name, value, global_step=step)

    def close(self) -> None:
        if self.enabled:
            self._tb.close()


def read_metrics(workdir: str) -> list[dict]:
    """All records of ``metrics.jsonl`` in order."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]
