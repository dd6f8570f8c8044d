"""A hierarchical VAE with top-down inference: the Ladder VAE (Sønderby, Raiko, Maaløe, Sønderby &
Winther 2016, "Ladder variational autoencoders").

Generative model, layers ``z_1`` (bottom) to ``z_L`` (top)::

    p(z_L) = N(0, I),  p(z_l | z_{l+1}) = N(mu_l(z_{l+1}), sigma_l(z_{l+1})^2),  p(x | z_1).

Inference shares the top-down path: a deterministic bottom-up pass ``d_l = f_l(d_{l-1})``,
``d_0 = x``, gives per layer a Gaussian ``N(mu^_l, sigma^_l^2)``; then from the top,
``q(z_L | x) = N(mu^_L, sigma^_L^2)`` and ``q(z_l | z_{l+1}, x)`` is the precision-weighted
combination of ``N(mu^_l, sigma^_l^2)`` with the prior ``p(z_l | z_{l+1})``::

    sigma_q^-2 = sigma^^-2 + sigma_p^-2,   mu_q = sigma_q^2 (mu^ sigma^^-2 + mu_p sigma_p^-2).

The ELBO is ``E_q[log p(x | z_1)] - sum_l E_q[KL(q(z_l | z_{l+1}, x) || p(z_l | z_{l+1}))]``
with each KL analytic given the sampled ``z_{l+1}``; the KL of every layer is reported
(``kl_1`` ... ``kl_L``), which shows whether the upper layers are used.
"""

import itertools
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.gaussian import standard_normal_log_prob
from jgen.losses import elbo as bounds
from jgen.models.latent_variable import (
    LatentVariableModel,
    Likelihood,
    likelihood_from_config,
    make_trainer,
)
from jgen.nets.mlp import MLP
from jgen.train.trainer import Trainer
from jgen.types import Array


def _bounded_log_std(raw: Array) -> Array:
    """``log(softplus(raw) + 1e-3)``: every standard deviation the ladder produces is at least
    1e-3, so the precisions ``sigma^-2`` of the precision-weighted posterior stay finite (raw
    log-std outputs made a 5000-step digits run diverge at step 1830); Sønderby et al. 2016
    likewise produce variances through a softplus."""
    return jnp.log(jax.nn.softplus(raw) + 1e-3)


class LadderVAE(nn.Module):
    """Bottom-up encoder, top-down priors and an MLP decoder of ``z_1``.

    Attributes:
      event_shape: shape of one example.
      latent_dims: sizes of ``z_1`` (bottom) ... ``z_L`` (top), ``L >= 2``.
      hidden_sizes: widths of every MLP's hidden layers (the decoder's reversed).
      outputs_per_dim: decoder outputs per data dimension.
    """

    event_shape: tuple[int, ...]
    latent_dims: Sequence[int]
    hidden_sizes: Sequence[int]
    outputs_per_dim: int

    def setup(self):
        hidden = tuple(self.hidden_sizes)
        self.up = [MLP(hidden[:-1], hidden[-1]) for _ in self.latent_dims]
        self.up_heads = [nn.Dense(2 * d) for d in self.latent_dims]
        self.priors = [MLP(hidden, 2 * d) for d in self.latent_dims[:-1]]
        num_outputs = math.prod(self.event_shape) * self.outputs_per_dim
        self.decoder = MLP(tuple(reversed(hidden)), num_outputs)

    def bottom_up(self, x: Array) -> list[tuple[Array, Array]]:
        """``(mu^_l, log sigma^_l)`` for ``l = 1 .. L``."""
        d, out = jnp.reshape(x, (x.shape[0], -1)), []
        for up, head, dim in zip(self.up, self.up_heads, self.latent_dims, strict=True):
            d = nn.gelu(up(d))
            h = head(d)
            out.append((h[:, :dim], _bounded_log_std(h[:, dim:])))
        return out

    def prior(self, z_above: Array, layer: int) -> tuple[Array, Array]:
        """``(mu_l, log sigma_l)`` of ``p(z_l | z_{l+1})``, ``layer = l - 1`` (0-based)."""
        h = self.priors[layer](z_above)
        dim = self.latent_dims[layer]
        return h[:, :dim], _bounded_log_std(h[:, dim:])

    def decode(self, z1: Array) -> Array:
        out = self.decoder(z1)
        return jnp.reshape(out, (z1.shape[0], *self.event_shape, self.outputs_per_dim))

    def __call__(self, x: Array) -> Array:  # for init: touches every parameter
        ups = self.bottom_up(x)
        for layer in range(len(self.latent_dims) - 1):
            self.prior(ups[layer + 1][0], layer)
        return self.decode(ups[0][0])


def _combine(mean_hat, log_std_hat, mean_p, log_std_p):
    """The precision-weighted Gaussian (Sønderby et al. 2016, Eq. 18-19)."""
    prec_hat, prec_p = jnp.exp(-2.0 * log_std_hat), jnp.exp(-2.0 * log_std_p)
    var = 1.0 / (prec_hat + prec_p)
    return var * (mean_hat * prec_hat + mean_p * prec_p), 0.5 * jnp.log(var)


