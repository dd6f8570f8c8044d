"""DDPM on MNIST (28x28) or CIFAR-10 (32x32) from TFDS (prepare them once, see README), sized for
one GPU: ``--config=experiments/configs/ddpm_images.py:DATASET[,conditional][,cosine][,ddim]
[,smoke]``.

DATASET: ``mnist`` (default) or ``cifar10``; 8-bit pixels ``x / 255`` modelled on ``[-1, 1]``.
Ho et al. 2020's CIFAR-10 recipe: the U-Net of ``jgen.nets.unet.unet_config_for`` (35.7 M
parameters at 32x32, dropout 0.1; 28x28: 64 channels, levels 28 -> 14 -> 7), 1000 steps of the
linear schedule (``cosine``: Nichol & Dhariwal's), the simple loss, Adam 2e-4 with 5000 warm-up
steps, batch 128, EMA 0.9999, 800,000 steps on CIFAR-10 (200,000 on MNIST); ancestral sampling
with ``beta_t`` (``ddim``: 50 DDIM steps). The test NLL is the variational bound over all 1000
steps with the Gaussian decoder discretised into the 256 levels, in bits/dim (Ho et al. report
<= 3.70 on CIFAR-10; evaluation over 1000 steps is expensive: ``eval_every`` is sparse).
``conditional``: class labels with classifier-free guidance (label dropout 0.1, ``w = 1``).
"""

from experiments.configs import default
from experiments.configs.ddpm_digits import shrink_unet_for_smoke, unet_model
from experiments.configs.ddpm_toy2d import with_options
from experiments.configs.ebm_toy2d import parse_parts

DATASETS = {"mnist": (28, 28), "cifar10": (32, 32)}


def get_config(arg: str | None = None):
    parts = parse_parts("ddpm_images", arg, (*DATASETS, "conditional", "cosine", "ddim"))
    name = next((p for p in parts if p in DATASETS), "mnist")
    c = default.get_config()
    with c.unlocked():
        c.model = unet_model(DATASETS[name], num_bins=256)
    c.data.source, c.data.name = "tfds", name
    c.data.num_train, c.data.num_validation, c.data.num_test = 50_000, 10_000, 10_000
    if name == "cifar10":
        c.data.num_train, c.data.num_validation = 45_000, 5_000
    if "conditional" in parts:
        c.data.labels, c.model.num_classes = True, 10
    c = with_options(c, parts)
    c.optim.learning_rate = 2e-4
    c.optim.warmup_steps = 5_000
    c.optim.schedule = "constant"
    c.optim.ema_decay = 0.9999
    c.train.num_steps = 800_000 if name == "cifar10" else 200_000
    c.train.batch_size = 128
    c.train.eval_batch_size = 256
    c.train.log_every = 500
    c.train.eval_every = 100_000
    c.train.sample_every = 20_000
    c.train.checkpoint_every = 10_000
    c.train.num_samples = 64
    if "smoke" in parts:
        c = shrink_unet_for_smoke(c)
        # three levels: attention at 7x7 costs a tenth of a step of one 28x28 level on a CPU
        c.model.channel_mults, c.model.attention_resolutions = (1, 2, 2), ()
        c.model.sample_steps = 5
    return c
