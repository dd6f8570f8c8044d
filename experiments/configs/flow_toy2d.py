"""Any flow on any 2-D toy: ``--config=experiments/configs/flow_toy2d.py:TOY[,FLOW][,smoke]``

TOY is one of ``jgen.data.toy2d.NAMES`` (default ``8gaussians``), FLOW one of
``jgen.models.flow.FAMILIES`` (default ``realnvp``); the run reports the test NLL beside the true
entropy of the toy. ``FAMILY_MODELS`` sizes each family for 2-D data.
"""

from experiments.configs import default
from jgen.data import toy2d
from jgen.models import flow

FAMILY_MODELS = {
    "realnvp": dict(num_layers=10, hidden_sizes=(128, 128)),
    "nice": dict(num_layers=10, hidden_sizes=(128, 128)),
    "glow": dict(num_layers=10, hidden_sizes=(128, 128)),
    "maf": dict(num_layers=10, hidden_sizes=(128, 128)),
    "iaf": dict(num_layers=10, hidden_sizes=(128, 128)),
    "spline": dict(num_layers=6, hidden_sizes=(128, 128), num_bins=8, spline_bound=4.0),
    "spline_ar": dict(num_layers=6, hidden_sizes=(128, 128), num_bins=8, spline_bound=4.0),
    "planar": dict(num_layers=32),
    "radial": dict(num_layers=32),
    "residual": dict(num_layers=8, hidden_sizes=(64, 64)),
    "ffjord": dict(num_layers=1, hidden_sizes=(64, 64, 64), ode_steps=16),
}


def get_config(arg: str | None = None):
    parts = [p for p in (arg or "").split(",") if p]
    unknown = [p for p in parts if p not in (*toy2d.NAMES, *flow.FAMILIES, "smoke")]
    if unknown:
        raise ValueError(
            f"flow_toy2d takes TOY[,FLOW][,smoke] with TOY in {toy2d.NAMES} and FLOW in "
            f"{flow.FAMILIES}; got {arg!r}"
        )
    c = default.get_config()
    c.data.source = "toy2d"
    c.data.name = next((p for p in parts if p in toy2d.NAMES), "8gaussians")
    c.model.flow = next((p for p in parts if p in flow.FAMILIES), "realnvp")
    c.model.update(FAMILY_MODELS[c.model.flow])
    c.train.num_steps = 10_000
    c.train.eval_every = 2_000
    c.train.sample_every = 5_000
    return default.shrink_for_smoke(c) if "smoke" in parts else c
