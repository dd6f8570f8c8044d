"""Score-based generative models through SDEs (Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole
2021, "Score-based generative modeling through stochastic differential equations") as one
:class:`~jgen.train.trainer.Trainer`.

The forward SDE is ``model.sde``: ``"vp"`` or ``"subvp"`` (``beta(t)`` from ``model.beta_min`` to
``model.beta_max``) or ``"ve"`` (``sigma(t)`` from ``model.sigma_min`` to ``model.sigma_max``;
``sigma_max = 0`` is NCSNv2's choice, the largest pairwise distance of the first batch, see
:func:`jgen.models.ncsn.initial_sigma_max`); :mod:`jgen.sdes.sde`. The score network ``f`` —
:class:`jgen.nets.score_mlp.ScoreMLP` for vectors, :class:`jgen.nets.unet.UNet` for images, the
DDPM fields — is conditioned on ``t`` so that its output has unit scale at every time
(:func:`network_score`):

* VP / sub-VP: ``s(x, t) = -f(x, 999 t) / std(t)``, ``f`` predicts the noise ``z`` of
  ``x_t = mean(t) x_0 + std(t) z`` on DDPM's step scale (Song et al. 2021's DDPM++ convention);
* VE: ``s(x, t) = f(x, log sigma(t)) / sigma(t)``, as in NCSNv2 (``f`` predicts ``-z``).

Training is continuous-time denoising score matching, ``t ~ U(model.train_eps, 1)``
(:func:`jgen.losses.diffusion.sde_score_loss`), weighted by ``std(t)^2`` or, with
``model.likelihood_weighting``, by ``g(t)^2`` (Song, Durkan, Murray & Ermon 2021).

``sample`` uses the EMA network (``optim.ema_decay``; the raw one when 0) and ``model.sampler``:

* ``"pc"``: predictor–corrector (:func:`jgen.samplers.sde.sample_sde`) over ``model.sample_steps``
  steps down to ``t = model.sample_eps``; predictor ``model.predictor`` (``"reverse_diffusion"``
  or ``"euler_maruyama"``), corrector ``model.corrector`` (``"langevin"`` with
  ``model.corrector_steps`` steps at signal-to-noise ratio ``model.snr``, or ``"none"``), and the
  noise-free last step;
* ``"ode"``: the probability-flow ODE (:func:`jgen.samplers.ode.sample_probability_flow`) with
  ``model.ode_method`` (``"dopri5"``: adaptive, ``model.ode_rtol`` / ``model.ode_atol``; or a fixed
  ``"rk4"``, ``"heun"``, ``"euler"`` with ``model.ode_steps`` steps).

Images in ``[0, 1]`` are modelled on ``[-1, 1]``; samples are clipped to that range. With
``data.num_levels = K`` (discrete data stored as cell corners ``k / K``) the batches are
dequantized with uniform noise ``u / K`` before training and evaluation (Theis et al. 2016).

``evaluate`` reports per example ``loss`` (the training loss) and, with ``model.eval_ode_nll``,
the probability-flow negative log-likelihood ``nll`` in nats and ``bits_per_dim``
(:func:`likelihood_metrics`: :func:`jgen.samplers.ode.ode_nll` from ``t = model.nll_eps``, with
the exact divergence on vectors and Hutchinson's estimate on images under
``model.divergence = "auto"``; on dequantized data the bound ``+ D log K`` on the discrete NLL).
It integrates an ODE per batch (expensive; the toy configs switch it on).
"""

import jax
import jax.numpy as jnp

from jgen.bijectors.dequantization import uniform_dequantize
from jgen.checks import check_choice, check_int, check_positive
from jgen.data.labels import split_batch
from jgen.losses import diffusion
from jgen.models import ddpm
from jgen.models.ncsn import (
    ScoreState,
    check_sigma_max,
    gradient_step,
    init_state,
    initial_sigma_max,
    is_image,
    sampling_params,
    score_network,
    to_data,
    to_model,
)
from jgen.samplers.ode import METHODS, ode_nll, sample_probability_flow
from jgen.samplers.sde import PREDICTORS, sample_sde
from jgen.sdes.sde import SDE, VESDE, VPSDE, SubVPSDE, expand
from jgen.train.optim import optimizer_from_config
from jgen.train.trainer import Trainer
from jgen.types import Array, PRNGKey, TimeScoreFn

SDES = {"vp": VPSDE, "subvp": SubVPSDE, "ve": VESDE}
SAMPLERS = ("pc", "ode")
CORRECTORS = ("langevin", "none")
DIVERGENCES = ("auto", "exact", "hutchinson")
#: VP / sub-VP networks see ``999 t``, DDPM's step index for ``t`` in ``[0, 1]``.
TIME_SCALE = 999.0


