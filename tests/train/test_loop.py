"""The training loop: exact resume after SIGKILL, NaN handling, bad data, device-count
invariance, and the pure loss under pmap."""

import os
import signal
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import default
from jgen.data.batching import batch_indices
from jgen.data.dataset import Dataset
from jgen.models import flow
from jgen.train import checkpoint
from jgen.train.logging import read_metrics
from jgen.train.loop import train_and_evaluate
from jgen.train.trainer import Trainer
from tests.train import runs


def gaussian_data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)) @ np.array([[1.0, 0.8], [0.0, 0.6]])
    return x.astype(np.float32)


def small_config(**train):
    c = default.shrink_for_smoke(default.get_config())
    c.model.num_layers, c.model.hidden_sizes = 2, (16,)
    c.train.update(dict(checkpoint_every=5, num_samples=16))
    c.train.update(train)
    c.parallel.num_devices = 1
    return c


def small_dataset():
    return Dataset(gaussian_data(512, 0), gaussian_data(64, 1), gaussian_data(64, 2))


def test_sigkill_mid_training_then_resume_is_bit_identical(tmp_path):
    # A small flow, as three processes compile it; the kill comes within ~10 ms of the first
    # checkpoint, and the 9 checkpoints still ahead of the run (~0.1 s each) keep it mid-training.
    num_steps, every = 200, 20
    overrides = [
        "--config.model.num_layers=2",
        "--config.model.hidden_sizes=(16,)",
        f"--config.train.num_steps={num_steps}",
        f"--config.train.checkpoint_every={every}",
        f"--config.train.log_every={every}",
        f"--config.train.eval_every={num_steps // 2}",
    ]
    killed = str(tmp_path / "killed")
    proc = subprocess.Popen(
        runs.main_command(killed, *overrides),
        env=runs.subprocess_env(1),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not runs.checkpoint_steps(killed) and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps_at_kill = runs.checkpoint_steps(killed)
    assert proc.returncode == -signal.SIGKILL
    assert steps_at_kill and max(steps_at_kill) < num_steps, steps_at_kill

    runs.run_main(killed, *overrides)
    straight = str(tmp_path / "straight")
    runs.run_main(straight, *overrides)

    resumed = runs.load_checkpoint(killed, num_steps)
    reference = runs.load_checkpoint(straight, num_steps)
    for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(reference), strict=True):
        np.testing.assert_array_equal(a, b)
    # The metrics file reads as one run: each step logged once, in order.
    steps = [r["step"] for r in read_metrics(killed) if "train/loss" in r]
    assert steps == list(range(every, num_steps + 1, every))


def nan_after(trainer: Trainer, bad_step: int) -> Trainer:
    """The same trainer, except that from update ``bad_step`` on its parameters become NaN."""

    def step(state, batch, key):
        state, metrics = trainer.step(state, batch, key)
        poison = jnp.where(state.step > bad_step, jnp.nan, 0.0)
        params = jax.tree.map(lambda p: p + poison, state.params)
        metrics = dict(metrics, loss=metrics["loss"] + poison)
        return state._replace(params=params), metrics

    return trainer._replace(step=step)


def test_nan_loss_stops_the_run_naming_the_step_and_keeps_the_good_checkpoint(tmp_path):
    config = small_config(log_every=1000, checkpoint_every=5)
    trainer = nan_after(flow.make(config, (2,)), bad_step=12)
    with pytest.raises(FloatingPointError, match="at step 12;.*last good checkpoint: step 10"):
        train_and_evaluate(config, str(tmp_path), trainer=trainer, data=small_dataset())
    assert runs.checkpoint_steps(tmp_path) == [5, 10]
    restored = runs.load_checkpoint(tmp_path, 10)
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(restored["params"]))


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_data_with_nan_is_rejected_before_training(tmp_path, split):
    data = small_dataset()
    bad = getattr(data, split).copy()
    bad[3, 1] = np.nan
    config = small_config()
    with pytest.raises(ValueError, match=f"data.{split} contains 1 non-finite values"):
        train_and_evaluate(
            config,
            str(tmp_path),
            trainer=flow.make(config, (2,)),
            data=data._replace(**{split: bad}),
        )


def test_batch_size_must_divide_over_devices(tmp_path):
    config = small_config(batch_size=30)
    config.parallel.num_devices = 8
    with pytest.raises(ValueError, match=r"train.batch_size must be a multiple of .*\(8\); got 30"):
        train_and_evaluate(
            config, str(tmp_path), trainer=flow.make(config, (2,)), data=small_dataset()
        )


