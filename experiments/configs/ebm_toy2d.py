"""Deep energy-based models on the 2-D toys: ``--config=experiments/configs/ebm_toy2d.py:TOY
[,short_run][,smoke]``.

TOY is one of ``jgen.data.toy2d.NAMES`` (default ``8gaussians``). An MLP energy (3 x 128, swish)
trained by maximum likelihood with Langevin negatives (``jgen.models.ebm``): persistent chains in a
replay buffer of 10,000 with 5% restarts from uniform noise on ``[-5, 5]^2`` (default), or short-run
chains from that noise (``short_run``, Nijkamp et al. 2019), 50 Langevin steps of size ``h = 0.1``
with full noise (``sqrt(h)``, the unadjusted Langevin algorithm, so that the chains target the model
rather than tune a sampler) per update, an energy penalty of 0.01, and 200 steps to draw samples.
The state with the best validation NLL (every 500 steps) is kept: on ``checkerboard`` a trial run
reached 3.78 nats (entropy 3.47) at step 1000, then the two phases separated (data energies -43,
negatives +43 by step 4000: chains that no longer reach the data) and the NLL rose to 13-28 — the
classic instability of maximum-likelihood EBMs. On a 2-D Gaussian (trial runs, 20 Langevin steps per
update), steps of 0.01-0.05 left the chains that restart in the flat far field of the energy
unconverged (the buffer's mean off by 0.5-1) and a penalty of 0.1 widened the learned density by
50%; with 0.1 and 0.01 the samples' mean and covariance matched the data's to 0.05. The test NLL is
exact up to the grid's quadrature of log Z on ``[-5, 5]^2``.
"""

import ml_collections

from experiments.configs import default
from jgen.data import toy2d


def model_config(**overrides) -> ml_collections.ConfigDict:
    """The ``model`` block of a deep EBM (fields: ``jgen.models.ebm``)."""
    fields = dict(
        name="ebm",
        architecture="mlp",
        hidden_sizes=(128, 128, 128),
        channels=(32, 64),
        feature_size=128,
        num_classes=0,
        gen_weight=1.0,
        chains="persistent",
        buffer_size=10_000,
        reinit_fraction=0.05,
        init_range=(-5.0, 5.0),
        langevin_steps=50,
        sample_steps=200,
        step_size=0.1,
        noise_scale=1.0,
        score_clip=0.0,
        l2_weight=0.01,
        energy_clip=0.0,
        max_energy=1e4,
        data_noise=0.0,
        box=(-5.0, 5.0),
        box_points=200,
    )
    fields.update(overrides)
    return ml_collections.ConfigDict(fields)


def parse_parts(name: str, arg: str | None, allowed: tuple[str, ...]) -> list[str]:
    """``arg`` split at commas, each word checked against ``allowed`` (and ``smoke``)."""
    parts = [p for p in (arg or "").split(",") if p]
    unknown = [p for p in parts if p not in (*allowed, "smoke")]
    if unknown:
        raise ValueError(f"{name} takes words from {[*allowed, 'smoke']}; got {arg!r}")
    return parts


def get_config(arg: str | None = None):
    parts = parse_parts("ebm_toy2d", arg, (*toy2d.NAMES, "short_run"))
    c = default.get_config()
    with c.unlocked():
        c.model = model_config()
    c.data.source = "toy2d"
    c.data.name = next((p for p in parts if p in toy2d.NAMES), "8gaussians")
    if "short_run" in parts:
        c.model.chains = "short_run"
    c.optim.learning_rate = 1e-3
    c.train.num_steps = 5_000
    c.train.batch_size = 256
    c.train.log_every = 100
    c.train.eval_every = 500
    c.train.select_metric = "nll"
    c.train.sample_every = 1_000
    c.train.checkpoint_every = 1_000
    c.train.num_samples = 2_000
    if "smoke" in parts:
        c = default.shrink_for_smoke(c)
        c.model.hidden_sizes = (16, 16)
        c.model.buffer_size, c.model.langevin_steps, c.model.sample_steps = 64, 5, 5
        c.model.box_points = 20
    return c
