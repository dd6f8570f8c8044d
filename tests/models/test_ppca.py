"""Probabilistic PCA against scipy's Gaussian density, scikit-learn's PCA, Gaussian conditioning
written out in numpy, and the moments of its own samples."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import sklearn.decomposition

from jgen.models import ppca


def random_params(rng, d=5, q=2, noise_variance=0.3):
    return ppca.PPCAParams(
        jnp.asarray(rng.normal(size=d)),
        jnp.asarray(rng.normal(size=(d, q))),
        jnp.asarray(noise_variance),
    )


def covariance(params):
    w = np.asarray(params.weights)
    return w @ w.T + float(params.noise_variance) * np.eye(w.shape[0])


def ppca_data(rng, n=300, d=6, q=2):
    """Data from a PPCA model with well separated principal variances (about 9, 4; noise 0.25)."""
    w = np.linalg.qr(rng.normal(size=(d, q)))[0] * np.array([3.0, 2.0])
    return rng.normal(size=(n, q)) @ w.T + 0.5 * rng.normal(size=(n, d)) + rng.normal(size=d)


def test_log_prob_matches_scipy_full_covariance(x64):
    rng = np.random.default_rng(0)
    for d, q, s2 in ((5, 2, 0.3), (4, 1, 2.0), (6, 5, 1e-4)):
        params = random_params(rng, d, q, s2)
        x = rng.normal(size=(7, d)) * 2.0
        expected = scipy.stats.multivariate_normal(np.asarray(params.mean), covariance(params))
        got = jax.jit(ppca.log_prob)(params, jnp.asarray(x))
        assert got.shape == (7,)
        np.testing.assert_allclose(got, expected.logpdf(x), rtol=1e-10)


def test_fit_matches_sklearn_pca(x64):
    rng = np.random.default_rng(1)
    n, d, q = 300, 6, 2
    x = ppca_data(rng, n, d, q)
    params = ppca.fit(jnp.asarray(x), q)
    # scikit-learn normalises the covariance by n - 1, ours (the ML estimate) by n: shrinking the
    # centred data by sqrt((n - 1) / n) makes its (n - 1)-covariance our n-covariance, same mean,
    # so scikit-learn's model of y is exactly our model of x.
    mean = x.mean(axis=0)
    y = mean + np.sqrt((n - 1) / n) * (x - mean)
    pca = sklearn.decomposition.PCA(n_components=q, svd_solver="full").fit(y)
    np.testing.assert_allclose(params.mean, pca.mean_, rtol=1e-12)
    np.testing.assert_allclose(params.noise_variance, pca.noise_variance_, rtol=1e-10)
    # W W^T does not depend on the rotation R (nor on the signs of the components).
    w = np.asarray(params.weights)
    wwt = pca.components_.T @ np.diag(pca.explained_variance_ - pca.noise_variance_)
    wwt = wwt @ pca.components_
    np.testing.assert_allclose(w @ w.T, wwt, atol=1e-10)
    np.testing.assert_allclose(covariance(params), pca.get_covariance(), atol=1e-10)
    x_test = ppca_data(rng, 50, d, q)
    for points in (x, x_test):
        got = ppca.log_prob(params, jnp.asarray(points))
        np.testing.assert_allclose(got, pca.score_samples(points), rtol=1e-8)
    # Columns of W are orthogonal (R = I): W^T W is diagonal.
    wtw = w.T @ w
    np.testing.assert_allclose(wtw - np.diag(np.diag(wtw)), 0.0, atol=1e-10)


def test_fit_with_fewer_examples_than_dimensions_uses_zero_eigenvalues(x64):
    # n < D: the centred data have rank n - 1, so D - n + 1 eigenvalues of the sample covariance
    # are 0; they enter sigma^2 (scikit-learn would leave them out).
    rng = np.random.default_rng(2)
    n, d, q = 5, 8, 2
    x = rng.normal(size=(n, d))
    eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(x.T, bias=True)))[::-1]
    params = ppca.fit(jnp.asarray(x), q)
    np.testing.assert_allclose(params.noise_variance, eigenvalues[q:].mean(), rtol=1e-10)
    w = np.asarray(params.weights)
    np.testing.assert_allclose(
        np.linalg.eigvalsh(w @ w.T)[::-1][:q], eigenvalues[:q] - eigenvalues[q:].mean(), rtol=1e-10
    )


def test_fit_is_a_maximum_of_the_likelihood(x64):
    rng = np.random.default_rng(3)
    x = jnp.asarray(ppca_data(rng))
    params = ppca.fit(x, 2)

    @jax.jit
    def mean_log_lik(mean, weights, log_noise_variance):
        return jnp.mean(
            ppca.log_prob(ppca.PPCAParams(mean, weights, jnp.exp(log_noise_variance)), x)
        )

    args = (params.mean, params.weights, jnp.log(params.noise_variance))
    best = mean_log_lik(*args)
    # A stationary point: the gradient vanishes (up to rounding; a wrong sigma^2 or W scale gives
    # gradients of order 0.1 here).
    for g in jax.jit(jax.grad(mean_log_lik, argnums=(0, 1, 2)))(*args):
        np.testing.assert_allclose(g, 0.0, atol=1e-10)
    # ... and a maximum: every random perturbation of (W, sigma^2) lowers the likelihood.
    for i in range(20):
        scale = 0.05 if i < 10 else 0.5
        dw = scale * rng.normal(size=params.weights.shape)
        ds = scale * rng.normal()
        assert mean_log_lik(args[0], args[1] + dw, args[2] + ds) < best - 1e-6


def test_posterior_matches_gaussian_conditioning(x64):
    rng = np.random.default_rng(4)
    params = random_params(rng, d=5, q=3, noise_variance=0.4)
    x = rng.normal(size=(6, 5))
    # Joint of (z, x): [[I, W^T], [W, C]]; condition z on x with the D x D covariance.
    w, mu = np.asarray(params.weights), np.asarray(params.mean)
    c = covariance(params)
    expected_mean = np.linalg.solve(c, (x - mu).T).T @ w
    expected_cov = np.eye(3) - w.T @ np.linalg.solve(c, w)
    mean, cov = ppca.posterior(params, jnp.asarray(x))
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-10)
    np.testing.assert_allclose(cov, expected_cov, rtol=1e-10)
    np.testing.assert_allclose(
        ppca.reconstruct(params, jnp.asarray(x)), expected_mean @ w.T + mu, rtol=1e-10
    )


def test_reconstruction_tends_to_the_projection_as_noise_vanishes(x64):
    rng = np.random.default_rng(5)
    params = random_params(rng, d=5, q=2, noise_variance=1e-9)
    x = rng.normal(size=(4, 5))
    w, mu = np.asarray(params.weights), np.asarray(params.mean)
    projection = (x - mu) @ w @ np.linalg.solve(w.T @ w, w.T) + mu
    np.testing.assert_allclose(ppca.reconstruct(params, jnp.asarray(x)), projection, atol=1e-8)


def test_sample_moments(x64):
    rng = np.random.default_rng(6)
    params = random_params(rng, d=4, q=2, noise_variance=0.5)
    n = 20000
    x = np.asarray(ppca.sample(params, jax.random.key(0), n))
    assert x.shape == (n, 4)
    c = covariance(params)
    # Mean: standard error sqrt(C_dd / n).
    se_mean = np.sqrt(np.diag(c) / n)
    assert np.all(np.abs(x.mean(0) - np.asarray(params.mean)) < 4 * se_mean)
    # Covariance about the known mean: each entry is a mean of n products of centred Gaussians,
    # whose variance is C_ii C_jj + C_ij^2 (Isserlis).
    centred = x - np.asarray(params.mean)
    sample_cov = centred.T @ centred / n
    se_cov = np.sqrt((np.outer(np.diag(c), np.diag(c)) + c**2) / n)
    assert np.all(np.abs(sample_cov - c) < 4 * se_cov), np.abs(sample_cov - c) / se_cov


def test_jit_and_float32():
    rng = np.random.default_rng(7)
    x = jnp.asarray(ppca_data(rng), jnp.float32)
    params = jax.jit(ppca.fit, static_argnums=1)(x, 2)
    assert params.weights.dtype == jnp.float32
    got = jax.jit(ppca.log_prob)(params, x)
    with jax.enable_x64(True):
        expected = scipy.stats.multivariate_normal(
            np.asarray(params.mean, np.float64), covariance(params)
        ).logpdf(np.asarray(x, np.float64))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_bad_arguments():
    params = random_params(np.random.default_rng(8), d=5, q=2)
    x = jnp.zeros((4, 5))
    with pytest.raises(ValueError, match=r"latent_dim must be < D=5 and < n=4.*got 5"):
        ppca.fit(x, 5)
    with pytest.raises(ValueError, match="latent_dim must be an integer >= 1; got 0"):
        ppca.fit(x, 0)
    with pytest.raises(ValueError, match=r"x must have shape \(n, D\); got shape \(5,\)"):
        ppca.fit(jnp.zeros(5), 1)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 5\); got shape \(4, 3\)"):
        ppca.log_prob(params, jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"params.weights must have shape \(D, q\) with D=5"):
        ppca.posterior(params._replace(weights=jnp.zeros((4, 2))), x)
    with pytest.raises(ValueError, match=r"params.noise_variance must be finite and > 0"):
        ppca.log_prob(params._replace(noise_variance=jnp.asarray(0.0)), x)
    with pytest.raises(ValueError, match="n must be an integer >= 1; got 0"):
        ppca.sample(params, jax.random.key(0), 0)
