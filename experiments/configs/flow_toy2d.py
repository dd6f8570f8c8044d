"""RealNVP on any 2-D toy: ``--config=experiments/configs/flow_toy2d.py:NAME[,smoke]``.

NAME is one of ``jgen.data.toy2d.NAMES`` (default ``8gaussians``); the run reports the test NLL
beside the true entropy of the toy.
"""

from experiments.configs import default


def get_config(arg: str | None = None):
    parts = [p for p in (arg or "").split(",") if p]
    smoke = "smoke" in parts
    names = [p for p in parts if p != "smoke"]
    c = default.get_config()
    c.data.source, c.data.name = "toy2d", names[0] if names else "8gaussians"
    c.model.num_layers = 10
    c.model.hidden_sizes = (128, 128)
    c.train.num_steps = 10_000
    c.train.eval_every = 2_000
    c.train.sample_every = 5_000
    return default.shrink_for_smoke(c) if smoke else c