def test_one_and_eight_devices_give_the_same_losses(tmp_path):
    losses = {}
    for devices in (1, 8):
        config = small_config(log_every=1)
        config.parallel.num_devices = devices
        workdir = str(tmp_path / str(devices))
        trainer = flow.make(config, (2,))
        final = train_and_evaluate(config, workdir, trainer=trainer, data=small_dataset())
        losses[devices] = [r["train/loss"] for r in read_metrics(workdir) if "train/loss" in r]
        losses[devices].append(final["test/nll"])
    assert len(losses[1]) == 21
    np.testing.assert_allclose(losses[8], losses[1], rtol=1e-5)


def test_pure_loss_composes_with_pmap_and_pmean():
    """Per-device gradients of the pure loss, averaged with lax.pmean, equal the gradient of
    the loss on the whole batch (equal shards, mean-reduced loss)."""
    config = small_config()
    module = flow.module_from_config(config.model, (2,))
    x = gaussian_data(64)
    params = module.init(jax.random.key(0), x[:2], method="log_prob")
    params = jax.tree.map(lambda p: p + 0.1, params)  # leave the identity initialisation

    def loss(params, batch):
        return -jnp.mean(module.apply(params, batch, method="log_prob"))

    def device_grad(params, batch):
        return jax.lax.pmean(jax.grad(loss)(params, batch), axis_name="devices")

    n = jax.device_count()
    assert n == 8
    replicated = jax.tree.map(lambda p: jnp.broadcast_to(p, (n, *p.shape)), params)
    pmapped = jax.pmap(device_grad, axis_name="devices")(replicated, x.reshape(n, -1, 2))
    full = jax.grad(loss)(params, x)
    for a, b in zip(jax.tree.leaves(pmapped), jax.tree.leaves(full), strict=True):
        np.testing.assert_allclose(a[0], b, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(a[-1], b, rtol=1e-4, atol=1e-6)


def test_checkpoints_keep_only_the_newest(tmp_path):
    config = small_config(checkpoint_every=2, keep_checkpoints=3)
    train_and_evaluate(config, str(tmp_path), trainer=flow.make(config, (2,)), data=small_dataset())
    assert runs.checkpoint_steps(tmp_path) == [16, 18, 20]


def test_restore_latest_returns_none_in_an_empty_directory(tmp_path):
    manager = checkpoint.make_manager(str(tmp_path / "ckpt"), keep=1)
    like = {"w": jnp.ones(3)}
    state, step = checkpoint.restore_latest(manager, like)
    assert step is None and state is like
    with pytest.raises(ValueError, match="keep_checkpoints must be >= 1; got 0"):
        checkpoint.make_manager(str(tmp_path / "x"), keep=0)


def test_run_writes_its_artifacts(tmp_path):
    config = small_config(sample_every=10)
    train_and_evaluate(config, str(tmp_path), trainer=flow.make(config, (2,)), data=small_dataset())
    for name in ("samples.png", "loss.png", "metrics.jsonl", "final_metrics.json"):
        assert os.path.getsize(tmp_path / name) > 0, name
    assert os.listdir(tmp_path / "tensorboard")
    assert sorted(os.listdir(tmp_path / "samples")) == ["step_0000010.png", "step_0000020.png"]


def labelled_split(n, seed):
    """``{"x": (n, 2) float32, "y": (n,) int32}`` with ``x[:, 0] = y``, so a step can tell
    whether each image arrived with its own label."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n).astype(np.int32)
    x = np.stack([y, rng.normal(size=n)], axis=1).astype(np.float32)
    return {"x": x, "y": y}


def label_trainer(seen: dict) -> Trainer:
    """A trainer that learns nothing: it records the batch structure it is traced with, logs the
    mean label as its loss and returns the labels as per-example evaluation metrics."""

    def structure(batch):
        return jax.tree.map(lambda a: (a.shape, a.dtype), batch)

    def init(key, batch):
        seen["init"] = structure(batch)
        return {"w": jnp.zeros(())}

    def step(state, batch, key):
        seen["step"] = structure(batch)
        y = batch["y"].astype(jnp.float32)
        metrics = {"loss": jnp.mean(y), "pair_error": jnp.max(jnp.abs(batch["x"][:, 0] - y))}
        return {"w": state["w"] + 1.0}, metrics

    def evaluate(state, batch, key):
        seen["evaluate"] = structure(batch)
        y = batch["y"].astype(jnp.float32)
        return {"label": y, "pair_error": jnp.abs(batch["x"][:, 0] - y)}

    def sample(state, key, n):
        return jax.random.normal(key, (n, 2))

    return Trainer(init, step, sample, evaluate)


def test_labelled_data_trains_and_evaluates_with_each_label_on_its_example(tmp_path):
    # 70 and 100 examples with eval batches of 64: both splits end in a padded batch.
    data = Dataset(labelled_split(256, 0), labelled_split(70, 1), labelled_split(100, 2))
    config = small_config(sample_every=10)
    config.parallel.num_devices = 8  # dict batches sharded over the mesh
    seen = {}
    final = train_and_evaluate(config, str(tmp_path), trainer=label_trainer(seen), data=data)

    tc = config.train
    f32, i32 = jnp.dtype(jnp.float32), jnp.dtype(jnp.int32)
    for name, size in (("init", tc.batch_size), ("step", tc.batch_size), ("evaluate", 64)):
        assert seen[name] == {"x": ((size, 2), f32), "y": ((size,), i32)}, name
    # Exact sums of small integers in float32: the means match numpy to rounding.
    np.testing.assert_allclose(final["test/label"], data.test["y"].mean(), rtol=1e-6)
    assert final["test/pair_error"] == 0.0
    records = read_metrics(str(tmp_path))
    validation = [r["validation/label"] for r in records if "validation/label" in r]
    np.testing.assert_allclose(validation, [data.validation["y"].mean()] * 2, rtol=1e-6)
    # The logged loss of each window is the mean label of the batches batch_indices names.
    losses = [r["train/loss"] for r in records if "train/loss" in r]
    assert all(r["train/pair_error"] == 0.0 for r in records if "train/pair_error" in r)
    expected = [
        np.mean(
            [
                data.train["y"][
                    batch_indices(s, num_examples=256, batch_size=tc.batch_size, seed=config.seed)
                ].mean()
                for s in range(start, start + tc.log_every)
            ]
        )
        for start in range(0, tc.num_steps, tc.log_every)
    ]
    np.testing.assert_allclose(losses, expected, rtol=1e-6)
    for name in ("samples.png", "loss.png"):
        assert os.path.getsize(tmp_path / name) > 0, name


def test_labelled_data_with_nan_is_rejected_naming_the_leaf(tmp_path):
    data = Dataset(labelled_split(64, 0), labelled_split(64, 1), labelled_split(64, 2))
    data.validation["x"][5, 1] = np.nan
    with pytest.raises(ValueError, match=r"data.validation\['x'\] contains 1 non-finite"):
        train_and_evaluate(small_config(), str(tmp_path), trainer=label_trainer({}), data=data)


def counting_trainer() -> Trainer:
    """A trainer whose state counts its steps and whose per-example validation metric is
    ``(steps - 3)^2``: the best state is the one after step 3."""

    def init(key, batch):
        return {"steps": jnp.zeros(())}

    def step(state, batch, key):
        return {"steps": state["steps"] + 1.0}, {"loss": jnp.mean(batch)}

    def evaluate(state, batch, key):
        return {"distance": jnp.full(batch.shape[:1], (state["steps"] - 3.0) ** 2)}

    def sample(state, key, n):
        return jnp.full((n, 2), state["steps"])

    return Trainer(init, step, sample, evaluate)


def test_select_metric_keeps_the_best_validation_state_across_a_resume(tmp_path):
    data = small_dataset()
    # First run: 5 steps, best at step 3 (distance 0); second run resumes at step 5 and trains
    # to 20: every later state is worse, so the one from before the resume must stay selected
    # (which needs the best value read back from metrics.jsonl).
    for num_steps in (5, 20):
        config = small_config(num_steps=num_steps, eval_every=1, select_metric="distance")
        final = train_and_evaluate(config, str(tmp_path), trainer=counting_trainer(), data=data)
    assert final["selected_step"] == 3.0
    assert final["test/distance"] == 0.0
    config = small_config(num_steps=2, eval_every=1, select_metric="nll")
    with pytest.raises(ValueError, match=r"select_metric must be .* \['distance'\]; got 'nll'"):
        train_and_evaluate(config, str(tmp_path / "other"), trainer=counting_trainer(), data=data)
