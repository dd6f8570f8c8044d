"""Timing helpers shared by the benchmarks: median wall time of a compiled call, the machine's
measured matmul peak, and the BENCHMARKS.md writer. Every comparison runs in one process, so
jgen and its peer see the same machine state."""

import os
import platform
import re
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "BENCHMARKS.md")


def median_seconds(fn: Callable, *args, repeats: int = 20, warmup: int = 2) -> float:
    """Median wall time of ``fn(*args)`` (already jitted), waiting for the result each time."""
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def paired_median_seconds(fn_a: Callable, fn_b: Callable, *args, repeats: int = 21):
    """Median times of two functions measured alternately (a, b, a, b, ...), so slow drifts of
    the machine's load hit both sides alike."""
    for fn in (fn_a, fn_b):
        jax.block_until_ready(fn(*args))
    times: tuple[list, list] = ([], [])
    for _ in range(repeats):
        for fn, out in zip((fn_a, fn_b), times, strict=True):
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            out.append(time.perf_counter() - start)
    return float(np.median(times[0])), float(np.median(times[1]))


def matmul_peak_gflops(n: int = 2048) -> float:
    """Measured float32 GFLOP/s of an ``n x n`` matmul: the reference for achieved throughput."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    seconds = median_seconds(jax.jit(lambda a: a @ a), a, repeats=10)
    return 2 * n**3 / seconds / 1e9


def machine() -> str:
    device = jax.devices()[0]
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {device.platform}"
    )


def write_section(name: str, lines: list[str]) -> None:
    """Replaces (or appends) the section ``## name`` of BENCHMARKS.md with ``lines``."""
    text = open(RESULTS).read() if os.path.exists(RESULTS) else "# Benchmarks\n\n"
    section = f"## {name}\n\n" + "\n".join(lines).rstrip() + "\n\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text + section
    with open(RESULTS, "w") as f:
        f.write(text)
