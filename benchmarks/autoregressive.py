"""Autoregressive sampling of a 64-pixel image (8x8, raster order) with and without the cache.

``jgen.models.autoregressive.autoregressive_model(...).sample`` is jitted with ``n`` static and
timed for ``n = 1`` and ``n = 64`` images, each call a ``lax.scan`` over the 64 positions:

- **cached** (``cached_sampling=True``, :func:`jgen.samplers.autoregressive.sample_cached`): each
  step computes one position through the network's ``decode_step``; the transformer attends to
  its key/value cache (``O(i)`` work at position ``i``), the LSTM applies one cell step to its
  carried state.
- **full** (``cached_sampling=False``, :func:`~jgen.samplers.autoregressive.sample_sequential`):
  each step runs the whole network over all 64 positions and reads one of them; the transformer
  does a full ``O(L^2)`` causal pass, the LSTM re-scans the whole sequence (64 cell steps per
  position, 4,096 per image).

Networks (categorical head, ``K = 2`` binary pixels and ``K = 17`` levels, as in
``experiments/configs/autoregressive_digits.py``): the digits transformer (4 blocks, 4 heads,
``model_dim`` 128), a small one (2 blocks, 2 heads, ``model_dim`` 32), and the character LSTM of
``experiments/configs/char_lm.py`` (one layer of 256). The gated PixelCNN of the digits config
(64 features, 6 gated layers) has no cache: its sequential sampling is timed for reference, with
``K = 2`` only (``K`` changes only its ``1 x 1`` output layer, and a call for 64 images takes
seconds).
Parameters are the random initialisation (the cost does not depend on their values).

Times: medians of one call, cached and full measured interleaved
(``harness.paired_median_seconds``); **cached / full < 1: the cache is faster**. Compile time is
the first call's time minus the median (the scan over 64 positions is traced and compiled once
per ``n``). Each median is over as many rounds as fit in ``BUDGET_S`` seconds (odd, 3 to 21;
three rounds first tell the cost), which keeps the whole run to about five minutes. Both paths
are given the same key, so they draw the same tokens up to float rounding (a logit that differs
in its last bits can flip a draw, and every later position then differs); the share of equal
tokens is reported as a check.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/autoregressive.py``); results in
BENCHMARKS.md.
"""

import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import harness  # noqa: E402

sys.path.insert(0, harness.ROOT)  # experiments/ is not an installed package
from experiments.configs import autoregressive_digits, char_lm  # noqa: E402
from jgen.models.autoregressive import (  # noqa: E402
    NETWORKS,
    autoregressive_model,
    categorical_head,
)

EVENT = (8, 8)
SIZES = (1, 64)
LEVELS = (2, 17)
BUDGET_S = 4.0  # wall time per timed pair (or single) of calls, repeats included
CACHED_CASES = {
    "transformer, 4 blocks x 4 heads, dim 128": autoregressive_digits.NETWORKS["transformer"],
    "transformer, 2 blocks x 2 heads, dim 32": dict(
        network="transformer", num_layers=2, num_heads=2, model_dim=32
    ),
    "LSTM, 1 layer x 256": char_lm.NETWORKS["lstm"],
}
_GATED = autoregressive_digits.NETWORKS["gated_pixelcnn"]
PIXELCNN = (
    f"gated PixelCNN, {_GATED['num_layers']} layers x {_GATED['features']} features",
    _GATED,
)


def jitted_sampler(overrides: dict, num_levels: int, cached: bool):
    """``(jit(sample), params)`` of the model ``overrides`` describes, ``n`` static."""
    config = autoregressive_digits.model_config(**overrides)
    head = categorical_head(num_levels)
    network = NETWORKS[config.network](config, EVENT, head.num_params, num_levels)
    model = autoregressive_model(network, head, EVENT, cached_sampling=cached)
    params = model.init(jax.random.key(0), jnp.zeros((1, *EVENT), jnp.int32))
    return jax.jit(model.sample, static_argnums=2), params


