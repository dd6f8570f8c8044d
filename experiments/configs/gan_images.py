"""DCGAN on MNIST (28x28) or CIFAR-10 (32x32) from TFDS (prepare them once, see README), sized for
one GPU: ``--config=experiments/configs/gan_images.py:DATASET[,LOSS][,REGULARISER...]
[,conditional][,smoke]``.

DATASET: ``mnist`` (default) or ``cifar10``; 8-bit pixels ``x / 255`` in ``[0, 1]``, modelled on
``[-1, 1]``. 64 base channels, batch 64, Adam 2e-4 (0.5, 0.999) as in Radford et al. 2016; LOSS
and REGULARISER as in ``gan_toy2d.py``.
"""

from experiments.configs import default
from experiments.configs.gan_toy2d import gan_defaults, model_config, parse_options, with_options

DATASETS = ("mnist", "cifar10")


def get_config(arg: str | None = None):
    parts, loss = parse_options("gan_images", arg, DATASETS, ("conditional",))
    name = next((p for p in parts if p in DATASETS), "mnist")
    c = gan_defaults(default.get_config())
    with c.unlocked():
        c.model = model_config(architecture="dcgan", latent_dim=100, features=64)
    c.data.source, c.data.name = "tfds", name
    c.data.num_train, c.data.num_validation, c.data.num_test = 50_000, 10_000, 10_000
    if name == "cifar10":
        c.data.num_train, c.data.num_validation = 45_000, 5_000
    if "conditional" in parts:
        c.data.labels, c.model.num_classes = True, 10
    c.optim.learning_rate = 2e-4
    c.optim.ema_decay = 0.999
    c.train.num_steps = 100_000
    c.train.batch_size = 64
    c.train.eval_batch_size = 256
    c.train.log_every = 500
    c.train.eval_every = 5_000
    c.train.sample_every = 10_000
    c.train.checkpoint_every = 5_000
    c.train.num_samples = 64
    c = with_options(c, parts, loss, r1_gamma=10.0)
    if "smoke" in parts:
        c = default.shrink_for_smoke(c)
        c.train.batch_size = 16 * c.model.disc_steps
        c.model.features = 8
        c.train.num_samples = 16
    return c
