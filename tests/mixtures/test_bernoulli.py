"""Bernoulli mixtures by (MAP) EM, checked against enumeration, scipy and a numpy EM step."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit, logsumexp
from scipy.stats import bernoulli, chisquare
from scipy.stats import beta as beta_dist

from jgen.data import digits
from jgen.mixtures import bernoulli as bm
from jgen.mixtures import em, gmm


def _random_params(seed, k, d, scale=3.0, saturate=False):
    """Random weights and logits; ``saturate`` puts μ = 0 and μ = 1 (logits ∓inf) in places."""
    rng = np.random.default_rng(seed)
    logits = scale * rng.normal(size=(k, d))
    if saturate:
        logits[0, 0], logits[1, -1] = -np.inf, np.inf
    weights = rng.dirichlet(np.ones(k))
    return bm.BernoulliMixtureParams(jnp.asarray(np.log(weights)), jnp.asarray(logits))


def _scipy_component_log_probs(params, x):
    """``log π_k + Σ_d log Bernoulli(x_d; μ_kd)`` with scipy's pmf, ``(n, K)``."""
    mu = expit(np.asarray(params.logits))
    per_pixel = bernoulli.logpmf(x[:, None, :], mu[None, :, :])
    return np.asarray(params.log_weights)[None, :] + per_pixel.sum(-1)


def _mixture_data(seed, n, weights, mu):
    """``n`` samples of a Bernoulli mixture drawn with numpy (independent of the module)."""
    rng = np.random.default_rng(seed)
    comp = rng.choice(len(weights), size=n, p=weights)
    return (rng.uniform(size=(n, mu.shape[1])) < mu[comp]).astype(np.float64)


def test_log_prob_sums_to_one_over_all_binary_vectors(x64):
    d = 10
    params = _random_params(0, 4, d, saturate=True)
    # μ_k0 = 0 in every component: vectors with x_0 = 1 have probability exactly 0.
    params = params._replace(logits=params.logits.at[:, 0].set(-jnp.inf))
    every = np.array(list(itertools.product([0.0, 1.0], repeat=d)))  # all 2^10 vectors
    logp = np.asarray(bm.log_prob(params, jnp.asarray(every)))
    assert np.isneginf(logp).any() and np.isfinite(logp).any()  # the saturated logits matter
    assert abs(math.exp(logsumexp(logp)) - 1.0) < 1e-12


def test_log_prob_and_responsibilities_match_scipy(x64):
    params = _random_params(1, 3, 7, saturate=True)
    x = np.random.default_rng(2).integers(0, 2, size=(60, 7)).astype(np.float64)
    x[:3, 0] = 0.0  # μ_00 = 0 with the pixel off: a finite contribution ...
    x[3:6, 0] = 1.0  # ... and on: component 0 impossible
    joint = _scipy_component_log_probs(params, x)
    np.testing.assert_allclose(bm.component_log_probs(params, jnp.asarray(x)), joint, rtol=1e-12)
    np.testing.assert_allclose(
        bm.log_prob(params, jnp.asarray(x)), logsumexp(joint, axis=1), rtol=1e-12
    )
    resp = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
    np.testing.assert_allclose(bm.responsibilities(params, jnp.asarray(x)), resp, atol=1e-12)
    # Integer and bool batches are the same binary data.
    np.testing.assert_allclose(
        bm.log_prob(params, jnp.asarray(x.astype(bool))), logsumexp(joint, axis=1), rtol=1e-12
    )


def _numpy_em_step(params, x, a, b):
    """PRML 9.56 (E-step) and 9.59-9.60 with a Beta(a, b) prior (M-step), in plain numpy."""
    mu = expit(np.asarray(params.logits))
    with np.errstate(divide="ignore"):
        joint = np.asarray(params.log_weights) + x @ np.log(mu).T + (1 - x) @ np.log(1 - mu).T
    log_norm = logsumexp(joint, axis=1, keepdims=True)
    r = np.exp(joint - log_norm)
    nk = r.sum(0)
    new_mu = (r.T @ x + a - 1) / (nk[:, None] + a + b - 2)
    return nk / len(x), new_mu, log_norm.mean()


def test_em_step_matches_numpy(x64):
    params = _random_params(3, 4, 9, scale=1.0)
    x = np.random.default_rng(4).integers(0, 2, size=(80, 9)).astype(np.float64)
    a, b = 1.7, 1.2  # asymmetric, so swapping the pseudo-counts would show
    new, ll = bm.em_step(params, jnp.asarray(x), alpha=a, beta=b)
    weights, mu, ll_ref = _numpy_em_step(params, x, a, b)
    np.testing.assert_allclose(jax.nn.sigmoid(new.logits), mu, rtol=1e-12)
    # π_k = N_k / n up to the 10 eps added to N_k (as in gmm): a relative 1e-14.
    np.testing.assert_allclose(np.exp(new.log_weights), weights, rtol=1e-12)
    np.testing.assert_allclose(ll, ll_ref, rtol=1e-12)


