"""Glow on dequantized CIFAR-10 (TFDS; prepare it once, see README), in bits/dim: sized for one
GPU (3 scales of 32 steps, 512-channel conv couplings, as in Kingma & Dhariwal 2018, section 5,
whose CIFAR-10 result is 3.35 bits/dim). ``:smoke`` runs a small Glow on whatever CIFAR-10 copy
``TFDS_DATA_DIR`` holds."""

from experiments.configs import default


def get_config(arg: str | None = None):
    c = default.get_config()
    c.data.source, c.data.name = "tfds", "cifar10"
    c.data.num_train, c.data.num_validation, c.data.num_test = 45_000, 5_000, 10_000
    c.data.num_levels = 256
    c.model.flow = "glow"
    c.model.num_scales, c.model.num_layers, c.model.hidden_sizes = 3, 32, (512,)
    c.model.logit_alpha = 0.05
    c.optim.learning_rate = 1e-3
    c.optim.warmup_steps = 5_000
    c.optim.ema_decay = 0.999
    c.train.num_steps = 200_000
    c.train.batch_size = 64
    c.train.eval_batch_size = 256
    c.train.log_every = 500
    c.train.eval_every = 10_000
    c.train.sample_every = 10_000
    c.train.checkpoint_every = 5_000
    c.train.num_samples = 64
    if arg == "smoke":  # two scales (one factored-out half) of one narrow step: a short compile
        c.model.num_scales, c.model.num_layers, c.model.hidden_sizes = 2, 1, (16,)
        return default.shrink_for_smoke(c)
    return c
