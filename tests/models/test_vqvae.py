"""The VQ-VAE's priors over the code grid: the PixelCNN prior sums to one over every grid of a 2x2
latent with 3 codes and its ancestral sampler draws from that distribution; the model's bound is
the sum of the pieces computed by hand (nearest codes by numpy, Bernoulli and softmax
log-likelihoods by numpy); the categorical prior keeps its parameters; bad priors fail clearly;
and the whole Trainer runs with the PixelCNN prior."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from experiments.configs import vqvae_digits
from jgen.models import vqvae
from jgen.nets.pixelcnn import GatedPixelCNN
from tests.params import random_like

K = 3  # codes
EVENT = (4, 4)  # images -> a 2x2 code grid
GRID = (2, 2)
ALL_GRIDS = np.array(list(itertools.product(range(K), repeat=4))).reshape(-1, *GRID)  # (81, 2, 2)


def _config(prior="pixelcnn", update="loss", **model):
    c = vqvae_digits.get_config(f"binary,{update}")
    c.model.update(
        dict(channels=4, code_dim=2, num_codes=K, prior=prior, prior_features=8, prior_layers=2)
    )
    c.model.update(model)
    return c


def _binary_batch(n, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 2, (n, *EVENT)), jnp.float32)


def _random_prior(seed=1):
    prior = vqvae.pixelcnn_prior(GRID, K, features=8, num_layers=2)
    return prior, random_like(jax.eval_shape(prior.init, jax.random.key(0)), seed=seed)


def test_pixelcnn_prior_sums_to_one_over_every_code_grid(x64):
    prior, params = _random_prior()
    p = np.exp(np.asarray(prior.log_prob(params, jnp.asarray(ALL_GRIDS))))
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    # Not vacuously independent positions: the joint differs from the product of its marginals
    # (a network that ignored the earlier codes would normalise too).
    joint = p.reshape(K, K, K, K)
    marginals = [joint.sum(axis=tuple(j for j in range(4) if j != i)) for i in range(4)]
    product = np.einsum("a,b,c,d->abcd", *marginals)
    assert np.max(np.abs(joint - product)) > 1e-2


def test_pixelcnn_prior_samples_follow_its_log_prob(x64):
    prior, params = _random_prior(seed=2)
    p = np.exp(np.asarray(prior.log_prob(params, jnp.asarray(ALL_GRIDS))))
    n = 20_000
    draws = np.asarray(jax.jit(prior.sample, static_argnums=2)(params, jax.random.key(3), n))
    assert draws.shape == (n, *GRID)
    cells = np.ravel_multi_index(draws.reshape(n, -1).T, (K,) * 4)
    freq = np.bincount(cells, minlength=K**4) / n
    # Each frequency is a binomial mean: within 5 standard errors sqrt(p (1 - p) / n) of p (a
    # 5-sigma miss has probability ~6e-7 per cell, ~5e-5 over the 81 cells).
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12), np.max(
        np.abs(freq - p)
    )


def _nll_by_hand(params, codebook, x):
    """``(-log p(x | z_q), -log p(z))`` per example with numpy: the nearest codes by brute-force
    distances, Bernoulli log-likelihoods of the decoder's logits, and log-softmaxes of the
    prior's gated PixelCNN applied directly to the indices fed as ``-1 + 2 k / (K - 1)``."""
    coder = vqvae.ConvCoder(EVENT, 4, 2, 1)
    z_e = np.asarray(coder.apply({"params": params["coder"]}, x, method="encode"))
    codebook = np.asarray(codebook)
    indices = np.argmin(((z_e[..., None, :] - codebook) ** 2).sum(-1), axis=-1)  # (n, 2, 2)
    assert len(np.unique(indices)) > 1  # the prior term sees more than one code
    z_q = jnp.asarray(codebook[indices], z_e.dtype)
    logits = np.asarray(coder.apply({"params": params["coder"]}, z_q, method="decode"))[..., 0]
    xn = np.asarray(x)
    reconstruction = np.sum(
        xn * np.logaddexp(0, -logits) + (1 - xn) * np.logaddexp(0, logits), axis=(1, 2)
    )
    pixelcnn = GatedPixelCNN(K, 1, features=8, num_layers=2, first_kernel_size=3, kernel_size=3)
    grid_values = jnp.asarray(2.0 * indices / (K - 1) - 1.0, z_e.dtype)[..., None]
    prior_logits = np.asarray(pixelcnn.apply({"params": params["prior"]}, grid_values))[..., 0, :]
    log_softmax = scipy.special.log_softmax(prior_logits, axis=-1)
    prior_nll = -np.take_along_axis(log_softmax, indices[..., None], -1).sum(axis=(1, 2, 3))
    return reconstruction, prior_nll


