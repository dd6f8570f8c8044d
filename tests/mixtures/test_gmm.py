"""Gaussian mixtures by EM, checked against scikit-learn, scipy and quadrature."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from jgen.data import toy2d
from jgen.mixtures import gmm

REG = 1e-6


def _blobs(seed=0, n=300):
    """Three overlapping 3-D Gaussian clusters with correlated covariances."""
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0, 0.0], [2.5, 1.0, -1.0], [-1.0, 3.0, 1.5]])
    counts = [n // 2, n // 3, n - n // 2 - n // 3]
    parts = []
    for mean, count in zip(means, counts, strict=True):
        a = rng.normal(size=(3, 3))
        parts.append(rng.multivariate_normal(mean, 0.3 * a @ a.T + 0.2 * np.eye(3), size=count))
    return rng.permutation(np.concatenate(parts))


def _dense_covariances(params, covariance_type):
    """``(K, D, D)`` covariances of any parametrisation."""
    cov = np.asarray(params.covariances)
    d = params.means.shape[1]
    if covariance_type == "full":
        return cov
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in cov])
    return cov[:, None, None] * np.eye(d)


def _sklearn_from(init, covariance_type, **kwargs):
    cov = np.asarray(init.covariances)
    precisions = np.linalg.inv(cov) if covariance_type == "full" else 1.0 / cov
    return GaussianMixture(
        n_components=init.means.shape[0],
        covariance_type=covariance_type,
        reg_covar=REG,
        weights_init=np.exp(np.asarray(init.log_weights)),
        means_init=np.asarray(init.means),
        precisions_init=precisions,
        init_params="random_from_data",  # overridden by the *_init arrays; cheaper than k-means
        random_state=0,
        **kwargs,
    )


@pytest.mark.parametrize("covariance_type", gmm.COVARIANCE_TYPES)
def test_em_matches_sklearn_from_same_initialisation(x64, covariance_type):
    x = jnp.asarray(_blobs())
    init = gmm.initialize(jax.random.key(1), x, 3, covariance_type, REG)
    n_steps = 15
    params, history = gmm.fit(
        None, x, 3, covariance_type, max_iter=n_steps, tol=0.0, reg_covar=REG, init_params=init
    )
    ref = _sklearn_from(init, covariance_type, max_iter=n_steps, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref.fit(np.asarray(x))

    assert int(history.n_iter) == n_steps and not bool(history.converged)
    np.testing.assert_allclose(history.log_likelihood, ref.lower_bounds_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(
        gmm.log_prob(params, x, covariance_type), ref.score_samples(np.asarray(x)), atol=1e-4
    )
    assert abs(float(jnp.mean(gmm.log_prob(params, x, covariance_type))) - ref.score(x)) < 1e-4
    np.testing.assert_allclose(params.means, ref.means_, atol=1e-6)
    np.testing.assert_allclose(params.covariances, ref.covariances_, atol=1e-6)
    np.testing.assert_allclose(np.exp(params.log_weights), ref.weights_, atol=1e-8)


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_fit_stops_where_sklearn_stops(x64, covariance_type):
    x = jnp.asarray(_blobs(seed=3))
    init = gmm.initialize(jax.random.key(4), x, 3, covariance_type, REG)
    _, history = gmm.fit(None, x, 3, covariance_type, tol=1e-3, init_params=init)
    ref = _sklearn_from(init, covariance_type, max_iter=100, tol=1e-3).fit(np.asarray(x))
    n = int(history.n_iter)
    assert bool(history.converged) and ref.converged_
    assert n == ref.n_iter_ < 100
    np.testing.assert_allclose(history.log_likelihood[:n], ref.lower_bounds_, atol=1e-8)
    assert np.all(np.isnan(np.asarray(history.log_likelihood[n:])))


@pytest.mark.parametrize("covariance_type", gmm.COVARIANCE_TYPES)
def test_em_log_likelihood_never_decreases(x64, covariance_type):
    x = jnp.asarray(toy2d.sample("8gaussians", jax.random.key(0), 800), jnp.float64)
    _, history = gmm.fit(jax.random.key(2), x, 8, covariance_type, max_iter=60, tol=1e-10)
    ll = np.asarray(history.log_likelihood[: int(history.n_iter)])
    assert len(ll) >= 10
    # EM is monotone; reg_covar perturbs the M-step optimum only to second order (~reg²).
    assert np.all(np.diff(ll) >= -1e-9), np.diff(ll).min()
    assert ll[-1] > ll[0] + 0.01


def _toy_params(covariance_type):
    means = jnp.array([[-2.0, 0.0], [1.5, 1.0], [0.5, -2.0]])
    covariances = {
        "full": jnp.array(
            [[[1.0, 0.6], [0.6, 0.8]], [[0.5, -0.2], [-0.2, 0.4]], [[0.3, 0], [0, 1]]]
        ),
        "diag": jnp.array([[1.0, 0.5], [0.3, 0.7], [0.6, 0.2]]),
        "spherical": jnp.array([0.5, 1.2, 0.3]),
    }[covariance_type]
    return gmm.GMMParams(jnp.log(jnp.array([0.5, 0.3, 0.2])), means, covariances)


@pytest.mark.parametrize("covariance_type", gmm.COVARIANCE_TYPES)
def test_log_prob_matches_scipy_and_integrates_to_one(x64, covariance_type):
    params = _toy_params(covariance_type)
    dense = _dense_covariances(params, covariance_type)
    weights = np.exp(np.asarray(params.log_weights))

    pts = np.random.default_rng(0).normal(scale=2.0, size=(50, 2))
    expected = np.log(
        sum(
            w * multivariate_normal(m, c).pdf(pts)
            for w, m, c in zip(weights, np.asarray(params.means), dense, strict=True)
        )
    )
    np.testing.assert_allclose(gmm.log_prob(params, jnp.asarray(pts), covariance_type), expected,
                               rtol=1e-10, atol=1e-10)  # fmt: skip

    grid = np.linspace(-10.0, 10.0, 401)
    xx, yy = np.meshgrid(grid, grid)
    flat = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], axis=1))
    mass = jnp.sum(jnp.exp(gmm.log_prob(params, flat, covariance_type))) * (grid[1] - grid[0]) ** 2
    assert abs(float(mass) - 1.0) < 1e-3

    resp = gmm.responsibilities(params, jnp.asarray(pts), covariance_type)
    np.testing.assert_allclose(jnp.sum(resp, axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("covariance_type", gmm.COVARIANCE_TYPES)
def test_samples_follow_the_mixture(x64, covariance_type):
    params = _toy_params(covariance_type)
    # Components 20 apart with unit-scale covariances: nearest-mean labels are exact w.p. ~1.
    params = params._replace(means=10.0 * params.means)
    n = 20_000
    x = np.asarray(gmm.sample(params, jax.random.key(5), n, covariance_type))
    assert x.shape == (n, 2)
    labels = np.argmin(((x[:, None] - np.asarray(params.means)[None]) ** 2).sum(-1), axis=1)
    dense = _dense_covariances(params, covariance_type)
    for c, w in enumerate(np.exp(np.asarray(params.log_weights))):
        # Component frequency: binomial standard error sqrt(w (1 - w) / n), 4 of them.
        freq = np.mean(labels == c)
        assert abs(freq - w) < 4 * np.sqrt(w * (1 - w) / n)
        xc = x[labels == c]
        m = len(xc)
        cov = dense[c]
        # Mean: standard error sqrt(Σ_dd / m); covariance entry: sqrt((Σ_ii Σ_jj + Σ_ij²) / m).
        assert np.all(np.abs(xc.mean(0) - params.means[c]) < 4 * np.sqrt(np.diag(cov) / m))
        se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / m)
        assert np.all(np.abs(np.cov(xc.T) - cov) < 4 * se_cov)


def test_kmeans_plus_plus_returns_distinct_rows():
    x = jax.random.normal(jax.random.key(0), (40, 3))
    centres = np.asarray(gmm.kmeans_plus_plus(jax.random.key(1), x, 12))
    matches = np.all(centres[:, None, :] == np.asarray(x)[None, :, :], axis=2)
    rows = np.argmax(matches, axis=1)
    assert np.all(matches.any(axis=1))
    assert len(set(rows.tolist())) == 12
    assert np.asarray(gmm.kmeans_plus_plus(jax.random.key(1), x, 40)).shape == (40, 3)


def test_numpy_input_gives_the_jax_result():
    x = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    from_numpy, _ = gmm.fit(jax.random.key(0), x, 3, max_iter=5)
    from_jax, _ = gmm.fit(jax.random.key(0), jnp.asarray(x), 3, max_iter=5)
    jax.tree.map(np.testing.assert_array_equal, from_numpy, from_jax)


def test_kmeans_plus_plus_picks_one_centre_per_separated_cluster():
    # Clusters 100 apart with spread 0.1: after j clusters are hit, the chance that the next
    # draw repeats one is ~ (0.1 / 100)² per point, so 20 seeds all succeed w.p. ≈ 1.
    truth = 100.0 * jnp.array([[0, 0], [1, 0], [0, 1], [1, 1], [2, 2]], jnp.float32)
    x = jnp.repeat(truth, 30, axis=0) + 0.1 * jax.random.normal(jax.random.key(0), (150, 2))
    keys = jax.random.split(jax.random.key(3), 20)
    centres = jax.vmap(lambda key: gmm.kmeans_plus_plus(key, x, 5))(keys)
    nearest = jnp.argmin(jnp.sum((centres[:, :, None] - truth[None, None]) ** 2, -1), -1)
    assert np.all(np.sort(np.asarray(nearest), axis=1) == np.arange(5))


def test_bad_inputs_name_the_argument():
    x = jnp.zeros((10, 2))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        gmm.fit(key, x, 0)
    with pytest.raises(ValueError, match="k must be <= the number of examples n=10; got k=11"):
        gmm.fit(key, x, 11)
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        gmm.fit(key, x, 2, "tied")
    with pytest.raises(ValueError, match=r"x must have shape \(n, D\); got shape \(10,\)"):
        gmm.fit(key, jnp.zeros(10), 2)
    with pytest.raises(ValueError, match="x must have a floating-point dtype"):
        gmm.kmeans_plus_plus(key, jnp.zeros((10, 2), jnp.int32), 2)
    with pytest.raises(ValueError, match="max_iter must be an integer >= 1"):
        gmm.fit(key, x, 2, max_iter=0)
    with pytest.raises(ValueError, match="reg_covar must be finite and >= 0"):
        gmm.fit(key, x, 2, reg_covar=-1.0)
    with pytest.raises(ValueError, match="tol must be finite and >= 0"):
        gmm.fit(key, x, 2, tol=float("nan"))
    params = _toy_params("diag")
    with pytest.raises(ValueError, match=r"init_params.covariances must have shape \(3, 2, 2\)"):
        gmm.fit(key, x, 3, "full", init_params=params)
    with pytest.raises(ValueError, match=r"init_params.means must have shape \(k, D\)"):
        gmm.fit(key, x, 2, "diag", init_params=params)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\); got shape \(4, 3\)"):
        gmm.log_prob(params, jnp.zeros((4, 3)), "diag")
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        gmm.sample(params, key, 0, "diag")