def test_maximum_likelihood_em_never_decreases_the_log_likelihood(x64):
    rng = np.random.default_rng(5)
    mu = rng.uniform(0.05, 0.95, size=(4, 16))
    mu[:, 0] = 0.0  # a pixel never on: maximum likelihood sets μ = 0 exactly
    x = jnp.asarray(_mixture_data(6, 400, np.full(4, 0.25), mu))
    params, history = bm.fit(jax.random.key(0), x, 4, alpha=1.0, beta=1.0, max_iter=30, tol=0.0)
    ll = np.asarray(history.log_likelihood)
    assert int(history.n_iter) == 30 and np.all(np.isfinite(ll))
    assert np.isneginf(params.logits[:, 0]).all()  # the μ = 0 path is exercised
    # The quantity checked is ℓ_t = (1/n) Σ log p(x_i; θ_t), which EM cannot decrease; 1e-12
    # allows for float64 rounding of a sum of 400 terms of size ~10.
    assert np.all(np.diff(ll) >= -1e-12), np.diff(ll).min()
    assert ll[-1] > ll[0] + 0.05


def test_map_em_never_decreases_the_log_posterior(x64):
    x = jnp.asarray(np.random.default_rng(7).integers(0, 2, size=(300, 12)).astype(np.float64))
    a, b = 2.0, 3.0
    params = bm.initialize(jax.random.key(1), x, 5, alpha=a, beta=b)
    # log_prior against scipy's Beta log-density.
    expected = beta_dist(a, b).logpdf(expit(np.asarray(params.logits))).sum()
    np.testing.assert_allclose(bm.log_prior(params, alpha=a, beta=b), expected, rtol=1e-12)

    step = jax.jit(lambda p: bm.em_step(p, x, alpha=a, beta=b))
    objective = []
    for _ in range(20):
        prior = bm.log_prior(params, alpha=a, beta=b)
        params, ll = step(params)  # ll is the log-likelihood of the parameters passed in
        objective.append(float(ll) + float(prior) / x.shape[0])
    # The checked quantity is the MAP objective (1/n) [Σ_i log p(x_i) + log Beta prior], which
    # MAP-EM cannot decrease; the log-likelihood alone may.
    assert np.all(np.diff(objective) >= -1e-12), np.diff(objective).min()
    assert objective[-1] > objective[0] + 0.01


def test_fit_recovers_a_well_separated_mixture(x64):
    rng = np.random.default_rng(8)
    k, d, n = 3, 12, 5000
    weights = np.array([0.5, 0.3, 0.2])
    # Each component is "on" (μ in [0.7, 0.95]) on its own 4 pixels and "off" elsewhere: 8
    # pixels differ between any two, so memberships are all but certain (posterior log-odds of
    # ~15 nats) and the complete-data standard errors below apply.
    mu = rng.uniform(0.05, 0.3, size=(k, d))
    for c in range(k):
        mu[c, 4 * c : 4 * c + 4] = rng.uniform(0.7, 0.95, size=4)
    x = jnp.asarray(_mixture_data(9, n, weights, mu))
    params, history = bm.fit(jax.random.key(2), x, k, max_iter=200, tol=1e-8)
    assert bool(history.converged)

    got_mu = np.asarray(jax.nn.sigmoid(params.logits))
    got_w = np.exp(np.asarray(params.log_weights))
    perm = min(itertools.permutations(range(k)), key=lambda p: np.abs(got_mu[list(p)] - mu).sum())
    got_mu, got_w = got_mu[list(perm)], got_w[list(perm)]
    # Binomial standard errors: sqrt(μ(1-μ) / (n π_k)) for μ_kd and sqrt(π(1-π) / n) for π_k;
    # the default Beta(1.5, 1.5) prior moves μ by < 0.5 / N_k ~ 5e-4, a tenth of one of them.
    se_mu = np.sqrt(mu * (1 - mu) / (n * weights[:, None]))
    se_w = np.sqrt(weights * (1 - weights) / n)
    assert np.all(np.abs(got_mu - mu) < 4 * se_mu), np.max(np.abs(got_mu - mu) / se_mu)
    assert np.all(np.abs(got_w - weights) < 4 * se_w), np.max(np.abs(got_w - weights) / se_w)


def test_sample_frequencies_match_the_probabilities():
    params = _random_params(10, 2, 3, scale=1.5)
    n = 20_000
    x = np.asarray(bm.sample(params, jax.random.key(3), n))
    assert x.shape == (n, 3) and x.dtype == np.float32 and set(np.unique(x)) <= {0.0, 1.0}
    patterns = np.array(list(itertools.product([0, 1], repeat=3)))  # index = 4 x0 + 2 x1 + x2
    mu = expit(np.asarray(params.logits, np.float64))
    w = np.exp(np.asarray(params.log_weights, np.float64))
    probs = (w[None, :] * np.prod(np.where(patterns[:, None, :], mu, 1 - mu), axis=2)).sum(1)
    observed = np.bincount((x @ np.array([4, 2, 1])).astype(int), minlength=8)
    # Pearson's chi-square with 7 degrees of freedom; fails with probability 0.001 if correct.
    assert chisquare(observed, n * probs / probs.sum()).pvalue > 1e-3


