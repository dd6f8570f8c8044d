"""Mode coverage of GAN losses and regularisers on ``ring8`` and ``grid25``, as a table.

    python experiments/gan_coverage.py [--workdir=runs/gan_coverage] [--out=docs/gan_coverage.md]
                                       [--seeds=3] [--variants=non_saturating,hinge+sn,...]
                                       [--toys=ring8,grid25] [--smoke]

Each variant is a ``gan_toy2d.py`` option list (``+`` joins options: ``wasserstein+gp``) trained
through the experiment layer with each seed; 2500 samples of its final generator are scored by
``jgen.metrics.coverage.mode_coverage`` (a sample is high quality within 3 standard deviations
of its nearest mode; a mode is covered by at least 20% of its expected share of high-quality
samples, PacGAN's rule), as in Metz et al. 2017 (Unrolled GAN), Srivastava et al. 2017 (VEEGAN)
and Lin et al. 2018 (PacGAN). The table reports the mean and the range over the seeds, and the
MMD of the samples to fresh data (Gaussian kernel, median-heuristic bandwidth).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from experiments.compare import NUM_COVERAGE_SAMPLES, mmd2_to_data, train_and_restore  # noqa: E402
from experiments.configs import gan_toy2d  # noqa: E402
from jgen.data import toy2d  # noqa: E402
from jgen.metrics import coverage  # noqa: E402

TOYS = ("ring8", "grid25")
VARIANTS = (
    "non_saturating",
    "non_saturating+r1",
    "non_saturating+sn",
    "wasserstein+gp",
    "least_squares",
    "least_squares+r1",
    "least_squares+sn",
    "hinge",
    "hinge+r1",
    "hinge+sn",
)


def score(toy: str, samples: np.ndarray, key) -> dict[str, float]:
    """Mode coverage, high-quality share, reverse KL over modes, and MMD^2 to fresh data."""
    centres, std = toy2d.mixture_modes(toy)
    report = coverage.mode_coverage(samples, centres, std)
    return {
        "modes": float(report["modes_covered"]),
        "high_quality": float(report["high_quality"]),
        "reverse_kl": float(report["reverse_kl"]),
        "mmd2": mmd2_to_data(toy, samples, key),
    }


def run_variant(toy: str, variant: str, seed: int, workdir: str, smoke: bool) -> dict:
    """Trains ``gan_toy2d.py:toy,variant`` with ``seed`` and scores 2500 samples."""
    arg = ",".join([toy, *variant.split("+")] + (["smoke"] if smoke else []))
    config = gan_toy2d.get_config(arg)
    config.seed = seed
    trainer, state, seconds, _ = train_and_restore(config, workdir)
    samples = np.asarray(trainer.sample(state, jax.random.key(1), NUM_COVERAGE_SAMPLES))
    return {**score(toy, samples, jax.random.key(2)), "seconds": seconds}


def _cell(values: list[float], spec: str) -> str:
    mean = format(np.mean(values), spec)
    if len(values) == 1:
        return mean
    return f"{mean} ({format(min(values), spec)}–{format(max(values), spec)})"


def table(results: dict, seeds: int, steps: int) -> str:
    """Markdown: one row per variant, per toy the modes covered, the high-quality share and
    MMD^2, each the mean (min–max) over seeds. ``results[variant][toy]`` lists the seeds' scores."""
    toys = list(next(iter(results.values())))
    head = "| loss + regulariser |"
    rule = "| --- |"
    for toy in toys:
        k = len(toy2d.mixture_modes(toy)[0])
        head += f" {toy}: modes (of {k}) | {toy}: high quality | {toy}: MMD² |"
        rule += " ---: | ---: | ---: |"
    lines = [
        f"# GAN mode coverage on {' and '.join(toys)}",
        "",
        f"`python experiments/gan_coverage.py --seeds={seeds}` ({steps} generator steps per run, "
        f"`experiments/configs/gan_toy2d.py`; {NUM_COVERAGE_SAMPLES} samples; mean (min–max) over "
        f"{seeds} seed(s)). High quality: within 3 std of a mode; covered: >= 20% of a mode's "
        "expected share of high-quality samples (PacGAN). MMD²: unbiased, Gaussian kernel with "
        "the median-heuristic bandwidth, against as many fresh data points.",
        "",
        head,
        rule,
    ]
    for variant in results:
        row = f"| {variant.replace('+', ' + ')} |"
        for toy in toys:
            runs = results[variant][toy]
            row += f" {_cell([r['modes'] for r in runs], '.1f')} |"
            row += f" {_cell([100 * r['high_quality'] for r in runs], '.0f')}% |"
            row += f" {_cell([r['mmd2'] for r in runs], '.4f')} |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/gan_coverage")
    parser.add_argument("--out", default="docs/gan_coverage.md")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--toys", default=",".join(TOYS))
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1; got {args.seeds}")
    variants = [v for v in args.variants.split(",") if v]
    toys = [t for t in args.toys.split(",") if t]
    unknown = [t for t in toys if t not in TOYS]
    if unknown or not toys or not variants:
        raise ValueError(
            f"--toys takes names from {list(TOYS)} and --variants at least one variant; got "
            f"--toys={args.toys!r} --variants={args.variants!r}"
        )
    results: dict = {}
    for variant in variants:
        results[variant] = {}
        for toy in toys:
            runs = []
            for seed in range(args.seeds):
                workdir = os.path.join(args.workdir, variant, toy, f"seed{seed}")
                start = time.perf_counter()
                runs.append(run_variant(toy, variant, seed, workdir, args.smoke))
                print(variant, toy, seed, runs[-1], f"{time.perf_counter() - start:.0f}s")
            results[variant][toy] = runs
    steps = gan_toy2d.get_config("smoke" if args.smoke else None).train.num_steps
    text = table(results, args.seeds, steps)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    return text


if __name__ == "__main__":
    print(main())
