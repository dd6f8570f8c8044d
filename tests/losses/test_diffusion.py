"""Diffusion and score-based losses against closed forms and Monte Carlo.

Ground truths: the Gaussian KL by quadrature, the discretised Gaussian by scipy CDF differences;
each term of the variational bound against an independent numpy formula and a Monte Carlo
estimate of ``E_q[log q - log p]``; and, for Gaussian data ``x0 ~ N(m, s^2 I)``, the exact
minimisers (the posterior mean of the noise, the scores of the noised data) with the loss values
they attain, and the expected bound, in closed form:

    E[L] = E[-log N(x_T; 0, 1)] + sum_t [1/2 log(2 pi sigma_t^2) + V_t / (2 sigma_t^2)]
           - sum_t 1/2 log(2 pi e beta_t)                                         (per dimension)

with ``V_t = Var(x_{t-1} | x_t)`` of the Gaussian forward chain, since the Bayes-optimal noise
predictor gives the exact reverse mean.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.stats

from jgen.gaussian import normal_kl
from jgen.losses.diffusion import (
    ddpm_eps_loss,
    discretized_gaussian_log_likelihood,
    discretized_gaussian_log_mass,
    drop_labels,
    guided_eps,
    hybrid_loss,
    ncsn_loss,
    prior_kl,
    sde_score_loss,
    vlb,
    vlb_terms,
)
from jgen.sdes.sde import VESDE, VPSDE, SubVPSDE

M, S = 0.3, 0.5  # Gaussian data N(M, S^2 I)
D = 2


def key(seed):
    """The "rbg" generator compiles several times faster than threefry on CPU, and most of these
    tests' time is compilation; the losses accept any typed key."""
    return jax.random.key(seed, impl="rbg")


def jitted(loss, model, **options):
    """``loss(model, *args, **options)`` compiled as one program (the tests' time is compilation,
    and one jit compiles faster than the many small eager ops)."""
    return jax.jit(functools.partial(loss, model, **options))


def within_se(samples, expected, k=4.0):
    samples = np.asarray(samples)
    se = samples.std(ddof=1) / math.sqrt(len(samples))
    assert abs(samples.mean() - expected) < k * se, (samples.mean(), expected, se)
    return se


def linear_betas_np(n):
    """Ho et al.'s schedule rescaled to ``n`` steps (same total noise)."""
    return np.linspace(1e-4 * 1000 / n, 0.02 * 1000 / n, n)


def schedule_np(betas):
    abar = np.cumprod(1.0 - betas)
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    post = betas * (1.0 - abar_prev) / (1.0 - abar)
    post_clipped = post.copy()
    post_clipped[0] = post[1]
    return abar, abar_prev, post, post_clipped


def optimal_eps_fn(betas, m=M, s=S):
    """``E[eps | x_t] = sqrt(1 - abar) (x_t - sqrt(abar) m) / (abar s^2 + 1 - abar)``."""
    abar = jnp.asarray(np.cumprod(1.0 - betas))

    def eps_fn(x, t):
        a = abar[t][:, None]
        return jnp.sqrt(1.0 - a) * (x - jnp.sqrt(a) * m) / (a * s**2 + 1.0 - a)

    return eps_fn


def expected_bound_per_dim(betas, var, m=M, s=S):
    """``E[L]`` per dimension for Gaussian data and the exact reverse mean (module docstring)."""
    abar, abar_prev, _, _ = schedule_np(betas)
    p_t = abar * s**2 + 1.0 - abar
    p_prev = abar_prev * s**2 + 1.0 - abar_prev
    v = p_prev * betas / p_t
    prior = 0.5 * math.log(2 * math.pi) + 0.5 * (abar[-1] * (m**2 + s**2) + 1.0 - abar[-1])
    steps = np.sum(0.5 * np.log(2 * np.pi * var) + v / (2 * var))
    return prior + steps - np.sum(0.5 * np.log(2 * np.pi * np.e * betas))


def gaussian_data(seed, n, m=M, s=S):
    return jnp.asarray(m + s * np.random.default_rng(seed).normal(size=(n, D)))


