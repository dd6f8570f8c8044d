"""RealNVP on the two moons: the demo experiment (``make demo``)."""

from experiments.configs import default


def get_config(arg: str | None = None):
    c = default.get_config()
    c.data.source, c.data.name = "toy2d", "moons"
    c.model.num_layers = 8
    c.model.hidden_sizes = (64, 64)
    c.train.num_steps = 4_000
    c.train.eval_every = 1_000
    c.train.sample_every = 2_000
    return default.shrink_for_smoke(c) if arg == "smoke" else c
