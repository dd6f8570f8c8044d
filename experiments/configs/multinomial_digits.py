"""Multinomial diffusion on the binary 8x8 digits:
``--config=experiments/configs/multinomial_digits.py[:mlp][,smoke]``.

The binary digits (pixel >= 8 -> 1, the ``binary`` variant of
``autoregressive_digits.py``), each pixel a 2-way categorical (Hoogeboom et al. 2021). A U-Net of
``jgen.nets.unet.unet_config_for((8, 8))`` (``mlp``: a 3 x 512 ScoreMLP on the flattened one-hot
pixels) predicts ``x0`` from ``x_t`` one-hot; 1000 steps of the cosine schedule; trained on the
one-step bound estimate in bits/dim, Adam 1e-3 with cosine decay, EMA 0.999, the state with the
best validation bound kept. The test NLL is the variational bound summed over every step, in nats
per image, an upper bound on ``-log P(x)`` comparable with the autoregressive models' exact NLL
and the binary VAE's.
"""

import ml_collections

from experiments.configs import default
from experiments.configs.ddpm_digits import shrink_unet_for_smoke
from experiments.configs.ebm_toy2d import parse_parts
from experiments.configs.vae_digits import digits_training
from jgen.nets.unet import unet_config_for


def model_config(**overrides) -> ml_collections.ConfigDict:
    """The ``model`` block of multinomial diffusion (fields:
    ``jgen.models.multinomial_diffusion``)."""
    unet = unet_config_for((8, 8))
    fields = dict(
        name="multinomial_diffusion",
        num_categories=2,
        architecture="unet",
        hidden_sizes=(512, 512, 512),  # mlp
        embedding_dim=64,  # mlp
        channels=unet["channels"],  # unet
        channel_mults=tuple(unet["channel_mults"]),
        num_res_blocks=unet.get("num_res_blocks", 2),
        dropout=unet.get("dropout", 0.0),
        num_groups=unet.get("num_groups", 8),
        diffusion_steps=1000,
        schedule="cosine",
        eval_vlb="exact",
    )
    fields.update(overrides)
    return ml_collections.ConfigDict(fields)


def get_config(arg: str | None = None):
    parts = parse_parts("multinomial_digits", arg, ("mlp",))
    c = default.get_config()
    with c.unlocked():
        c.model = model_config(architecture="mlp" if "mlp" in parts else "unet")
    c.model.lock()
    digits_training(c, binary=True)
    c.optim.ema_decay = 0.999
    c.train.num_steps = 10_000
    c.train.eval_every = 1_000
    if "smoke" in parts:
        c = shrink_unet_for_smoke(c)
        c.model.hidden_sizes, c.model.embedding_dim = (32, 32), 16
    return c
