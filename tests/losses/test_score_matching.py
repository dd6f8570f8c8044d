"""Score matching against closed forms: the exact objective of a Gaussian and of a log-cosh energy
(numpy Jacobian traces), unbiasedness of the sliced estimators, and recovery of a Gaussian's mean
and precision by each objective, compared with the minimiser of each objective on the sample
(sample mean, inverse sample covariance, inverse noised covariance)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from jgen.convert import score_from_energy
from jgen.losses.score_matching import (
    denoising_score_matching,
    exact_score_matching,
    sliced_score_matching,
)

# --------------------------------------------------------------------------------------------
# Models with closed-form scores and Jacobian traces.


def gaussian_energy(x, mean, precision):
    """``E(x) = 1/2 (x - mu)^T P (x - mu)``; score ``-P (x - mu)``, Jacobian ``-P``."""
    r = x - mean
    return 0.5 * jnp.einsum("ni,ij,nj->n", r, precision, r)


def logcosh_energy(x, w):
    """``E(x) = sum_k log cosh(w_k^T x)`` on flattened events: a non-quadratic energy whose
    Jacobian varies per example."""
    return jnp.sum(jnp.log(jnp.cosh(x.reshape(x.shape[0], -1) @ w.T)), axis=1)


def logcosh_exact_numpy(x, w):
    """Score ``-W^T tanh(W x)``, trace of its Jacobian ``-sum_k (1 - tanh^2(w_k^T x)) |w_k|^2``."""
    t = np.tanh(x.reshape(len(x), -1) @ w.T)
    score = -t @ w
    trace = -((1.0 - t**2) * (w**2).sum(axis=1)).sum(axis=1)
    return trace + 0.5 * (score**2).sum(axis=1)


def random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.5 * np.eye(d)


# --------------------------------------------------------------------------------------------
# Exact score matching.


def test_exact_matches_gaussian_closed_form(x64):
    rng = np.random.default_rng(0)
    d = 3
    mean, precision = rng.normal(size=d), random_spd(rng, d)
    x = rng.normal(size=(7, d))
    score_fn = score_from_energy(functools.partial(gaussian_energy, mean=mean, precision=precision))
    got = exact_score_matching(score_fn, jnp.asarray(x))
    r = (x - mean) @ precision  # rows P (x_i - mu) (P symmetric)
    expected = -np.trace(precision) + 0.5 * (r**2).sum(axis=1)
    assert got.shape == (7,)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_exact_matches_logcosh_closed_form_with_image_events(x64):
    rng = np.random.default_rng(1)
    w = rng.normal(size=(5, 6))
    x = rng.normal(size=(4, 2, 3))  # events of shape (2, 3), flattened to 6 inside the energy
    score_fn = score_from_energy(functools.partial(logcosh_energy, w=w))
    got = exact_score_matching(score_fn, jnp.asarray(x))
    np.testing.assert_allclose(got, logcosh_exact_numpy(x, w), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Sliced score matching.


def test_sliced_equals_exact_in_one_dimension_with_rademacher(x64):
    # v = +-1 in one dimension: v^2 = 1, so every term is the exact one whatever the draw.
    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 1))
    x = jnp.asarray(rng.normal(size=(6, 1)))
    score_fn = score_from_energy(functools.partial(logcosh_energy, w=w))
    exact = exact_score_matching(score_fn, x)
    for vr in (False, True):
        sliced = functools.partial(
            sliced_score_matching, score_fn, num_projections=5, variance_reduced=vr
        )
        got = jax.jit(sliced)(x, jax.random.key(3))
        np.testing.assert_allclose(got, exact, rtol=1e-12)


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_sliced_is_unbiased(x64, distribution):
    rng = np.random.default_rng(4)
    w = rng.normal(size=(4, 3))
    x = jnp.asarray(rng.normal(size=(4, 3)))
    score_fn = score_from_energy(functools.partial(logcosh_energy, w=w))
    exact = logcosh_exact_numpy(np.asarray(x), w)
    repeats = 10_000  # x num_projections = 2 -> 20,000 projections per example

    keys = jax.random.split(jax.random.key(5), repeats)
    for vr in (False, True):
        estimate = functools.partial(
            sliced_score_matching,
            score_fn,
            x,
            num_projections=2,
            distribution=distribution,
            variance_reduced=vr,
        )
        values = np.asarray(jax.jit(jax.vmap(estimate))(keys))  # (repeats, n)
        standard_error = values.std(axis=0, ddof=1) / np.sqrt(repeats)
        assert np.all(standard_error > 0)  # the estimator is random: the test can fail
        np.testing.assert_array_less(np.abs(values.mean(axis=0) - exact), 4 * standard_error)


# --------------------------------------------------------------------------------------------
# Recovery of a Gaussian: mean mu and precision P = L L^T, L lower triangular.

D = 2
TRUE_MEAN = np.array([1.0, -0.5])
TRUE_COV = np.array([[1.5, 0.6], [0.6, 1.0]])
TRIL = np.tril_indices(D)


def unpack(theta):
    mean = theta[:D]
    chol = jnp.zeros((D, D), theta.dtype).at[TRIL].set(theta[D:])
    return mean, chol @ chol.T


def gaussian_score_fn(theta):
    mean, precision = unpack(theta)
    return score_from_energy(functools.partial(gaussian_energy, mean=mean, precision=precision))


def minimise(objective):
    """BFGS (scipy) on ``theta = (mu, tril(L))`` from ``mu = 0, L = I``, with JAX gradients."""
    value_and_grad = jax.jit(jax.value_and_grad(objective))

    def fun(theta):
        value, grad = value_and_grad(jnp.asarray(theta))
        return float(value), np.asarray(grad, np.float64)

    theta0 = np.concatenate([np.zeros(D), np.eye(D)[TRIL]])
    result = scipy.optimize.minimize(fun, theta0, jac=True, method="BFGS", options={"gtol": 1e-10})
    return (np.asarray(a) for a in unpack(jnp.asarray(result.x)))


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(6).multivariate_normal(TRUE_MEAN, TRUE_COV, size=5000)


def sample_moments(x):
    return x.mean(axis=0), np.cov(x.T, bias=True)


def test_exact_recovers_sample_mean_and_inverse_covariance(x64, data):
    # Mean exact SM of the Gaussian model on a sample is -tr P + 1/2 tr(P^2 S) + 1/2 |P (xbar -
    # mu)|^2 with S the (biased) sample covariance: minimised exactly at mu = xbar, P = S^-1.
    x = jnp.asarray(data)
    mean, precision = minimise(lambda t: exact_score_matching(gaussian_score_fn(t), x).mean())
    xbar, s = sample_moments(data)
    np.testing.assert_allclose(mean, xbar, atol=1e-6)
    np.testing.assert_allclose(precision, np.linalg.inv(s), atol=1e-6)
    # and the sample moments are near the truth (4 standard errors of the mean)
    np.testing.assert_array_less(np.abs(xbar - TRUE_MEAN), 4 * np.sqrt(np.diag(TRUE_COV) / 5000))


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_sliced_recovers_the_exact_minimiser(x64, data, distribution):
    # One fixed draw of M projections per example: the objective is deterministic and its
    # minimiser differs from the exact one (xbar, S^-1) by projection noise only. For SSM-VR,
    # mu = xbar exactly and P solves (P S + S P) / 2 = Vbar (the mean of v v^T over the N = n M
    # draws), so |P - S^-1|_F <= |Vbar - I|_F / lambda_min(S), where |Vbar - I|_F has standard
    # deviation at most sqrt(3 D^2 / N) (Gaussian v; less for Rademacher). The mean's error is
    # the average of (v v^T - I)(x - xbar) to first order, standard deviation at most
    # sqrt(3 D^2 |S|_2 / N). Both forms get 4 of these deviations (SSM's extra (v^T s)^2 noise is
    # of the same order; measured errors are 5-10 times below).
    x, m = jnp.asarray(data), 4
    key = jax.random.key(7)
    xbar, s = sample_moments(data)
    spread = np.sqrt(3 * D**2 / (len(data) * m))
    for vr in (False, True):
        mean, precision = minimise(
            lambda t, vr=vr: sliced_score_matching(
                gaussian_score_fn(t), x, key, m, distribution, variance_reduced=vr
            ).mean()
        )
        assert np.linalg.norm(precision - np.linalg.inv(s)) < 4 * spread / np.linalg.eigvalsh(s)[0]
        assert np.linalg.norm(mean - xbar) < 4 * spread * np.sqrt(np.linalg.norm(s, 2))
        if vr:
            np.testing.assert_allclose(mean, xbar, atol=1e-6)


def test_denoising_recovers_the_noised_gaussian(x64, data):
    # The DSM minimiser for N(mu, S) data is the score of N(mu, S + sigma^2 I). With the score
    # -P x~ + b (b = P mu), DSM on N = n K noised points is a least-squares regression of
    # t = -eps / sigma on x~, so the error of P is that of a regression coefficient: entry (j, k)
    # has standard error sqrt(C_jj [(S + sigma^2 I)^-1]_kk / N) with C the residual covariance
    # (P sigma - I / sigma)^2 + P S P; the mean's error is -(S / sigma) eps_bar, standard error
    # sqrt(diag(S^2) / (sigma^2 N)). Tolerances are 4 of these standard errors.
    sigma, copies = 0.5, 40
    x = jnp.asarray(np.tile(data, (copies, 1)))
    n = x.shape[0]
    key = jax.random.key(8)
    mean, precision = minimise(
        lambda t: denoising_score_matching(gaussian_score_fn(t), x, key, sigma).mean()
    )
    xbar, s = sample_moments(data)
    noised = s + sigma**2 * np.eye(D)
    p = np.linalg.inv(noised)
    residual = (p * sigma - np.eye(D) / sigma) @ (p * sigma - np.eye(D) / sigma) + p @ s @ p
    se_precision = np.sqrt(np.outer(np.diag(residual), np.diag(p)) / n)
    np.testing.assert_array_less(np.abs(precision - p), 4 * se_precision)
    se_mean = np.sqrt(np.diag(s @ s) / (sigma**2 * n))
    np.testing.assert_array_less(np.abs(mean - xbar), 4 * se_mean)
    # Not the data precision: the noised one is told apart from S^-1 by many standard errors.
    assert np.all(np.abs(np.linalg.inv(s) - p) > 10 * se_precision)


# --------------------------------------------------------------------------------------------
# Input checks.


def identity_score(x):
    return x


def test_shape_and_argument_errors():
    x = jnp.zeros((4, 3))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"x must be a batch of shape \(n, \*event\)"):
        exact_score_matching(identity_score, jnp.zeros(3))
    with pytest.raises(ValueError, match="x must have a floating-point dtype"):
        sliced_score_matching(identity_score, jnp.zeros((4, 3), jnp.int32), key)
    with pytest.raises(ValueError, match=r"score_fn must map x .* got shape \(4,\)"):
        exact_score_matching(lambda u: u.sum(axis=1), x)
    with pytest.raises(ValueError, match=r"score_fn must map x .* got shape \(4, 2\)"):
        denoising_score_matching(lambda u: u[:, :2], x, key, 0.1)
    with pytest.raises(ValueError, match="num_projections must be an integer >= 1"):
        sliced_score_matching(identity_score, x, key, num_projections=0)
    with pytest.raises(ValueError, match="distribution must be one of"):
        sliced_score_matching(identity_score, x, key, distribution="uniform")
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        denoising_score_matching(identity_score, x, key, 0.0)
    with pytest.raises(ValueError, match="sigma must be a scalar"):
        denoising_score_matching(identity_score, x, key, jnp.ones(4))
    with pytest.raises(ValueError, match=r"energy_fn must map x .* to shape \(n,\)"):
        exact_score_matching(score_from_energy(lambda u: u), x)