def test_evaluate_is_reconstruction_plus_pixelcnn_prior_nll(x64):
    x = _binary_batch(16, seed=4).astype(jnp.float64)
    trainer = vqvae.make(_config(), EVENT)
    # Random parameters shaped like the Trainer's (evaluate reads params and model_state only).
    shapes = jax.eval_shape(trainer.init, jax.random.key(5), x)
    params = random_like(shapes.params, seed=6)
    state = shapes._replace(params=params, ema_params=None, model_state={})
    metrics = trainer.evaluate(state, x, jax.random.key(7))
    reconstruction, prior_nll = _nll_by_hand(params, params["codebook"], x)
    np.testing.assert_allclose(metrics["reconstruction_nll"], reconstruction, rtol=1e-10)
    np.testing.assert_allclose(metrics["nll"], reconstruction + prior_nll, rtol=1e-10)
    np.testing.assert_allclose(
        metrics["bits_per_dim"], (reconstruction + prior_nll) / (16 * math.log(2)), rtol=1e-10
    )


@pytest.mark.parametrize("update", ["loss", "ema"])
def test_categorical_prior_keeps_its_parameters(update):
    x = _binary_batch(8)
    key = jax.random.key(0)
    categorical = jax.eval_shape(vqvae.make(_config("categorical", update), EVENT).init, key, x)
    pixelcnn = jax.eval_shape(vqvae.make(_config("pixelcnn", update), EVENT).init, key, x)
    codebook = {"codebook"} if update == "loss" else set()
    assert set(categorical.params) == set(pixelcnn.params) == {"coder", "prior"} | codebook
    assert categorical.params["prior"].shape == (*GRID, K)
    assert jax.tree.structure(categorical.params["coder"]) == jax.tree.structure(
        pixelcnn.params["coder"]
    )
    assert set(pixelcnn.params["prior"]) == {"gated_0", "gated_1", "output"}
    assert pixelcnn.params["prior"]["output"]["kernel"].shape == (1, 1, 8, K)


def test_categorical_prior_starts_uniform():
    prior = vqvae.categorical_prior(GRID, K)
    np.testing.assert_array_equal(prior.init(jax.random.key(0)), np.zeros((*GRID, K)))


def test_categorical_prior_log_prob_matches_scipy(x64):
    prior = vqvae.categorical_prior(GRID, K)
    logits = np.random.default_rng(9).normal(size=(*GRID, K))
    log_p = np.asarray(prior.log_prob(jnp.asarray(logits), jnp.asarray(ALL_GRIDS)))
    expected = scipy.special.log_softmax(logits, -1)[
        [0, 0, 1, 1], [0, 1, 0, 1], ALL_GRIDS.reshape(-1, 4)
    ]
    np.testing.assert_allclose(log_p, expected.sum(-1), rtol=1e-12)


def test_bad_priors_fail_clearly():
    with pytest.raises(ValueError, match=r"model\.prior must be one of .*'pixelcnn'.*got 'pixel'"):
        vqvae.make(_config("pixel"), EVENT)
    with pytest.raises(ValueError, match=r"model\.prior_layers.*got 0"):
        vqvae.make(_config(prior_layers=0), EVENT)
    with pytest.raises(ValueError, match=r"num_codes.*got 1"):
        vqvae.pixelcnn_prior(GRID, 1, features=8, num_layers=2)
    with pytest.raises(ValueError, match=r"\[,pixelcnn\].*'pixelcnn,transformer'"):
        vqvae_digits.get_config("pixelcnn,transformer")


def test_config_option_sets_the_pixelcnn_prior():
    default, pixelcnn = vqvae_digits.get_config(), vqvae_digits.get_config("continuous,pixelcnn")
    assert (default.model.prior, default.model.prior_features, default.model.prior_layers) == (
        "categorical",
        32,
        4,
    )
    assert (pixelcnn.model.prior, pixelcnn.model.prior_features, pixelcnn.model.prior_layers) == (
        "pixelcnn",
        32,
        4,
    )


def test_trainer_with_pixelcnn_prior_runs_end_to_end():
    x = _binary_batch(16)
    trainer = vqvae.make(_config(update="ema"), EVENT)
    state = trainer.init(jax.random.key(0), x)
    new_state, metrics = jax.jit(trainer.step)(state, x, jax.random.key(1))
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    # Training fits the PixelCNN prior on the codes the encoder emits (float32: rtol 1e-5).
    _, prior_nll = _nll_by_hand(state.params, state.model_state["ema"].codebook, x)
    assert float(metrics["prior_nll"]) == pytest.approx(prior_nll.mean(), rel=1e-5)
    samples = np.asarray(trainer.sample(new_state, jax.random.key(2), 5))
    assert samples.shape == (5, *EVENT)
    assert np.all(np.isin(samples, [0.0, 1.0]))  # Bernoulli draws
    evaluation = trainer.evaluate(new_state, x, jax.random.key(3))
    assert set(evaluation) >= {"nll", "bits_per_dim", "reconstruction_nll", "perplexity"}
    assert all(np.all(np.isfinite(np.asarray(v))) for v in evaluation.values())
    reconstruction, prior_nll = _nll_by_hand(
        new_state.params, new_state.model_state["ema"].codebook, x
    )
    np.testing.assert_allclose(evaluation["nll"], reconstruction + prior_nll, rtol=1e-5)
