"""Score SDEs on the 2-D toys: ``--config=experiments/configs/score_sde_toy2d.py:TOY[,subvp|,ve]
[,likelihood][,ode][,smoke]``.

TOY is one of ``jgen.data.toy2d.NAMES`` (default ``8gaussians``). A score network
(``jgen.models.score_sde``; the DDPM toy's ScoreMLP, 3 x 256 swish) on the VP SDE (``beta`` from
0.1 to 20; ``subvp``: the sub-VP SDE; ``ve``: the VE SDE from ``sigma = 0.01`` to the largest
pairwise distance of the first batch), trained by continuous-time denoising score matching
(``likelihood``: with the likelihood weighting ``g(t)^2``), sampled by 500 predictor–corrector
steps (reverse diffusion + one Langevin step at snr 0.16; ``ode``: the probability-flow ODE with
adaptive dopri5 at tolerances 1e-5). The test NLL is the probability-flow ODE's, with the exact
divergence, in nats next to the true entropy. The optimiser and schedule are the DDPM toy's
(``experiments/configs/ddpm_toy2d.py``): Adam 1e-3 with cosine decay, EMA 0.999, 10,000 steps.
"""

import ml_collections

from experiments.configs.ncsn_toy2d import network_fields, toy_config

SDE_OPTIONS = ("subvp", "ve")


def model_config(**overrides) -> ml_collections.ConfigDict:
    """The ``model`` block of a score SDE (fields: ``jgen.models.score_sde``)."""
    fields = dict(
        name="score_sde",
        **network_fields(),
        sde="vp",
        beta_min=0.1,
        beta_max=20.0,
        sigma_min=0.01,
        sigma_max=0.0,
        likelihood_weighting=False,
        train_eps=1e-5,
        sampler="pc",
        predictor="reverse_diffusion",
        corrector="langevin",
        snr=0.16,
        corrector_steps=1,
        sample_steps=500,
        sample_eps=1e-3,
        ode_method="dopri5",
        ode_steps=100,
        ode_rtol=1e-5,
        ode_atol=1e-5,
        eval_ode_nll=True,
        divergence="auto",
        nll_eps=1e-5,
    )
    fields.update(overrides)
    return ml_collections.ConfigDict(fields)


def get_config(arg: str | None = None):
    options = (*SDE_OPTIONS, "likelihood", "ode")
    c, parts = toy_config("score_sde_toy2d", arg, options, model_config())
    c.model.sde = next((p for p in parts if p in SDE_OPTIONS), "vp")
    c.model.likelihood_weighting = "likelihood" in parts
    if "ode" in parts:
        c.model.sampler = "ode"
    if "smoke" in parts:
        c.model.sample_steps, c.model.ode_steps = 10, 10
        c.model.ode_method = "rk4"
    return c