# --------------------------------------------------------------------------------------------
# Gaussian KL and the discretised decoder.


@pytest.mark.parametrize("m1,lv1,m2,lv2", [(0.3, -1.0, -0.5, 0.4), (2.0, 1.5, 0.0, 0.0)])
def test_normal_kl_matches_quadrature_and_monte_carlo(x64, m1, lv1, m2, lv2):
    p = scipy.stats.norm(m1, math.exp(lv1 / 2))
    q = scipy.stats.norm(m2, math.exp(lv2 / 2))
    quad = scipy.integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), -40, 40)[0]
    got = float(normal_kl(jnp.array(m1), jnp.array(lv1), jnp.array(m2), jnp.array(lv2)))
    np.testing.assert_allclose(got, quad, rtol=1e-9)
    x = p.rvs(size=200_000, random_state=np.random.default_rng(0))
    within_se(p.logpdf(x) - q.logpdf(x), got)


def test_normal_kl_is_accurate_for_close_variances(x64):
    d = 1e-7  # KL = (e^d - 1 - d) / 2 = d^2 / 4 + d^3 / 12 + ...: cancels in the naive form
    got = float(normal_kl(jnp.array(0.0), jnp.array(d), jnp.array(0.0), jnp.array(0.0)))
    np.testing.assert_allclose(got, d**2 / 4 + d**3 / 12, rtol=1e-9)


def test_discretized_gaussian_sums_to_one_over_bins(x64):
    cases = [(0.1, -2.0), (-0.9, 0.5), (1.3, -6.0), (0.0, -9.0)]
    mean = jnp.array([[m for m, _ in cases]] * 256)
    log_scale = jnp.array([[ls for _, ls in cases]] * 256)
    for k in [2, 17, 256]:
        # One (256, 4) batch for every K (columns: the cases) so the ops compile once; the
        # rows beyond the K levels are padding.
        grid = np.zeros((256, 4))
        grid[:k] = np.linspace(-1.0, 1.0, k)[:, None]
        mass = np.exp(discretized_gaussian_log_mass(jnp.asarray(grid), mean, log_scale, k))
        np.testing.assert_allclose(mass[:k].sum(axis=0), np.ones(4), rtol=1e-12)


def test_discretized_gaussian_matches_scipy_cdf_differences(x64):
    k = 17
    h = 1.0 / (k - 1)
    rng = np.random.default_rng(1)
    x = np.linspace(-1.0, 1.0, k)[rng.integers(0, k, size=(6, 5))]
    mean = rng.uniform(-1.2, 1.2, size=x.shape)
    log_scale = rng.uniform(-3.0, 0.0, size=x.shape)  # bins up to 20 sd out
    s = np.exp(log_scale)
    a, b = (x + h - mean) / s, (x - h - mean) / s
    # Phi(a) - Phi(b), or the same mass as sf(b) - sf(a) above the mean, where 1 - Phi rounds.
    cdf = scipy.stats.norm.cdf
    mass = np.where(x > mean, scipy.stats.norm.sf(b) - scipy.stats.norm.sf(a), cdf(a) - cdf(b))
    mass = np.where(x > 1 - h, scipy.stats.norm.sf(b), np.where(x < -1 + h, cdf(a), mass))
    expected = np.log(mass).sum(axis=1)
    got = discretized_gaussian_log_likelihood(
        jnp.asarray(x), jnp.asarray(mean), jnp.asarray(log_scale), k
    )
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_discretized_gaussian_is_exact_far_in_the_tails(x64):
    # Bins 30 to 200 standard deviations from the mean, where CDF differences round to 0:
    # log(sf(b) - sf(a)) = logsf(b) + log(1 - exp(logsf(a) - logsf(b))) in scipy.
    k, h, s = 256, 1.0 / 255, 0.05
    norm = scipy.stats.norm

    def log_mass_above(x, mean):  # an interior bin above the mean
        a, b = (x + h - mean) / s, (x - h - mean) / s
        return norm.logsf(b) + math.log1p(-math.exp(norm.logsf(a) - norm.logsf(b)))

    x = np.array([[0.5, 1.0, -1.0 + 6 / 255]])
    mean = np.array([[-1.0, -1.0, 0.9]])
    expected = (
        log_mass_above(0.5, -1.0)
        + norm.logsf((1.0 - h + 1.0) / s)  # the top edge bin
        + log_mass_above(-x[0, 2], -0.9)  # an interior bin below the mean, by symmetry
    )
    got = discretized_gaussian_log_likelihood(
        jnp.asarray(x), jnp.asarray(mean), jnp.array(math.log(s)), k
    )
    assert float(got[0]) < -1500
    np.testing.assert_allclose(got, [expected], rtol=1e-10)


