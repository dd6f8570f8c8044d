"""Pictures of a trained VAE run: decoder means of prior samples, and spherical interpolations
between the encodings of test digits.

    python experiments/vae_pictures.py --workdir=runs/vae [--out=DIR]

Reads ``config.json`` and the selected (``best/``) or last checkpoint of the run; writes
``samples_mean.png`` (64 decoder means) and ``interpolations.png`` (8 rows of 10 steps).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from experiments import datasets  # noqa: E402
from jgen.data.batching import take  # noqa: E402
from jgen.data.dataset import inputs  # noqa: E402
from jgen.models import latent_space, vae  # noqa: E402
from jgen.models.latent_variable import likelihood_from_config  # noqa: E402
from jgen.train import checkpoint, plots  # noqa: E402
from jgen.train.state import eval_params  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", default=None, help="directory for the PNGs (default: workdir)")
    args = parser.parse_args()
    out = args.out or args.workdir
    with open(os.path.join(args.workdir, "config.json")) as f:
        config = ml_collections.ConfigDict(json.load(f))
    if config.model.name != "vae":
        raise ValueError(f"{args.workdir} holds a {config.model.name!r} run; this draws VAEs")
    data = datasets.load(config.data, config.seed)
    trainer = vae.make(config, data.event_shape)
    like = trainer.init(jax.random.key(0), take(data.train, slice(0, 2)))
    selected = os.path.isdir(os.path.join(args.workdir, "best"))
    directory = os.path.join(args.workdir, "best" if selected else "checkpoints")
    state, step = checkpoint.restore_latest(checkpoint.make_manager(directory, 1), like)
    params = {"params": eval_params(state)}
    likelihood = likelihood_from_config(config.model, config.data.num_levels)
    module = vae.VAE(
        tuple(data.event_shape),
        config.model.latent_dim,
        tuple(config.model.hidden_sizes),
        likelihood.outputs_per_dim,
    )

    def mean_images(z):
        x = likelihood.mean(module.apply(params, z, method="decode"))
        return np.asarray((x + 1.0) / 2.0 if config.model.decoder == "logistic" else x)

    z = jax.random.normal(jax.random.key(1), (64, config.model.latent_dim))
    plots.save_samples(os.path.join(out, "samples_mean.png"), mean_images(z))
    test = jnp.asarray(inputs(data.test))[:16]
    if config.model.decoder == "logistic":
        test = 2.0 * jnp.round(test * config.data.num_levels) / (config.data.num_levels - 1) - 1
    codes, _ = module.apply(params, test, method="encode")
    rows = [latent_space.interpolate(codes[2 * i], codes[2 * i + 1], 10) for i in range(8)]
    plots.save_samples(
        os.path.join(out, "interpolations.png"), mean_images(jnp.concatenate(rows)), cols=10
    )
    print(f"step {step} of {args.workdir}: wrote samples_mean.png and interpolations.png to {out}")


if __name__ == "__main__":
    main()
