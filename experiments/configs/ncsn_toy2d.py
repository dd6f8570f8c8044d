"""NCSN on the 2-D toys: ``--config=experiments/configs/ncsn_toy2d.py:TOY[,smoke]``.

TOY is one of ``jgen.data.toy2d.NAMES`` (default ``8gaussians``). A noise-conditional score network
``s(x, sigma) = f(x, log sigma) / sigma`` (``jgen.models.ncsn``; ``f`` the DDPM toy's ScoreMLP, 3 x
256 swish) at 10 geometric levels from ``sigma_1`` = the largest distance between two points of the
first batch (``sigma_max = 0``, auto: NCSNv2's technique 1) down to ``sigma_L = 0.01``, trained
with the multi-noise denoising score matching loss, and sampled by annealed Langevin dynamics (100
steps per level, ``step_lr = 5e-5``, i.e. a step of ``0.5 sigma_i^2`` at level ``i``) with the
final Tweedie denoising step. Calibrated on a 2-D Gaussian (``tests/models/test_ncsn.py``): with
steps of ``0.05 sigma_i^2`` the chains stop contracting near ``sigma = 0.75`` and the samples'
covariance comes out 0.45 too large; with ``0.5 sigma_i^2`` it is within 0.02. The optimiser and
schedule are the DDPM toy's (``experiments/configs/ddpm_toy2d.py``): Adam 1e-3 with cosine decay,
EMA 0.999, 10,000 steps.
"""

import ml_collections

from experiments.configs import ddpm_toy2d, default
from experiments.configs.ebm_toy2d import parse_parts
from jgen.data import toy2d

#: The network fields that the score models share with DDPM (``jgen.models.ddpm._network``).
NETWORK_FIELDS = (
    "architecture",
    "hidden_sizes",
    "embedding_dim",
    "channels",
    "channel_mults",
    "num_res_blocks",
    "dropout",
    "num_groups",
    "num_classes",
)


def network_fields() -> dict:
    """The DDPM toy's network fields (a ScoreMLP 3 x 256 with 64-wide embeddings)."""
    ddpm = ddpm_toy2d.model_config()
    return {k: ddpm[k] for k in NETWORK_FIELDS}


def model_config(**overrides) -> ml_collections.ConfigDict:
    """The ``model`` block of an NCSN (fields: ``jgen.models.ncsn``)."""
    fields = dict(
        name="ncsn",
        **network_fields(),
        num_levels=10,
        sigma_max=0.0,
        sigma_min=0.01,
        n_steps_each=100,
        step_lr=5e-5,
        denoise=True,
    )
    fields.update(overrides)
    return ml_collections.ConfigDict(fields)


def toy_config(
    name: str, arg: str | None, options: tuple[str, ...], model: ml_collections.ConfigDict
) -> tuple[ml_collections.ConfigDict, list[str]]:
    """The DDPM toy's data, optimiser and schedule (``ddpm_toy2d.get_config(TOY)``) with the
    ``model`` block replaced; returns the config and the words of ``arg`` (checked against the
    toys, ``options`` and ``smoke``). ``smoke`` shrinks the run and the MLP (2 x 16)."""
    parts = parse_parts(name, arg, (*toy2d.NAMES, *options))
    c = ddpm_toy2d.get_config(",".join(p for p in parts if p in toy2d.NAMES))
    with c.unlocked():
        c.model = model
    if "smoke" in parts:
        c = default.shrink_for_smoke(c)
        c.model.hidden_sizes, c.model.embedding_dim = (16, 16), 8
    return c, parts


def get_config(arg: str | None = None):
    c, parts = toy_config("ncsn_toy2d", arg, (), model_config())
    if "smoke" in parts:
        c.model.num_levels, c.model.n_steps_each = 4, 5
    return c
