"""Langevin, MALA and HMC: statistical tests on targets with known moments, plus the interface.

Statistical tests use many independent chains and keep only each chain's final state, so the
samples are i.i.d. draws from the chain's law after ``n_steps``; a moment is then accepted within
4 standard errors computed from the sample size (a false failure has probability ~6e-5 per check
for a correct sampler; seeds are fixed, so the tests are deterministic). Where a plausible wrong
answer exists (the continuous-time covariance for unadjusted Langevin, chains that never cross
between modes, a step without the Metropolis correction) the test checks that it lies far outside
the tolerance, so the test can fail.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from jgen.convert import (
    energy_from_log_prob,
    log_prob_and_score,
    log_prob_from_energy,
    score_from_energy,
    score_from_log_prob,
)
from jgen.samplers.langevin import hmc, langevin, leapfrog, mala

# Correlated 2D Gaussian target. SIGMA has eigenvalue 1.8 along (1, 1)/sqrt2 and 0.2 along
# (1, -1)/sqrt2.
MU = np.array([1.0, -1.0])
SIGMA = np.array([[1.0, 0.8], [0.8, 1.0]])
PRECISION = np.linalg.inv(SIGMA)
EIGVECS = np.array([[1.0, 1.0], [1.0, -1.0]]) / np.sqrt(2.0)  # columns


def gaussian_energy(x):
    # Constants cast to x's dtype: a float64 numpy constant closed over by a function traced both
    # with and without x64 hits a JAX caching bug (jax 0.10.1: f32 operand, f64 result).
    d = x - MU.astype(x.dtype)
    return 0.5 * jnp.einsum("ni,ij,nj->n", d, PRECISION.astype(x.dtype), d)


gaussian_log_prob = log_prob_from_energy(gaussian_energy)

# 1D two-mode mixture 0.3 N(-1.5, 0.6^2) + 0.7 N(1.5, 0.6^2). The density at 0 is 4% of the main
# peak, so crossing is rare but happens within the step budgets below (measured: from a 50/50
# start, unadjusted Langevin at h = 0.05 is still 8 SE short of the target weight after 500
# steps, 31 SE after 100; the budgets leave the weights within 1-2 SE over several seeds).
MIX_W, MIX_M, MIX_S = np.array([0.3, 0.7]), np.array([-1.5, 1.5]), 0.6
MIX_P_POSITIVE = float(np.sum(MIX_W * norm.sf(-MIX_M / MIX_S)))  # P(x > 0) = 0.6975
MIX_MEAN = float(np.sum(MIX_W * MIX_M))  # 0.6
MIX_VAR = MIX_S**2 + float(np.sum(MIX_W * MIX_M**2)) - MIX_MEAN**2  # 2.25


def mixture_log_prob(x):
    logits = jnp.log(MIX_W) - 0.5 * jnp.square((x[:, :1] - MIX_M) / MIX_S)
    return jax.scipy.special.logsumexp(logits, axis=1)


def moment_errors(x, mean, cov):
    """Deviations of the sample mean and covariance from ``(mean, cov)`` in standard errors.

    SE of mean_i: sqrt(cov_ii / N). SE of the sample covariance entry (i, j): the sample standard
    deviation of (x_i - m_i)(x_j - m_j) over sqrt(N), valid for any distribution with finite
    fourth moments.
    """
    x = np.asarray(x, np.float64)
    n = len(x)
    mean_z = (x.mean(0) - mean) / np.sqrt(np.diag(cov) / n)
    d = x - x.mean(0)
    products = d[:, :, None] * d[:, None, :]
    cov_hat = products.mean(0) * n / (n - 1)
    cov_z = (cov_hat - cov) / (products.std(0) / np.sqrt(n))
    return mean_z, cov_z, cov_hat


def ula_stationary_cov(step_size, noise_scale):
    """Exact stationary covariance of unadjusted Langevin on the Gaussian target.

    With y = x - MU the chain is the AR(1) recursion y' = A y + s sqrt(h) z, A = I - (h/2) P,
    whose stationary covariance solves S = A S A + s^2 h I. A is symmetric and a function of P, so
    S = s^2 h (I - A^2)^-1 = s^2 SIGMA (I - (h/4) P)^-1 (eigenvalue l -> s^2 l / (1 - h / (4l))).
    """
    a = np.eye(2) - 0.5 * step_size * PRECISION
    s = noise_scale**2 * step_size * np.linalg.inv(np.eye(2) - a @ a)
    np.testing.assert_allclose(
        s, noise_scale**2 * SIGMA @ np.linalg.inv(np.eye(2) - 0.25 * step_size * PRECISION)
    )
    return s


def initial_states(key, n):
    """A broad start away from the target: N(0, 2^2 I)."""
    return 2.0 * jax.random.normal(key, (n, 2))


# ------------------------------------------------------------------------------------------------
# Converters against closed forms.


def test_convert_helpers_against_closed_forms(x64):
    x = jax.random.normal(jax.random.key(0), (5, 2), jnp.float64) * 2.0
    d = np.asarray(x) - MU
    energy = 0.5 * np.einsum("ni,ij,nj->n", d, PRECISION, d)
    score = -d @ PRECISION  # -SIGMA^-1 (x - MU), row by row (PRECISION is symmetric)

    # Event shapes beyond vectors, and closing over parameters with functools.partial.
    scaled = functools.partial(lambda c, x: -c * jnp.sum(x**2, axis=(1, 2)), 3.0)
    y = jnp.arange(12.0).reshape(2, 3, 2)

    @jax.jit
    def everything(x, y):
        return (
            log_prob_from_energy(gaussian_energy)(x),
            energy_from_log_prob(gaussian_log_prob)(x),
            score_from_energy(gaussian_energy)(x),
            score_from_log_prob(gaussian_log_prob)(x),
            log_prob_and_score(gaussian_log_prob)(x),
            score_from_log_prob(scaled)(y),
        )

    lp, e, s_energy, s_log_prob, (lp2, s2), s_scaled = everything(x, y)
    np.testing.assert_allclose(lp, -energy, rtol=1e-12)
    np.testing.assert_allclose(e, energy, rtol=1e-12)
    np.testing.assert_allclose(s_energy, score, rtol=1e-12)
    np.testing.assert_allclose(s_log_prob, score, rtol=1e-12)
    np.testing.assert_allclose(lp2, -energy, rtol=1e-12)
    np.testing.assert_allclose(s2, score, rtol=1e-12)
    np.testing.assert_allclose(s_scaled, -6.0 * y)


def test_convert_rejects_a_function_that_is_not_per_example():
    x = jnp.ones((4, 2))
    with pytest.raises(
        ValueError, match=r"log_prob_fn must map .* to shape \(n,\); got shape \(\)"
    ):
        score_from_log_prob(lambda x: gaussian_log_prob(x).mean())(x)
    with pytest.raises(ValueError, match=r"energy_fn must map .*got shape \(4, 1\)"):
        score_from_energy(lambda x: gaussian_energy(x)[:, None])(x)


# ------------------------------------------------------------------------------------------------
# Correlated 2D Gaussian.


@pytest.mark.parametrize("step_size, noise_scale", [(0.3, 1.0), (0.15, 0.5)])
def test_langevin_matches_the_exact_stationary_covariance_of_the_discretised_chain(
    step_size, noise_scale
):
    n = 10_000
    x0 = initial_states(jax.random.key(1), n)
    x, info = jax.jit(
        lambda x0, key: langevin(
            score_from_energy(gaussian_energy),
            x0,
            key,
            step_size=step_size,
            n_steps=300,  # slowest contraction 1 - h / (2 * 1.8) per step: < e^-12 after 300
            noise_scale=noise_scale,
        )
    )(x0, jax.random.key(2))
    target = ula_stationary_cov(step_size, noise_scale)
    mean_z, cov_z, cov_hat = moment_errors(x, MU, target)
    assert np.all(np.abs(mean_z) < 4), mean_z
    assert np.all(np.abs(cov_z) < 4), (cov_z, cov_hat, target)

    # Variance along the stiff eigenvector (1, -1)/sqrt2, where the O(h) bias is largest: the
    # sample variance has SE var * sqrt(2 / n) (Gaussian samples). It matches the discretised
    # chain, and the continuous-time answer s^2 * 0.2 lies > 10 SE away, so the test is sharp.
    v = EIGVECS[:, 1]
    var_hat = np.var(np.asarray(x) @ v, ddof=1)
    var_exact, var_naive = v @ target @ v, noise_scale**2 * 0.2
    se = var_exact * np.sqrt(2.0 / n)
    assert abs(var_hat - var_exact) < 4 * se, (var_hat, var_exact, se)
    assert abs(var_naive - var_exact) > 10 * se
    assert float(info["score_norm"]) > 0 and float(info["step_norm"]) > 0


def test_mala_and_hmc_sample_the_correlated_gaussian():
    n = 10_000
    x0 = initial_states(jax.random.key(3), n)
    run = jax.jit(
        lambda x0, key: (
            mala(gaussian_log_prob, x0, key, step_size=0.5, n_steps=300),
            hmc(gaussian_log_prob, x0, key, step_size=0.25, n_leapfrog=8, n_steps=100),
        )
    )
    (x_mala, info_mala), (x_hmc, info_hmc) = run(x0, jax.random.key(4))
    for name, x, info in [("mala", x_mala, info_mala), ("hmc", x_hmc, info_hmc)]:
        mean_z, cov_z, cov_hat = moment_errors(x, MU, SIGMA)
        assert np.all(np.abs(mean_z) < 4), (name, mean_z)
        assert np.all(np.abs(cov_z) < 4), (name, cov_z, cov_hat)
        assert 0.5 < float(info["acceptance_rate"]) < 1.0, (name, info["acceptance_rate"])
        assert info["chain_acceptance_rate"].shape == (n,)
        np.testing.assert_allclose(
            info["acceptance_rate"], info["chain_acceptance_rate"].mean(), rtol=1e-5
        )


# ------------------------------------------------------------------------------------------------
# Two-mode mixture.


def test_mode_weights_of_a_two_mode_mixture():
    # Chains start from U(-4, 4), which puts half of them on each side of 0: to pass, the samplers
    # must move ~20% of the chains across the barrier (P(x > 0) = 0.6975 under the target).
    n = 10_000
    x0 = jax.random.uniform(jax.random.key(5), (n, 1), minval=-4.0, maxval=4.0)
    run = jax.jit(
        lambda x0, key: {
            # Unadjusted: small step; its O(h) bias at h = 0.05 is well below the 4-SE tolerance.
            "langevin": langevin(
                score_from_log_prob(mixture_log_prob), x0, key, step_size=0.05, n_steps=1500
            ),
            "mala": mala(mixture_log_prob, x0, key, step_size=1.0, n_steps=1500),
            "hmc": hmc(mixture_log_prob, x0, key, step_size=0.3, n_leapfrog=5, n_steps=400),
        }
    )
    se_p = np.sqrt(MIX_P_POSITIVE * (1 - MIX_P_POSITIVE) / n)  # binomial SE: 0.0046
    se_mean = np.sqrt(MIX_VAR / n)  # 0.015
    for name, (x, _) in run(x0, jax.random.key(6)).items():
        x = np.asarray(x[:, 0], np.float64)
        fraction = (x > 0).mean()
        assert abs(fraction - MIX_P_POSITIVE) < 4 * se_p, (name, fraction, MIX_P_POSITIVE)
        assert abs(x.mean() - MIX_MEAN) < 4 * se_mean, (name, x.mean(), MIX_MEAN)
    # The start is far off: a sampler that never crossed would fail by > 40 SE.
    assert abs(float((x0 > 0).mean()) - MIX_P_POSITIVE) > 40 * se_p


def test_proposals_outside_the_support_are_rejected():
    # Half-normal target: log p = -x^2/2 for x > 0 and -inf elsewhere. A proposal with x <= 0 has
    # log alpha = -inf (or NaN) and must be rejected; the samples then have the half-normal mean
    # sqrt(2/pi) and variance 1 - 2/pi. 4000 chains: SE of the mean sqrt((1 - 2/pi) / n) = 0.0095.
    n = 4_000

    def log_prob(x):
        return jnp.where(x[:, 0] > 0, -0.5 * x[:, 0] ** 2, -jnp.inf)

    x0 = jnp.full((n, 1), 0.5)
    run = jax.jit(
        lambda x0, key: {
            "mala": mala(log_prob, x0, key, step_size=1.0, n_steps=100),
            "hmc": hmc(log_prob, x0, key, step_size=0.4, n_leapfrog=4, n_steps=50),
        }
    )
    mean, var = np.sqrt(2 / np.pi), 1 - 2 / np.pi
    # SE of the sample variance: sqrt((mu4 - var^2) / n), with the half-normal's central fourth
    # moment mu4 = 3 - 2 m^2 - 3 m^4 (m = its mean; E|Z|^3 = 2m, E|Z|^4 = 3): 0.0097.
    se_var = np.sqrt((3 - 2 * mean**2 - 3 * mean**4 - var**2) / n)
    for name, (x, info) in run(x0, jax.random.key(13)).items():
        x = np.asarray(x[:, 0], np.float64)
        assert np.all(x > 0), name
        assert abs(x.mean() - mean) < 4 * np.sqrt(var / n), (name, x.mean(), mean)
        assert abs(x.var() - var) < 4 * se_var, (name, x.var(), var)
        assert 0.3 < float(info["acceptance_rate"]) < 1.0, (name, info["acceptance_rate"])


# ------------------------------------------------------------------------------------------------
# Acceptance and exactness.


def test_mala_acceptance_decreases_with_the_step_size():
    n = 2_000
    x0 = MU + jax.random.normal(jax.random.key(7), (n, 2)) @ np.linalg.cholesky(SIGMA).T
    steps = np.geomspace(0.01, 3.0, 8)
    info = jax.jit(
        jax.vmap(
            lambda h: mala(gaussian_log_prob, x0, jax.random.key(8), step_size=h, n_steps=20)[1]
        )
    )(jnp.asarray(steps, jnp.float32))
    rate, prob = np.asarray(info["acceptance_rate"]), np.asarray(info["accept_prob"])
    # 40,000 accept/reject decisions per step size: binomial SE <= 0.0025. Monotonicity is checked
    # on the mean acceptance probability min(1, alpha), which has no accept/reject noise; the
    # Bernoulli rate follows it within 4 SE.
    assert np.all(np.diff(prob) < 0), prob
    assert np.all(np.abs(rate - prob) < 4 * 0.0025), (rate, prob)
    assert rate[0] > 0.99, rate
    assert rate[-1] < 0.3, rate


@pytest.mark.parametrize("sampler", ["mala", "hmc"])
def test_one_step_from_exact_samples_leaves_the_target_invariant(x64, sampler):
    # Large steps, so that many proposals are rejected and the Metropolis correction matters: the
    # same step without it (one unadjusted Langevin step) has variance 1.45 instead of 0.2 along
    # the stiff direction, > 100 SE off.
    n = 20_000
    x0 = (
        MU + jax.random.normal(jax.random.key(9), (n, 2), jnp.float64) @ np.linalg.cholesky(SIGMA).T
    )
    key = jax.random.key(10)
    if sampler == "mala":
        run = lambda x0, key: mala(gaussian_log_prob, x0, key, step_size=1.0, n_steps=1)
    else:
        run = lambda x0, key: hmc(
            gaussian_log_prob, x0, key, step_size=0.8, n_leapfrog=3, n_steps=1
        )
    x, info = jax.jit(run)(x0, key)
    assert x.dtype == jnp.float64
    assert 0.2 < float(info["acceptance_rate"]) < 0.9, info["acceptance_rate"]
    assert float(jnp.mean(jnp.any(x != x0, axis=1))) == pytest.approx(
        float(info["acceptance_rate"])
    )
    mean_z, cov_z, cov_hat = moment_errors(x, MU, SIGMA)
    assert np.all(np.abs(mean_z) < 4), mean_z
    assert np.all(np.abs(cov_z) < 4), (cov_z, cov_hat)

    unadjusted, _ = jax.jit(
        lambda x0, key: langevin(
            score_from_log_prob(gaussian_log_prob), x0, key, step_size=1.0, n_steps=1
        )
    )(x0, key)
    v = EIGVECS[:, 1]
    var_unadjusted = np.var(np.asarray(unadjusted) @ v)
    assert abs(var_unadjusted - 0.2) > 100 * 0.2 * np.sqrt(2.0 / n), var_unadjusted


def test_leapfrog_is_reversible_and_nearly_conserves_energy(x64):
    x = jax.random.normal(jax.random.key(11), (16, 2), jnp.float64)
    p = jax.random.normal(jax.random.key(12), (16, 2), jnp.float64)
    grad = score_from_log_prob(gaussian_log_prob)
    integrate = jax.jit(lambda x, p, e: leapfrog(grad, x, p, e, 20))
    y, q = integrate(x, p, 0.05)
    x_back, p_back = integrate(y, -q, 0.05)
    np.testing.assert_allclose(x_back, x, atol=1e-12)
    np.testing.assert_allclose(-p_back, p, atol=1e-12)

    def hamiltonian(x, p):
        return gaussian_energy(x) + 0.5 * jnp.sum(p**2, axis=1)

    # Leapfrog's energy error is O(e^2): at e = 0.05 it is < 1% of H; the move itself is not small.
    assert np.all(np.abs(hamiltonian(y, q) - hamiltonian(x, p)) < 1e-2 * hamiltonian(x, p))
    assert np.all(np.linalg.norm(y - x, axis=1) > 0.1)
    # A per-chain step size (n, 1) gives the same as separate scalar calls.
    steps = jnp.array([0.05, 0.1])[:, None]
    y2, _ = integrate(x[:2], p[:2], steps)
    np.testing.assert_allclose(y2[1], integrate(x[1:2], p[1:2], 0.1)[0][0], atol=1e-12)


# ------------------------------------------------------------------------------------------------
# Langevin options.


def test_langevin_grad_clip_range_and_norms():
    # noise_scale = 0 makes one step deterministic: x' = x + (h/2) clip(score).
    x0 = jnp.array([[0.0, 0.0], [0.5, 0.5]])
    const_score = lambda x: jnp.broadcast_to(jnp.array([30.0, 40.0]), x.shape)  # norm 50
    x, info = langevin(
        const_score, x0, jax.random.key(0), step_size=0.1, n_steps=1, noise_scale=0.0
    )
    np.testing.assert_allclose(x, x0 + 0.05 * jnp.array([30.0, 40.0]), rtol=1e-6)
    np.testing.assert_allclose(info["score_norm"], 50.0, rtol=1e-6)
    np.testing.assert_allclose(info["step_norm"], 2.5, rtol=1e-6)

    # The L2 clip rescales each example's score to norm 5, keeping its direction (0.6, 0.8).
    x, info = langevin(
        const_score, x0, jax.random.key(0), step_size=0.1, n_steps=1, noise_scale=0.0, grad_clip=5.0
    )
    np.testing.assert_allclose(x, x0 + 0.05 * jnp.array([3.0, 4.0]), rtol=1e-6)
    np.testing.assert_allclose(info["score_norm"], 50.0, rtol=1e-6)  # reported before clipping
    np.testing.assert_allclose(info["step_norm"], 0.25, rtol=1e-6)
    # A score already inside the clip (and a zero score) is untouched.
    x, _ = langevin(
        lambda x: jnp.zeros_like(x),
        x0,
        jax.random.key(0),
        step_size=0.1,
        n_steps=1,
        noise_scale=0.0,
        grad_clip=5.0,
    )
    np.testing.assert_allclose(x, x0)

    # x_range clips after every step: with the noise on, all states stay in [0, 1].
    x, _ = langevin(
        const_score, x0, jax.random.key(0), step_size=0.1, n_steps=10, x_range=(0.0, 1.0)
    )
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    np.testing.assert_allclose(x, 1.0)  # the drift of 2.5 per step pins both coordinates at hi


# ------------------------------------------------------------------------------------------------
# Interface: jit, vmap, float64, trajectories, argument checks.

SAMPLERS = {
    "langevin": lambda x0, key, **kw: langevin(
        score_from_log_prob(gaussian_log_prob), x0, key, step_size=0.1, n_steps=20, **kw
    ),
    "mala": lambda x0, key, **kw: mala(gaussian_log_prob, x0, key, step_size=0.3, n_steps=20, **kw),
    "hmc": lambda x0, key, **kw: hmc(
        gaussian_log_prob, x0, key, step_size=0.2, n_leapfrog=3, n_steps=20, **kw
    ),
}


@pytest.mark.parametrize("name", SAMPLERS)
def test_jit_vmap_over_an_extra_axis_of_chains_and_trajectory(name):
    x0 = jax.random.normal(jax.random.key(0), (3, 4, 2))  # 3 groups of 4 chains
    keys = jax.random.split(jax.random.key(1), 3)
    x, info = jax.jit(jax.vmap(SAMPLERS[name]))(x0, keys)
    assert x.shape == (3, 4, 2)
    assert "trajectory" not in info
    # Each group run alone, recording every 5th of the 20 steps, gives the same chains: vmap adds
    # nothing and recording changes nothing.
    single = jax.jit(functools.partial(SAMPLERS[name], record_every=5))
    for g in range(3):
        x_g, info_g = single(x0[g], keys[g])
        np.testing.assert_allclose(x[g], x_g, rtol=1e-5, atol=1e-5)
        trajectory = info_g.pop("trajectory")
        assert trajectory.shape == (4, 4, 2)
        np.testing.assert_array_equal(trajectory[-1], x_g)
        for k in info_g:
            np.testing.assert_allclose(info[k][g], info_g[k], rtol=1e-5, atol=1e-6)
    # Different keys give different chains.
    assert not np.allclose(x[0], single(x0[0], keys[1])[0])


@pytest.mark.parametrize("name", SAMPLERS)
def test_float64(x64, name):
    x0 = jax.random.normal(jax.random.key(0), (5, 2), jnp.float64)
    x, info = jax.jit(SAMPLERS[name])(x0, jax.random.key(1))
    assert x.dtype == jnp.float64 and np.all(np.isfinite(x))
    assert all(v.dtype == jnp.float64 for v in info.values()), {k: v.dtype for k, v in info.items()}


def test_event_shapes_beyond_vectors():
    # (n, 2, 3) states: every per-example reduction runs over both event axes.
    log_prob = lambda x: -0.5 * jnp.sum(x**2, axis=(1, 2))
    x0 = jnp.zeros((7, 2, 3))
    run = jax.jit(
        lambda x0, key: [
            mala(log_prob, x0, key, step_size=0.5, n_steps=5),
            hmc(log_prob, x0, key, step_size=0.3, n_leapfrog=2, n_steps=5),
            langevin(score_from_log_prob(log_prob), x0, key, step_size=0.1, n_steps=5),
        ]
    )
    for x, _ in run(x0, jax.random.key(0)):
        assert x.shape == (7, 2, 3)
        assert np.all(np.isfinite(x)) and not np.allclose(x, 0.0)


def test_bad_arguments_name_themselves():
    x0, key, lp = jnp.zeros((4, 2)), jax.random.key(0), gaussian_log_prob
    score = score_from_log_prob(lp)
    cases = [
        (
            lambda: mala(lp, x0, key, step_size=0.0, n_steps=5),
            r"step_size must be finite and > 0; got 0.0",
        ),
        (
            lambda: hmc(lp, x0, key, step_size=-1.0, n_leapfrog=2, n_steps=5),
            r"step_size must be finite and > 0",
        ),
        (
            lambda: mala(lp, x0, key, step_size=0.1, n_steps=0),
            r"n_steps must be an integer >= 1; got 0",
        ),
        (
            lambda: langevin(score, x0, key, step_size=0.1, n_steps=2.5),
            r"n_steps must be .*got 2.5",
        ),
        (
            lambda: hmc(lp, x0, key, step_size=0.1, n_leapfrog=0, n_steps=5),
            r"n_leapfrog must be an integer >= 1; got 0",
        ),
        (
            lambda: mala(lp, jnp.zeros(4), key, step_size=0.1, n_steps=5),
            r"x0 must be a batch .*rank >= 2; got shape \(4,\)",
        ),
        (
            lambda: mala(lp, jnp.zeros((4, 2), jnp.int32), key, step_size=0.1, n_steps=5),
            r"x0 must have a floating-point dtype; got dtype int32",
        ),
        (
            lambda: langevin(score, x0, key, step_size=0.1, n_steps=5, noise_scale=-1.0),
            r"noise_scale must be finite and >= 0; got -1.0",
        ),
        (
            lambda: langevin(score, x0, key, step_size=0.1, n_steps=5, grad_clip=0.0),
            r"grad_clip must be finite and > 0; got 0.0",
        ),
        (
            lambda: langevin(score, x0, key, step_size=0.1, n_steps=5, x_range=(1.0, 0.0)),
            r"x_range must satisfy lo < hi; got \(1.0, 0.0\)",
        ),
        (
            lambda: mala(lp, x0, key, step_size=0.1, n_steps=10, record_every=3),
            r"record_every must be 0 or a divisor of n_steps=10; got 3",
        ),
        (lambda: leapfrog(score, x0, x0, 0.1, 0), r"n must be an integer >= 1; got 0"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
