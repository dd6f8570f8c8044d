"""Noise-contrastive estimation against closed forms: the loss against a numpy/scipy formula, the
Gaussian noise against scipy, and recovery of a 1-D Gaussian's mean, variance and log-normaliser
within the asymptotic standard errors of Gutmann & Hyvarinen (2012, Theorem 3), computed by
quadrature."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import scipy.special
import scipy.stats

from jgen.losses.nce import gaussian_noise, nce_loss


def quadratic_log_model(x, centre, scale, c):
    """``-|x - centre|^2 / (2 scale) - c``: unnormalised Gaussian with a log-normaliser ``c``."""
    return -0.5 * jnp.sum((x - centre) ** 2, axis=1) / scale - c


def test_gaussian_noise_matches_scipy(x64):
    rng = np.random.default_rng(0)
    mean, a = rng.normal(size=3), rng.normal(size=(3, 3))
    cov = a @ a.T + 0.5 * np.eye(3)
    noise = gaussian_noise(mean, cov)
    x = rng.normal(size=(6, 3))
    expected = scipy.stats.multivariate_normal(mean, cov).logpdf(x)
    np.testing.assert_allclose(noise.log_prob(jnp.asarray(x)), expected, rtol=1e-12)
    n = 20_000
    y = np.asarray(noise.sample(jax.random.key(1), n))
    assert y.shape == (n, 3)
    # sample mean within 4 standard errors; sample covariance entries within 4 standard errors
    # (Var(y_j y_k) = C_jj C_kk + C_jk^2 for centred Gaussians)
    np.testing.assert_array_less(np.abs(y.mean(axis=0) - mean), 4 * np.sqrt(np.diag(cov) / n))
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    np.testing.assert_array_less(np.abs(np.cov(y.T) - cov), 4 * se_cov)


def test_loss_matches_numpy_formula(x64):
    rng = np.random.default_rng(2)
    n, m, nu = 5, 15, 3.0
    x_data, x_noise = rng.normal(size=(n, 2)), 2.0 * rng.normal(size=(m, 2))
    centre, scale, c = np.array([0.3, -0.2]), 0.7, 1.1
    noise_mean, noise_cov = np.zeros(2), np.diag([4.0, 3.0])
    noise = gaussian_noise(noise_mean, noise_cov)

    def log_model(x):
        return quadratic_log_model(x, centre, scale, c)

    got = nce_loss(log_model, noise.log_prob, jnp.asarray(x_data), jnp.asarray(x_noise))
    assert got.shape == (n,)

    def log_odds(u):
        log_pm = -0.5 * ((u - centre) ** 2).sum(axis=1) / scale - c
        log_pn = scipy.stats.multivariate_normal(noise_mean, noise_cov).logpdf(u)
        return log_pm - np.log(nu * np.exp(log_pn))

    h_data, h_noise = scipy.special.expit(log_odds(x_data)), scipy.special.expit(log_odds(x_noise))
    expected = -np.log(h_data) - nu * np.mean(np.log(1.0 - h_noise))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # the mean over data is minus J_T of Gutmann & Hyvarinen (2012, Eq. 8)
    j_t = (np.log(h_data).sum() + np.log(1.0 - h_noise).sum()) / n
    np.testing.assert_allclose(got.mean(), -j_t, rtol=1e-12)


def test_loss_is_finite_for_extreme_log_odds():
    # sigmoid(G) rounds to 0 or 1 in float32 for |G| = 200 (nu = 1); log_sigmoid keeps the loss
    # exact: G = -200 costs each data point -log sigmoid(-200) = 200 (noise term e^-200 ~ 0);
    # G = +200 costs each noise point 200, which the two rows share: 2 * 200 / 2.
    x = jnp.zeros((2, 1), jnp.float32)
    zero = lambda u: jnp.zeros(u.shape[0], u.dtype)  # noqa: E731
    got = nce_loss(lambda u: jnp.full(u.shape[0], -200.0), zero, x, x)
    np.testing.assert_allclose(got, [200.0, 200.0], rtol=1e-6)
    got = nce_loss(lambda u: jnp.full(u.shape[0], 200.0), zero, x, x)
    np.testing.assert_allclose(got, [200.0, 200.0], rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Recovery of a 1-D Gaussian: theta = (mean, log variance, c), log p_m = -(u - m)^2 / (2 e^lv) - c.

DATA_MEAN, DATA_STD = 0.5, 0.8
NOISE_MEAN, NOISE_STD = 0.0, 1.5
NUM_DATA, NU = 20_000, 2


def log_model_1d(theta, x):
    return quadratic_log_model(x, theta[0], jnp.exp(theta[1]), theta[2])


def asymptotic_covariance(theta):
    """Gutmann & Hyvarinen (2012, Theorem 3): sqrt(T_d) (theta_hat - theta*) -> N(0, Sigma) with
    ``Sigma = I^-1 - (1 + 1/nu) I^-1 m m^T I^-1``, ``I = int g g^T P_nu p_d``, ``m = int g P_nu
    p_d``, ``g = grad_theta log p_m``, ``P_nu = nu p_n / (p_d + nu p_n)``; trapezoid quadrature."""
    u = np.linspace(-12.0, 12.0, 48_001)
    p_d = scipy.stats.norm(DATA_MEAN, DATA_STD).pdf(u)
    p_n = scipy.stats.norm(NOISE_MEAN, NOISE_STD).pdf(u)
    weight = NU * p_n / (p_d + NU * p_n) * p_d
    mean, var = theta[0], math.exp(theta[1])
    g = np.stack([(u - mean) / var, (u - mean) ** 2 / (2 * var), -np.ones_like(u)])
    info = np.trapezoid(g[:, None] * g[None] * weight, u, axis=-1)
    m = np.trapezoid(g * weight, u, axis=-1)
    inv = np.linalg.inv(info)
    return inv - (1 + 1 / NU) * inv @ np.outer(m, m) @ inv


def test_nce_recovers_mean_variance_and_log_normaliser(x64):
    rng = np.random.default_rng(3)
    x_data = jnp.asarray(rng.normal(DATA_MEAN, DATA_STD, size=(NUM_DATA, 1)))
    noise = gaussian_noise(jnp.array([NOISE_MEAN]), jnp.array([[NOISE_STD**2]]))
    x_noise = noise.sample(jax.random.key(4), NU * NUM_DATA)

    def objective(theta):
        return nce_loss(lambda x: log_model_1d(theta, x), noise.log_prob, x_data, x_noise).mean()

    value_and_grad = jax.jit(jax.value_and_grad(objective))

    def fun(theta):
        value, grad = value_and_grad(jnp.asarray(theta))
        return float(value), np.asarray(grad)

    result = scipy.optimize.minimize(
        fun, np.zeros(3), jac=True, method="BFGS", options={"gtol": 1e-9}
    )
    assert np.abs(result.jac).max() < 1e-7, result.message  # a stationary point
    log_z = 0.5 * math.log(2 * math.pi * DATA_STD**2)
    truth = np.array([DATA_MEAN, math.log(DATA_STD**2), log_z])  # c* = log Z of the data density
    cov = asymptotic_covariance(truth) / NUM_DATA
    np.testing.assert_array_less(np.abs(result.x - truth), 4 * np.sqrt(np.diag(cov)))
    # The fitted model is normalised: log int exp(log p_m) = log sqrt(2 pi e^lv) - c, by
    # quadrature, is 0 within 4 standard errors (delta method, gradient (0, 1/2, -1)).
    u = np.linspace(-10.0, 10.0, 40_001)[:, None]
    density = np.exp(np.asarray(log_model_1d(jnp.asarray(result.x), jnp.asarray(u))))
    a = np.array([0.0, 0.5, -1.0])
    assert abs(np.log(np.trapezoid(density, u[:, 0]))) < 4 * np.sqrt(a @ cov @ a)
    # Not vacuous: c starts at 0, and log Z = 0.70 is about 90 standard errors from it.
    assert abs(log_z) > 25 * np.sqrt(cov[2, 2])


# --------------------------------------------------------------------------------------------
# Input checks.


def test_shape_and_argument_errors():
    noise = gaussian_noise(jnp.zeros(2), jnp.eye(2))
    x, y = jnp.zeros((4, 2)), jnp.zeros((8, 2))

    def log_model(u):
        return -jnp.sum(u**2, axis=1)

    with pytest.raises(ValueError, match=r"x_noise must have shape \(n, 2\); got shape \(8, 3\)"):
        nce_loss(log_model, noise.log_prob, x, jnp.zeros((8, 3)))
    with pytest.raises(ValueError, match="x_data must have a floating-point dtype"):
        nce_loss(log_model, noise.log_prob, jnp.zeros((4, 2), jnp.int32), y)
    with pytest.raises(ValueError, match=r"x_data must be a batch"):
        nce_loss(log_model, noise.log_prob, jnp.float32(0.0), y)
    with pytest.raises(ValueError, match=r"log_model_fn must return shape \(4,\) .* x_data"):
        nce_loss(lambda u: u, noise.log_prob, x, y)
    with pytest.raises(ValueError, match=r"log_noise_fn must return shape \(8,\) .* x_noise"):
        nce_loss(log_model, lambda u: jnp.zeros(4), x, y)
    with pytest.raises(ValueError, match=r"mean must have shape \(d,\) and cov shape \(d, d\)"):
        gaussian_noise(jnp.zeros(2), jnp.eye(3))
    with pytest.raises(ValueError, match="cov must be symmetric positive definite"):
        gaussian_noise(jnp.zeros(2), -jnp.eye(2))
