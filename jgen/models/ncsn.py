"""Noise-conditional score networks (Song & Ermon 2019, "Generative modeling by estimating
gradients of the data distribution") with the improvements of Song & Ermon 2020, "Improved
techniques for training score-based generative models" (NCSNv2), as one
:class:`~jgen.train.trainer.Trainer`.

The score of the data convolved with ``N(0, sigma^2 I)`` is modelled at ``L = model.num_levels``
geometric noise levels ``sigma_1 > ... > sigma_L`` (:func:`jgen.sdes.schedules.geometric_sigmas`
from ``sigma_1 = model.sigma_max`` to ``sigma_L = model.sigma_min``) by one network ``f`` —
:class:`jgen.nets.score_mlp.ScoreMLP` for vectors, :class:`jgen.nets.unet.UNet` for images —
conditioned on ``log sigma`` and divided by ``sigma`` (NCSNv2, technique 3):

    s(x, sigma) = f(x, log sigma) / sigma,

so that ``f`` predicts the unit-scale ``-z`` of ``x = x_0 + sigma z`` at every level. Training
minimises the multi-noise denoising score matching loss with ``lambda(sigma) = sigma^2``
(:func:`jgen.losses.diffusion.ncsn_loss`). ``model.sigma_max = 0`` ("auto") sets ``sigma_1`` to the
largest Euclidean distance between two examples of the batch given to ``init`` (NCSNv2, technique
1: ``sigma_1`` must be comparable to the largest pairwise distance so that Langevin dynamics can
move between modes), in model space — ``init`` then reads the values of its batch, not only its
shape (the loop passes the first training batch); the value is kept in the state, so a restored
checkpoint keeps it. A positive number sets it directly. (0 rather than the string ``"auto"``
because a ConfigDict field keeps its type: a string field could not be overridden by a number.)

``sample`` runs annealed Langevin dynamics (:func:`jgen.samplers.annealed_langevin`) with the EMA
network (``optim.ema_decay``; the raw one when 0): ``model.n_steps_each`` steps per level of size
``alpha_i = model.step_lr * sigma_i^2 / sigma_L^2`` from ``x ~ N(0, sigma_1^2 I)`` (the VE SDE's
prior, Song et al. 2021, rather than NCSN's uniform noise: it covers data of any range), and, with
``model.denoise``, the final Tweedie step ``x + sigma_L^2 s(x, sigma_L)`` (NCSNv2;
Jolicoeur-Martineau et al. 2021). Images in ``[0, 1]`` are modelled on ``[-1, 1]`` and the samples
are clipped to that range. ``evaluate`` reports the per-example loss (``loss``).

The helpers that :mod:`jgen.models.score_sde` shares (state, parameter update, network, data
mapping) live here.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jgen.checks import check_int, check_positive
from jgen.data.labels import split_batch
from jgen.losses import diffusion
from jgen.models.ddpm import network as ddpm_network
from jgen.samplers.annealed_langevin import annealed_langevin
from jgen.sdes import schedules
from jgen.sdes.sde import expand
from jgen.train.optim import optimizer_from_config
from jgen.train.trainer import Trainer
from jgen.types import Array, Params, PRNGKey


class ScoreState(NamedTuple):
    """Training state of a score model: ``step``, the network's ``params``, ``opt_state``, the
    ``ema`` of the parameters (None when ``optim.ema_decay = 0``) and ``sigma_max``, the largest
    noise level (a scalar array; NaN where the model has no such level)."""

    step: Array
    params: Params
    opt_state: optax.OptState
    ema: Params | None
    sigma_max: Array


def score_network(config, event_shape: tuple[int, ...]):
    """The unconditional network of ``config.model``: a ScoreMLP or a UNet (the DDPM fields
    ``architecture``, ``hidden_sizes``, ``embedding_dim``, ``channels`` ...).

    Raises:
      ValueError: naming the field for a class-conditional model (``model.num_classes > 0``;
        class conditioning with guidance is :mod:`jgen.models.ddpm`'s), a bad size, or a U-Net on
        data that are not images.
    """
    if config.model.num_classes != 0:
        raise ValueError(
            f"model.num_classes must be 0 (score models here are unconditional; "
            f"class-conditional diffusion is jgen.models.ddpm); got {config.model.num_classes!r}"
        )
    return ddpm_network(config, event_shape)


def is_image(event_shape: tuple[int, ...]) -> bool:
    """Images ``(H, W[, C])`` in ``[0, 1]`` are modelled on ``[-1, 1]``; vectors as they are."""
    return len(event_shape) >= 2


def to_model(x: Array, images: bool) -> Array:
    """Data to model space: ``2 x - 1`` for images, identity for vectors."""
    return 2.0 * x - 1.0 if images else x


def to_data(y: Array, images: bool) -> Array:
    """Model space to data: images clipped to ``[-1, 1]`` and mapped to ``[0, 1]``."""
    return (jnp.clip(y, -1.0, 1.0) + 1.0) / 2.0 if images else y


def sampling_params(state: ScoreState) -> Params:
    """The EMA parameters when kept, else the raw ones."""
    return state.params if state.ema is None else state.ema


def init_state(
    module, optimizer, ema_decay: float, key: PRNGKey, x: Array, sigma_max
) -> ScoreState:
    """A fresh :class:`ScoreState` for ``module`` initialised on the batch ``x``."""
    t = jnp.zeros(x.shape[:1], x.dtype)
    params = module.init(key, x, t, None)["params"]
    ema = jax.tree.map(jnp.copy, params) if ema_decay > 0 else None
    return ScoreState(
        jnp.zeros((), jnp.int32),
        params,
        optimizer.init(params),
        ema,
        jnp.asarray(sigma_max, x.dtype),
    )


def gradient_step(
    state: ScoreState, loss_fn, optimizer, ema_decay: float, *args
) -> tuple[ScoreState, dict]:
    """One optimiser step on ``mean(loss_fn(params, *args))`` and the EMA update
    ``ema <- decay ema + (1 - decay) params``; metrics ``loss`` and ``grad_norm``."""
    loss, grads = jax.value_and_grad(lambda p: jnp.mean(loss_fn(p, *args)))(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = state.ema
    if ema is not None:
        ema = optax.incremental_update(params, ema, step_size=1.0 - ema_decay)
    state = state._replace(step=state.step + 1, params=params, opt_state=opt_state, ema=ema)
    return state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}


def max_pairwise_distance(x: Array) -> Array:
    """``max_{i, j} ||x_i - x_j||`` over a batch ``(n, *event)`` (NCSNv2's choice of
    ``sigma_1``, technique 1), from the Gram matrix: ``|x_i|^2 + |x_j|^2 - 2 x_i . x_j``."""
    flat = jnp.reshape(x, (x.shape[0], -1))
    flat = flat - jnp.mean(flat, axis=0)  # centring keeps the Gram formula accurate
    sq = jnp.sum(flat**2, axis=-1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * flat @ flat.T
    return jnp.sqrt(jnp.maximum(jnp.max(d2), 0.0))


def check_sigma_max(mc) -> None:
    """``mc.sigma_max`` must be 0 (auto: :func:`max_pairwise_distance` of the first batch) or a
    number above ``mc.sigma_min``."""
    ok = isinstance(mc.sigma_max, int | float) and not isinstance(mc.sigma_max, bool)
    if not ok or not (mc.sigma_max == 0 or mc.sigma_max > mc.sigma_min):
        raise ValueError(
            f"model.sigma_max must be 0 (auto: the largest pairwise distance of the first batch) "
            f"or a number > model.sigma_min={mc.sigma_min}; got {mc.sigma_max!r}"
        )


def initial_sigma_max(mc, x: Array):
    """``sigma_max`` of the config, or with 0 the largest pairwise distance of ``x``."""
    return max_pairwise_distance(x) if mc.sigma_max == 0 else mc.sigma_max


def _check_config(config) -> None:
    mc = config.model
    check_int("model.num_levels", mc.num_levels, minimum=2)
    check_positive("model.sigma_min", mc.sigma_min)
    check_sigma_max(mc)
    check_int("model.n_steps_each", mc.n_steps_each)
    check_positive("model.step_lr", mc.step_lr)
    if not isinstance(mc.denoise, bool):
        raise ValueError(f"model.denoise must be a bool; got {mc.denoise!r}")


def make(config, event_shape: tuple[int, ...]) -> Trainer:
    """A Trainer for the NCSN of ``config.model`` (fields in the module docstring).

    Raises:
      ValueError: naming the field for fewer than two levels, a non-positive ``sigma_min``, a
        ``sigma_max`` that is neither 0 (auto) nor above ``sigma_min``, bad Langevin settings,
        a class-conditional model, or a network the data cannot take (see
        :func:`score_network`).
    """
    _check_config(config)
    mc = config.model
    event_shape = tuple(event_shape)
    images = is_image(event_shape)
    module = score_network(config, event_shape)
    optimizer = optimizer_from_config(config)
    ema_decay = config.optim.ema_decay

    def sigmas_of(state: ScoreState) -> Array:
        return schedules.geometric_sigmas(state.sigma_max, mc.sigma_min, mc.num_levels)

    def score(params, x: Array, sigma: Array) -> Array:
        out = module.apply({"params": params}, x, jnp.log(sigma).astype(x.dtype), None)
        return out / expand(sigma, x).astype(x.dtype)

    def loss_fn(params, x: Array, key: PRNGKey, sigmas: Array) -> Array:
        return diffusion.ncsn_loss(lambda y, s: score(params, y, s), x, key, sigmas)

    def init(key: PRNGKey, batch) -> ScoreState:
        x, _ = split_batch(batch, event_shape, 0)
        x = to_model(x, images)
        return init_state(module, optimizer, ema_decay, key, x, initial_sigma_max(mc, x))

    def step(state: ScoreState, batch, key: PRNGKey):
        x, _ = split_batch(batch, event_shape, 0)
        x = to_model(x, images)
        return gradient_step(state, loss_fn, optimizer, ema_decay, x, key, sigmas_of(state))

    def sample(state: ScoreState, key: PRNGKey, n: int) -> Array:
        params = sampling_params(state)
        init_key, chain_key = jax.random.split(key)
        x0 = state.sigma_max * jax.random.normal(init_key, (n, *event_shape), state.sigma_max.dtype)
        x, _ = annealed_langevin(
            lambda y, s: score(params, y, s),
            x0,
            chain_key,
            sigmas=sigmas_of(state),
            n_steps_each=mc.n_steps_each,
            step_lr=mc.step_lr,
            denoise=mc.denoise,
        )
        return to_data(x, images)

    def evaluate(state: ScoreState, batch, key: PRNGKey) -> dict:
        x, _ = split_batch(batch, event_shape, 0)
        x = to_model(x, images)
        return {"loss": loss_fn(sampling_params(state), x, key, sigmas_of(state))}

    return Trainer(init, step, sample, evaluate)