def latent_variable_model(module: LadderVAE, likelihood: Likelihood) -> LatentVariableModel:
    """The Ladder VAE's pure functions; ``z`` of the proposal and joint is the concatenation
    ``[z_1, ..., z_L]``."""
    dims = tuple(module.latent_dims)
    num_layers = len(dims)
    splits = list(itertools.accumulate(dims))[:-1]

    def apply(params, *args, method):
        return module.apply({"params": params}, *args, method=method)

    def infer(params, key, x):
        """Samples ``z_l ~ q`` top-down; returns the ``z_l`` (bottom first), ``log q`` and
        ``log p(z)`` of the sample, and the analytic KL of each layer, all ``(B,)``."""
        ups = apply(params, x, method="bottom_up")
        keys = jax.random.split(key, num_layers)
        zs, kls = [None] * num_layers, [None] * num_layers
        mean, log_std = ups[-1]
        eps = jax.random.normal(keys[-1], mean.shape, mean.dtype)
        zs[-1] = mean + jnp.exp(log_std) * eps
        log_q = bounds.gaussian_log_likelihood(zs[-1], mean, log_std)
        log_p = standard_normal_log_prob(zs[-1], 1)
        kls[-1] = bounds.gaussian_kl(mean, log_std)
        for layer in reversed(range(num_layers - 1)):
            mean_p, log_std_p = apply(params, zs[layer + 1], layer, method="prior")
            mean, log_std = _combine(*ups[layer], mean_p, log_std_p)
            eps = jax.random.normal(keys[layer], mean.shape, mean.dtype)
            zs[layer] = mean + jnp.exp(log_std) * eps
            log_q += bounds.gaussian_log_likelihood(zs[layer], mean, log_std)
            log_p += bounds.gaussian_log_likelihood(zs[layer], mean_p, log_std_p)
            kls[layer] = bounds.gaussian_kl_between(mean, log_std, mean_p, log_std_p)
        return zs, log_q, log_p, kls

    def log_likelihood(params, x, z1):
        return likelihood.log_prob(apply(params, z1, method="decode"), x)

    def elbo(params, key, x, beta):
        zs, _, _, kls = infer(params, key, x)
        reconstruction = log_likelihood(params, x, zs[0])
        aux = {"reconstruction": reconstruction, "kl": sum(kls)}
        aux.update({f"kl_{layer + 1}": kl for layer, kl in enumerate(kls)})
        return reconstruction - beta * sum(kls), aux

    def sample_and_log_q(params, key, x, k):
        n = x.shape[0]
        tiled = jnp.broadcast_to(x, (k, *x.shape)).reshape(k * n, *x.shape[1:])
        zs, log_q, _, _ = infer(params, key, tiled)
        return jnp.concatenate(zs, -1).reshape(k, n, -1), log_q.reshape(k, n)

    def log_joint(params, x, z):
        k, n = z.shape[:2]
        zs = jnp.split(z.reshape(k * n, -1), splits, axis=-1)
        log_p = standard_normal_log_prob(zs[-1], 1)
        for layer in range(num_layers - 1):
            mean_p, log_std_p = apply(params, zs[layer + 1], layer, method="prior")
            log_p += bounds.gaussian_log_likelihood(zs[layer], mean_p, log_std_p)
        flat_x = jnp.broadcast_to(x, (k, *x.shape)).reshape(k * n, *x.shape[1:])
        return (log_p + log_likelihood(params, flat_x, zs[0])).reshape(k, n)

    def decode_prior(params, key, n):
        keys = jax.random.split(key, num_layers)
        z = jax.random.normal(keys[-1], (n, dims[-1]))
        for layer in reversed(range(num_layers - 1)):
            mean_p, log_std_p = apply(params, z, layer, method="prior")
            z = mean_p + jnp.exp(log_std_p) * jax.random.normal(keys[layer], mean_p.shape)
        return apply(params, z, method="decode")

    def init(key, x):
        return module.init(key, x)["params"]

    return LatentVariableModel(init, elbo, None, sample_and_log_q, log_joint, decode_prior)


def make(config, event_shape: tuple[int, ...]) -> Trainer:
    """A Trainer for the Ladder VAE of ``config.model`` (``latent_dims`` bottom to top,
    ``hidden_sizes``, ``decoder`` and the training fields of
    :func:`jgen.models.latent_variable.make_trainer`; IWAE uses the standard gradient)."""
    mc = config.model
    dims = tuple(mc.latent_dims)
    if len(dims) < 2 or any(not isinstance(d, int) or d < 1 for d in dims):
        raise ValueError(
            f"model.latent_dims must list at least two positive sizes; got {mc.latent_dims}"
        )
    likelihood = likelihood_from_config(mc, config.data.num_levels)
    module = LadderVAE(tuple(event_shape), dims, tuple(mc.hidden_sizes), likelihood.outputs_per_dim)
    return make_trainer(config, event_shape, latent_variable_model(module, likelihood), likelihood)
