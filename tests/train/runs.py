"""Helpers for tests that train: small configs and subprocess runs of experiments/main.py."""

import os
import subprocess
import sys

import orbax.checkpoint as ocp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAIN = os.path.join(ROOT, "experiments", "main.py")
MOONS = os.path.join(ROOT, "experiments", "configs", "flow_moons.py")


def main_command(workdir, *overrides, config=MOONS + ":smoke"):
    return [sys.executable, MAIN, f"--config={config}", f"--workdir={workdir}", *overrides]


def subprocess_env(num_devices: int) -> dict:
    """The environment of a test's experiment process: ``num_devices`` CPU devices, and XLA's
    backend optimisations off. These runs train a few steps of small models, so compiling, not
    running, is their cost, and unoptimised code compiles about three times faster; every process
    of a test gets the same flags, so runs that must agree still agree bit for bit."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        f"--xla_force_host_platform_device_count={num_devices} --xla_backend_optimization_level=0"
    )
    env["JAX_PLATFORMS"] = "cpu"
    return env


def run_main(workdir, *overrides, num_devices=1, timeout=300):
    """Runs a training to completion in a fresh process; fails the test with its output if not."""
    cmd = main_command(workdir, *overrides)
    proc = subprocess.run(
        cmd, env=subprocess_env(num_devices), capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def checkpoint_steps(workdir) -> list[int]:
    directory = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(directory):
        return []
    return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def load_checkpoint(workdir, step) -> dict:
    path = os.path.join(workdir, "checkpoints", str(step), "default")
    return ocp.StandardCheckpointer().restore(path)
