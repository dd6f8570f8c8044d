"""Denoising diffusion probabilistic models (Ho, Jain & Abbeel 2020) as one
:class:`~jgen.train.trainer.Trainer`, with DDIM sampling (Song, Meng & Ermon 2021) and
classifier-free guidance (Ho & Salimans 2022).

The forward process ``q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)`` over ``N =
model.diffusion_steps`` steps with a ``linear`` (Ho et al.) or ``cosine`` (Nichol & Dhariwal
2021) schedule of ``beta``; a network ``eps(x_t, t[, y])`` — :class:`jgen.nets.score_mlp.ScoreMLP`
for vectors, :class:`jgen.nets.unet.UNet` for images — is trained with the simple loss
``|| eps - eps(x_t, t) ||^2`` (:func:`jgen.losses.diffusion.ddpm_eps_loss`; ``model.weighting``
``simple`` or ``min_snr``). Images in ``[0, 1]`` are modelled on ``[-1, 1]``.

``sample`` runs the EMA network (``optim.ema_decay``; the raw one when 0): ancestral sampling
over all ``N`` steps (``model.sampler = "ancestral"``, reverse variance ``model.variance``) or
DDIM on ``model.sample_steps`` evenly spaced steps with ``model.eta``; images clip the predicted
``x_0`` to ``[-1, 1]``. Class-conditional models (``model.num_classes = C``, labelled batches)
train with labels dropped to the null class ``C`` with probability ``model.label_dropout`` and
sample with guidance ``(1 + w) eps(x, y) - w eps(x)``, ``w = model.guidance``; samples cycle
through the classes.

``evaluate`` reports per example the simple loss at a random step and the variational bound
``-log p(x_0) <= L_T + sum_t L_t`` (:func:`jgen.losses.diffusion.vlb`; every step, or one
random step times ``N`` with ``model.eval_vlb = "sample"``) as ``nll`` (nats) and
``bits_per_dim``. On images the decoder ``p(x_0 | x_1)`` is a Gaussian discretised into
``model.num_bins`` levels (the data's: 17 for the digits), so the bound is of the discrete data;
on vectors it is a continuous Gaussian density.

``model.dequantize`` (images with ``model.num_bins = K``) trains on the levels spread uniformly
over their decoder bins, ``x + (u - 1/2) 2 / (K - 1)``, ``u ~ U[0, 1)`` (Theis et al. 2016): the
network then models a density over the whole bin, so that the probability-flow ODE of the same
network bounds the discrete NLL too (:func:`jgen.models.score_sde.ddpm_as_vp`,
``experiments/diffusion_digits.py``). The
bound is still evaluated at the levels themselves.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jgen.checks import check_choice, check_int, check_positive
from jgen.data.labels import split_batch
from jgen.losses import diffusion
from jgen.nets.score_mlp import ScoreMLP
from jgen.nets.unet import UNet
from jgen.samplers.ddim import ddim_sample, ddim_timesteps
from jgen.samplers.ddpm import ddpm_sample
from jgen.sdes import schedules
from jgen.train.optim import optimizer_from_config
from jgen.train.trainer import Trainer
from jgen.types import Array, Params, PRNGKey


def scaled_linear_betas(num_steps: int) -> Array:
    """Ho et al.'s linear schedule ``1e-4 .. 0.02`` at ``N = 1000``, scaled by ``1000 / N`` for
    other ``N`` (Nichol & Dhariwal 2021's ``get_named_beta_schedule``), so that ``abar_N`` stays
    near 0 (``exp(-10)``) whatever the number of steps: unscaled, 100 steps end at ``abar =
    0.37`` and the sampler's ``N(0, I)`` start is not the forward process's end. Clipped at
    0.999 like the cosine schedule (the scaled end reaches 1 at ``N = 20``)."""
    scale = 1000.0 / num_steps
    return jnp.minimum(schedules.linear_betas(num_steps, 1e-4 * scale, 0.02 * scale), 0.999)


SCHEDULES = {"linear": scaled_linear_betas, "cosine": schedules.cosine_betas}
ARCHITECTURES = ("mlp", "unet")
SAMPLERS = ("ancestral", "ddim")


class DDPMState(NamedTuple):
    """Training state: ``step``, the network's ``params``, ``opt_state`` and the ``ema`` of the
    parameters (None when ``optim.ema_decay = 0``)."""

    step: Array
    params: Params
    opt_state: optax.OptState
    ema: Params | None


def network(config, event_shape: tuple[int, ...]):
    """The noise / score network of ``config.model``: :class:`ScoreMLP` (``architecture='mlp'``)
    or :class:`UNet` (``'unet'``, images only); shared by the NCSN and score-SDE trainers."""
    mc = config.model
    check_choice("model.architecture", mc.architecture, ARCHITECTURES)
    if mc.architecture == "mlp":
        for i, width in enumerate(mc.hidden_sizes):
            check_int(f"model.hidden_sizes[{i}]", width)
        return ScoreMLP(tuple(mc.hidden_sizes), mc.embedding_dim, mc.num_classes)
    if len(event_shape) not in (2, 3):
        raise ValueError(
            f"model.architecture='unet' needs images (H, W) or (H, W, C); got event shape "
            f"{event_shape}"
        )
    return UNet(
        channels=mc.channels,
        channel_mults=tuple(mc.channel_mults),
        num_res_blocks=mc.num_res_blocks,
        # empty: UNet's default, attention at the lowest resolution only
        attention_resolutions=tuple(mc.get("attention_resolutions", ())) or None,
        dropout=mc.dropout,
        num_groups=mc.num_groups,
        num_classes=mc.num_classes,
    )


def _check_config(config) -> None:
    mc = config.model
    check_int("model.diffusion_steps", mc.diffusion_steps)
    check_choice("model.schedule", mc.schedule, SCHEDULES)
    check_choice("model.sampler", mc.sampler, SAMPLERS)
    check_choice("model.weighting", mc.weighting, diffusion.WEIGHTINGS)
    check_choice("model.eval_vlb", mc.eval_vlb, diffusion.ESTIMATORS)
    if mc.dequantize and not mc.num_bins:
        raise ValueError(
            f"model.dequantize=True needs the data's levels in model.num_bins (> 1); got "
            f"num_bins={mc.num_bins!r}"
        )
    if mc.variance not in ("posterior", "beta"):
        raise ValueError(
            f"model.variance must be 'posterior' or 'beta' (fixed reverse variances; learned "
            f"ones are jgen.losses.diffusion.hybrid_loss); got {mc.variance!r}"
        )
    check_int("model.num_classes", mc.num_classes, minimum=0)
    check_int("model.num_bins", mc.num_bins, minimum=0)
    check_positive("model.guidance", mc.guidance, allow_zero=True)
    if not 0.0 <= mc.label_dropout < 1.0:
        raise ValueError(f"model.label_dropout must be in [0, 1); got {mc.label_dropout}")
    if not 0.0 <= mc.eta <= 1.0:
        raise ValueError(f"model.eta must be in [0, 1]; got {mc.eta}")
    if mc.sampler == "ddim":
        check_int("model.sample_steps", mc.sample_steps)
        if mc.sample_steps > mc.diffusion_steps:
            raise ValueError(
                f"model.sample_steps must be <= model.diffusion_steps={mc.diffusion_steps}; got "
                f"{mc.sample_steps}"
            )


def make(config, event_shape: tuple[int, ...]) -> Trainer:
    """A Trainer for the DDPM of ``config.model`` (fields in the module docstring).

    Raises:
      ValueError: naming the field for an unknown architecture, schedule, sampler, weighting or
        bound estimator, learned variances, non-positive sizes, a ``label_dropout`` outside
        ``[0, 1)``, an ``eta`` outside ``[0, 1]``, more DDIM steps than diffusion steps, or a
        U-Net on data that are not images.
    """
    _check_config(config)
    mc = config.model
    event_shape = tuple(event_shape)
    images = len(event_shape) >= 2
    num_classes = mc.num_classes
    module = network(config, event_shape)
    betas = SCHEDULES[mc.schedule](mc.diffusion_steps)
    abar = schedules.alphas_cumprod(betas)
    optimizer = optimizer_from_config(config)
    ema_decay = config.optim.ema_decay
    clip = 1.0 if images else None
    num_bins = mc.num_bins if images and mc.num_bins else None

    def to_model(x: Array) -> Array:
        return 2.0 * x - 1.0 if images else x

    def to_data(y: Array) -> Array:
        return (y + 1.0) / 2.0 if images else y

    def training_input(x: Array, key: PRNGKey) -> Array:
        x = to_model(x)
        if mc.dequantize:
            x = x + (jax.random.uniform(key, x.shape, x.dtype) - 0.5) * 2.0 / (mc.num_bins - 1)
        return x

    def eps(params, x: Array, t: Array, y: Array | None) -> Array:
        return module.apply({"params": params}, x, t.astype(x.dtype), y)

    def labels_of(context) -> Array | None:
        return None if context is None else jnp.argmax(context, -1)

    def init(key: PRNGKey, batch) -> DDPMState:
        x, context = split_batch(batch, event_shape, num_classes)
        t = jnp.zeros(x.shape[:1], jnp.int32)
        params = module.init(key, x, t.astype(x.dtype), labels_of(context))["params"]
        ema = jax.tree.map(jnp.copy, params) if ema_decay > 0 else None
        return DDPMState(jnp.zeros((), jnp.int32), params, optimizer.init(params), ema)

    def loss_fn(params, x, y, key):
        per_example = diffusion.ddpm_eps_loss(
            lambda x_t, t: eps(params, x_t, t, y), x, key, abar, weighting=mc.weighting
        )
        return jnp.mean(per_example)

    def step(state: DDPMState, batch, key: PRNGKey):
        x, context = split_batch(batch, event_shape, num_classes)
        y = labels_of(context)
        drop_key, loss_key, noise_key = jax.random.split(key, 3)
        if y is not None and mc.label_dropout:
            y = diffusion.drop_labels(drop_key, y, mc.label_dropout, num_classes)
        x = training_input(x, noise_key)
        loss, grads = jax.value_and_grad(loss_fn)(state.params, x, y, loss_key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = state.ema
        if ema is not None:
            ema = optax.incremental_update(params, ema, step_size=1.0 - ema_decay)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
        return DDPMState(state.step + 1, params, opt_state, ema), metrics

    def sampling_eps(params, n: int):
        """``eps(x, t)`` of the sampler: guided towards classes ``i mod C`` when conditional."""
        if not num_classes:
            return lambda x, t: eps(params, x, t, None)
        y = jnp.arange(n) % num_classes
        null = jnp.full((n,), num_classes)
        return lambda x, t: diffusion.guided_eps(
            eps(params, x, t, y), eps(params, x, t, null), mc.guidance
        )

    def sample(state: DDPMState, key: PRNGKey, n: int) -> Array:
        params = state.params if state.ema is None else state.ema
        shape = (n, *event_shape)
        eps_fn = sampling_eps(params, n)
        if mc.sampler == "ancestral":
            x, _ = ddpm_sample(eps_fn, key, shape, betas, variance=mc.variance, clip=clip)
        else:
            timesteps = ddim_timesteps(mc.diffusion_steps, mc.sample_steps)
            x, _ = ddim_sample(eps_fn, key, shape, abar, timesteps, eta=mc.eta)
            if clip is not None:
                x = jnp.clip(x, -clip, clip)
        return to_data(x)

    def evaluate(state: DDPMState, batch, key: PRNGKey) -> dict:
        x, context = split_batch(batch, event_shape, num_classes)
        y = labels_of(context)
        params = state.params if state.ema is None else state.ema
        x = to_model(x)
        eps_fn = lambda x_t, t: eps(params, x_t, t, y)  # noqa: E731
        loss_key, vlb_key = jax.random.split(key)
        nats, aux = diffusion.vlb(
            eps_fn,
            x,
            vlb_key,
            betas,
            variance=mc.variance,
            num_bins=num_bins,
            clip=clip,
            estimator=mc.eval_vlb,
        )
        return {
            "eps_loss": diffusion.ddpm_eps_loss(eps_fn, x, loss_key, abar),
            "nll": nats,
            "bits_per_dim": aux["bits_per_dim"],
            "prior_kl": aux["prior"],
        }

    return Trainer(init, step, sample, evaluate)
