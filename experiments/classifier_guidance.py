"""Classifier guidance through a noisy classifier (Dhariwal & Nichol 2021) on the digits: an
unconditional DDPM steered towards each class by the gradient of a time-conditioned classifier.

    python experiments/classifier_guidance.py
        [--workdir=runs/compare/ddpm_1000_ancestral_steps/digits]
        [--out=docs/classifier_guidance.md] [--grid=docs/images/ddpm_digits_guided.png]
        [--scales=0,1,3,10] [--smoke]

The DDPM is ``experiments/configs/ddpm_digits.py`` (trained in ``--workdir`` or restored from it;
the default is the run of ``compare.py --only="DDPM (1000 ancestral steps)"``). The noisy
classifier ``p(y | x_t, t)`` is :class:`jgen.nets.score_mlp.ScoreMLP` with ``num_outputs = 10``
(3 x 256 swish, sinusoidal step embedding), trained by
:func:`jgen.losses.classifier_guidance.noisy_classifier_loss` on the labelled training digits
noised by the DDPM's own schedule (Adam 1e-3, ``CLASSIFIER_STEPS`` steps of 128). Sampling is DDIM
(``eta = 0``, 50 steps) with ``eps_hat = eps - s sqrt(1 - abar_t) grad log p(y | x_t)``
(:func:`jgen.losses.classifier_guidance.classifier_guidance`), 100 samples per class for each
scale ``s``. Reported: the noisy classifier's test accuracy at a few steps; per scale, the share of
samples the clean digits classifier (test accuracy 0.96) assigns to the requested class, and FID /
KID of the 1000 samples against the test digits (as ``compare.py``).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from experiments.compare import (  # noqa: E402
    NUM_SAMPLES,
    nearest_level,
    sample_quality,
    train_and_restore,
)
from experiments.configs import ddpm_digits  # noqa: E402
from jgen.data import digits  # noqa: E402
from jgen.losses.classifier_guidance import classifier_guidance, noisy_classifier_loss  # noqa: E402
from jgen.metrics import digits_classifier  # noqa: E402
from jgen.models import ddpm  # noqa: E402
from jgen.nets.score_mlp import ScoreMLP  # noqa: E402
from jgen.samplers.ddim import ddim_sample, ddim_timesteps  # noqa: E402
from jgen.samplers.ddpm import q_sample  # noqa: E402
from jgen.sdes import schedules  # noqa: E402
from jgen.train import plots  # noqa: E402

NUM_CLASSES = 10
CLASSIFIER_STEPS = 4000
DDIM_STEPS = 50
#: where the noisy classifier's accuracy is reported, as fractions of the diffusion steps
ACCURACY_AT = (0.0, 0.1, 0.3, 0.6)


def train_noisy_classifier(abar: jax.Array, num_steps: int, key) -> tuple[ScoreMLP, dict]:
    """A ScoreMLP classifier of ``x_t`` (model space ``[-1, 1]``) and its parameters."""
    images, labels = digits.load("clean", "train")
    x0 = jnp.asarray(2.0 * images - 1.0)
    labels = jnp.asarray(labels)
    net = ScoreMLP((256, 256, 256), 64, num_outputs=NUM_CLASSES)
    init_key, key = jax.random.split(key)
    params = net.init(init_key, x0[:2], jnp.zeros(2, jnp.int32))["params"]
    optimizer = optax.adam(1e-3)

    def loss(params, x, y, k):
        logits = lambda x_t, t: net.apply({"params": params}, x_t, t.astype(x_t.dtype))  # noqa: E731
        return jnp.mean(noisy_classifier_loss(logits, x, y, k, abar))

    @jax.jit
    def train(params, key):
        def step(carry, k):
            params, opt_state = carry
            batch_key, loss_key = jax.random.split(k)
            i = jax.random.randint(batch_key, (128,), 0, len(x0))
            grads = jax.grad(loss)(params, x0[i], labels[i], loss_key)
            updates, opt_state = optimizer.update(grads, opt_state)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, _), _ = jax.lax.scan(
            step, (params, optimizer.init(params)), jax.random.split(key, num_steps)
        )
        return params

    return net, train(params, key)


def noisy_accuracy(net, params, abar: jax.Array, key) -> dict[int, float]:
    """Test accuracy of the noisy classifier on ``q(x_t | x_0)`` at the steps ``ACCURACY_AT``."""
    images, labels = digits.load("clean", "test")
    x0 = jnp.asarray(2.0 * images - 1.0)
    result = {}
    for t in (int(f * len(abar)) for f in ACCURACY_AT):
        steps = jnp.full((len(x0),), t, jnp.int32)
        x_t = q_sample(x0, steps, jax.random.normal(jax.random.fold_in(key, t), x0.shape), abar)
        logits = net.apply({"params": params}, x_t, steps.astype(x_t.dtype))
        result[t] = float(jnp.mean(jnp.argmax(logits, -1) == labels))
    return result


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/compare/ddpm_1000_ancestral_steps/digits")
    parser.add_argument("--out", default="docs/classifier_guidance.md")
    parser.add_argument("--grid", default="docs/images/ddpm_digits_guided.png")
    parser.add_argument("--scales", default="0,1,3,10")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    try:
        scales = [float(s) for s in args.scales.split(",") if s]
    except ValueError:
        scales = []
    if not scales or min(scales) < 0:
        raise ValueError(f"--scales takes non-negative numbers a,b,...; got {args.scales!r}")
    config = ddpm_digits.get_config("smoke" if args.smoke else "")
    _, state, _, _ = train_and_restore(config, args.workdir)
    mc = config.model
    betas = ddpm.SCHEDULES[mc.schedule](mc.diffusion_steps)
    abar = schedules.alphas_cumprod(betas)
    net, params = train_noisy_classifier(
        abar, 20 if args.smoke else CLASSIFIER_STEPS, jax.random.key(0)
    )
    accuracy = noisy_accuracy(net, params, abar, jax.random.key(1))
    print("noisy classifier test accuracy by step:", accuracy, flush=True)

    module = ddpm.network(config, digits.IMAGE_SHAPE)
    eps_fn = lambda x, t: module.apply({"params": state.ema}, x, t.astype(x.dtype), None)  # noqa: E731
    logits_fn = lambda x, t: net.apply({"params": params}, x, t.astype(x.dtype))  # noqa: E731
    labels = jnp.arange(NUM_SAMPLES) % NUM_CLASSES
    timesteps = ddim_timesteps(mc.diffusion_steps, min(DDIM_STEPS, mc.diffusion_steps))

    @jax.jit
    def sample(key, scale):
        guided = classifier_guidance(eps_fn, logits_fn, labels, abar, scale)
        x, _ = ddim_sample(guided, key, (NUM_SAMPLES, *digits.IMAGE_SHAPE), abar, timesteps)
        return (x + 1.0) / 2.0

    classifier = digits_classifier.load()
    reference = digits.load("clean", "test")[0]
    rows = []
    for scale in scales:
        images = nearest_level(np.asarray(sample(jax.random.key(5), scale)))
        hit = digits_classifier.accuracy(classifier, images, np.asarray(labels))
        rows.append((scale, hit, *sample_quality(classifier, images, reference, jax.random.key(2))))
        print(rows[-1], flush=True)
        if scale == max(scales) and args.grid:
            os.makedirs(os.path.dirname(os.path.abspath(args.grid)), exist_ok=True)
            plots.save_samples(args.grid, images[:100], cols=10)
    text = report(args, accuracy, rows)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    return text


def report(args, accuracy: dict, rows: list) -> str:
    lines = [
        "# Classifier guidance on the digits",
        "",
        f"`python experiments/classifier_guidance.py{' --smoke' if args.smoke else ''}` (module "
        f"docstring): the unconditional DDPM of `{args.workdir}`, DDIM {DDIM_STEPS} steps, a "
        "noisy ScoreMLP classifier.",
        "",
        "Noisy classifier, test accuracy on `x_t ~ q(x_t | x_0)`: "
        + ", ".join(f"t = {t}: {a:.3f}" for t, a in accuracy.items())
        + ".",
        "",
        "| guidance scale s | samples classified as the requested class | FID | KID |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for scale, hit, f, kid, kid_std in rows:
        lines.append(f"| {scale:g} | {hit:.3f} | {f:.1f} | {kid:.3g} ± {kid_std:.2g} |")
    if args.grid:
        lines += [
            "",
            f"Samples at s = {max(r[0] for r in rows):g}, one class per column: `{args.grid}`.",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(main())
