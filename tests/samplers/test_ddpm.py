"""DDPM: the forward marginal against the simulated Markov chain, the posterior against Bayes'
rule, and ancestral sampling with the exact noise prediction of a 2D Gaussian mixture."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.samplers.ddpm import (
    ddpm_sample,
    eps_from_score,
    posterior_mean_variance,
    q_sample,
    score_from_eps,
)
from jgen.sdes.schedules import alphas_cumprod, cosine_betas, linear_betas
from tests.sdes import gmm

N = 2000  # samples per set, as in the SDE sampler tests


@pytest.fixture(scope="module")
def threshold():
    """The 99th percentile of MMD² over 20 pairs of independent exact sets of size N."""
    return gmm.null_threshold(N)


def test_q_sample_matches_the_forward_chain():
    """Running the forward chain ``x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) z`` step by step
    (numpy, 20000 chains) gives the moments of ``q_sample``'s closed form at every t: the mean
    within 4 standard errors ``sd / sqrt(n)``, the variance within 4 ``var sqrt(2 / n)``."""
    betas = np.asarray(linear_betas(50, 1e-3, 0.2), np.float64)
    n, x0_value = 20_000, np.array([1.5, -0.5])
    rng = np.random.default_rng(0)
    x = np.tile(x0_value, (n, 1))
    abar = np.asarray(alphas_cumprod(jnp.asarray(betas)))
    for t in range(len(betas)):
        x = np.sqrt(1 - betas[t]) * x + np.sqrt(betas[t]) * rng.standard_normal(x.shape)
        if t in (0, 9, 24, 49):
            key = jax.random.key(t)
            closed = q_sample(
                jnp.tile(jnp.asarray(x0_value, jnp.float32), (n, 1)),
                jnp.full((n,), t),
                jax.random.normal(key, (n, 2)),
                abar,
            )
            var = 1 - abar[t]
            for sample in (x, np.asarray(closed)):
                assert np.all(
                    np.abs(sample.mean(0) - np.sqrt(abar[t]) * x0_value) < 4 * np.sqrt(var / n)
                )
                assert np.all(np.abs(sample.var(0) - var) < 4 * var * np.sqrt(2 / n))


def test_q_sample_is_the_closed_form_per_example():
    """Each example gets its own step: exact ``sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise``."""
    abar = alphas_cumprod(linear_betas(10, 0.01, 0.3))
    x0 = jnp.arange(6.0).reshape(3, 2)
    noise = jnp.ones((3, 2))
    t = jnp.array([0, 4, 9])
    expected = np.sqrt(abar[t])[:, None] * x0 + np.sqrt(1 - abar[t])[:, None] * noise
    np.testing.assert_allclose(q_sample(x0, t, noise, abar), expected, rtol=1e-6)


def test_posterior_is_bayes_rule(x64):
    """``q(x_{t-1} | x_t, x_0) ∝ N(x_t; sqrt(alpha_t) x_{t-1}, beta_t) N(x_{t-1}; sqrt(abar_{t-1})
    x_0, 1 - abar_{t-1})``: precision ``alpha_t / beta_t + 1 / (1 - abar_{t-1})`` and mean
    ``(sqrt(alpha_t) x_t / beta_t + sqrt(abar_{t-1}) x_0 / (1 - abar_{t-1})) / precision``, to
    1e-10; at t = 0 the posterior is the point mass at ``x_0``."""
    betas = cosine_betas(30)
    abar = np.asarray(alphas_cumprod(betas))
    b = np.asarray(betas)
    x0 = jax.random.normal(jax.random.key(0), (4, 3, 2))
    xt = jax.random.normal(jax.random.key(1), (4, 3, 2))
    t = jnp.array([1, 5, 17, 29])
    mean, var = posterior_mean_variance(x0, xt, t, betas)
    ti = np.asarray(t)
    precision = (1 - b[ti]) / b[ti] + 1 / (1 - abar[ti - 1])
    expected = (
        np.sqrt(1 - b[ti])[:, None, None] * np.asarray(xt) / b[ti][:, None, None]
        + (np.sqrt(abar[ti - 1]) / (1 - abar[ti - 1]))[:, None, None] * np.asarray(x0)
    ) / precision[:, None, None]
    np.testing.assert_allclose(mean, expected, rtol=1e-10)
    np.testing.assert_allclose(var, 1 / precision, rtol=1e-10)

    mean0, var0 = posterior_mean_variance(x0, xt, jnp.zeros(4, int), betas)
    np.testing.assert_allclose(mean0, x0, rtol=1e-12)
    np.testing.assert_allclose(var0, 0.0, atol=1e-15)


def test_score_eps_conversion(x64):
    """For data ``N(0, v I)`` and ``x_t = m x_0 + s eps``: ``E[eps | x_t] = s x_t / (m^2 v + s^2)``
    and the score is ``-x_t / (m^2 v + s^2)``; the helpers map one onto the other (1e-12)."""
    v, m, s = 0.7, jnp.array([0.9, 0.5, 0.1]), jnp.array([0.3, 0.8, 0.99])
    x = jax.random.normal(jax.random.key(0), (3, 2, 2))
    total = (m**2 * v + s**2)[:, None, None]
    eps = s[:, None, None] * x / total
    score = -x / total
    np.testing.assert_allclose(score_from_eps(eps, s), score, rtol=1e-12)
    np.testing.assert_allclose(eps_from_score(score, s), eps, rtol=1e-12)


# Measured MMD² / threshold over 5 seeds: at most 0.58 (linear) and 0.49 (cosine).
SCHEDULES = {
    "linear200": linear_betas(200, 5e-4, 0.1),  # Ho et al.'s 1e-4..0.02 rescaled to 200 steps
    "cosine200": cosine_betas(200),
}


@pytest.mark.parametrize(
    "schedule, variance",
    [("linear200", "posterior"), ("linear200", "beta"), ("cosine200", "posterior")],
)
def test_samples_match_the_mixture(schedule, variance, threshold):
    betas = SCHEDULES[schedule]
    eps_fn = gmm.ddpm_eps_fn(gmm.MIXTURE, alphas_cumprod(betas))
    x = jax.jit(lambda key: ddpm_sample(eps_fn, key, (N, 2), betas, variance=variance)[0])(
        jax.random.key(0)
    )
    gmm.assert_matches_mixture(x, threshold, N)


def test_the_mmd_check_rejects_a_wrong_noise_scale(threshold):
    """Power of the check above: a noise prediction 20% too small gives MMD² far above the
    threshold (measured 4.4x; asserted > 2x). (10% too small stays under it, 0.3x: ancestral
    sampling partly corrects a mis-scaled noise prediction; 10% too large gives 1.5x.)"""
    betas = SCHEDULES["linear200"]
    eps_fn = gmm.ddpm_eps_fn(gmm.MIXTURE, alphas_cumprod(betas))
    x = jax.jit(lambda key: ddpm_sample(lambda x, t: 0.8 * eps_fn(x, t), key, (N, 2), betas)[0])(
        jax.random.key(0)
    )
    assert gmm.mmd2_to_exact(np.asarray(x)) > 2 * threshold


def test_clip_bounds_the_output_and_a_loose_clip_changes_nothing():
    """The last step returns the predicted ``x_0``, so with ``clip = c`` every value lies in
    ``[-c, c]`` (the mixture reaches ±3); ``clip = 100`` never binds and equals no clipping."""
    betas = linear_betas(50, 2e-3, 0.4)
    eps_fn = gmm.ddpm_eps_fn(gmm.MIXTURE, alphas_cumprod(betas))
    run = jax.jit(
        lambda key, clip: ddpm_sample(eps_fn, key, (256, 2), betas, clip=clip)[0], static_argnums=1
    )
    key = jax.random.key(0)
    clipped = np.asarray(run(key, 1.0))
    assert np.abs(clipped).max() == pytest.approx(1.0, abs=1e-6)  # float32 rounding
    np.testing.assert_allclose(run(key, 100.0), run(key, None), rtol=1e-6, atol=1e-6)


def test_jit_vmap_x64_and_trajectory(x64):
    """Float64 throughout; eager equals jitted; vmapped over keys equals separate calls; the
    thinned trajectory ends at the output."""
    betas = linear_betas(20, 1e-3, 0.5)
    eps_fn = gmm.ddpm_eps_fn(gmm.MIXTURE, alphas_cumprod(betas))
    keys = jax.random.split(jax.random.key(0), 3)
    x, info = ddpm_sample(eps_fn, keys[0], (32, 2), betas, record_every=5)
    assert x.dtype == jnp.float64 and info["eps_norm"].dtype == jnp.float64
    assert info["trajectory"].shape == (4, 32, 2)
    np.testing.assert_array_equal(info["trajectory"][-1], x)
    run = jax.jit(lambda key: ddpm_sample(eps_fn, key, (32, 2), betas)[0])
    single = [run(key) for key in keys]
    np.testing.assert_allclose(single[0], x, rtol=1e-10)
    np.testing.assert_allclose(jax.jit(jax.vmap(run))(keys), np.stack(single), rtol=1e-10)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(variance="learned"),
            r"variance must be one of \('posterior', 'beta'\); got 'learned'",
        ),
        (
            dict(shape=(8,)),
            r"shape must be \(n, \*event\) with rank >= 2 and positive sizes; got \(8,\)",
        ),
        (
            dict(betas=jnp.ones((2, 5))),
            r"betas must be a non-empty 1-D array \(N,\); got shape \(2, 5\)",
        ),
        (dict(clip=-1.0), "clip must be None or > 0; got -1.0"),
        (
            dict(betas=jnp.array([0.1, 1.0])),
            r"betas must lie in \(0, 1\); got values such as \[1.0\]",
        ),
        (dict(record_every=3), "record_every must be 0 or a divisor of n_steps=10; got 3"),
    ],
)
def test_bad_arguments(kwargs, message):
    args = dict(shape=(8, 2), betas=linear_betas(10)) | kwargs
    shape, betas = args.pop("shape"), args.pop("betas")
    with pytest.raises(ValueError, match=message):
        ddpm_sample(lambda x, t: x, jax.random.key(0), shape, betas, **args)


def test_bad_q_sample_and_posterior_arguments():
    abar = alphas_cumprod(linear_betas(10))
    x0 = jnp.zeros((4, 2))
    with pytest.raises(
        ValueError, match=r"t_index must have shape \(n,\) = \(4,\) to match x0; got shape \(3,\)"
    ):
        q_sample(x0, jnp.zeros(3, int), x0, abar)
    with pytest.raises(ValueError, match="t_index must be an integer array; got dtype float32"):
        q_sample(x0, jnp.zeros(4), x0, abar)
    with pytest.raises(ValueError, match=r"noise must have the shape of x0 \(4, 2\); got \(4, 3\)"):
        q_sample(x0, jnp.zeros(4, int), jnp.zeros((4, 3)), abar)
    with pytest.raises(ValueError, match=r"xt must have the shape of x0 \(4, 2\); got \(2, 4\)"):
        posterior_mean_variance(x0, jnp.zeros((2, 4)), jnp.zeros(4, int), linear_betas(10))
