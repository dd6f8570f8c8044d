"""Importance-sampled log-likelihood on probabilistic PCA, whose marginal and posterior are known:
exact with the true posterior as proposal, the ELBO at K = 1, the IWAE bound rising with K."""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jgen.gaussian import standard_normal_log_prob
from jgen.metrics.importance import importance_log_likelihood, log_mean_exp


class PPCA(NamedTuple):
    """Probabilistic PCA (Tipping & Bishop 1999): ``z ~ N(0, I_d)``, ``x | z ~ N(W z + b, s^2 I)``.

    Its marginal is ``N(b, W W^T + s^2 I)`` and its posterior ``N(M^-1 W^T (x - b) / s^2,
    M^-1)`` with ``M = I + W^T W / s^2`` (Bishop, PRML 12.2.1).
    """

    w: np.ndarray  # (D, d)
    b: np.ndarray  # (D,)
    s: float

    @staticmethod
    def make(seed=0, data_dim=5, latent_dim=2, s=0.5):
        rng = np.random.default_rng(seed)
        return PPCA(rng.normal(size=(data_dim, latent_dim)), rng.normal(size=data_dim), s)

    def simulate(self, seed, n):
        """``n`` draws ``(z, x)`` from the joint: ``z`` is an exact posterior sample for ``x``."""
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(n, self.w.shape[1]))
        return z, z @ self.w.T + self.b + self.s * rng.normal(size=(n, self.w.shape[0]))

    def log_marginal(self, x):
        """``log p(x)`` by scipy, the ground truth."""
        cov = self.w @ self.w.T + self.s**2 * np.eye(len(self.b))
        return scipy.stats.multivariate_normal(self.b, cov).logpdf(x)

    def posterior(self, x):
        """Posterior means ``(n, d)`` and the shared covariance ``(d, d)``."""
        cov = np.linalg.inv(np.eye(self.w.shape[1]) + self.w.T @ self.w / self.s**2)
        return (x - self.b) @ self.w @ cov / self.s**2, cov

    def log_prior(self, z):
        return standard_normal_log_prob(z, 1)

    def log_likelihood(self, z, x):
        """``log N(x; W z + b, s^2 I)`` for any matching leading shape of ``z`` and ``x``."""
        mean = z @ jnp.asarray(self.w).T + jnp.asarray(self.b)
        return standard_normal_log_prob((x - mean) / self.s, 1) - len(self.b) * math.log(self.s)

    def log_joint(self, x, z):
        return self.log_prior(z) + self.log_likelihood(z, x)


def gaussian_proposal(mean, cov):
    """``q(z | x_i) = N(mean_i, cov)``: ``sample_and_log_q(key, x, k) -> ((k, n, d), (k, n))``."""
    mean, chol = jnp.asarray(mean), jnp.asarray(np.linalg.cholesky(cov))
    log_det = float(np.linalg.slogdet(cov)[1])

    def sample_and_log_q(key, x, k):
        eps = jax.random.normal(key, (k, *mean.shape), mean.dtype)
        return mean + eps @ chol.T, standard_normal_log_prob(eps, 1) - 0.5 * log_det

    return sample_and_log_q


MODEL = PPCA.make()
SCALE = 1.5  # the broad proposal's standard deviations are SCALE times the posterior's


def test_log_mean_exp_matches_numpy(x64):
    log_w = np.random.default_rng(0).normal(size=(50, 3))
    w = np.exp(log_w)
    est = log_mean_exp(jnp.asarray(log_w))
    np.testing.assert_allclose(est.log_mean, np.log(w.mean(0)), rtol=1e-12)
    se = w.std(0, ddof=1) / (np.sqrt(50) * w.mean(0))
    np.testing.assert_allclose(est.standard_error, se, rtol=1e-10)
    # Weights of e^1000 overflow in numpy, not in log space: the same numbers, shifted.
    shifted = log_mean_exp(jnp.asarray(log_w.T + 1000.0), axis=1)
    np.testing.assert_allclose(shifted.log_mean, np.log(w.mean(0)) + 1000.0, rtol=1e-12)
    np.testing.assert_allclose(shifted.standard_error, se, rtol=1e-9)


def test_exact_with_the_true_posterior(x64):
    """With q = p(z | x) every weight equals p(x): exact for any K, zero standard error."""
    _, x = MODEL.simulate(1, 6)
    mean, cov = MODEL.posterior(x)
    q = gaussian_proposal(mean, cov)

    @jax.jit
    def estimates(key, x):  # one compilation for both K
        return [
            importance_log_likelihood(
                jax.random.fold_in(key, k), x, q, MODEL.log_joint, num_samples=k, chunk_size=c
            )
            for k, c in ((1, 1), (300, 100))
        ]

    one, many = estimates(jax.random.key(0), jnp.asarray(x))
    for est in (one, many):
        np.testing.assert_allclose(est.log_mean, MODEL.log_marginal(x), atol=1e-6, rtol=0)
    np.testing.assert_array_less(many.standard_error, 1e-6)
    assert np.isnan(one.standard_error).all()  # undefined for a single weight


