"""Normalizing flows trained by maximum likelihood: every family of ``FAMILIES`` from one config.

:func:`module_from_config` assembles a :class:`jgen.models.chain_flow.ChainFlow` (a chain of
steps over a Gaussian base) from the bijectors of ``jgen.bijectors``, or the multi-scale
:class:`jgen.models.glow.Glow` for ``'glow'`` on images; :func:`make` trains any of them by
maximum likelihood, on dequantized data when the data are discrete.

Dinh, Sohl-Dickstein & Bengio 2017 (RealNVP); Dinh, Krueger & Bengio 2015 (NICE); Kingma &
Dhariwal 2018 (Glow); Papamakarios et al. 2017 (MAF); Kingma et al. 2016 (IAF); Durkan et al.
2019 (neural spline flows); Rezende & Mohamed 2015 (planar, radial); Chen et al. 2019 (residual
flows); Grathwohl et al. 2019 (FFJORD).
"""

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.bijectors.actnorm import ActNormLayer
from jgen.bijectors.autoregressive import MAFLayer
from jgen.bijectors.continuous import ContinuousFlowLayer
from jgen.bijectors.conv1x1 import Conv1x1Layer
from jgen.bijectors.coupling import AffineCouplingLayer
from jgen.bijectors.dequantization import (
    VariationalDequantizer,
    uniform_dequantize,
    variational_dequantize,
)
from jgen.bijectors.planar import PlanarLayer
from jgen.bijectors.radial import RadialLayer
from jgen.bijectors.residual import ResidualLayer
from jgen.bijectors.scaling import ScalingLayer
from jgen.bijectors.spline import SplineCouplingLayer
from jgen.checks import check_batch, check_choice
from jgen.losses.likelihood import bits_per_dim, dequantized_nll
from jgen.models.chain_flow import ChainFlow
from jgen.models.glow import Glow
from jgen.nets.masked import alternating_orderings
from jgen.train.optim import optimizer_from_config
from jgen.train.state import create_state, eval_params, make_stateful_step
from jgen.train.trainer import Trainer

FAMILIES = (
    "realnvp",
    "nice",
    "glow",
    "maf",
    "iaf",
    "spline",
    "spline_ar",
    "planar",
    "radial",
    "residual",
    "ffjord",
)
# Collections a training step updates (power-iteration vectors of spectral normalisation); the
# others (``constants``: fixed permutations) are read only.
UPDATED_COLLECTIONS = ("spectral",)


def family_steps(
    family: str,
    dim: int,
    *,
    num_layers: int = 8,
    hidden_sizes: Sequence[int] = (64, 64),
    num_bins: int = 8,
    spline_bound: float = 4.0,
    ode_steps: int = 16,
) -> list[nn.Module]:
    """The steps of a :class:`ChainFlow` of ``family`` on ``dim`` (flattened) variables, latent
    side first: ``ChainFlow(tuple(family_steps("maf", 2)))`` is a 2-D MAF.

    Args:
      family: one of ``FAMILIES``.
      dim: the number of variables (orders the MADE masks).
      num_layers: couplings, MADE layers, Glow steps, planar / radial / residual layers or ODE
        blocks.
      hidden_sizes: hidden widths of every conditioner, residual branch or vector field.
      num_bins, spline_bound: the rational-quadratic splines (``spline``, ``spline_ar``).
      ode_steps: RK4 steps of each FFJORD block.
    """
    check_choice("family", family, FAMILIES)
    n, hidden = num_layers, tuple(hidden_sizes)
    spline = dict(num_bins=num_bins, bound=spline_bound)
    orderings = alternating_orderings(dim, n)
    builders = {
        "realnvp": lambda: [AffineCouplingLayer(hidden, i % 2) for i in range(n)],
        "nice": lambda: (
            [ScalingLayer()] + [AffineCouplingLayer(hidden, i % 2, additive=True) for i in range(n)]
        ),
        # One Glow step, data -> latent: actnorm, 1x1 convolution (LU), coupling.
        "glow": lambda: [
            layer
            for i in range(n)
            for layer in (AffineCouplingLayer(hidden, i % 2), Conv1x1Layer(), ActNormLayer())
        ],
        "maf": lambda: [MAFLayer(hidden, ordering=o) for o in orderings],
        "iaf": lambda: [MAFLayer(hidden, ordering=o, kind="iaf") for o in orderings],
        "spline": lambda: [
            SplineCouplingLayer(num_bins, spline_bound, hidden, parity=i % 2) for i in range(n)
        ],
        "spline_ar": lambda: [
            MAFLayer(hidden, ordering=o, transformer="spline", **spline) for o in orderings
        ],
        "planar": lambda: [PlanarLayer() for _ in range(n)],
        "radial": lambda: [RadialLayer() for _ in range(n)],
        "residual": lambda: [ResidualLayer(hidden) for _ in range(n)],
        "ffjord": lambda: [
            ContinuousFlowLayer(hidden, n_steps=ode_steps, divergence="hutchinson")
            for _ in range(n)
        ],
    }
    return builders[family]()


def module_from_config(model_config, event_shape: tuple[int, ...]) -> nn.Module:
    """The flow named by ``model_config.flow`` on events of ``event_shape``: the multi-scale
    :class:`jgen.models.glow.Glow` for ``'glow'`` on images, a :class:`ChainFlow` otherwise
    (coupling families keep the event's shape for their checkerboard masks; the others act on
    the flattened event)."""
    check_choice("model.flow", model_config.flow, FAMILIES)
    event_shape = tuple(event_shape)
    if model_config.flow == "glow" and len(event_shape) >= 2:
        return Glow(
            num_scales=model_config.num_scales,
            steps_per_scale=model_config.num_layers,
            hidden_channels=model_config.hidden_sizes[0],
            logit_alpha=model_config.logit_alpha,
        )
    m = model_config
    steps = family_steps(
        m.flow,
        math.prod(event_shape),
        num_layers=m.num_layers,
        hidden_sizes=m.hidden_sizes,
        num_bins=m.num_bins,
        spline_bound=m.spline_bound,
        ode_steps=m.ode_steps,
    )
    keeps_shape = model_config.flow in ("realnvp", "nice", "spline")
    return ChainFlow(
        tuple(steps),
        logit_alpha=model_config.logit_alpha,
        flatten=not keeps_shape and len(event_shape) > 1,
    )


