"""experiments/disentanglement.py: the smoke config end to end, the fixed split of the shapes grid,
the per-latent KL and activity against closed forms, and bad configs."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import datasets, disentanglement
from experiments.configs import vae_shapes
from jgen.data import shapes
from jgen.models import vae
from tests.train import runs

SCRIPT = os.path.join(runs.ROOT, "experiments", "disentanglement.py")
CONFIG = os.path.join(runs.ROOT, "experiments", "configs", "vae_shapes.py")


def test_smoke_config_runs_the_script_end_to_end(tmp_path):
    workdir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, SCRIPT, f"--config={CONFIG}:smoke", f"--workdir={workdir}"],
        env=runs.subprocess_env(1),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((workdir / "disentanglement.json").read_text())
    for name in ("beta_vae", "factor_vae", "mig"):
        assert 0.0 <= report[name] <= 1.0, (name, report[name])
    assert f"MIG {report['mig']:.4f}" in proc.stdout
    # MIG is the mean of its per-factor gaps, each in [0, 1].
    gaps = report["mig_gaps"]
    assert list(gaps) == list(shapes.FACTOR_NAMES)
    assert all(0.0 <= g <= 1.0 for g in gaps.values()), gaps
    assert report["mig"] == pytest.approx(np.mean(list(gaps.values())), abs=1e-12)
    # The likelihood numbers are the training loop's test metrics of the same (last) state.
    final = json.loads((workdir / "final_metrics.json").read_text())
    assert report["test_nll"] == final["test/nll"]
    assert report["test_elbo_nll"] == final["test/elbo_nll"]
    assert report["step"] == 20 and runs.checkpoint_steps(workdir) == [10, 20]
    # The importance-sampled bound (k = 20) is in expectation at least as tight as the one-sample
    # ELBO (Burda et al. 2016, Thm. 1); after 20 steps the posterior is poor and the expected gap
    # is tens of nats, far above the Monte Carlo error of either mean over 128 test images. Both
    # lie below the 1024 log 2 nats of a decoder that has learnt nothing.
    assert report["test_nll"] < report["test_elbo_nll"]
    assert 0 < report["test_nll"] < 1024 * math.log(2)
    kl, activity = np.array(report["kl_per_dim"]), np.array(report["activity"])
    assert kl.shape == activity.shape == (10,)
    assert np.all(kl >= 0) and np.all(activity >= 0)
    assert report["active_units"] == int(np.sum(activity > report["activity_threshold"]))


def test_split_partitions_the_grid():
    train, validation, test = datasets.split_indices()
    assert (len(train), len(validation), len(test)) == vae_shapes.SPLIT_SIZES
    union = np.concatenate([train, validation, test])
    np.testing.assert_array_equal(np.sort(union), np.arange(shapes.NUM_IMAGES))
    # Fixed: the same rows on every call.
    np.testing.assert_array_equal(datasets.split_indices()[2], test)

    config = vae_shapes.get_config("smoke")
    data = datasets.shapes_dataset(config.data, seed=123)
    assert data.train.shape == (config.data.num_train, *shapes.IMAGE_SHAPE)
    assert data.test.shape == (config.data.num_test, *shapes.IMAGE_SHAPE)
    # Ground truth: render the factors of the split's rows afresh.
    expected = shapes.render(shapes.all_factors()[test[: config.data.num_test]])
    np.testing.assert_array_equal(data.test, expected)


def test_latent_activity_matches_closed_form(x64):
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(300, 4)) * np.array([2.0, 0.5, 0.05, 0.0])
    log_std = rng.normal(scale=0.3, size=(300, 4)) + np.array([-2.0, -1.0, -0.1, 0.0])
    got = disentanglement.latent_activity(mean, log_std)
    # KL(N(m, s^2) || N(0, 1)) = log(1 / s) + (s^2 + m^2) / 2 - 1/2 per latent, averaged over rows.
    s = np.exp(log_std)
    expected = np.mean(-log_std + (s**2 + mean**2) / 2 - 0.5, axis=0)
    np.testing.assert_allclose(got["kl_per_dim"], expected, rtol=1e-12)
    np.testing.assert_allclose(got["activity"], np.var(mean, axis=0), rtol=1e-12)
    # Var of 2 N(0,1) ~ 4 and of 0.5 N(0,1) ~ 0.25 exceed 0.01; 0.05 N(0,1) (~0.0025) and 0 do not.
    assert got["active_units"] == 2


def test_bad_configs_raise(tmp_path):
    with pytest.raises(ValueError, match=r"vae_shapes takes \[BETA\]\[,smoke\].*got 'beta2'"):
        vae_shapes.get_config("beta2")
    with pytest.raises(ValueError, match="at most one BETA.*got 'beta1,beta4'"):
        vae_shapes.get_config("beta1,beta4")
    assert vae_shapes.get_config(None).model.beta == 4.0
    assert vae_shapes.get_config("beta1,smoke").model.beta == 1.0

    config = vae_shapes.get_config("smoke")
    config.model.name = "flow"
    with pytest.raises(ValueError, match=r"model.name must be one of \('vae',\); got 'flow'"):
        disentanglement.run(config, str(tmp_path))
    config = vae_shapes.get_config("smoke")
    config.model.iaf_steps = 2
    with pytest.raises(ValueError, match="model.iaf_steps must be 0 .*; got 2"):
        disentanglement.run(config, str(tmp_path))
    config = vae_shapes.get_config("smoke")
    config.data.labels = True
    with pytest.raises(ValueError, match="data.labels must be False for data.name='shapes'"):
        datasets.shapes_dataset(config.data, seed=0)
    config = vae_shapes.get_config("smoke")
    config.data.name = "dsprites"
    with pytest.raises(ValueError, match=r"data.name must be one of \('shapes',\); got 'dsprites'"):
        datasets.shapes_dataset(config.data, seed=0)
    config = vae_shapes.get_config("smoke")
    data = datasets.shapes_dataset(config.data, seed=0)
    trainer = vae.make(config, data.event_shape)
    with pytest.raises(ValueError, match="workdir must hold a trained run; .*checkpoints is empty"):
        disentanglement.restore_params(config, str(tmp_path / "empty"), trainer, data.train[:2])
