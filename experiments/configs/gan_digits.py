"""DCGAN on the 8x8 digits: ``--config=experiments/configs/gan_digits.py[:LOSS][,REGULARISER...]
[,conditional][,mlp][,smoke]``.

The clean digits ``x / 16`` in ``[0, 1]`` (DATA.md's images for FID; modelled on ``[-1, 1]``),
a DCGAN generator 4x4 -> 8x8 and a strided-conv discriminator (Radford et al. 2016), 32 base
channels. LOSS and REGULARISER as in ``gan_toy2d.py`` (default non-saturating, no
regulariser); ``conditional``: labelled digits, a class-conditional generator and a projection
discriminator (Miyato & Koyama 2018); ``mlp``: MLP players instead (3 x 256). The generator's
weights are averaged (EMA 0.999) for sampling.
"""

from experiments.configs import default
from experiments.configs.gan_toy2d import gan_defaults, model_config, parse_options, with_options


def get_config(arg: str | None = None):
    parts, loss = parse_options("gan_digits", arg, (), ("conditional", "mlp"))
    c = gan_defaults(default.get_config())
    with c.unlocked():
        c.model = model_config(architecture="dcgan", latent_dim=32, features=32)
    c.data.source, c.data.name, c.data.variant = "digits", "digits", "clean"
    if "mlp" in parts:
        c.model.architecture, c.model.hidden_sizes = "mlp", (256, 256, 256)
    if "conditional" in parts:
        c.data.labels, c.model.num_classes = True, 10
    c.optim.learning_rate = 2e-4
    c.optim.ema_decay = 0.999
    c.train.num_steps = 10_000
    c.train.batch_size = 64
    c.train.eval_batch_size = 256
    c.train.log_every = 200
    c.train.eval_every = 2_000
    c.train.sample_every = 2_000
    c.train.checkpoint_every = 2_000
    c.train.num_samples = 100
    c = with_options(c, parts, loss, r1_gamma=1.0)
    if "smoke" in parts:
        c = default.shrink_for_smoke(c)
        c.train.batch_size = 16 * c.model.disc_steps
        c.model.features, c.model.hidden_sizes = 8, (16,)
        c.train.num_samples = 16
    return c
