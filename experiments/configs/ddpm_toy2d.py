"""DDPM on the 2-D toys: ``--config=experiments/configs/ddpm_toy2d.py:TOY[,cosine][,ddim]
[,smoke]``.

TOY is one of ``jgen.data.toy2d.NAMES`` (default ``8gaussians``). A noise predictor
(:class:`jgen.nets.score_mlp.ScoreMLP`, 3 x 256 swish with sinusoidal step embeddings) trained
with the simple loss over 1000 linear-schedule steps (``cosine``: Nichol & Dhariwal's schedule),
Adam 1e-3 with cosine decay, EMA 0.999 for sampling and evaluation; ancestral sampling over all
steps (``ddim``: DDIM with 50 steps). The test NLL is the variational bound summed over every
step (a continuous Gaussian decoder), in nats next to the true entropy.
"""

import ml_collections

from experiments.configs import default
from experiments.configs.ebm_toy2d import parse_parts
from jgen.data import toy2d


def model_config(**overrides) -> ml_collections.ConfigDict:
    """The ``model`` block of a DDPM (fields: ``jgen.models.ddpm``)."""
    fields = dict(
        name="ddpm",
        architecture="mlp",
        hidden_sizes=(256, 256, 256),
        embedding_dim=64,
        channels=32,
        channel_mults=(1, 2),
        num_res_blocks=2,
        attention_resolutions=(),
        dropout=0.0,
        num_groups=8,
        num_classes=0,
        label_dropout=0.1,
        guidance=1.0,
        diffusion_steps=1000,
        schedule="linear",
        weighting="simple",
        variance="beta",
        sampler="ancestral",
        sample_steps=50,
        eta=0.0,
        num_bins=0,
        dequantize=False,
        eval_vlb="exact",
    )
    fields.update(overrides)
    return ml_collections.ConfigDict(fields)


def with_options(c: ml_collections.ConfigDict, parts: list[str]) -> ml_collections.ConfigDict:
    """``cosine``: the cosine schedule; ``ddim``: DDIM sampling."""
    if "cosine" in parts:
        c.model.schedule = "cosine"
    if "ddim" in parts:
        c.model.sampler = "ddim"
    return c


def get_config(arg: str | None = None):
    parts = parse_parts("ddpm_toy2d", arg, (*toy2d.NAMES, "cosine", "ddim"))
    c = default.get_config()
    with c.unlocked():
        c.model = model_config()
    c.data.source = "toy2d"
    c.data.name = next((p for p in parts if p in toy2d.NAMES), "8gaussians")
    c = with_options(c, parts)
    c.optim.learning_rate = 1e-3
    c.optim.ema_decay = 0.999
    c.train.num_steps = 10_000
    c.train.batch_size = 256
    c.train.log_every = 200
    c.train.eval_every = 5_000
    c.train.sample_every = 5_000
    c.train.checkpoint_every = 5_000
    c.train.num_samples = 2_000
    if "smoke" in parts:
        c = default.shrink_for_smoke(c)
        c.model.hidden_sizes, c.model.embedding_dim = (16, 16), 8
        c.model.diffusion_steps, c.model.sample_steps = 20, 5
    return c
