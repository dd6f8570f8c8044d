"""One DDPM on the continuous digits: bits/dim by the variational bound and by the probability-flow
ODE of the same network, and sample quality against the number of network evaluations.

    python experiments/diffusion_digits.py
        [--workdir=runs/compare/ddpm_1000_ancestral_steps/digits] [--out=docs/diffusion_digits.md]
        [--grid=docs/images/ddpm_digits.png] [--samplers=NAME,...] [--smoke]

The model is ``experiments/configs/ddpm_digits.py`` (trained in ``--workdir``, or restored from it:
the default is the run of ``compare.py --only="DDPM (1000 ancestral steps)"``). Its test NLL
comes two ways, both upper bounds on the NLL of the discrete digits (17 levels):

* the variational bound over all 1000 steps with the discretised decoder (the trainer's
  ``evaluate``, at the levels themselves);
* the probability-flow ODE of the same network read as the VP SDE
  (:func:`jgen.models.score_sde.ddpm_as_vp`) at the levels spread uniformly over their decoder
  bins (width ``2 / 16`` on the model's ``[-1, 1]`` scale, the dequantization the model was
  trained on): ``-log P(k) <= E_u[-log p(x_k + u)] + D log 8`` (Theis et al. 2016), computed by
  :func:`jgen.samplers.ode.ode_nll` with ``num_levels = 16`` and ``data_scale = 2``, dopri5 at
  tolerances 1e-5 and Hutchinson's divergence (one Rademacher probe per image; unbiased for the
  mean).

Samplers (``SAMPLERS``): ancestral over all 1000 steps; DDIM (``eta = 0``) on 100 / 50 / 20 / 10
evenly spaced steps; the respaced ancestral chain (DDIM with ``eta = 1`` on 50 steps: step
skipping with the posterior variances, Nichol & Dhariwal 2021); predictor–corrector on the VP SDE
(reverse diffusion + one Langevin step at snr 0.16, 100 and 50 steps); the probability-flow ODE
with adaptive dopri5 (its counted evaluations). Each draws 1000 samples, rounded to the nearest
level, scored by FID / KID against the test digits with the digits classifier's features (as
``compare.py``); NFE counts network evaluations per sample.
"""

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments.compare import (  # noqa: E402
    NUM_SAMPLES,
    nearest_level,
    sample_quality,
    train_and_restore,
)
from experiments.configs import ddpm_digits  # noqa: E402
from jgen.data import digits  # noqa: E402
from jgen.metrics import digits_classifier  # noqa: E402
from jgen.models import ddpm  # noqa: E402
from jgen.models.score_sde import ddpm_as_vp  # noqa: E402
from jgen.samplers.ode import ode_nll, sample_probability_flow  # noqa: E402
from jgen.samplers.sde import sample_sde  # noqa: E402
from jgen.train import plots  # noqa: E402

#: name -> (kind, options); kinds: "ddpm" (the trainer's sampler with these model fields),
#: "pc" (predictor–corrector steps), "ode" (dopri5 tolerance).
SAMPLERS = {
    "ancestral 1000": ("ddpm", {"sampler": "ancestral"}),
    "DDIM 100": ("ddpm", {"sampler": "ddim", "sample_steps": 100, "eta": 0.0}),
    "DDIM 50": ("ddpm", {"sampler": "ddim", "sample_steps": 50, "eta": 0.0}),
    "DDIM 20": ("ddpm", {"sampler": "ddim", "sample_steps": 20, "eta": 0.0}),
    "DDIM 10": ("ddpm", {"sampler": "ddim", "sample_steps": 10, "eta": 0.0}),
    "respaced ancestral 50 (DDIM eta 1)": (
        "ddpm",
        {"sampler": "ddim", "sample_steps": 50, "eta": 1.0},
    ),
    "PC 100 (reverse diffusion + Langevin)": ("pc", {"n_steps": 100}),
    "PC 50 (reverse diffusion + Langevin)": ("pc", {"n_steps": 50}),
    "probability-flow ODE (dopri5 tol 1e-3)": ("ode", {"tolerance": 1e-3}),
}
SMOKE_STEPS = {"sample_steps": 5, "n_steps": 5}


def sampler_fn(config, state, kind: str, options: dict, smoke: bool):
    """A jitted ``sample(key) -> (NUM_SAMPLES images (n, 8, 8) in [0, 1], network evaluations per
    sample)``."""
    event_shape = digits.IMAGE_SHAPE
    shape = (NUM_SAMPLES, *event_shape)
    if kind == "ddpm":
        c = ddpm_digits.get_config("smoke" if smoke else "")
        c.model.update(options)
        if smoke:
            c.model.sample_steps = SMOKE_STEPS["sample_steps"]
        trainer = ddpm.make(c, event_shape)
        nfe = c.model.diffusion_steps if c.model.sampler == "ancestral" else c.model.sample_steps
        return jax.jit(lambda key: (trainer.sample(state, key, NUM_SAMPLES), nfe))
    sde, score = ddpm_as_vp(config, event_shape, state.ema)
    if kind == "pc":
        n_steps = SMOKE_STEPS["n_steps"] if smoke else options["n_steps"]

        def pc(key):
            x, _ = sample_sde(
                sde,
                score,
                key,
                shape,
                n_steps=n_steps,
                predictor="reverse_diffusion",
                corrector="langevin",
                snr=0.16,
            )
            return to_images(x), 2 * n_steps

        return jax.jit(pc)

    def ode(key):
        tol = options["tolerance"]
        x, info = sample_probability_flow(
            sde, score, key, shape, method="dopri5", rtol=tol, atol=tol
        )
        return to_images(x), info["nfe"]

    return jax.jit(ode)


