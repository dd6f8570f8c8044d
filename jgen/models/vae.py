"""The variational autoencoder: a diagonal-Gaussian encoder and an MLP decoder over a standard
normal prior, trained by the ELBO (beta-VAE, KL annealing) or the IWAE bound (standard or DReG
gradients) through :func:`jgen.models.latent_variable.make_trainer`.

Kingma & Welling 2014, "Auto-encoding variational Bayes"; Rezende, Mohamed & Wierstra 2014;
Higgins et al. 2017 (beta-VAE); Burda, Grosse & Salakhutdinov 2016 (IWAE); Tucker et al. 2019
(DReG). The decoders and the data they model are listed in :mod:`jgen.models.latent_variable`.
"""

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.checks import check_int
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
from jgen.types import Array, Params


class VAE(nn.Module):
    """MLP encoder ``x -> (mean, log std)`` of ``q(z | x)`` and MLP decoder ``z -> outputs``
    ``(B, *event, outputs_per_dim)`` parameterising ``p(x | z)``.

    Attributes:
      event_shape: shape of one example.
      latent_dim: size of ``z``.
      hidden_sizes: widths of the encoder's hidden layers; the decoder mirrors them.
      outputs_per_dim: decoder outputs per data dimension (1 or 2).
    """

    event_shape: tuple[int, ...]
    latent_dim: int
    hidden_sizes: Sequence[int]
    outputs_per_dim: int

    def setup(self):
        self.encoder = MLP(tuple(self.hidden_sizes), 2 * self.latent_dim)
        num_outputs = math.prod(self.event_shape) * self.outputs_per_dim
        self.decoder = MLP(tuple(reversed(self.hidden_sizes)), num_outputs)

    def encode(self, x: Array) -> tuple[Array, Array]:
        h = self.encoder(jnp.reshape(x, (x.shape[0], -1)))
        return h[:, : self.latent_dim], h[:, self.latent_dim :]

    def decode(self, z: Array) -> Array:
        out = self.decoder(z)
        return jnp.reshape(out, (z.shape[0], *self.event_shape, self.outputs_per_dim))

    def __call__(self, x: Array) -> Array:  # for init: touches every parameter
        return self.decode(self.encode(x)[0])


def latent_variable_model(module: VAE, likelihood: Likelihood) -> LatentVariableModel:
    """The VAE's pure functions: analytic-KL ELBO, IWAE (standard or DReG), proposal and joint."""

    def encoder(params: Params):
        return lambda x: module.apply({"params": params}, x, method="encode")

    def log_likelihood(params: Params):
        def fn(x, z):
            return likelihood.log_prob(module.apply({"params": params}, z, method="decode"), x)

        return fn

    def elbo(params, key, x, beta):
        value, aux = bounds.elbo(key, x, encoder(params), log_likelihood(params), beta=beta)
        return value, {"reconstruction": aux["reconstruction"], "kl": aux["kl"]}

    def iwae(params, key, x, k, gradient):
        value, aux = bounds.iwae_bound(
            key, x, encoder(params), log_likelihood(params), k, gradient=gradient
        )
        return value, {"ess": aux["ess"]}

    def sample_and_log_q(params, key, x, k):
        mean, log_std = encoder(params)(x)
        eps = jax.random.normal(key, (k, *mean.shape), mean.dtype)
        return mean + jnp.exp(log_std) * eps, standard_normal_log_prob(eps, 1) - jnp.sum(
            log_std, -1
        )

    def log_joint(params, x, z):
        k, n = z.shape[:2]
        flat_x = jnp.broadcast_to(x, (k, *x.shape)).reshape(k * n, *x.shape[1:])
        log_px = log_likelihood(params)(flat_x, z.reshape(k * n, -1)).reshape(k, n)
        return log_px + standard_normal_log_prob(z, 1)

    def decode_prior(params, key, n):
        z = jax.random.normal(key, (n, module.latent_dim))
        return module.apply({"params": params}, z, method="decode")

    def init(key, x):
        return module.init(key, x)["params"]

    return LatentVariableModel(init, elbo, iwae, sample_and_log_q, log_joint, decode_prior)


def make(config, event_shape: tuple[int, ...]) -> Trainer:
    """A Trainer for the VAE of ``config.model`` (``latent_dim``, ``hidden_sizes``, ``decoder``
    and the training fields of :func:`jgen.models.latent_variable.make_trainer`)."""
    mc = config.model
    check_int("model.latent_dim", mc.latent_dim)
    likelihood = likelihood_from_config(mc, config.data.num_levels)
    module = VAE(
        tuple(event_shape), mc.latent_dim, tuple(mc.hidden_sizes), likelihood.outputs_per_dim
    )
    return make_trainer(config, event_shape, latent_variable_model(module, likelihood), likelihood)