def test_binary_digits():
    x_train = digits.load("binary", "train")[0].reshape(-1, 64)
    x_test = digits.load("binary", "test")[0].reshape(-1, 64)

    # K = 1 is the product of the pixel marginals: every responsibility is 1, so one EM step from
    # any start gives the MAP estimate in closed form.
    a = b = bm.DEFAULT_ALPHA
    start = bm.BernoulliMixtureParams(jnp.zeros(1), jnp.zeros((1, 64)))
    one, _ = bm.em_step(start, x_train)
    mu = (x_train.sum(0) + a - 1) / (len(x_train) + a + b - 2)
    np.testing.assert_allclose(jax.nn.sigmoid(one.logits[0]), mu, rtol=1e-5)

    # Maximum likelihood sets μ_d = 0 for a pixel never on in training; a test image with that
    # pixel on gets probability 0. The prior keeps every test log-likelihood finite.
    never_on = x_train.sum(0) == 0
    hit = (x_test[:, never_on] > 0).any(axis=1)
    assert hit.any()
    ml, _ = bm.em_step(start, x_train, alpha=1.0, beta=1.0)
    np.testing.assert_array_equal(np.isneginf(bm.log_prob(ml, x_test)), hit)
    assert np.all(np.isfinite(bm.log_prob(one, x_test)))

    ten, history = bm.fit(jax.random.key(0), x_train, 10)
    assert bool(history.converged)
    test_ll = float(jnp.mean(bm.log_prob(ten, x_test)))
    # A mixture beats independent pixels on held-out digits (measured: -20.4 against -24.9 nats
    # per image; see bernoulli.fit for K = 20 and 50).
    assert np.isfinite(test_ll)
    assert test_ll > float(jnp.mean(bm.log_prob(one, x_test)))


def test_history_records_each_step_and_stops_at_tol(x64):
    rng = np.random.default_rng(11)
    x = jnp.asarray(rng.integers(0, 2, size=(200, 10)).astype(np.float64))
    init = bm.initialize(jax.random.key(4), x, 3)
    tol = 1e-4
    params, history = bm.fit(None, x, 3, tol=tol, init_params=init)
    n = int(history.n_iter)
    assert bool(history.converged) and 1 < n < 100
    assert np.all(np.isnan(np.asarray(history.log_likelihood[n:])))
    # Replay the steps one by one: run_em must record ℓ_t and stop at the first small change.
    replay, p = [], init
    step = jax.jit(lambda p: bm.em_step(p, x))
    for _ in range(n):
        p, ll = step(p)
        replay.append(float(ll))
    np.testing.assert_allclose(history.log_likelihood[:n], replay, rtol=1e-12)
    changes = np.abs(np.diff(replay))
    assert changes[-1] < tol and np.all(changes[:-1] >= tol)
    np.testing.assert_allclose(params.logits, p.logits, rtol=1e-12)
    assert gmm.FitHistory is em.FitHistory


def test_log_prob_under_jit_matches_eager():
    params = _random_params(12, 3, 5)
    x = jnp.asarray(np.random.default_rng(13).integers(0, 2, size=(20, 5)), jnp.float32)
    np.testing.assert_allclose(jax.jit(bm.log_prob)(params, x), bm.log_prob(params, x), rtol=1e-6)


def test_bad_inputs_name_the_argument():
    x = jnp.zeros((10, 4))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"x must be binary .*got 1 other values, the first 0\.5 "
                       r"at index \(2, 3\)"):  # fmt: skip
        bm.fit(key, x.at[2, 3].set(0.5), 2)
    with pytest.raises(ValueError, match=r"x must have shape \(n, D\); got shape \(10,\)"):
        bm.fit(key, jnp.zeros(10), 2)
    with pytest.raises(ValueError, match="k must be <= the number of examples n=10; got k=11"):
        bm.fit(key, x, 11)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        bm.initialize(key, x, 0)
    with pytest.raises(ValueError, match="alpha must be a finite scalar >= 1; got 0.5"):
        bm.fit(key, x, 2, alpha=0.5)
    with pytest.raises(ValueError, match="beta must be a finite scalar >= 1"):
        bm.em_step(_random_params(0, 2, 4), x, beta=float("nan"))
    with pytest.raises(ValueError, match="tol must be finite and >= 0"):
        bm.fit(key, x, 2, tol=-1.0)
    params = _random_params(0, 3, 5)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 5\); got shape \(10, 4\)"):
        bm.log_prob(params, x)
    with pytest.raises(ValueError, match=r"init_params.logits must have shape \(k, D\)"):
        bm.fit(key, x, 3, init_params=params)
    with pytest.raises(ValueError, match=r"params.log_weights must have shape \(3,\)"):
        bm.sample(params._replace(log_weights=jnp.zeros(2)), key, 5)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        bm.sample(params, key, 0)
