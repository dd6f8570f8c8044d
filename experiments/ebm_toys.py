"""Deep EBMs on the 2-D toys: test NLL next to the true entropy, and MMD of samples to data.

    python experiments/ebm_toys.py [--workdir=runs/ebm_toys] [--out=docs/ebm_toys.md]
                                   [--toys=8gaussians,checkerboard,moons]
                                   [--variants=persistent,short_run] [--smoke]

Each (toy, variant) trains ``experiments/configs/ebm_toy2d.py:TOY[,short_run]`` through the
experiment layer. The test NLL is exact up to the quadrature of ``log Z`` on the config's grid
(``jgen.models.ebm``); the true entropy is the data's own Monte Carlo estimate (DATA.md). MMD²
(unbiased, Gaussian kernel with the data's median-heuristic bandwidth) compares 2500 model
samples with as many fresh data points; the floor row compares two fresh data samples, the value
an exact sampler would get.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from experiments.compare import NUM_COVERAGE_SAMPLES, mmd2_to_data, train_and_restore  # noqa: E402
from experiments.configs import ebm_toy2d  # noqa: E402
from jgen.data import toy2d  # noqa: E402

TOYS = ("8gaussians", "checkerboard", "moons")
VARIANTS = ("persistent", "short_run")


def run_one(toy: str, variant: str, workdir: str, smoke: bool) -> dict:
    """Trains ``ebm_toy2d.py`` on ``toy`` and scores it."""
    parts = [toy] + (["short_run"] if variant == "short_run" else []) + (["smoke"] if smoke else [])
    config = ebm_toy2d.get_config(",".join(parts))
    trainer, state, seconds, final = train_and_restore(config, workdir)
    samples = np.asarray(
        jax.jit(trainer.sample, static_argnums=2)(state, jax.random.key(1), NUM_COVERAGE_SAMPLES)
    )
    floor = toy2d.sample(toy, jax.random.key(3), NUM_COVERAGE_SAMPLES)
    return {
        "nll": final["test/nll"],
        "entropy": final["test/true_entropy"],
        "mmd2": mmd2_to_data(toy, samples, jax.random.key(2)),
        "floor": mmd2_to_data(toy, np.asarray(floor), jax.random.key(2)),
        "seconds": seconds,
        "steps": config.train.num_steps,
    }


def table(results: dict) -> str:
    """Markdown, one row per (toy, variant)."""
    lines = [
        "# Deep EBMs on the 2-D toys",
        "",
        "`python experiments/ebm_toys.py` (`experiments/configs/ebm_toy2d.py`; MLP energy 3 x 128, "
        f"Langevin negatives; {NUM_COVERAGE_SAMPLES} samples for MMD²).",
        "",
        "| toy | chains | steps | test NLL (nats) | true entropy | MMD² samples vs data | MMD² "
        "data vs data | train s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (toy, variant), r in results.items():
        lines.append(
            f"| {toy} | {variant} | {r['steps']} | {r['nll']:.3f} | {r['entropy']:.3f} | "
            f"{r['mmd2']:.4f} | {r['floor']:.4f} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/ebm_toys")
    parser.add_argument("--out", default="docs/ebm_toys.md")
    parser.add_argument("--toys", default=",".join(TOYS))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    toys = [t for t in args.toys.split(",") if t]
    variants = [v for v in args.variants.split(",") if v]
    bad = [t for t in toys if t not in toy2d.NAMES] + [v for v in variants if v not in VARIANTS]
    if bad or not toys or not variants:
        raise ValueError(
            f"--toys takes names from {list(toy2d.NAMES)} and --variants from {list(VARIANTS)}; "
            f"got --toys={args.toys!r} --variants={args.variants!r}"
        )
    results = {}
    for toy in toys:
        for variant in variants:
            workdir = os.path.join(args.workdir, toy, variant)
            results[toy, variant] = run_one(toy, variant, workdir, args.smoke)
            print(toy, variant, results[toy, variant], flush=True)
    text = table(results)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    return text


if __name__ == "__main__":
    print(main())
