"""Two processes with two CPU devices each, joined by jax.distributed.initialize on 127.0.0.1,
train the same steps as one process with four devices."""

import os
import socket
import subprocess

import numpy as np

from jgen.train.logging import read_metrics
from tests.train import runs

DIGITS = runs.ROOT + "/experiments/configs/flow_digits.py:smoke"
OVERRIDES = [
    "--config.train.num_steps=6",
    "--config.train.log_every=1",
    "--config.train.sample_every=3",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_agree_with_one(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    multi = str(tmp_path / "multi")
    procs = [
        subprocess.Popen(
            runs.main_command(
                multi,
                *OVERRIDES,
                "--config.parallel.distributed=True",
                f"--config.parallel.coordinator_address={address}",
                "--config.parallel.num_processes=2",
                f"--config.parallel.process_id={i}",
                config=DIGITS,
            ),
            env=runs.subprocess_env(2),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-4000:]

    single = str(tmp_path / "single")
    proc = subprocess.run(
        runs.main_command(single, *OVERRIDES, config=DIGITS),
        env=runs.subprocess_env(4),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    def losses(workdir):
        records = read_metrics(workdir)
        train = [r["train/loss"] for r in records if "train/loss" in r]
        return train + [r["test/nll"] for r in records if "test/nll" in r]

    assert len(losses(multi)) == 7
    np.testing.assert_allclose(losses(multi), losses(single), rtol=1e-5)
    assert runs.checkpoint_steps(multi) == runs.checkpoint_steps(single) == [6]
    assert sorted(os.listdir(os.path.join(multi, "samples"))) == [
        "step_0000003.png",
        "step_0000006.png",
    ]