# --------------------------------------------------------------------------------------------
# The terms of the variational bound.


def numpy_model(betas, x0, x_t, t, variance, v=None):
    """Posterior and model (mean, var) at step ``t >= 0``, written out from Ho et al. eqs. 6-7,
    11, 15 with the Bayes-optimal noise."""
    abar, abar_prev, post, post_clipped = schedule_np(betas)
    a, ap, b = abar[t], abar_prev[t], betas[t]
    eps = math.sqrt(1 - a) * (x_t - math.sqrt(a) * M) / (a * S**2 + 1 - a)
    x0_hat = (x_t - math.sqrt(1 - a) * eps) / math.sqrt(a)
    c0, ct = math.sqrt(ap) * b / (1 - a), math.sqrt(1 - b) * (1 - ap) / (1 - a)
    log_var = {
        "posterior": math.log(post_clipped[t]),
        "beta": math.log(b),
        "learned": None if v is None else v * math.log(b) + (1 - v) * math.log(post_clipped[t]),
    }[variance]
    return (c0 * x0 + ct * x_t, post[t]), (c0 * x0_hat + ct * x_t, np.exp(log_var))


@pytest.mark.parametrize("variance", ["posterior", "beta", "learned"])
def test_kl_term_matches_numpy_and_monte_carlo(x64, variance):
    betas = linear_betas_np(100)
    t = 40
    x0 = gaussian_data(0, 5)  # eager, the shapes of the decoder test: the ops compile once
    v = 0.3
    eps_fn = optimal_eps_fn(betas)
    model = (lambda x, s: (eps_fn(x, s), jnp.full_like(x, v))) if variance == "learned" else eps_fn
    t_vec = jnp.full((5,), t)
    terms, aux = vlb_terms(model, x0, t_vec, key(0), jnp.asarray(betas), variance=variance)
    x0_np, x_t = np.asarray(x0), np.asarray(aux["x_t"])
    (mq, vq), (mp, vp) = numpy_model(betas, x0_np, x_t, t, variance, v)
    closed = (0.5 * (np.log(vp / vq) + (vq + (mq - mp) ** 2) / vp - 1)).sum(axis=1)
    np.testing.assert_allclose(terms, closed, rtol=1e-10)
    # Monte Carlo of E_q[log q(x_{t-1} | x_t, x0) - log p(x_{t-1} | x_t)] for the first example.
    rng = np.random.default_rng(1)
    y = mq[0] + math.sqrt(vq) * rng.normal(size=(100_000, D))
    log_ratio = scipy.stats.norm.logpdf(y, mq[0], math.sqrt(vq)) - scipy.stats.norm.logpdf(
        y, mp[0], np.sqrt(vp)
    )
    within_se(log_ratio.sum(axis=1), float(terms[0]))


def test_prior_term_matches_closed_form_and_monte_carlo(x64):
    betas = linear_betas_np(50)
    abar = np.cumprod(1 - betas)[-1]
    x0 = gaussian_data(2, 4, m=1.0, s=2.0)
    got = prior_kl(x0, jnp.asarray(betas))
    mean, var = math.sqrt(abar) * np.asarray(x0), 1 - abar
    closed = 0.5 * (var + mean**2 - 1 - math.log(var)).sum(axis=1)
    np.testing.assert_allclose(got, closed, rtol=1e-10)
    y = mean[1] + math.sqrt(var) * np.random.default_rng(3).normal(size=(100_000, D))
    log_ratio = scipy.stats.norm.logpdf(y, mean[1], math.sqrt(var)) - scipy.stats.norm.logpdf(y)
    within_se(log_ratio.sum(axis=1), float(got[1]))


