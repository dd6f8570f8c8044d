"""Multinomial diffusion (Hoogeboom, Nielsen, Jaini, Forré & Welling 2021, "Argmax flows and
multinomial diffusion") as one :class:`~jgen.train.trainer.Trainer`, for categorical data such as
the binary digits (``K = model.num_categories = 2`` categories per pixel).

The data hold category indices as floats (``0.0 .. K - 1``: binary pixels ``{0, 1}``), rounded to
integers. The forward chain ``q(x_t | x_{t-1}) = Cat((1 - beta_t) x_{t-1} + beta_t / K)`` runs over
``N = model.diffusion_steps`` steps of the cosine schedule (``model.schedule``; Hoogeboom et al.
use it); a network maps ``(x_t, t)`` to the logits of ``x0_hat`` and the reverse model is
``p(x_{t-1} | x_t) = Cat(theta_post(x_t, x0_hat))`` (:mod:`jgen.losses.multinomial_diffusion`).
The network sees ``x_t`` one-hot and scaled to ``{-1, 1}`` with the integer step ``t``:

- ``model.architecture = "unet"``: :class:`jgen.nets.unet.UNet` on images ``(H, W[, C])``, the
  ``C K`` one-hot channels in and ``C K`` logits out;
- ``"mlp"``: :class:`jgen.nets.score_mlp.ScoreMLP` on ``(n, *event, K)`` (flattened inside), for
  any event shape.

Training minimises the one-step estimate ``L_T + N L_t`` (``t`` uniform) of the variational bound,
in bits per dimension (the scale of Hoogeboom et al.'s code). ``evaluate`` reports the bound on
``-log P(x)`` per example in nats (``nll``; every step with ``model.eval_vlb = "exact"``, one
random step times ``N`` with ``"sample"``), ``bits_per_dim`` and ``prior_kl``. ``sample``
ancestrally samples ``N`` steps from the uniform distribution and returns the categories as
floats (binary images in ``{0, 1}``). Sampling and evaluation use the EMA of the parameters
(``optim.ema_decay``; the raw ones when 0).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jgen.checks import check_choice, check_int
from jgen.data.labels import split_batch
from jgen.losses import diffusion
from jgen.losses import multinomial_diffusion as md
from jgen.losses.likelihood import bits_per_dim
from jgen.nets.score_mlp import ScoreMLP
from jgen.nets.unet import UNet
from jgen.sdes import schedules
from jgen.train.optim import optimizer_from_config
from jgen.train.trainer import Trainer
from jgen.types import Array, Params, PRNGKey

SCHEDULES = {"cosine": schedules.cosine_betas}
ARCHITECTURES = ("mlp", "unet")


class MultinomialDiffusionState(NamedTuple):
    """Training state: ``step``, the network's ``params``, ``opt_state`` and the ``ema`` of the
    parameters (None when ``optim.ema_decay = 0``)."""

    step: Array
    params: Params
    opt_state: optax.OptState
    ema: Params | None


def _check_config(config, event_shape: tuple[int, ...]) -> None:
    mc = config.model
    check_int("model.num_categories", mc.num_categories, minimum=2)
    check_int("model.diffusion_steps", mc.diffusion_steps, minimum=2)
    check_choice("model.schedule", mc.schedule, SCHEDULES)
    check_choice("model.architecture", mc.architecture, ARCHITECTURES)
    check_choice("model.eval_vlb", mc.eval_vlb, diffusion.ESTIMATORS)
    if mc.architecture == "mlp":
        for i, width in enumerate(mc.hidden_sizes):
            check_int(f"model.hidden_sizes[{i}]", width)
    elif len(event_shape) not in (2, 3):
        raise ValueError(
            f"model.architecture='unet' needs images (H, W) or (H, W, C); got event shape "
            f"{event_shape}"
        )


def _network(config, event_shape: tuple[int, ...]):
    """``apply(params, x_t (n, *event) int, t (n,) int) -> logits (n, *event, K)`` and an
    ``init(key, x_t, t)``, wrapping the Flax module around the one-hot encoding."""
    mc = config.model
    k = mc.num_categories
    if mc.architecture == "mlp":
        module = ScoreMLP(tuple(mc.hidden_sizes), mc.embedding_dim)
    else:
        channels = math.prod(event_shape[2:]) * k
        module = UNet(
            channels=mc.channels,
            channel_mults=tuple(mc.channel_mults),
            num_res_blocks=mc.num_res_blocks,
            dropout=mc.dropout,
            num_groups=mc.num_groups,
            out_channels=channels,
        )

    def encode(x_t: Array) -> Array:
        # One-hot in {-1, 1}: zero-mean inputs, as the images of DDPM.
        h = 2.0 * jax.nn.one_hot(x_t, k) - 1.0
        if mc.architecture == "unet":
            h = h.reshape(*x_t.shape[:3], -1)
        return h

    def apply(params, x_t: Array, t: Array) -> Array:
        h = encode(x_t)
        out = module.apply({"params": params}, h, t.astype(h.dtype))
        return out.reshape(*x_t.shape, k)

    def init(key: PRNGKey, x_t: Array, t: Array) -> Params:
        h = encode(x_t)
        return module.init(key, h, t.astype(h.dtype))["params"]

    return init, apply


def make(config, event_shape: tuple[int, ...]) -> Trainer:
    """A Trainer for the multinomial diffusion of ``config.model`` (fields in the module docstring
    and in ``experiments/configs/multinomial_digits.py``).

    Raises:
      ValueError: naming the field for fewer than 2 categories or steps, an unknown schedule,
        architecture or bound estimator, non-positive widths, or a U-Net on data that are not
        images.
    """
    event_shape = tuple(event_shape)
    _check_config(config, event_shape)
    mc = config.model
    k = mc.num_categories
    n_steps = mc.diffusion_steps
    betas = SCHEDULES[mc.schedule](n_steps)
    net_init, apply = _network(config, event_shape)
    optimizer = optimizer_from_config(config)
    ema_decay = config.optim.ema_decay
    num_dims = math.prod(event_shape)

    def categories(batch) -> Array:
        x, _ = split_batch(batch, event_shape, 0)
        return jnp.clip(jnp.round(x), 0, k - 1).astype(jnp.int32)

    def init(key: PRNGKey, batch) -> MultinomialDiffusionState:
        x = categories(batch)
        params = net_init(key, x, jnp.zeros(x.shape[:1], jnp.int32))
        ema = jax.tree.map(jnp.copy, params) if ema_decay > 0 else None
        return MultinomialDiffusionState(
            jnp.zeros((), jnp.int32), params, optimizer.init(params), ema
        )

    def loss_fn(params, x, key):
        nats, _ = md.vlb(lambda x_t, t: apply(params, x_t, t), x, key, betas, k, estimator="sample")
        return jnp.mean(bits_per_dim(nats, num_dims)), nats

    def step(state: MultinomialDiffusionState, batch, key: PRNGKey):
        x = categories(batch)
        (loss, nats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, x, key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = state.ema
        if ema is not None:
            ema = optax.incremental_update(params, ema, step_size=1.0 - ema_decay)
        metrics = {
            "loss": loss,
            "nll_estimate": jnp.mean(nats),
            "grad_norm": optax.tree.norm(grads),
        }
        return MultinomialDiffusionState(state.step + 1, params, opt_state, ema), metrics

    def eval_params(state: MultinomialDiffusionState) -> Params:
        return state.params if state.ema is None else state.ema

    def sample(state: MultinomialDiffusionState, key: PRNGKey, n: int) -> Array:
        params = eval_params(state)
        x, _ = md.multinomial_sample(
            lambda x_t, t: apply(params, x_t, t), key, (n, *event_shape), betas, k
        )
        return x.astype(jnp.result_type(float))

    def evaluate(state: MultinomialDiffusionState, batch, key: PRNGKey) -> dict:
        params = eval_params(state)
        x = categories(batch)
        nats, aux = md.vlb(
            lambda x_t, t: apply(params, x_t, t), x, key, betas, k, estimator=mc.eval_vlb
        )
        return {"nll": nats, "bits_per_dim": aux["bits_per_dim"], "prior_kl": aux["prior"]}

    return Trainer(init, step, sample, evaluate)
