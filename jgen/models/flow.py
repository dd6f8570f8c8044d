"""RealNVP: a normalizing flow of affine coupling layers, trained by maximum likelihood.

``z ~ N(0, I)``, ``x = f(z)`` with ``f`` a chain of affine couplings whose masks alternate parity,
optionally followed by ``x = (sigmoid(u) - a) / (1 - 2a)`` for data in [0, 1) (the logit
pre-processing of Dinh et al. 2017). The change of variables gives the exact density

    log p(x) = log N(f^{-1}(x); 0, I) + log|det d f^{-1}(x) / dx|.

Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real NVP".
"""

import math
from collections.abc import Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.bijectors.coupling import AffineCoupling, parity_mask
from jgen.bijectors.dequantization import uniform_dequantize
from jgen.checks import check_batch
from jgen.losses.likelihood import bits_per_dim, dequantized_nll, nll_loss
from jgen.nets.mlp import MLP
from jgen.train.optim import optimizer_from_config
from jgen.train.state import create_state, eval_params, make_step
from jgen.train.trainer import Trainer


class CouplingConditioner(nn.Module):
    """``m * x -> (shift, log_scale)`` with an MLP; ``log_scale = s * tanh(raw)`` keeps the scale
    bounded early in training (s is learned per dimension). The output layer starts at zero, so
    every coupling starts as the identity."""

    hidden_sizes: Sequence[int]
    additive: bool = False

    @nn.compact
    def __call__(self, x_masked: jax.Array) -> tuple[jax.Array, jax.Array]:
        flat = x_masked.reshape(x_masked.shape[0], -1)
        dim = flat.shape[-1]
        out = MLP(self.hidden_sizes, 2 * dim, zero_init_output=True)(flat)
        shift, raw = jnp.split(out, 2, axis=-1)
        scale = self.param("tanh_scale", nn.initializers.ones, (dim,))
        log_scale = jnp.zeros_like(raw) if self.additive else scale * jnp.tanh(raw)
        return shift.reshape(x_masked.shape), log_scale.reshape(x_masked.shape)


class RealNVP(nn.Module):
    """The flow's parameters; ``log_prob`` and ``sample`` are its two methods.

    Attributes:
      num_layers: number of coupling layers.
      hidden_sizes: hidden widths of each conditioner MLP.
      logit_alpha: when > 0, model data in [0, 1) through ``logit(a + (1 - 2a) x)``.
      additive: NICE couplings (volume preserving) instead of affine ones.
    """

    num_layers: int = 8
    hidden_sizes: Sequence[int] = (64, 64)
    logit_alpha: float = 0.0
    additive: bool = False

    def setup(self):
        self.conditioners = [
            CouplingConditioner(self.hidden_sizes, self.additive) for _ in range(self.num_layers)
        ]

    def bijector(self, event_shape: tuple[int, ...]) -> distrax.Bijector:
        """The map ``z -> x`` as one distrax bijector (couplings first, then the squashing)."""
        ndims = len(event_shape)
        couplings = [
            AffineCoupling(parity_mask(event_shape, i % 2), conditioner, ndims)
            for i, conditioner in enumerate(self.conditioners)
        ]
        squash = []
        if self.logit_alpha > 0:
            a = self.logit_alpha
            squash = [
                distrax.Block(distrax.ScalarAffine(-a / (1 - 2 * a), 1 / (1 - 2 * a)), ndims),
                distrax.Block(distrax.Sigmoid(), ndims),
            ]
        return distrax.Chain(squash + couplings[::-1])

    def log_prob(self, x: jax.Array) -> jax.Array:
        event_shape = x.shape[1:]
        z, log_det = self.bijector(event_shape).inverse_and_log_det(x)
        return standard_normal_log_prob(z, len(event_shape)) + log_det

    def sample(self, key: jax.Array, n: int, event_shape: tuple[int, ...]) -> jax.Array:
        z = jax.random.normal(key, (n, *event_shape))
        return self.bijector(event_shape).forward(z)


def standard_normal_log_prob(z: jax.Array, event_ndims: int) -> jax.Array:
    """``log N(z; 0, I)`` summed over the last ``event_ndims`` axes."""
    axes = tuple(range(-event_ndims, 0))
    dim = math.prod(z.shape[-event_ndims:])
    return -0.5 * jnp.sum(z**2, axis=axes) - 0.5 * dim * math.log(2 * math.pi)


def module_from_config(model_config) -> RealNVP:
    """The flow described by ``config.model``."""
    return RealNVP(
        num_layers=model_config.num_layers,
        hidden_sizes=tuple(model_config.hidden_sizes),
        logit_alpha=model_config.logit_alpha,
        additive=model_config.additive,
    )


def make(config, event_shape: tuple[int, ...]) -> Trainer:
    """A maximum-likelihood Trainer for the flow of ``config.model`` on events of ``event_shape``.

    ``evaluate`` returns per-example ``nll`` in nats. When ``config.data.num_levels = K`` is set,
    batches hold discrete data as cell corners ``k / K``; the loss and ``evaluate`` dequantize
    them with fresh uniform noise from their key, and ``evaluate`` adds ``nll_discrete``, the bound
    ``nll + D log K`` on the discrete NLL, and its ``bits_per_dim``.
    """
    event_shape = tuple(event_shape)
    module = module_from_config(config.model)
    num_dims = math.prod(event_shape)
    num_levels = config.data.num_levels

    def log_prob(params, x):
        check_batch("x", x, event_shape)
        return module.apply(params, x, method=RealNVP.log_prob)

    def continuous(batch, key):
        return uniform_dequantize(key, batch, num_levels) if num_levels else batch

    mean_nll = nll_loss(log_prob)

    def loss_fn(params, batch, key):
        return mean_nll(params, continuous(batch, key), None)

    optimizer = optimizer_from_config(config)
    ema_decay = config.optim.ema_decay

    def init(key, batch):
        check_batch("batch", batch, event_shape)
        return create_state(module.init(key, batch, method=RealNVP.log_prob), optimizer, ema_decay)

    def sample(state, key, n):
        params = eval_params(state)
        return module.apply(params, key, n, event_shape, method=RealNVP.sample)

    def evaluate(state, batch, key):
        nll = -log_prob(eval_params(state), continuous(batch, key))
        metrics = {"nll": nll}
        if num_levels:
            metrics["nll_discrete"] = dequantized_nll(nll, num_dims, num_levels)
            metrics["bits_per_dim"] = bits_per_dim(metrics["nll_discrete"], num_dims)
        return metrics

    step = make_step(loss_fn, optimizer, ema_decay)
    return Trainer(init=init, step=step, sample=sample, evaluate=evaluate)