@pytest.mark.parametrize("variance", ["posterior", "beta"])
def test_decoder_term_matches_scipy(x64, variance):
    k = 17
    betas = np.linspace(1e-2, 0.2, 10)  # sigma_0 ~ 0.1, comparable to the bin half-width 1/16
    rng = np.random.default_rng(4)
    x0 = np.linspace(-1, 1, k)[rng.integers(0, k, size=(5, D))]
    args = (optimal_eps_fn(betas), jnp.asarray(x0), jnp.zeros(5, jnp.int32), key(5))
    terms, aux = vlb_terms(*args, jnp.asarray(betas), variance=variance, num_bins=k)
    _, (mp, vp) = numpy_model(betas, x0, np.asarray(aux["x_t"]), 0, variance)
    h, s = 1.0 / (k - 1), math.sqrt(vp)
    upper = np.where(x0 > 1 - h, 1.0, scipy.stats.norm.cdf((x0 + h - mp) / s))
    lower = np.where(x0 < -1 + h, 0.0, scipy.stats.norm.cdf((x0 - h - mp) / s))
    np.testing.assert_allclose(terms, -np.log(upper - lower).sum(axis=1), rtol=1e-10)
    # Without bins: the Gaussian density at the model mean.
    dense, _ = vlb_terms(*args, jnp.asarray(betas), variance=variance, num_bins=None)
    expected = -scipy.stats.norm.logpdf(x0, mp, s).sum(axis=1)
    np.testing.assert_allclose(dense, expected, rtol=1e-10)


# --------------------------------------------------------------------------------------------
# The whole bound on Gaussian data.


def test_bound_is_exact_for_standard_normal_data_with_beta_variances(x64):
    # x0 ~ N(0, I): the forward chain is stationary and p(x_{t-1} | x_t) = N(sqrt(alpha) x_t,
    # beta) exactly, so E[L - (-log p(x0))] = 0 with sigma_t^2 = beta_t.
    betas = linear_betas_np(100)
    assert (
        abs(expected_bound_per_dim(betas, betas, 0.0, 1.0) - 0.5 * math.log(2 * math.pi * math.e))
        < 1e-12
    )
    x0 = gaussian_data(6, 2000, m=0.0, s=1.0)
    bound, aux = jitted(vlb, optimal_eps_fn(betas, 0.0, 1.0), variance="beta", num_bins=None)(
        x0, key(7), jnp.asarray(betas)
    )
    assert aux["terms"].shape == (2000, 100)
    nll = -scipy.stats.norm.logpdf(np.asarray(x0)).sum(axis=1)
    within_se(np.asarray(bound) - nll, 0.0)
    np.testing.assert_allclose(aux["bits_per_dim"], bound / (D * math.log(2)), rtol=1e-12)


@pytest.mark.parametrize("variance,n_steps", [("beta", 1000), ("posterior", 100)])
def test_bound_matches_its_closed_form_and_exceeds_the_nll(x64, variance, n_steps):
    betas = linear_betas_np(n_steps)
    _, _, _, post_clipped = schedule_np(betas)
    var = betas if variance == "beta" else post_clipped
    expected = D * expected_bound_per_dim(betas, var)
    entropy = D * 0.5 * math.log(2 * math.pi * math.e * S**2)
    x0 = gaussian_data(8, 2000)
    bound, _ = jitted(vlb, optimal_eps_fn(betas), variance=variance, num_bins=None)(
        x0, key(9), jnp.asarray(betas)
    )
    nll = -scipy.stats.norm.logpdf(np.asarray(x0), M, S).sum(axis=1)
    # E[L] - E[-log p_data] is the closed-form gap; per example, the data NLL removes the
    # variance that the data contribute.
    within_se(np.asarray(bound) - nll, expected - entropy)
    assert expected - entropy > 0  # the bound holds
    if variance == "beta":
        # The gap shrinks like 1 / N (0.011 nats per dimension at N = 100, 0.0011 at 1000).
        assert (expected - entropy) / D < 1.2 / n_steps


