"""The VAE's evaluation against quadrature: with a one-dimensional latent, ``log p(x) =
log ∫ N(z; 0, 1) p(x | z) dz`` is computed to machine precision by Gauss–Hermite quadrature, which
checks the decoder's normalisation, the ELBO's bound and the importance-sampled estimate."""

import itertools
import math

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import vae_digits
from jgen.models import hvae, latent_variable, vae
from tests.params import add_noise, float64


def _config(decoder, num_levels=0, **model):
    c = vae_digits.get_config("binary")
    c.model.update(dict(dict(decoder=decoder, latent_dim=1, hidden_sizes=(16,)), **model))
    c.model.eval_samples, c.model.eval_chunk = 4000, 500
    c.data.num_levels = num_levels
    return c


def _random_state(trainer, batch, key, encoder_heads=(("encoder", "Dense_1"),)):
    """Random parameters whose encoder output layers (``encoder_heads``, paths into the
    params) are shrunk, so ``q(z | x)`` is a broad proposal near the prior: the
    importance-sampled NLL is then accurate to a few hundredths with 4000 samples (a random
    narrow encoder makes the weights heavy-tailed, and the estimate would tell more about the
    proposal than about the plumbing under test)."""
    state = trainer.init(key, batch)
    params = add_noise(state.params, jax.random.fold_in(key, 1), 0.3)
    for path in encoder_heads:
        params = flax.traverse_util.flatten_dict(params)
        params = {k: v * 0.2 if k[: len(path)] == path else v for k, v in params.items()}
        params = flax.traverse_util.unflatten_dict(params)
    return float64(state._replace(params=params, ema_params=None))