def make_sde(mc, sigma_max=None) -> SDE:
    """The forward SDE of ``model.sde``; a VE SDE takes ``sigma_max`` (a traced array when it was
    set from the data) in place of ``mc.sigma_max``."""
    if mc.sde == "ve":
        return VESDE(mc.sigma_min, mc.sigma_max if sigma_max is None else sigma_max)
    return SDES[mc.sde](mc.beta_min, mc.beta_max)


def network_score(sde: SDE, net, time_scale: float = TIME_SCALE) -> TimeScoreFn:
    """The score ``s(x, t)`` of a network ``net(x (n, *event), c (n,)) -> (n, *event)`` of unit
    output scale (module docstring): ``-net(x, time_scale t) / std(t)`` for VP and sub-VP (an
    ``eps`` prediction; ``time_scale = 999`` by default), ``net(x, log sigma(t)) / sigma(t)`` for
    VE (NCSNv2's parametrisation)."""

    def score(x: Array, t: Array) -> Array:
        if isinstance(sde, VESDE):
            sigma = sde.sigma(t)
            return net(x, jnp.log(sigma).astype(x.dtype)) / expand(sigma, x).astype(x.dtype)
        _, std = sde.marginal(x, t)
        return -net(x, (time_scale * t).astype(x.dtype)) / expand(std, x).astype(x.dtype)

    return score


def ddpm_as_vp(
    config, event_shape: tuple[int, ...], params, y: Array | None = None
) -> tuple[VPSDE, TimeScoreFn]:
    """A trained DDPM (:mod:`jgen.models.ddpm`, ``params`` of its network) as the score of a VP
    SDE, for predictor–corrector sampling, probability-flow sampling and ODE likelihoods; ``y``:
    the labels (or null classes) of a class-conditional DDPM.

    The scaled linear schedule of ``N`` steps, ``beta_i = (0.1 + 19.9 i / (N - 1)) / N``, is the
    Euler discretisation of the VP SDE with ``beta(t)`` from 0.1 to 20 on ``t = (i + 1) / N``
    (Song et al. 2021, App. B), whatever ``N``; step ``i`` is fed to the network as
    ``(N - 1) t`` (the ``999 t`` of DDPM++ for ``N = 1000``), and
    ``s(x, t) = -eps(x, (N - 1) t) / std(t)``.

    Raises:
      ValueError: for the cosine schedule (its continuous limit is not this SDE).
    """
    mc = config.model
    if mc.schedule != "linear":
        raise ValueError(
            f"ddpm_as_vp needs model.schedule='linear' (the VP SDE's discretisation); got "
            f"{mc.schedule!r}"
        )
    module = ddpm.network(config, tuple(event_shape))
    sde = VPSDE(0.1, 20.0)
    net = lambda x, c: module.apply({"params": params}, x, c, y)  # noqa: E731
    return sde, network_score(sde, net, time_scale=mc.diffusion_steps - 1.0)


def likelihood_metrics(
    mc, sde: SDE, score_fn: TimeScoreFn, x: Array, key: PRNGKey, *, images: bool, num_levels: int
) -> dict:
    """Per-example probability-flow NLL of ``x`` (model space) under ``score_fn``.

    ``nll = -log p_eps(x) - D log 2 [+ D log K]`` (:func:`jgen.samplers.ode.ode_nll`: the
    instantaneous change of variables from ``t = model.nll_eps`` to 1, Song et al. 2021, App.
    D.2; the ``D log 2`` of images mapped from ``[0, 1]`` to ``[-1, 1]``; ``K = num_levels`` for
    dequantized data). The solver is ``model.ode_method`` with ``model.ode_steps`` /
    ``model.ode_rtol`` / ``model.ode_atol``; the divergence is ``model.divergence``, where
    ``"auto"`` is exact on vectors and Hutchinson's (one Rademacher probe) on images.

    Returns:
      ``{"nll": (n,) nats, "bits_per_dim": (n,)}``.
    """
    divergence = mc.divergence
    if divergence == "auto":
        divergence = "hutchinson" if images else "exact"
    nll, bpd, _ = ode_nll(
        sde,
        score_fn,
        x,
        key,
        num_levels=num_levels or None,
        data_scale=2.0 if images else 1.0,
        divergence=divergence,
        method=mc.ode_method,
        n_steps=mc.ode_steps,
        rtol=mc.ode_rtol,
        atol=mc.ode_atol,
        eps=mc.nll_eps,
    )
    return {"nll": nll, "bits_per_dim": bpd}