DEQUANTIZATIONS = ("uniform", "variational")


def log_prob_fn(module: nn.Module):
    """``log_prob(params, model_state, x, key=None) -> (log p(x), model_state)`` for a flow module
    (``ChainFlow`` or ``Glow``), with ``model_state`` its non-trained collections.

    Without a key: exact log-dets and the state unchanged (evaluation). With a key: the
    stochastic log-det estimators, and the ``UPDATED_COLLECTIONS`` (spectral-norm vectors)
    advanced one step (training; see ``jgen.train.state.make_stateful_step``).
    """

    def log_prob(params, model_state, x, key=None):
        variables = {"params": params, **model_state}
        mutable = [c for c in UPDATED_COLLECTIONS if c in model_state] if key is not None else []
        if not mutable:
            return module.apply(variables, x, key, method="log_prob"), model_state
        log_p, updates = module.apply(variables, x, key, method="log_prob", mutable=mutable)
        return log_p, {**model_state, **updates}

    return log_prob


def make(config, event_shape: tuple[int, ...]) -> Trainer:
    """A maximum-likelihood Trainer for the flow of ``config.model`` on events of ``event_shape``.

    ``evaluate`` returns per-example ``nll`` in nats (exact log-dets). When
    ``config.data.num_levels = K`` is set, batches hold discrete data as cell corners ``k / K``
    and are dequantized with fresh noise from the step's key: uniform, or drawn from a learned
    ``VariationalDequantizer`` ``q(u | x)`` trained jointly with the flow
    (``model.dequantization = 'variational'``, Ho et al. 2019). ``nll`` is then the single-sample
    estimate of ``-(log p(y) - log q(u | x))`` (``log q = 0`` for uniform noise), and
    ``evaluate`` adds ``nll_discrete = nll + D log K``, an upper bound on the discrete NLL, and its
    ``bits_per_dim``.

    Parameters are ``{"flow": ..., "dequantizer": ...}`` (the latter only when variational);
    non-trained flow variables (spectral-norm vectors, 1x1-conv permutations) are the state's
    ``model_state``.
    """
    event_shape = tuple(event_shape)
    module = module_from_config(config.model, event_shape)
    num_dims = math.prod(event_shape)
    num_levels = config.data.num_levels
    check_choice("model.dequantization", config.model.dequantization, DEQUANTIZATIONS)
    dequantizer = (
        VariationalDequantizer()
        if num_levels and config.model.dequantization == "variational"
        else None
    )

    def dequantize(params, batch, key):
        """``(y, log q(u | x))``: the batch itself for continuous data."""
        if not num_levels:
            return batch, jnp.zeros(batch.shape[:1], batch.dtype)
        if dequantizer is None:
            return uniform_dequantize(key, batch, num_levels), jnp.zeros(batch.shape[:1])
        dq_variables = {"params": params["dequantizer"]}
        return variational_dequantize(dequantizer, dq_variables, key, batch, num_levels)

    flow_log_prob = log_prob_fn(module)

    def log_likelihood(params, model_state, batch, key, train):
        """Per-example ``log p(y) - log q(u | x)`` and the updated model state."""
        check_batch("x", batch, event_shape)
        if key is None and (num_levels or train):
            raise ValueError("key must be a PRNG key to dequantize or train; got None")
        noise_key, estimator_key = jax.random.split(key) if key is not None else (None, None)
        y, log_q = dequantize(params, batch, noise_key)
        log_p, model_state = flow_log_prob(
            params["flow"], model_state, y, estimator_key if train else None
        )
        return log_p - log_q, model_state

    def loss_fn(params, model_state, batch, key):
        log_p, model_state = log_likelihood(params, model_state, batch, key, train=True)
        return -jnp.mean(log_p), ({"nll": -log_p}, model_state)

    optimizer = optimizer_from_config(config)
    ema_decay = config.optim.ema_decay

    def init(key, batch):
        check_batch("batch", batch, event_shape)
        noise_key, flow_key, dq_key = jax.random.split(key, 3)
        params = {}
        if dequantizer is not None:
            params["dequantizer"] = dequantizer.init(dq_key, batch, noise_key)["params"]
        y, _ = dequantize(params, batch, noise_key)
        variables = dict(module.init(flow_key, y, None, method="log_prob"))
        params["flow"] = variables.pop("params")
        return create_state(params, optimizer, ema_decay, variables)

    def sample(state, key, n):
        variables = {"params": eval_params(state)["flow"], **state.model_state}
        return module.apply(variables, key, n, event_shape, method="sample")

    def evaluate(state, batch, key):
        log_p, _ = log_likelihood(eval_params(state), state.model_state, batch, key, False)
        metrics = {"nll": -log_p}
        if num_levels:
            metrics["nll_discrete"] = dequantized_nll(-log_p, num_dims, num_levels)
            metrics["bits_per_dim"] = bits_per_dim(metrics["nll_discrete"], num_dims)
        return metrics

    step = make_stateful_step(loss_fn, optimizer, ema_decay)
    return Trainer(init=init, step=step, sample=sample, evaluate=evaluate)