def test_one_step_estimate_is_unbiased(x64):
    betas = linear_betas_np(50)
    x0 = gaussian_data(10, 20_000)
    est, aux = jitted(
        vlb, optimal_eps_fn(betas), variance="beta", num_bins=None, estimator="sample"
    )(x0, key(11), jnp.asarray(betas))
    assert aux["t"].shape == (20_000,) and int(aux["t"].min()) == 0 and int(aux["t"].max()) == 49
    nll = -scipy.stats.norm.logpdf(np.asarray(x0), M, S).sum(axis=1)
    expected = D * (
        expected_bound_per_dim(betas, betas) - 0.5 * math.log(2 * math.pi * math.e * S**2)
    )
    within_se(np.asarray(est) - nll, expected)


def test_hybrid_loss_stops_the_bound_gradient_on_the_mean(x64):
    betas = linear_betas_np(50)
    _, _, _, post_clipped = schedule_np(betas)
    x0 = gaussian_data(12, 20_000)
    eps_fn = optimal_eps_fn(betas)

    def loss(params, weight):
        def model(x, t):
            return params["a"] * eps_fn(x, t), jnp.full_like(x, params["b"])

        value, aux = hybrid_loss(
            model, x0, key(13), jnp.asarray(betas), vlb_weight=weight, num_bins=None
        )
        return value.mean(), aux

    value_and_grad = jax.jit(jax.value_and_grad(loss, has_aux=True))  # one compile for all
    params = {"a": jnp.array(1.1), "b": jnp.array(0.4)}
    (value, aux), grads = value_and_grad(params, jnp.array(1e-3))
    _, grads0 = value_and_grad(params, jnp.array(0.0))
    np.testing.assert_allclose(grads["a"], grads0["a"], rtol=1e-12)  # the mean: L_simple only
    assert float(grads0["b"]) == 0.0 and abs(float(grads["b"])) > 0  # the variance: L_vlb only
    np.testing.assert_allclose(value, aux["simple"].mean() + 1e-3 * aux["vlb"].mean(), rtol=1e-12)
    # L_vlb at the optimal mean (a = 1) estimates sum_t E[L_t] = E[L] - E[L_T] in bits per dim.
    (_, aux1), _ = value_and_grad({"a": jnp.array(1.0), "b": jnp.array(0.4)}, jnp.array(1e-3))
    var = np.exp(0.4 * np.log(betas) + 0.6 * np.log(post_clipped))
    abar = np.cumprod(1 - betas)[-1]
    prior_ce = 0.5 * math.log(2 * math.pi) + 0.5 * (abar * (M**2 + S**2) + 1 - abar)
    prior_kl_mean = prior_ce - 0.5 * math.log(2 * math.pi * math.e * (1 - abar))
    expected = (expected_bound_per_dim(betas, var) - prior_kl_mean) / math.log(2)
    within_se(aux1["vlb"], expected)


# --------------------------------------------------------------------------------------------
# DDPM noise regression.


