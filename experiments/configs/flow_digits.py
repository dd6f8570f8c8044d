"""A flow on the continuous (dequantized) 8x8 digits, in nats and bits/dim:
``--config=experiments/configs/flow_digits.py[:FLOW][,variational][,smoke]`` with FLOW one of
``realnvp`` (default), ``glow`` (multi-scale, conv couplings), ``maf``, ``spline``,
``spline_ar`` or any other family of ``jgen.models.flow.FAMILIES`` (with the default sizes);
``variational`` trains a variational dequantizer (Ho et al. 2019) instead of uniform noise.
"""

from experiments.configs import default
from jgen.models import flow

FAMILY_MODELS = {
    "realnvp": dict(num_layers=8, hidden_sizes=(64, 64)),
    "glow": dict(num_layers=4, hidden_sizes=(64,), num_scales=2),
    "maf": dict(num_layers=5, hidden_sizes=(256, 256)),
    "spline": dict(num_layers=6, hidden_sizes=(64, 64), num_bins=8, spline_bound=5.0),
    "spline_ar": dict(num_layers=4, hidden_sizes=(256, 256), num_bins=8, spline_bound=5.0),
}


def get_config(arg: str | None = None):
    parts = [p for p in (arg or "").split(",") if p]
    unknown = [p for p in parts if p not in (*flow.FAMILIES, "variational", "smoke")]
    if unknown:
        raise ValueError(
            f"flow_digits takes [FLOW][,variational][,smoke] with FLOW in {flow.FAMILIES}; "
            f"got {arg!r}"
        )
    c = default.get_config()
    c.data.source, c.data.name, c.data.variant = "digits", "digits", "continuous"
    c.data.num_levels = 17
    c.model.flow = next((p for p in parts if p in flow.FAMILIES), "realnvp")
    c.model.update(FAMILY_MODELS.get(c.model.flow, {}))
    c.model.logit_alpha = 0.05
    if "variational" in parts:
        c.model.dequantization = "variational"
    c.optim.name, c.optim.weight_decay = "adamw", 1e-3
    c.optim.ema_decay = 0.999
    c.train.num_steps = 2_500  # validation NLL rises after ~2,500 steps on 1,000 images
    c.train.batch_size = 128
    c.train.eval_batch_size = 128
    c.train.eval_every = 500
    c.train.sample_every = 1_000
    c.train.num_samples = 64
    if "smoke" in parts:  # every family's code path, with two narrow layers (a short compile)
        c.model.num_layers, c.model.hidden_sizes = 2, (16,) * len(c.model.hidden_sizes)
        return default.shrink_for_smoke(c)
    return c
