"""Test configuration: 8 CPU devices for the sharding tests, float64 on request."""

import os

# Must happen before any JAX computation: every test process sees 8 CPU devices.
os.environ.setdefault("XLA_FLAGS", "")
import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

import pytest  # noqa: E402


@pytest.fixture
def x64():
    """Runs the test with float64 enabled (numerics checked against closed forms)."""
    with jax.enable_x64(True):
        yield