def test_eps_loss_at_the_optimum_equals_the_posterior_variance(x64):
    betas = linear_betas_np(100)
    abar = np.cumprod(1 - betas)
    snr = abar / (1 - abar)
    eps_fn = optimal_eps_fn(betas)
    x0 = gaussian_data(14, 20_000)
    perturbed = {
        "shifted": lambda x, t: eps_fn(x, t) + 0.1,
        "scaled": lambda x, t: 1.2 * eps_fn(x, t),
    }
    for weighting, w in [("simple", np.ones_like(abar)), ("min_snr", np.minimum(snr, 5.0) / snr)]:

        def loss(f, weighting=weighting):  # eager: the three calls share compiled ops
            return np.asarray(ddpm_eps_loss(f, x0, key(15), jnp.asarray(abar), weighting=weighting))

        best = loss(eps_fn)
        # E[Var(eps | x_t)] per dimension, averaged over the uniform step.
        within_se(best, np.mean(w * abar * S**2 / (abar * S**2 + 1 - abar)))
        shifted, scaled = loss(perturbed["shifted"]), loss(perturbed["scaled"])
        within_se(shifted - best, np.mean(w) * 0.1**2)  # E[(r - delta)^2 - r^2] = delta^2
        for worse in (shifted, scaled):
            diff = worse - best
            assert diff.mean() > 4 * diff.std() / math.sqrt(len(diff))


# --------------------------------------------------------------------------------------------
# Score-based losses.


def test_ncsn_loss_at_the_exact_score(x64):
    sigmas = np.array([2.0, 0.7, 0.1])
    x = gaussian_data(16, 20_000)

    def score(x_tilde, sigma):  # the score of N(M, (S^2 + sigma^2) I)
        return -(x_tilde - M) / (S**2 + sigma[:, None] ** 2)

    rng_key = key(17)
    best = np.asarray(ncsn_loss(score, x, rng_key, jnp.asarray(sigmas)))
    # 1/2 sigma^2 E||z/sigma - E[z/sigma | x~]||^2 = D/2 Var(z | x~) = D/2 S^2 / (S^2 + sigma^2).
    within_se(best, D / 2 * np.mean(S**2 / (S**2 + sigmas**2)))
    worse = np.asarray(ncsn_loss(lambda y, s: 1.1 * score(y, s), x, rng_key, jnp.asarray(sigmas)))
    assert (worse - best).mean() > 4 * (worse - best).std() / math.sqrt(len(best))


def vp_coeffs(t, xp=np, b0=0.1, b1=20.0, sub=False):
    """``(alpha, std, g^2)`` of the VP / sub-VP SDEs (``int_0^t beta = b0 t + (b1 - b0) t^2/2``);
    ``xp`` is numpy (quadrature) or jax.numpy (the score)."""
    alpha = xp.exp(-0.5 * (b0 * t + 0.5 * (b1 - b0) * t**2))
    beta = b0 + t * (b1 - b0)
    if sub:
        return alpha, 1 - alpha**2, beta * (1 - alpha**4)
    return alpha, xp.sqrt(1 - alpha**2), beta


def ve_coeffs(t, xp=np, s0=0.01, s1=50.0):
    sigma = s0 * (s1 / s0) ** t
    return xp.ones_like(t), sigma, sigma**2 * 2 * math.log(s1 / s0)


def subvp_coeffs(t, xp=np):
    return vp_coeffs(t, xp, sub=True)


CASES = [
    (VPSDE(), vp_coeffs, False, 1e-5),
    (SubVPSDE(), subvp_coeffs, False, 1e-5),
    (VESDE(), ve_coeffs, False, 1e-5),
    (VPSDE(), vp_coeffs, True, 1e-2),  # g^2 / std^2 ~ 1 / t: a heavy tail below t ~ 1e-2
    (VESDE(), ve_coeffs, True, 1e-5),
]


@pytest.mark.parametrize("sde,coeffs,likelihood,eps", CASES)
def test_sde_loss_at_the_exact_score(x64, sde, coeffs, likelihood, eps):
    x0 = gaussian_data(18, 20_000)

    def score(x, t):  # the score of N(alpha M, (alpha^2 S^2 + std^2) I)
        alpha, std, _ = coeffs(t, jnp)
        return -(x - alpha[:, None] * M) / (alpha[:, None] ** 2 * S**2 + std[:, None] ** 2)

    def integrand(t):
        alpha, std, g2 = coeffs(t)
        per_dim = alpha**2 * S**2 / (alpha**2 * S**2 + std**2)  # Var(z | x_t)
        return D * per_dim * (g2 / std**2 if likelihood else 1.0)

    expected = scipy.integrate.quad(integrand, eps, 1.0, limit=200)[0] / (1.0 - eps)
    rng_key = key(19)
    kwargs = dict(likelihood_weighting=likelihood, eps=eps)
    best = np.asarray(sde_score_loss(score, x0, rng_key, sde, **kwargs))
    within_se(best, expected)
    mean_reduced = sde_score_loss(score, x0, rng_key, sde, reduce_mean=True, **kwargs)
    np.testing.assert_allclose(mean_reduced, best / D, rtol=1e-12)
    worse = np.asarray(sde_score_loss(lambda x, t: 0.9 * score(x, t), x0, rng_key, sde, **kwargs))
    assert (worse - best).mean() > 4 * (worse - best).std() / math.sqrt(len(best))


