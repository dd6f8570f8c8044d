"""Isotropic Gaussian mixtures with closed-form noise-perturbed scores, as test ground truth.

Convolving ``p(x) = sum_k w_k N(x; mu_k, s_k^2 I)`` with ``N(0, sigma^2 I)`` gives the mixture
with the same weights and means and variances ``s_k^2 + sigma^2``, so its score is::

    grad_x log p_sigma(x) = sum_k r_k(x) (mu_k - x) / (s_k^2 + sigma^2),

with responsibilities ``r_k(x) ∝ w_k N(x; mu_k, (s_k^2 + sigma^2) I)``.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class GaussianMixture(NamedTuple):
    """``weights (K,)``, ``means (K, d)``, ``stds (K,)`` of an isotropic Gaussian mixture."""

    weights: np.ndarray
    means: np.ndarray
    stds: np.ndarray

    def sample(self, key, n):
        """``n`` exact samples ``(n, d)``."""
        key_k, key_z = jax.random.split(key)
        k = jax.random.choice(key_k, len(self.weights), (n,), p=jnp.asarray(self.weights))
        z = jax.random.normal(key_z, (n, self.means.shape[1]))
        return jnp.asarray(self.means)[k] + jnp.asarray(self.stds)[k, None] * z

    def _log_joint(self, x, sigma):
        """``log w_k + log N(x; mu_k, v_k I)`` for every component, ``(n, K)``, and ``v (n, K)``."""
        sigma = jnp.reshape(jnp.asarray(sigma, x.dtype), (-1, 1))
        var = jnp.asarray(self.stds, x.dtype) ** 2 + sigma**2
        sq = jnp.sum((x[:, None, :] - jnp.asarray(self.means, x.dtype)) ** 2, -1)
        d = x.shape[1]
        log_joint = (
            jnp.log(jnp.asarray(self.weights, x.dtype))
            - 0.5 * sq / var
            - 0.5 * d * jnp.log(2 * jnp.pi * var)
        )
        return log_joint, var

    def log_prob(self, x, sigma=0.0):
        """``log p_sigma(x)`` ``(n,)``; ``sigma`` a scalar or ``(n,)``."""
        return jax.nn.logsumexp(self._log_joint(x, sigma)[0], axis=-1)

    def responsibilities(self, x, sigma=0.0):
        """``r_k(x) = p(component k | x)`` under ``p_sigma``, ``(n, K)``."""
        return jax.nn.softmax(self._log_joint(x, sigma)[0], axis=-1)

    def score(self, x, sigma):
        """``grad_x log p_sigma(x)`` ``(n, d)``, in closed form; ``sigma`` a scalar or ``(n,)``."""
        log_joint, var = self._log_joint(x, sigma)
        r = jax.nn.softmax(log_joint, axis=-1)
        mu = jnp.asarray(self.means, x.dtype)
        return jnp.einsum("nk,nkd->nd", r / var, mu[None] - x[:, None, :])