def to_images(x: jax.Array) -> jax.Array:
    """Model space ``[-1, 1]`` to images in ``[0, 1]``."""
    return jnp.clip((x + 1.0) / 2.0, 0.0, 1.0)


def ode_bits_per_dim(config, state, x: np.ndarray, key) -> tuple[float, float, int]:
    """Mean and standard error of the ODE bound in bits/dim on clean digits ``x`` (module
    docstring), and the solver's evaluations of the score."""
    sde, score = ddpm_as_vp(config, x.shape[1:], state.ema)
    noise_key, probe_key = jax.random.split(key)
    bin_width = 2.0 / (config.model.num_bins - 1)
    u = jax.random.uniform(noise_key, x.shape) - 0.5
    model_x = 2.0 * jnp.asarray(x) - 1.0 + bin_width * u

    @jax.jit
    def nll(model_x):
        return ode_nll(
            sde,
            score,
            model_x,
            probe_key,
            num_levels=config.model.num_bins - 1,
            data_scale=2.0,
            divergence="hutchinson",
            method="dopri5",
            rtol=1e-5,
            atol=1e-5,
            eps=1e-5,
        )

    _, bpd, info = nll(model_x)
    bpd = np.asarray(bpd, np.float64)
    return float(bpd.mean()), float(bpd.std() / math.sqrt(len(bpd))), int(info["nfe"])


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/compare/ddpm_1000_ancestral_steps/digits")
    parser.add_argument("--out", default="docs/diffusion_digits.md")
    parser.add_argument("--grid", default="docs/images/ddpm_digits.png")
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    names = [n for n in args.samplers.split(",") if n]
    unknown = [n for n in names if n not in SAMPLERS]
    if unknown or not names:
        raise ValueError(f"--samplers takes names from {list(SAMPLERS)}; got {args.samplers!r}")
    config = ddpm_digits.get_config("smoke" if args.smoke else "")
    _, state, _, final = train_and_restore(config, args.workdir)
    test = digits.load("clean", "test")[0]
    if args.smoke:
        test = test[:16]
    ode_bpd, ode_se, ode_nfe = ode_bits_per_dim(config, state, test, jax.random.key(4))
    classifier = digits_classifier.load()
    reference = digits.load("clean", "test")[0]
    rows = []
    for i, name in enumerate(names):
        kind, options = SAMPLERS[name]
        sample = sampler_fn(config, state, kind, options, args.smoke)
        key = jax.random.key(10 + i)
        compiled = sample.lower(key).compile()  # ahead of time: the timing below is sampling
        start = time.perf_counter()
        images, nfe = jax.block_until_ready(compiled(key))
        seconds = time.perf_counter() - start
        images, nfe = np.asarray(images), int(nfe)
        clean = nearest_level(images)
        f, kid, kid_std = sample_quality(classifier, clean, reference, jax.random.key(2))
        rows.append((name, nfe, f, kid, kid_std, seconds))
        print(rows[-1], flush=True)
        if i == 0 and args.grid:
            os.makedirs(os.path.dirname(os.path.abspath(args.grid)), exist_ok=True)
            plots.save_samples(args.grid, clean[:100], cols=10)
    text = report(args, config, final, (ode_bpd, ode_se, ode_nfe), rows)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    return text


def report(args, config, final: dict, ode: tuple, rows: list) -> str:
    """The markdown page."""
    ode_bpd, ode_se, ode_nfe = ode
    lines = [
        "# DDPM on the digits: bits/dim two ways, sample quality against network evaluations",
        "",
        f"`python experiments/diffusion_digits.py{' --smoke' if args.smoke else ''}` (module "
        "docstring). Model: `experiments/configs/ddpm_digits.py` "
        f"({config.train.num_steps} steps, {config.model.diffusion_steps} diffusion steps), "
        f"restored from `{args.workdir}`.",
        "",
        "| test NLL of the discrete digits (447 images) | bits/dim | nats/image |",
        "| --- | ---: | ---: |",
        f"| variational bound, {config.model.diffusion_steps} steps, discretised decoder | "
        f"{final['test/bits_per_dim']:.3f} | {final['test/nll']:.2f} |",
        f"| probability-flow ODE, uniform dequantization within the bins (dopri5 1e-5, "
        f"Hutchinson; {ode_nfe} score evaluations) | {ode_bpd:.3f} ± {ode_se:.3f} | "
        f"{ode_bpd * 64 * math.log(2):.2f} |",
        "",
        "1000 samples per sampler, rounded to the nearest level, against the 447 test digits "
        "(digits-classifier features, as RESULTS.md; KID mean ± std over 100 subsets). Wall "
        "seconds on "
        f"{os.cpu_count()} CPU cores, other jobs sharing them.",
        "",
        "| sampler | NFE | FID | KID | sample 1000 (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, nfe, f, kid, kid_std, seconds in rows:
        lines.append(f"| {name} | {nfe} | {f:.1f} | {kid:.3g} ± {kid_std:.2g} | {seconds:.0f} |")
    if args.grid:
        lines += ["", f"First sampler's samples: `{args.grid}`."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(main())