def _check_config(config) -> None:
    mc = config.model
    check_choice("model.sde", mc.sde, SDES)
    if mc.sde == "ve":
        check_positive("model.sigma_min", mc.sigma_min)
        check_sigma_max(mc)
    else:
        check_positive("model.beta_min", mc.beta_min)
        if not mc.beta_max > mc.beta_min:
            raise ValueError(
                f"model.beta_max must exceed model.beta_min={mc.beta_min}; got {mc.beta_max!r}"
            )
    if not isinstance(mc.likelihood_weighting, bool):
        raise ValueError(
            f"model.likelihood_weighting must be a bool; got {mc.likelihood_weighting!r}"
        )
    for name in ("train_eps", "sample_eps", "nll_eps"):
        value = mc[name]
        if not 0 < value < 1:
            raise ValueError(f"model.{name} must be in (0, 1) (T = 1); got {value!r}")
    check_choice("model.sampler", mc.sampler, SAMPLERS)
    check_choice("model.predictor", mc.predictor, PREDICTORS)
    check_choice("model.corrector", mc.corrector, CORRECTORS)
    check_positive("model.snr", mc.snr)
    check_int("model.corrector_steps", mc.corrector_steps)
    check_int("model.sample_steps", mc.sample_steps)
    check_choice("model.ode_method", mc.ode_method, METHODS)
    check_int("model.ode_steps", mc.ode_steps)
    check_positive("model.ode_rtol", mc.ode_rtol)
    check_positive("model.ode_atol", mc.ode_atol)
    check_choice("model.divergence", mc.divergence, DIVERGENCES)
    if not isinstance(mc.eval_ode_nll, bool):
        raise ValueError(f"model.eval_ode_nll must be a bool; got {mc.eval_ode_nll!r}")


def make(config, event_shape: tuple[int, ...]) -> Trainer:
    """A Trainer for the score SDE of ``config.model`` (fields in the module docstring).

    Raises:
      ValueError: naming the field for an unknown SDE, sampler, predictor, corrector, ODE method
        or divergence, bad SDE parameters (``beta_max <= beta_min``, a VE ``sigma_max`` neither 0
        nor above ``sigma_min``), times outside ``(0, 1)``, non-positive step counts or
        tolerances, a class-conditional model or a U-Net on vectors.
    """
    _check_config(config)
    mc = config.model
    event_shape = tuple(event_shape)
    images = is_image(event_shape)
    num_levels = config.data.get("num_levels", 0) if "data" in config else 0
    module = score_network(config, event_shape)
    optimizer = optimizer_from_config(config)
    ema_decay = config.optim.ema_decay
    ve = mc.sde == "ve"

    def sde_of(state: ScoreState) -> SDE:
        return make_sde(mc, state.sigma_max if ve else None)

    def score_fn(params, sde: SDE) -> TimeScoreFn:
        return network_score(sde, lambda x, c: module.apply({"params": params}, x, c, None))

    def loss_fn(params, x: Array, key: PRNGKey, sde: SDE) -> Array:
        return diffusion.sde_score_loss(
            score_fn(params, sde),
            x,
            key,
            sde,
            likelihood_weighting=mc.likelihood_weighting,
            eps=mc.train_eps,
        )

    def model_input(batch, key: PRNGKey) -> Array:
        x, _ = split_batch(batch, event_shape, 0)
        if num_levels:
            x = uniform_dequantize(key, x, num_levels)
        return to_model(x, images)

    def init(key: PRNGKey, batch) -> ScoreState:
        x = model_input(batch, key)
        sigma_max = initial_sigma_max(mc, x) if ve else jnp.nan
        return init_state(module, optimizer, ema_decay, key, x, sigma_max)

    def step(state: ScoreState, batch, key: PRNGKey):
        data_key, loss_key = jax.random.split(key)
        x = model_input(batch, data_key)
        return gradient_step(state, loss_fn, optimizer, ema_decay, x, loss_key, sde_of(state))

    def sample(state: ScoreState, key: PRNGKey, n: int) -> Array:
        sde = sde_of(state)
        score = score_fn(sampling_params(state), sde)
        shape = (n, *event_shape)
        if mc.sampler == "pc":
            x, _ = sample_sde(
                sde,
                score,
                key,
                shape,
                n_steps=mc.sample_steps,
                predictor=mc.predictor,
                corrector=None if mc.corrector == "none" else mc.corrector,
                snr=mc.snr,
                n_corrector_steps=mc.corrector_steps,
                eps=mc.sample_eps,
            )
        else:
            x, _ = sample_probability_flow(
                sde,
                score,
                key,
                shape,
                method=mc.ode_method,
                n_steps=mc.ode_steps,
                rtol=mc.ode_rtol,
                atol=mc.ode_atol,
                eps=mc.sample_eps,
            )
        return to_data(x, images)

    def evaluate(state: ScoreState, batch, key: PRNGKey) -> dict:
        data_key, loss_key, nll_key = jax.random.split(key, 3)
        x = model_input(batch, data_key)
        sde = sde_of(state)
        params = sampling_params(state)
        metrics = {"loss": loss_fn(params, x, loss_key, sde)}
        if mc.eval_ode_nll:
            score = score_fn(params, sde)
            metrics.update(
                likelihood_metrics(mc, sde, score, x, nll_key, images=images, num_levels=num_levels)
            )
        return metrics

    return Trainer(init, step, sample, evaluate)