def timed_call(fn, *args):
    """``(seconds, output)`` of one call (the first one includes tracing and compilation)."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return time.perf_counter() - start, out


def repeats_for(seconds: float) -> int:
    """An odd number of repeats in ``[3, 21]`` that fits ``BUDGET_S`` at ``seconds`` per round."""
    return int(np.clip(BUDGET_S / seconds, 3, 21)) // 2 * 2 + 1


def paired_medians(fn_a, fn_b, *args) -> tuple[float, float]:
    """``harness.paired_median_seconds`` with 3 repeats, repeated with more when they are cheap
    (a first call, including compilation, says little about the steady time)."""
    t_a, t_b = harness.paired_median_seconds(fn_a, fn_b, *args, repeats=3)
    repeats = repeats_for(t_a + t_b)
    if repeats > 3:
        t_a, t_b = harness.paired_median_seconds(fn_a, fn_b, *args, repeats=repeats)
    return t_a, t_b


def median(fn, *args) -> float:
    """``harness.median_seconds`` (after a first call) sized like :func:`paired_medians`."""
    seconds = harness.median_seconds(fn, *args, repeats=3, warmup=0)
    repeats = repeats_for(seconds)
    return harness.median_seconds(fn, *args, repeats=repeats, warmup=0) if repeats > 3 else seconds


def cached_rows(key) -> tuple[list[str], float]:
    rows, equal = [], []
    for name, overrides in CACHED_CASES.items():
        for levels in LEVELS:
            (cached, params), (full, _) = (
                jitted_sampler(overrides, levels, flag) for flag in (True, False)
            )
            for n in SIZES:
                (first_c, draws_c), (first_f, draws_f) = (
                    timed_call(fn, params, key, n) for fn in (cached, full)
                )
                equal.append(np.mean(np.asarray(draws_c) == np.asarray(draws_f)))
                t_c, t_f = paired_medians(cached, full, params, key, n)
                rows.append(
                    f"| {name} | {levels} | {n} | {1e3 * t_c:.1f} | {1e3 * t_f:.1f} "
                    f"| {t_c / t_f:.3f} | {1e3 * t_c / n:.2f} | {1e3 * t_f / n:.2f} "
                    f"| {first_c - t_c:.1f} | {first_f - t_f:.1f} | {100 * equal[-1]:.0f}% |"
                )
                print(rows[-1], flush=True)
    return rows, float(np.min(equal))


def pixelcnn_rows(key) -> list[str]:
    name, overrides = PIXELCNN
    # K enters only the 1x1 output layer; one K keeps this seconds-long call to two sizes.
    sample, params = jitted_sampler(overrides, 2, cached=False)
    rows = []
    for n in SIZES:
        first, _ = timed_call(sample, params, key, n)
        seconds = median(sample, params, key, n)
        rows.append(
            f"| {name} | 2 | {n} | {1e3 * seconds:.1f} | {1e3 * seconds / n:.2f} "
            f"| {first - seconds:.1f} |"
        )
        print(rows[-1], flush=True)
    return rows


def main():
    load_before = os.getloadavg()[0]
    key = jax.random.key(1)
    rows, equal = cached_rows(key)
    reference = pixelcnn_rows(key)
    harness.write_section(
        "Autoregressive sampling",
        [
            f"`make bench` on {harness.machine()}; jax {jax.__version__}. One jitted "
            "`model.sample(params, key, n)` over the 64 pixels of an 8x8 image (raster order), "
            "categorical head with K levels; what each path computes is in the docstring of "
            "`benchmarks/autoregressive.py`. 1-minute load average "
            f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after the run (other jobs "
            "shared the cores), so compare ratios rather than absolute times.",
            "",
            "Cached (`cached_sampling=True`: one position per scan step through `decode_step`) "
            "against full (`cached_sampling=False`: the whole network over all 64 positions per "
            "step), measured interleaved; times are medians of one call, per image = per call "
            "/ n. **cached / full < 1: the cache is faster.** Compile = first call minus the "
            "median; for calls of seconds it is within the load's noise (it can come out "
            "negative). Same tokens: the share of the 64 n tokens both paths drew from the same "
            f"key (lowest {100 * equal:.0f}%; they can differ only where float rounding flips a "
            "draw, after which the sequences diverge).",
            "",
            "| network | K | n | cached (ms) | full (ms) | cached / full | cached per image (ms) "
            "| full per image (ms) | compile cached (s) | compile full (s) | same tokens |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            "For reference, a network without a cache: the gated PixelCNN of the digits config "
            "samples sequentially (a full pass over the image per pixel), binary pixels.",
            "",
            "| network | K | n | per call (ms) | per image (ms) | compile (s) |",
            "| --- | --- | --- | --- | --- | --- |",
            *reference,
        ],
    )


if __name__ == "__main__":
    main()
