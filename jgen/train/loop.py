"""The one training loop: every model family trains through ``train_and_evaluate``.

Per step ``s`` (0-based) the loop draws the batch ``batch_indices(s)`` and the key
``fold_in(train_key, s)``: both depend only on the seed and the step, so a run resumed from a
checkpoint continues bit-identically. The jitted step donates the old state. A non-finite loss
is recorded on device (no host sync per step) and checked at every log point and before every
checkpoint: the run stops naming the first bad step, and the NaN state is never saved.

A split may be an array or a dict such as ``{"x": images, "y": labels}`` (``jgen.data.dataset``):
batches then reach ``trainer.init``, ``step`` and ``evaluate`` as dicts of the same keys, while
``trainer.sample`` still returns an array of ``x``.
"""

import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jgen.data.batching import padded_batches, take, to_global_array, train_batches
from jgen.data.dataset import Dataset, Split, check_split, inputs, num_examples
from jgen.train import checkpoint, parallel, plots
from jgen.train.logging import MetricWriter, read_metrics
from jgen.train.trainer import Trainer


def _guarded_step(trainer: Trainer, train_key):
    """The trainer's step plus bookkeeping: the step's key, and the first step whose loss is not
    finite (``-1`` while every loss has been finite)."""

    def step(state, batch, step_index, first_bad):
        state, metrics = trainer.step(state, batch, jax.random.fold_in(train_key, step_index))
        bad = ~jnp.isfinite(metrics["loss"])
        first_bad = jnp.where((first_bad < 0) & bad, step_index, first_bad)
        return state, metrics, first_bad

    return step


def evaluate_split(evaluate, state, data: Split, batch_size: int, key, sharding):
    """Mean of every per-example metric of ``evaluate`` over all of ``data``.

    ``evaluate`` must already be jitted; ``data`` is an array or a pytree of arrays (one batch of
    it is what ``evaluate`` receives). The padding rows of the last batch are dropped before
    averaging, so the mean is exactly over the ``n`` examples of ``data``.
    """
    sums: dict[str, float] = {}
    for i, (batch, num_valid) in enumerate(padded_batches(data, batch_size)):
        out = evaluate(state, to_global_array(batch, sharding), jax.random.fold_in(key, i))
        for name, values in jax.device_get(out).items():
            sums[name] = sums.get(name, 0.0) + float(np.sum(np.asarray(values)[:num_valid]))
    n = num_examples(data)
    return {name: total / n for name, total in sums.items()}


def _mean_metrics(window: list[dict]) -> dict[str, float]:
    """Means over the steps of a logging window (one device-to-host copy for the window)."""
    stacked = jax.device_get(window)
    return {name: float(np.mean([m[name] for m in stacked])) for name in stacked[0]}


def _save_samples(stem: str, samples: np.ndarray, data: Dataset, reference=None) -> None:
    """``stem.txt`` (one decoded sample per line) for token data with a ``data.decode``, else
    ``stem.png`` (scatter or image grid)."""
    if data.decode is not None:
        with open(stem + ".txt", "w") as f:
            f.write("\n".join(repr(text) for text in data.decode(samples)) + "\n")
    else:
        plots.save_samples(stem + ".png", samples, reference)


def _raise_if_bad(first_bad, last_saved: int | None) -> None:
    bad_step = int(first_bad)
    if bad_step >= 0:
        where = "no checkpoint was written" if last_saved is None else f"step {last_saved}"
        raise FloatingPointError(
            f"training loss became NaN or infinite at step {bad_step}; stopped before "
            f"checkpointing that state (last good checkpoint: {where}). Models that detect their "
            f"own divergence report an infinite loss (an EBM whose energies exceed "
            f"model.max_energy: see its logged diverged_energy)"
        )


def _selected_value(workdir: str, select: str | None, best_manager) -> float:
    """The validation value of the state saved in ``best/`` (read back from ``metrics.jsonl``
    when a run resumes), or infinity when there is none yet."""
    step = best_manager.latest_step() if best_manager is not None else None
    if step is None:
        return math.inf
    return min(r[select] for r in read_metrics(workdir) if r.get("step") == step and select in r)


