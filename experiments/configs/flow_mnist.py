"""RealNVP with MLP couplings on dequantized MNIST (TFDS; prepare it once, see README), reported in
nats and bits/dim. The smoke variant runs on whatever small MNIST copy ``TFDS_DATA_DIR`` holds."""

from experiments.configs import default


def get_config(arg: str | None = None):
    c = default.get_config()
    c.data.source, c.data.name = "tfds", "mnist"
    c.data.num_train, c.data.num_validation, c.data.num_test = 50_000, 10_000, 10_000
    c.data.num_levels = 256
    c.model.num_layers = 8
    c.model.hidden_sizes = (1024, 1024)
    c.model.logit_alpha = 0.05
    c.optim.learning_rate = 1e-4
    c.optim.ema_decay = 0.999
    c.train.num_steps = 100_000
    c.train.batch_size = 128
    c.train.eval_batch_size = 512
    c.train.log_every = 500
    c.train.eval_every = 5_000
    c.train.sample_every = 10_000
    c.train.checkpoint_every = 5_000
    c.train.num_samples = 64
    return default.shrink_for_smoke(c) if arg == "smoke" else c
