"""Annealed importance sampling against known normalising constants: a scaled Gaussian, a bimodal
mixture sandwiched by forward and reverse AIS, and the marginal likelihood of probabilistic PCA."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jgen.gaussian import standard_normal_log_prob
from jgen.metrics.ais import (
    ais,
    decoder_log_likelihood,
    linear_schedule,
    reverse_ais,
    sigmoid_schedule,
)
from tests.metrics.test_importance import PPCA
from tests.samplers.mixtures import GaussianMixture


def log_init(x):
    return standard_normal_log_prob(x, 1)


# A 2-D Gaussian N(m, S) scaled by exp(LOG_Z): its normalising constant is LOG_Z by construction.
MEAN = np.array([1.0, -0.5])
COV = np.array([[0.5, 0.2], [0.2, 0.3]])
LOG_Z = 3.7


def log_scaled_gaussian(x):
    r = x - jnp.asarray(MEAN, x.dtype)
    maha = jnp.einsum("ni,ij,nj->n", r, jnp.asarray(np.linalg.inv(COV), x.dtype), r)
    return -0.5 * maha - 0.5 * np.linalg.slogdet(2 * np.pi * COV)[1] + LOG_Z


def test_the_scaled_gaussian_density_is_right(x64):
    x = np.random.default_rng(0).normal(size=(5, 2))
    expected = scipy.stats.multivariate_normal(MEAN, COV).logpdf(x) + LOG_Z
    np.testing.assert_allclose(log_scaled_gaussian(jnp.asarray(x)), expected, rtol=1e-12)


def test_schedules():
    np.testing.assert_array_equal(linear_schedule(4), [0.0, 0.25, 0.5, 0.75, 1.0])
    b = np.asarray(sigmoid_schedule(100, rad=4))
    assert b.shape == (101,) and b[0] == 0.0 and b[-1] == 1.0
    np.testing.assert_allclose(b + b[::-1], 1.0, atol=1e-6)  # the sigmoid is odd about 1/2
    steps = np.diff(b)
    assert (steps > 0).all()
    # Dense at the ends: the logistic density at u = 4 is 0.0177 against 0.25 at u = 0.
    np.testing.assert_allclose(steps[0] / steps[50], 0.0177 / 0.25, rtol=0.1)


def test_log_normalizer_of_a_scaled_gaussian(x64):
    """20 independent runs of 1000 chains: each within 4 reported standard errors and 0.05 nats of
    the truth (the first within 3), and the reported standard error matches the spread across
    runs (ratio within [0.5, 2]; the spread of 20 values is itself known to about 16%)."""
    betas = sigmoid_schedule(100)

    @jax.jit
    @jax.vmap
    def run(key):
        key_init, key_chains = jax.random.split(key)
        x0 = jax.random.normal(key_init, (1000, 2))
        return ais(
            key_chains, log_scaled_gaussian, log_init, x0, betas, step_size=0.3, n_leapfrog=3
        )

    result = run(jax.random.split(jax.random.key(0), 20))
    estimates, ses = np.asarray(result.log_normalizer), np.asarray(result.standard_error)
    err = estimates - LOG_Z
    assert abs(err[0]) < 3 * ses[0]
    np.testing.assert_array_less(np.abs(err), 4 * ses)
    np.testing.assert_array_less(np.abs(err), 0.05)
    ratio = np.sqrt(np.mean(ses**2)) / estimates.std(ddof=1)
    assert 0.5 < ratio < 2.0, ratio
    assert 0.5 < float(result.acceptance_rate.mean()) <= 1.0
    # The final samples follow the target: mean within 4 standard errors of m.
    samples = np.asarray(result.samples[0])
    se_mean = np.sqrt(np.diag(COV) / len(samples))
    np.testing.assert_array_less(np.abs(samples.mean(0) - MEAN), 4 * se_mean)


# 0.3 N(-2, 0.5^2) + 0.7 N(2, 0.5^2), scaled by exp(LOG_Z_MIX).
MIXTURE = GaussianMixture(np.array([0.3, 0.7]), np.array([[-2.0], [2.0]]), np.array([0.5, 0.5]))
LOG_Z_MIX = -1.3


def log_mixture(x):
    return MIXTURE.log_prob(x) + LOG_Z_MIX


def test_forward_and_reverse_sandwich_log_z(x64):
    """E[log w] <= log Z <= E[-log w_rev] (Grosse et al. 2015), shown with 500 chains each: the
    per-chain means are more than 3 of their standard errors (std / sqrt(500)) on the right side
    with 4 annealing steps, and the gap between the two bounds shrinks with 64 steps."""
    n = 500

    @jax.jit
    def sandwich(key):
        out = {}
        for num_steps in (4, 64):
            betas = sigmoid_schedule(num_steps)
            k1, k2, k3, k4 = jax.random.split(jax.random.fold_in(key, num_steps), 4)
            x0, x_target = jax.random.normal(k1, (n, 1)), MIXTURE.sample(k3, n)
            kwargs = dict(step_size=0.5, n_leapfrog=5)
            out[num_steps] = (
                ais(k2, log_mixture, log_init, x0, betas, **kwargs),
                reverse_ais(k4, log_mixture, log_init, x_target, betas, **kwargs),
            )
        return out

    out = sandwich(jax.random.key(1))
    gaps = {}
    for num_steps, (forward, reverse) in out.items():
        lw, lw_rev = np.asarray(forward.log_weights), np.asarray(reverse.log_weights)
        lower, upper = lw.mean(), -lw_rev.mean()
        se_lower, se_upper = lw.std(ddof=1) / math.sqrt(n), lw_rev.std(ddof=1) / math.sqrt(n)
        if num_steps == 4:
            assert LOG_Z_MIX - lower > 3 * se_lower, (lower, se_lower)  # measured: 0.57 vs 0.04
            assert upper - LOG_Z_MIX > 3 * se_upper, (upper, se_upper)  # measured: 0.53 vs 0.04
        # The reverse estimate is -logmeanexp(log w_rev); both estimates are consistent.
        np.testing.assert_allclose(reverse.log_normalizer, -jax.nn.logsumexp(lw_rev) + math.log(n))
        for result in (forward, reverse):
            assert abs(float(result.log_normalizer) - LOG_Z_MIX) < 4 * float(result.standard_error)
        gaps[num_steps] = upper - lower
    assert gaps[64] < gaps[4] / 3, gaps  # measured: 0.17 vs 1.10


def test_decoder_log_likelihood_of_probabilistic_pca(x64):
    """log p(x) = log N(x; b, W W^T + s^2 I) by scipy, for 4 observations simulated from the
    model. Forward AIS (a lower bound) and reverse AIS from the latents that generated the data
    (an upper bound) are each within 4 standard errors and 0.05 nats of it (measured standard
    errors 0.009 to 0.016 nats with 100 chains)."""
    model = PPCA.make(seed=0, s=1.0)
    z, x = model.simulate(5, 4)
    truth = model.log_marginal(x)
    betas = sigmoid_schedule(500)

    def prior_sample(key, k):
        return jax.random.normal(key, (k, 2))

    @jax.jit
    def both(key, x, z):
        args = (model.log_prior, model.log_likelihood, prior_sample, betas)
        kwargs = dict(num_chains=100, step_size=0.2, n_leapfrog=5)
        forward = decoder_log_likelihood(key, x, *args, **kwargs)
        reverse = decoder_log_likelihood(key, x, *args, **kwargs, z_exact=z)
        return forward, reverse

    forward, reverse = both(jax.random.key(0), jnp.asarray(x), jnp.asarray(z))
    for result in (forward, reverse):
        assert result.log_weights.shape == (100, 4) and result.samples.shape == (100, 4, 2)
        err = np.asarray(result.log_normalizer) - truth
        np.testing.assert_array_less(np.abs(err), 4 * np.asarray(result.standard_error))
        np.testing.assert_array_less(np.abs(err), 0.05)
    # The per-chain mean log weights bracket log p(x) on average over the observations.
    assert np.mean(forward.log_weights.mean(0) - truth) < 0
    assert np.mean(-reverse.log_weights.mean(0) - truth) > 0


def test_step_size_per_beta_uses_the_transition_s_beta():
    """A step size per beta: entry t drives the transition at b_t, so forward AIS never reads
    entry 0 and reverse AIS never reads entry T; a wild value there changes nothing."""
    betas = linear_schedule(5)
    x0 = jax.random.normal(jax.random.key(0), (8, 2))

    @jax.jit
    def runs(key):
        out = []
        for fn, unused in ((ais, 0), (reverse_ais, -1)):
            steps = jnp.full(6, 0.3).at[unused].set(50.0)
            for step_size in (0.3, steps):
                r = fn(key, log_scaled_gaussian, log_init, x0, betas, step_size=step_size)
                out.append(r.log_weights)
        return out

    forward, forward_steps, reverse, reverse_steps = runs(jax.random.key(1))
    np.testing.assert_array_equal(forward, forward_steps)
    np.testing.assert_array_equal(reverse, reverse_steps)


def test_memory_does_not_grow_with_the_number_of_betas():
    x0, key = jnp.zeros((256, 8)), jax.random.key(0)

    def temp_bytes(num_steps):
        betas = sigmoid_schedule(num_steps)
        fn = jax.jit(lambda x, k: ais(k, log_init, log_init, x, betas, step_size=0.1, n_leapfrog=3))
        return fn.lower(x0, key).compile().memory_analysis().temp_size_in_bytes

    assert temp_bytes(10_000) <= temp_bytes(10)


def test_bad_arguments():
    key, x0 = jax.random.key(0), jnp.zeros((4, 2))

    def call(betas=(0.0, 0.5, 1.0), x=x0, log_target=log_scaled_gaussian, **kwargs):
        kwargs = {"step_size": 0.1, **kwargs}
        return ais(key, log_target, log_init, x, jnp.asarray(betas), **kwargs)

    not_from_0_to_1 = r"betas must be non-decreasing from betas\[0\] = 0 to betas\[-1\] = 1; got"
    for betas in ((0.1, 1.0), (0.0, 0.9), (0.0, 0.6, 0.4, 1.0)):
        with pytest.raises(ValueError, match=not_from_0_to_1):
            call(betas)
    with pytest.raises(ValueError, match=r"betas must be a 1-D array .* got shape \(1, 2\)"):
        call(((0.0, 1.0),))
    with pytest.raises(ValueError, match=r"step_size must be a scalar or one per beta, shape \(3,"):
        call(step_size=jnp.ones(2))
    with pytest.raises(ValueError, match="step_size must be finite and > 0; got 0.0"):
        call(step_size=0.0)
    with pytest.raises(ValueError, match="n_leapfrog must be an integer >= 1; got 0"):
        call(n_leapfrog=0)
    with pytest.raises(ValueError, match=r"init_samples must be a floating-point batch .* \(4,\)"):
        call(x=jnp.zeros(4))
    with pytest.raises(ValueError, match=r"log_target_fn must map x .* got shape \(4, 1\)"):
        call(log_target=lambda x: x[:, :1])
    with pytest.raises(ValueError, match="target_samples must be a floating-point batch"):
        reverse_ais(key, log_init, log_init, jnp.zeros((4, 2), jnp.int32), [0.0, 1.0], step_size=1)
    model = PPCA.make()
    with pytest.raises(ValueError, match=r"z_exact must have shape \(batch=3, \*latent\)"):
        decoder_log_likelihood(
            key, jnp.zeros((3, 5)), model.log_prior, model.log_likelihood, None, [0.0, 1.0],
            num_chains=2, step_size=0.1, z_exact=jnp.zeros((2, 2)),
        )  # fmt: skip
