"""Every experiment config runs end to end in its smoke variant; bad configs fail clearly."""

import glob
import json
import os
import subprocess

import pytest

from experiments import datasets
from experiments.configs import default
from experiments.run import run
from jgen.data import tfds_sources
from tests.data.fake_tfds import write_fake_dataset
from tests.train import runs

CONFIGS = sorted(
    p
    for p in glob.glob(os.path.join(runs.ROOT, "experiments/configs/*.py"))
    if not os.path.basename(p).startswith(("_", "default"))
)


def load_config(path, arg):
    import importlib.util

    spec = importlib.util.spec_from_file_location("config_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


@pytest.fixture(scope="module")
def fake_tfds_dir(tmp_path_factory):
    """Small copies of the TFDS datasets, in the real prepared layout, for the TFDS configs."""
    data_dir = tmp_path_factory.mktemp("tfds")
    for name in tfds_sources.NAMES:
        write_fake_dataset(name, data_dir, {"train": 200, "test": 80})
    return str(data_dir)


# Config arguments beyond the default: families whose state goes through the loop's checkpoints
# differently (Glow's fixed permutations, residual flows' spectral-norm vectors, a variational
# dequantizer's parameters), the other VAE decoder with the IWAE objective, and the
# autoregressive pieces the default variants miss (mask sets, RGB logistic mixtures, WaveNet),
# the GAN pieces (k critic steps, penalties, spectral norm, projection heads, replay) and JEM.
# Glow on images with a channel axis runs as flow_cifar10.py:smoke, on (H, W) digits below.
VARIANTS = [
    ("flow_digits.py", "glow,smoke"),
    ("flow_toy2d.py", "moons,residual,smoke"),
    ("flow_digits.py", "variational,smoke"),
    ("vae_digits.py", "continuous,dreg50,smoke"),
    ("vae_digits.py", "ladder,iwae5,smoke"),
    ("vae_digits.py", "binary,iaf,conditional,smoke"),
    ("vqvae_digits.py", "binary,loss,smoke"),
    ("autoregressive_digits.py", "made_agnostic,smoke"),
    ("autoregressive_images.py", "cifar10,smoke"),
    ("char_lm.py", "wavenet,smoke"),
    ("gan_digits.py", "hinge,sn,conditional,smoke"),
    ("gan_toy2d.py", "grid25,wasserstein,gp,mbstd,replay,smoke"),
    ("ebm_digits.py", "jem,short_run,smoke"),
]
SMOKE_RUNS = [(p, "smoke") for p in CONFIGS] + [
    (os.path.join(runs.ROOT, "experiments/configs", name), arg) for name, arg in VARIANTS
]


@pytest.mark.parametrize(
    "path,arg", SMOKE_RUNS, ids=[f"{os.path.basename(p)}:{a}" for p, a in SMOKE_RUNS]
)
def test_smoke_variant_trains_end_to_end(tmp_path, path, arg, fake_tfds_dir, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", fake_tfds_dir)
    config = load_config(path, arg)
    config.parallel.num_devices = 1
    final = run(config, str(tmp_path))
    assert final and all(v == v for v in final.values())  # present and not NaN
    saved = json.loads((tmp_path / "final_metrics.json").read_text())
    assert saved.keys() == final.keys()
    assert runs.checkpoint_steps(tmp_path) == [10, 20]


def test_full_configs_differ_from_their_smoke_variant():
    for path in CONFIGS:
        full, smoke = load_config(path, None), load_config(path, "smoke")
        assert full.train.num_steps > smoke.train.num_steps, path


def test_unknown_config_key_is_an_error():
    config = default.get_config()
    with pytest.raises(AttributeError, match="num_stepz"):
        config.train.num_stepz = 3


def test_unknown_command_line_override_is_an_error(tmp_path):
    proc = subprocess.run(
        runs.main_command(str(tmp_path), "--config.train.num_stepz=3"),
        env=runs.subprocess_env(1),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "num_stepz" in proc.stderr
    assert not os.path.exists(tmp_path / "checkpoints")


@pytest.mark.parametrize(
    "field,value,message",
    [
        (
            "source",
            "imagenet",
            r"data.source must be one of \('toy2d', 'digits', 'tfds', 'text', 'shapes'\); "
            r"got 'imagenet'",
        ),
        ("name", "mooons", "data.name must be one of .*; got 'mooons'"),
    ],
)
def test_unknown_dataset_is_an_error(field, value, message):
    config = default.get_config()
    config.data[field] = value
    with pytest.raises(ValueError, match=message):
        datasets.load(config.data, seed=0)


def test_unknown_model_is_an_error(tmp_path):
    config = default.get_config()
    config.model.name = "flwo"
    with pytest.raises(
        ValueError, match="model.name must be one of \\('flow', 'vae'.*; got 'flwo'"
    ):
        run(config, str(tmp_path))