def test_broad_proposal_at_5000_samples(x64):
    """For q_i = N(mu_i, a^2 C) and posterior N(mu_i, C) in d dims the weights' relative variance
    is (a^2 / sqrt(2 a^2 - 1))^d - 1 (a Gaussian integral), so the delta-method standard error at
    K samples is sqrt(that / K): 0.0095 nats for a = 1.5, d = 2, K = 5000."""
    _, x = MODEL.simulate(2, 8)
    mean, cov = MODEL.posterior(x)
    q = gaussian_proposal(mean, SCALE**2 * cov)
    est = jax.jit(
        lambda key, x: importance_log_likelihood(key, x, q, MODEL.log_joint, num_samples=5000)
    )(jax.random.key(0), jnp.asarray(x))
    rel_var = (SCALE**2 / math.sqrt(2 * SCALE**2 - 1)) ** 2 - 1
    se = math.sqrt(rel_var / 5000)
    err = np.asarray(est.log_mean) - MODEL.log_marginal(x)
    # 4 standard errors; the estimator's O(1/K) bias (rel_var / 2K = 4.5e-5) is negligible.
    np.testing.assert_array_less(np.abs(err), 4 * se)
    # The reported standard error is an estimate from the same 5000 weights (measured: within 3%).
    np.testing.assert_allclose(est.standard_error, se, rtol=0.15)


def test_elbo_at_one_sample_and_the_bound_rises_with_k(x64):
    """Averaged over M independent estimates, K = 1 gives the ELBO log p(x) - KL(q || p(z | x)),
    with KL = (d / 2) (a^2 - 1 - log a^2) = 0.439 nats here, and the IWAE bound L_K increases
    with K toward log p(x) (Burda et al. 2016, Theorem 1)."""
    m = 2000
    _, x = MODEL.simulate(3, 1)
    mean, cov = MODEL.posterior(x)
    x_rep, mean_rep = np.repeat(x, m, 0), np.repeat(mean, m, 0)
    q = gaussian_proposal(mean_rep, SCALE**2 * cov)
    truth = float(np.atleast_1d(MODEL.log_marginal(x))[0])

    ks = (1, 4, 64)

    @jax.jit
    def estimates(key, x):  # one compilation for the three K
        return [
            importance_log_likelihood(
                jax.random.fold_in(key, k), x, q, MODEL.log_joint, num_samples=k, chunk_size=k
            ).log_mean
            for k in ks
        ]

    means, ses = [], []
    for e in map(np.asarray, estimates(jax.random.key(0), jnp.asarray(x_rep))):
        means.append(e.mean())
        ses.append(e.std(ddof=1) / math.sqrt(m))  # standard error of the mean over M estimates
    kl = SCALE**2 - 1 - math.log(SCALE**2)  # (d / 2) (...) with d = 2
    assert abs(means[0] - (truth - kl)) < 4 * ses[0], (means[0], truth - kl, ses[0])
    assert truth - means[0] > 10 * ses[0]  # the ELBO is well below log p(x)
    for k_lo, k_hi in ((0, 1), (1, 2)):
        diff_se = math.hypot(ses[k_lo], ses[k_hi])
        assert means[k_hi] - means[k_lo] > 3 * diff_se, (means, ses)
    assert means[2] < truth + 4 * ses[2]


def test_memory_does_not_grow_with_the_number_of_samples():
    _, x = MODEL.simulate(4, 8)
    mean, cov = MODEL.posterior(x)
    q = gaussian_proposal(mean.astype(np.float32), cov)
    x = jnp.asarray(x, jnp.float32)

    def temp_bytes(k):
        fn = jax.jit(
            lambda key, x: (
                importance_log_likelihood(
                    key, x, q, MODEL.log_joint, num_samples=k, chunk_size=100
                ).log_mean
            )
        )
        return fn.lower(jax.random.key(0), x).compile().memory_analysis().temp_size_in_bytes

    # 2 chunks, not 1: XLA removes a loop of one trip, which changes the layout of its buffers.
    assert temp_bytes(100_000) <= temp_bytes(200)


def test_bad_arguments():
    x = jnp.zeros((3, 5))
    q = gaussian_proposal(np.zeros((3, 2)), np.eye(2))
    key = jax.random.key(0)
    with pytest.raises(
        ValueError, match="num_samples must be a multiple of chunk_size=100; got 150"
    ):
        importance_log_likelihood(key, x, q, MODEL.log_joint, num_samples=150)
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1; got 0"):
        importance_log_likelihood(key, x, q, MODEL.log_joint, chunk_size=0)
    with pytest.raises(ValueError, match=r"x must be a batch of shape \(n, \*event\); got shape"):
        importance_log_likelihood(key, jnp.zeros(5), q, MODEL.log_joint)
    with pytest.raises(
        ValueError, match=r"log_joint\(x, z\) must return shape \(10, 3\); got \(10,"
    ):
        importance_log_likelihood(
            key, x, q, lambda x, z: jnp.zeros(z.shape[:1]), num_samples=10, chunk_size=10
        )
    with pytest.raises(ValueError, match=r"must return z of shape \(10, 3, \*latent\)"):
        importance_log_likelihood(
            key, x, lambda k, x, n: (jnp.zeros((n, 2)), jnp.zeros((n, 3))), MODEL.log_joint,
            num_samples=10, chunk_size=10,
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"log_weights must have a non-empty axis 0; got shape"):
        log_mean_exp(jnp.zeros((0, 3)))
