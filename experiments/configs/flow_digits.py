"""RealNVP on the continuous (dequantized) 8x8 digits, reported in nats and bits/dim."""

from experiments.configs import default


def get_config(arg: str | None = None):
    c = default.get_config()
    c.data.source, c.data.name, c.data.variant = "digits", "digits", "continuous"
    c.data.num_levels = 17
    c.model.num_layers = 8
    c.model.hidden_sizes = (64, 64)
    c.model.logit_alpha = 0.05
    c.optim.name, c.optim.weight_decay = "adamw", 1e-3
    c.optim.ema_decay = 0.999
    c.train.num_steps = 2_500  # validation NLL rises after ~2,500 steps on 1,000 images
    c.train.batch_size = 128
    c.train.eval_batch_size = 128
    c.train.eval_every = 500
    c.train.sample_every = 1_000
    c.train.num_samples = 64
    return default.shrink_for_smoke(c) if arg == "smoke" else c
