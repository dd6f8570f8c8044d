"""The experiment layer's one dispatch: config strings to a dataset and a model, then the loop."""

import json
import os

from experiments import datasets
from jgen.checks import check_choice
from jgen.models import (
    autoregressive,
    dbn,
    ddpm,
    ebm,
    flow,
    gan,
    hvae,
    multinomial_diffusion,
    ncsn,
    rbm,
    score_sde,
    vae,
    vqvae,
)
from jgen.train import parallel
from jgen.train.loop import train_and_evaluate

MODELS = {
    "flow": flow.make,
    "vae": vae.make,
    "hvae": hvae.make,
    "vqvae": vqvae.make,
    "autoregressive": autoregressive.make,
    "gan": gan.make,
    "ebm": ebm.make,
    "rbm": rbm.make,
    "dbn": dbn.make,
    "ddpm": ddpm.make,
    "ncsn": ncsn.make,
    "score_sde": score_sde.make,
    "multinomial_diffusion": multinomial_diffusion.make,
}


def run(config, workdir: str) -> dict:
    """Builds the data and the model that ``config`` names and trains them in ``workdir``.

    Returns the final test metrics (see ``jgen.train.loop.train_and_evaluate``).
    """
    if config.parallel.distributed:
        p = config.parallel
        parallel.initialize_distributed(
            p.coordinator_address or None,
            p.num_processes if p.num_processes > 0 else None,
            p.process_id if p.process_id >= 0 else None,
        )
    check_choice("model.name", config.model.name, MODELS)
    data = datasets.load(config.data, config.seed)
    trainer = MODELS[config.model.name](config, data.event_shape)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json(indent=2))
    return train_and_evaluate(config, workdir, trainer=trainer, data=data)


def summary(final: dict, workdir: str) -> str:
    """A human-readable report of a finished run: the final metrics and where the files are."""
    lines = [f"Run directory: {os.path.abspath(workdir)}"]
    text = os.path.exists(os.path.join(workdir, "samples.txt"))
    samples = "samples.txt" if text else "samples.png"
    for name in (samples, "loss.png", "metrics.jsonl", "tensorboard", "checkpoints"):
        lines.append(f"  {name:<14} {os.path.join(workdir, name)}")
    lines.append("Final metrics:")
    lines += [f"  {k:<28} {v:.4f}" for k, v in final.items()]
    if "test/true_entropy" in final and "test/nll" in final:
        gap = final["test/nll"] - final["test/true_entropy"]
        lines.append(f"  test NLL - true entropy = {gap:.4f} nats")
    return "\n".join(lines) + "\n" + json.dumps(final)