def train_and_evaluate(config, workdir: str, *, trainer: Trainer, data: Dataset) -> dict:
    """Trains ``trainer`` on ``data`` as ``config`` says, resuming from ``workdir`` if it holds
    checkpoints; evaluates, samples, logs and checkpoints along the way.

    Reads ``config.seed``, ``config.train`` (``num_steps``, ``batch_size``, ``eval_batch_size``,
    ``log_every``, ``eval_every``, ``sample_every``, ``checkpoint_every``, ``keep_checkpoints``,
    ``num_samples``, ``progress``, ``select_metric``) and ``config.parallel.num_devices``.

    With ``train.select_metric = "m"``, every validation evaluation whose mean ``m`` is the lowest
    so far saves the state into ``workdir/best/``, and the test metrics and the final samples come
    from that state (early stopping by model selection, without stopping: the run still trains
    ``num_steps``); ``selected_step`` says which.

    Writes into ``workdir``: ``checkpoints/``, ``best/`` (with ``select_metric``),
    ``metrics.jsonl``, ``tensorboard/``, ``samples.png`` (``samples.txt`` for text),
    ``loss.png`` and ``final_metrics.json``.

    Returns:
      The final metrics: ``test/*`` from ``trainer.evaluate`` on the test split, plus
      ``data.reference`` (and ``selected_step`` with ``select_metric``).
    """
    tc = config.train
    for split in ("train", "validation", "test"):
        check_split(f"data.{split}", getattr(data, split))
    mesh = parallel.make_mesh(config.parallel.num_devices)
    parallel.check_divisible("train.batch_size", tc.batch_size, mesh)
    parallel.check_divisible("train.eval_batch_size", tc.eval_batch_size, mesh)
    batch_sharding, replicated = parallel.batch_sharding(mesh), parallel.replicated(mesh)
    root = jax.random.key(config.seed)
    init_key, train_key, eval_key, sample_key = (jax.random.fold_in(root, i) for i in range(4))
    is_chief = jax.process_index() == 0

    example = to_global_array(take(data.train, slice(tc.batch_size)), batch_sharding)
    state = jax.jit(trainer.init, out_shardings=replicated)(init_key, example)
    manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"), tc.keep_checkpoints)
    state, last_saved = checkpoint.restore_latest(manager, state)
    start = last_saved or 0
    writer = MetricWriter(workdir, resume_step=last_saved)
    select = f"validation/{tc.select_metric}" if tc.select_metric else None
    best_manager = checkpoint.make_manager(os.path.join(workdir, "best"), 1) if select else None
    best_value = _selected_value(workdir, select, best_manager)

    step_fn = jax.jit(
        _guarded_step(trainer, train_key),
        donate_argnums=0,
        out_shardings=(replicated, replicated, replicated),
    )
    evaluate = jax.jit(trainer.evaluate, out_shardings=replicated)
    sample = jax.jit(trainer.sample, static_argnums=2, out_shardings=replicated)

    def run_eval(split: str, split_data: Split) -> dict:
        key = jax.random.fold_in(eval_key, len(split))
        metrics = evaluate_split(
            evaluate, state, split_data, tc.eval_batch_size, key, batch_sharding
        )
        return {f"{split}/{k}": v for k, v in metrics.items()}

    first_bad = jnp.asarray(-1, jnp.int32)
    window: list = []
    progress = tqdm(total=tc.num_steps, initial=start, disable=not (tc.progress and is_chief))
    tick, tick_step = time.perf_counter(), start
    batches = train_batches(
        data.train, tc.batch_size, seed=config.seed, start_step=start, sharding=batch_sharding
    )
    try:
        for step, batch in batches:
            if step >= tc.num_steps:
                break
            state, metrics, first_bad = step_fn(
                state, batch, jnp.asarray(step, jnp.int32), first_bad
            )
            window.append(metrics)
            done = step + 1
            last = done == tc.num_steps
            progress.update(1)
            if done % tc.log_every == 0 or last:
                _raise_if_bad(first_bad, last_saved)
                means = {f"train/{k}": v for k, v in _mean_metrics(window).items()}
                now = time.perf_counter()
                means["train/steps_per_sec"] = (done - tick_step) / (now - tick)
                tick, tick_step, window = now, done, []
                writer.write(done, means)
                progress.set_postfix(loss=f"{means['train/loss']:.4f}")
            if done % tc.eval_every == 0 or last:
                validation = run_eval("validation", data.validation)
                writer.write(done, validation)
                if select:
                    if select not in validation:
                        raise ValueError(
                            f"train.select_metric must be a metric of the model's evaluate, one "
                            f"of {sorted(k.split('/', 1)[1] for k in validation)}; got "
                            f"{tc.select_metric!r}"
                        )
                    if validation[select] < best_value:
                        _raise_if_bad(first_bad, last_saved)
                        checkpoint.save(best_manager, done, state)
                        best_value = validation[select]
            if tc.sample_every and done % tc.sample_every == 0:
                # Every process runs the computation (it spans all devices); only one plots.
                samples = sample(state, jax.random.fold_in(sample_key, done), tc.num_samples)
                if is_chief:
                    os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
                    path = os.path.join(workdir, "samples", f"step_{done:07d}")
                    _save_samples(path, np.asarray(samples), data)
            if done % tc.checkpoint_every == 0 or last:
                _raise_if_bad(first_bad, last_saved)
                checkpoint.save(manager, done, state)
                last_saved = done
    finally:  # a run stopped by an error still commits the checkpoints it started
        progress.close()
        checkpoint.wait(manager)
        if best_manager is not None:
            checkpoint.wait(best_manager)

    selected = {}
    if select:
        state, selected_step = checkpoint.restore_latest(best_manager, state)
        selected = {"selected_step": float(selected_step)}
    final = {**run_eval("test", data.test), **data.reference, **selected}
    samples = np.asarray(sample(state, sample_key, tc.num_samples))
    writer.write(tc.num_steps, final)
    writer.close()
    if is_chief:
        x = inputs(data.train)
        reference = x[: tc.num_samples] if data.event_shape == (2,) else None
        _save_samples(os.path.join(workdir, "samples"), samples, data, reference)
        plots.save_loss_curve(os.path.join(workdir, "loss.png"), read_metrics(workdir))
        with open(os.path.join(workdir, "final_metrics.json"), "w") as f:
            json.dump(final, f, indent=2)
    return final