# --------------------------------------------------------------------------------------------
# Classifier-free guidance.


def test_guided_eps_formula(x64):
    rng = np.random.default_rng(20)
    cond, uncond = rng.normal(size=(2, 3, 4))
    np.testing.assert_allclose(guided_eps(cond, uncond, 2.0), 3.0 * cond - 2.0 * uncond)
    w = np.array([0.0, -1.0, 0.5])
    np.testing.assert_allclose(guided_eps(cond, uncond, w), cond + w[:, None] * (cond - uncond))


def test_drop_labels_fraction(x64):
    n, p = 20_000, 0.15
    y = jnp.asarray(np.random.default_rng(21).integers(0, 10, size=n), jnp.int32)
    out = drop_labels(key(22), y, p, 10)
    assert out.dtype == y.dtype
    dropped = np.asarray(out) == 10
    np.testing.assert_array_equal(np.asarray(out)[~dropped], np.asarray(y)[~dropped])
    assert abs(dropped.mean() - p) < 4 * math.sqrt(p * (1 - p) / n)


# --------------------------------------------------------------------------------------------
# Input checks.


def test_bad_inputs_raise_named_errors(x64):
    x = jnp.zeros((4, 2))
    rng_key = key(0)
    betas = jnp.linspace(1e-3, 0.1, 10)
    eps_fn = lambda x, t: x  # noqa: E731
    with pytest.raises(ValueError, match="weighting"):
        ddpm_eps_loss(eps_fn, x, rng_key, jnp.cumprod(1 - betas), weighting="snr2")
    with pytest.raises(ValueError, match="eps_fn must return arrays of its input's shape"):
        ddpm_eps_loss(lambda x, t: x[:, :1], x, rng_key, jnp.cumprod(1 - betas))
    with pytest.raises(ValueError, match="alphas_cumprod"):
        ddpm_eps_loss(eps_fn, x, rng_key, jnp.array([0.5, 1.5]))
    with pytest.raises(ValueError, match="variance"):
        vlb(eps_fn, x, rng_key, betas, variance="fixed")
    with pytest.raises(ValueError, match=r"pair \(eps, v\)"):
        vlb(eps_fn, x, rng_key, betas, variance="learned")
    with pytest.raises(ValueError, match="num_bins"):
        vlb(eps_fn, x, rng_key, betas, num_bins=1)
    with pytest.raises(ValueError, match="estimator"):
        vlb(eps_fn, x, rng_key, betas, estimator="mc")
    with pytest.raises(ValueError, match="t must be an integer"):
        vlb_terms(eps_fn, x, jnp.zeros(4), rng_key, betas)
    with pytest.raises(ValueError, match="sigmas"):
        ncsn_loss(eps_fn, x, rng_key, jnp.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="eps"):
        sde_score_loss(eps_fn, x, rng_key, VPSDE(), eps=0.0)
    with pytest.raises(ValueError, match="x0"):
        sde_score_loss(eps_fn, jnp.zeros(4), rng_key, VPSDE())
    with pytest.raises(ValueError, match="p must be"):
        drop_labels(rng_key, jnp.zeros(4, jnp.int32), 1.5, 10)
    with pytest.raises(ValueError, match="eps_uncond"):
        guided_eps(x, x[:2], 1.0)
