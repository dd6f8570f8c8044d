"""DDPM on the 8x8 digits: ``--config=experiments/configs/ddpm_digits.py[:conditional][,cosine]
[,ddim][,smoke]``.

The clean digits ``x / 16`` (17 levels, modelled on ``[-1, 1]``), a U-Net of
``jgen.nets.unet.unet_config_for((8, 8))`` (32 channels, levels 8 -> 4, attention at 4x4; 1.0 M
parameters), 1000 steps of the scaled linear schedule (``cosine``: Nichol & Dhariwal's), the
simple loss on the levels spread over their bins (``model.dequantize``, so that the
probability-flow ODE of the same network bounds the discrete NLL too), Adam 2e-4 with cosine
decay over 6000 steps of 128, EMA 0.999, reverse variances ``beta_t``. The test NLL is
the variational bound over every step with a Gaussian decoder discretised into the 17 levels, so
it is the NLL of the discrete digits (comparable with the flows' ``nll_discrete``). ``ddim``: 50
DDIM steps instead of 1000 ancestral ones; ``conditional``: labelled digits, the label dropped
with probability 0.1, classifier-free guidance ``w = 1`` (Ho & Salimans 2022).
"""

from experiments.configs import default
from experiments.configs.ddpm_toy2d import model_config, with_options
from experiments.configs.ebm_toy2d import parse_parts
from jgen.nets.unet import unet_config_for


def get_config(arg: str | None = None):
    parts = parse_parts("ddpm_digits", arg, ("conditional", "cosine", "ddim"))
    c = default.get_config()
    with c.unlocked():
        c.model = unet_model((8, 8), num_bins=17, dequantize=True)
    c.data.source, c.data.name, c.data.variant = "digits", "digits", "clean"
    if "conditional" in parts:
        c.data.labels, c.model.num_classes = True, 10
    c = with_options(c, parts)
    c.optim.learning_rate = 2e-4
    c.optim.ema_decay = 0.999
    c.train.num_steps = 6_000
    c.train.batch_size = 128
    c.train.eval_batch_size = 256
    c.train.log_every = 200
    c.train.eval_every = 3_000
    c.train.sample_every = 2_000
    c.train.checkpoint_every = 2_000
    c.train.num_samples = 100
    if "smoke" in parts:
        c = shrink_unet_for_smoke(c)
        c.model.sample_steps = 5
    return c


def unet_model(image_shape: tuple[int, ...], **overrides):
    """The ``model`` block of a DDPM with the U-Net of ``unet_config_for(image_shape)``."""
    unet = unet_config_for(image_shape)
    return model_config(
        architecture="unet",
        channels=unet["channels"],
        channel_mults=tuple(unet["channel_mults"]),
        num_res_blocks=unet.get("num_res_blocks", 2),
        attention_resolutions=tuple(unet.get("attention_resolutions") or ()),
        num_groups=unet.get("num_groups", 8),
        dropout=unet.get("dropout", 0.0),
        **overrides,
    )


def shrink_unet_for_smoke(c):
    """The smoke variant of a U-Net diffusion on the digits: ``default.shrink_for_smoke``, the
    small U-Net of ``unet_config_for`` on one level (res blocks and attention, a shorter
    compile), 20 diffusion steps, batches of 16."""
    c = default.shrink_for_smoke(c)
    small = unet_config_for((8, 8), small=True)
    c.model.channels, c.model.num_res_blocks = small["channels"], small["num_res_blocks"]
    c.model.num_groups = small["num_groups"]
    c.model.channel_mults = (1,)
    c.model.diffusion_steps = 20
    c.train.batch_size, c.train.num_samples = 16, 16
    return c
