"""Diffusion and score models on the 2-D toys: test NLL by the probability-flow ODE and by the
variational bound next to the true entropy, and MMD of samples to data.

    python experiments/diffusion_toys.py [--workdir=runs/diffusion_toys]
                                         [--out=docs/diffusion_toys.md]
                                         [--toys=8gaussians,checkerboard,moons]
                                         [--models=ddpm,score_sde] [--smoke]

Each (toy, model) trains ``experiments/configs/ddpm_toy2d.py:TOY`` (1000 steps, simple loss,
ancestral sampling) or ``score_sde_toy2d.py:TOY`` (VP SDE, continuous time, predictor–corrector
sampling) through the experiment layer. Both networks are read as the score of the same VP SDE
(the DDPM through :func:`jgen.models.score_sde.ddpm_as_vp`), whose probability-flow ODE gives a
normalised density: its test NLL (exact divergence, dopri5 at tolerances 1e-5) estimates the
cross-entropy, at least the true entropy (the data's own Monte Carlo estimate, DATA.md). The DDPM
also reports its variational bound over all 1000 steps. MMD² (unbiased, Gaussian kernel with the
data's median-heuristic bandwidth) compares 2500 samples with as many fresh data points; the
floor compares two fresh data samples, the value an exact sampler would get.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from experiments import run as run_experiment  # noqa: E402
from experiments.compare import NUM_COVERAGE_SAMPLES, mmd2_to_data, train_and_restore  # noqa: E402
from experiments.configs import ddpm_toy2d, score_sde_toy2d  # noqa: E402
from jgen.data import toy2d  # noqa: E402
from jgen.models.score_sde import ddpm_as_vp, likelihood_metrics  # noqa: E402

TOYS = ("8gaussians", "checkerboard", "moons")
CONFIGS = {"ddpm": ddpm_toy2d, "score_sde": score_sde_toy2d}


def ode_nll_of_ddpm(config, state, x: np.ndarray) -> float:
    """Mean probability-flow NLL (nats) of ``x`` under a trained DDPM read as the VP SDE, with
    the ODE settings of the score-SDE toy config."""
    ode = score_sde_toy2d.model_config()
    sde, score = ddpm_as_vp(config, x.shape[1:], state.ema)
    metrics = jax.jit(
        lambda x: likelihood_metrics(
            ode, sde, score, x, jax.random.key(0), images=False, num_levels=0
        )
    )(x)
    return float(np.mean(metrics["nll"]))


def run_one(toy: str, model: str, workdir: str, smoke: bool) -> dict:
    """Trains ``model``'s toy config on ``toy`` and scores it."""
    config = CONFIGS[model].get_config(toy + (",smoke" if smoke else ""))
    trainer, state, seconds, final = train_and_restore(config, workdir)
    samples = np.asarray(
        jax.jit(trainer.sample, static_argnums=2)(state, jax.random.key(1), NUM_COVERAGE_SAMPLES)
    )
    floor = np.asarray(toy2d.sample(toy, jax.random.key(3), NUM_COVERAGE_SAMPLES))
    result = {
        "entropy": final["test/true_entropy"],
        "mmd2": mmd2_to_data(toy, samples, jax.random.key(2)),
        "floor": mmd2_to_data(toy, floor, jax.random.key(2)),
        "seconds": seconds,
        "steps": config.train.num_steps,
    }
    if model == "ddpm":
        test = np.asarray(run_experiment.datasets.load(config.data, config.seed).test)
        result.update(bound=final["test/nll"], ode_nll=ode_nll_of_ddpm(config, state, test))
    else:
        result.update(bound=float("nan"), ode_nll=final["test/nll"])
    return result


def table(results: dict) -> str:
    """Markdown, one row per (toy, model)."""
    lines = [
        "# Diffusion and score models on the 2-D toys",
        "",
        "`python experiments/diffusion_toys.py` (`experiments/configs/ddpm_toy2d.py`, "
        "`score_sde_toy2d.py`; ScoreMLP 3 x 256; test NLL by the probability-flow ODE of the VP "
        f"SDE, bound = DDPM's variational bound over 1000 steps; {NUM_COVERAGE_SAMPLES} samples "
        "for MMD²).",
        "",
        "| toy | model | steps | test NLL, ODE (nats) | bound (nats) | true entropy | MMD² samples "
        "vs data | MMD² data vs data | train s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (toy, model), r in results.items():
        bound = "—" if np.isnan(r["bound"]) else f"{r['bound']:.3f}"
        lines.append(
            f"| {toy} | {model} | {r['steps']} | {r['ode_nll']:.3f} | {bound} | "
            f"{r['entropy']:.3f} | {r['mmd2']:.4f} | {r['floor']:.4f} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/diffusion_toys")
    parser.add_argument("--out", default="docs/diffusion_toys.md")
    parser.add_argument("--toys", default=",".join(TOYS))
    parser.add_argument("--models", default=",".join(CONFIGS))
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    toys = [t for t in args.toys.split(",") if t]
    models = [m for m in args.models.split(",") if m]
    bad = [t for t in toys if t not in toy2d.NAMES] + [m for m in models if m not in CONFIGS]
    if bad or not toys or not models:
        raise ValueError(
            f"--toys takes names from {list(toy2d.NAMES)} and --models from {list(CONFIGS)}; "
            f"got --toys={args.toys!r} --models={args.models!r}"
        )
    results = {}
    for toy in toys:
        for model in models:
            workdir = os.path.join(args.workdir, toy, model)
            results[toy, model] = run_one(toy, model, workdir, args.smoke)
            print(toy, model, results[toy, model], flush=True)
    text = table(results)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    return text


if __name__ == "__main__":
    print(main())