def _quadrature_log_p(trainer, state, x, likelihood, num_nodes=200):
    """``log Σ_j w_j p(x | z_j)`` over Gauss–Hermite nodes for ``N(0, 1)`` (probabilists')."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(num_nodes)
    weights = weights / math.sqrt(2 * math.pi)
    module = vae.VAE((x.shape[1],), 1, (16,), likelihood.outputs_per_dim)
    outputs = module.apply({"params": state.params}, jnp.asarray(nodes)[:, None], method="decode")
    log_px_z = jax.vmap(
        lambda out: likelihood.log_prob(jnp.broadcast_to(out, (x.shape[0], *out.shape[1:])), x)
    )(outputs[:, None])  # (nodes, n)
    return jax.scipy.special.logsumexp(log_px_z + jnp.log(weights)[:, None], axis=0)


def _assert_within_standard_errors(metrics, log_p):
    """Every importance-sampled NLL within 4 of its reported standard errors of the quadrature
    value (64 examples: a 4-SE miss has probability ~4e-3 under normality), and on average
    within a few hundredths of a nat."""
    error = np.abs(np.asarray(metrics["nll"]) + np.asarray(log_p))
    assert np.all(error <= 4 * np.asarray(metrics["nll_standard_error"]) + 1e-6), error
    assert error.mean() < 0.05


def test_binary_decoder_sums_to_one_and_the_estimates_bracket_the_truth(x64):
    d = 6
    x = jnp.asarray(list(itertools.product([0.0, 1.0], repeat=d)))
    trainer = vae.make(_config("bernoulli"), (d,))
    state = _random_state(trainer, x, jax.random.key(0))
    log_p = _quadrature_log_p(trainer, state, x, latent_variable.bernoulli_likelihood())
    assert float(jnp.sum(jnp.exp(log_p))) == pytest.approx(1.0, abs=1e-10)
    metrics = trainer.evaluate(state, x, jax.random.key(1))
    # ELBO <= log p for every x (one sample each, so per example only on average: the mean
    # gap is the expected KL(q || posterior) > 0); the importance-sampled NLL is within a few
    # hundredths of a nat of the truth with 4000 proposals, within its standard error.
    assert float(jnp.mean(metrics["elbo_nll"] + log_p)) > 0.0
    _assert_within_standard_errors(metrics, log_p)


def test_logistic_decoder_is_a_distribution_on_the_grid(x64):
    k, d = 5, 2
    levels = jnp.arange(k) / k  # cell corners, as the dataset gives them
    x = jnp.asarray(list(itertools.product(levels, repeat=d)))
    trainer = vae.make(_config("logistic", num_levels=k), (d,))
    state = _random_state(trainer, x, jax.random.key(2))
    grid = 2.0 * jnp.round(x * k) / (k - 1) - 1.0
    log_p = _quadrature_log_p(trainer, state, grid, latent_variable.logistic_likelihood(k))
    assert float(jnp.sum(jnp.exp(log_p))) == pytest.approx(1.0, abs=1e-8)
    metrics = trainer.evaluate(state, x, jax.random.key(3))
    _assert_within_standard_errors(metrics, log_p)


def test_samples_are_on_the_data_scale():
    k = 17
    trainer = vae.make(_config("logistic", num_levels=k), (64,))
    state = trainer.init(jax.random.key(0), jnp.zeros((2, 64)))
    x = np.asarray(trainer.sample(state, jax.random.key(1), 50))
    np.testing.assert_allclose(x * k - 0.5, np.round(x * k - 0.5), atol=1e-4)  # cell centres
    assert x.min() > 0 and x.max() < 1
    trainer = vae.make(_config("bernoulli"), (64,))
    state = trainer.init(jax.random.key(0), jnp.zeros((2, 64)))
    assert set(np.unique(trainer.sample(state, jax.random.key(1), 50))) <= {0.0, 1.0}


def test_bad_configs_name_the_field():
    with pytest.raises(ValueError, match="model.decoder"):
        vae.make(_config("poisson"), (4,))
    with pytest.raises(ValueError, match="data.num_levels must be > 0"):
        vae.make(_config("logistic"), (4,))
    with pytest.raises(ValueError, match="model.gradient='dreg' needs model.objective='iwae'"):
        vae.make(_config("bernoulli", gradient="dreg"), (4,))


def test_ladder_vae_against_nested_quadrature(x64):
    """Two 1-D latent layers: ``p(x) = ∫ N(z2) ∫ p(z1 | z2) p(x | z1) dz1 dz2``, the inner
    integral by Gauss–Hermite nodes moved to ``p(z1 | z2)``'s mean and scaled by its std."""
    d = 5
    x = jnp.asarray(list(itertools.product([0.0, 1.0], repeat=d)))
    c = _config("bernoulli", name="hvae", latent_dims=(1, 1))
    trainer = hvae.make(c, (d,))
    heads = (("up_heads_0",), ("up_heads_1",), ("priors_0", "Dense_1"))  # p(z1 | z2) tame too
    state = _random_state(trainer, x, jax.random.key(4), heads)
    module = hvae.LadderVAE((d,), (1, 1), (16,), 1)
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    log_w = jnp.log(weights / math.sqrt(2 * math.pi))
    variables = {"params": state.params}
    z2 = jnp.asarray(nodes)[:, None]
    mean, log_std = module.apply(variables, z2, 0, method="prior")  # (80, 1) each
    z1 = (mean + jnp.exp(log_std) * jnp.asarray(nodes)[None, :]).reshape(-1, 1)  # (80 * 80, 1)
    outputs = module.apply(variables, z1, method="decode")
    likelihood = latent_variable.bernoulli_likelihood()
    log_px_z = jax.vmap(
        lambda out: likelihood.log_prob(jnp.broadcast_to(out, (x.shape[0], d, 1)), x)
    )(outputs[:, None])  # (6400, n)
    log_node_weight = (log_w[:, None] + log_w[None, :]).reshape(-1, 1)
    log_p = jax.scipy.special.logsumexp(log_px_z + log_node_weight, axis=0)
    assert float(jnp.sum(jnp.exp(log_p))) == pytest.approx(1.0, abs=1e-8)
    metrics = trainer.evaluate(state, x, jax.random.key(5))
    assert float(jnp.mean(metrics["elbo_nll"] + log_p)) > 0.0
    _assert_within_standard_errors(metrics, log_p)
    _, aux = hvae.latent_variable_model(module, likelihood).elbo(
        state.params, jax.random.key(6), x, 1.0
    )
    np.testing.assert_allclose(aux["kl"], aux["kl_1"] + aux["kl_2"], rtol=1e-12)
