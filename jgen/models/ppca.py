"""Probabilistic PCA: the linear-Gaussian latent variable model with a closed-form maximum
likelihood (Tipping & Bishop 1999, "Probabilistic principal component analysis", JRSS B 61).

The model is ``z ~ N(0, I_q)``, ``x | z ~ N(W z + μ, σ² I_D)``, so the marginal is
``x ~ N(μ, C)`` with ``C = W Wᵀ + σ² I_D`` and the posterior is
``z | x ~ N(M⁻¹ Wᵀ (x - μ), σ² M⁻¹)`` with the ``q x q`` matrix ``M = Wᵀ W + σ² I_q``.
Every density and posterior here goes through ``M`` (Woodbury identity and the matrix
determinant lemma), never through a ``D x D`` inverse.

It is the model that VAEs are explained against: a VAE with a linear decoder and a Gaussian
likelihood of fixed variance has PPCA's marginal, and the ELBO with the exact posterior above is
tight, so log p(x) is known in closed form for the VAE tests.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve

from jgen.checks import check_batch, check_int, check_positive
from jgen.types import Array, PRNGKey


class PPCAParams(NamedTuple):
    """Parameters of a PPCA model with ``D`` observed and ``q`` latent dimensions (a pytree).

    Attributes:
      mean: ``(D,)`` the mean ``μ`` of ``x``.
      weights: ``(D, q)`` the loading matrix ``W``.
      noise_variance: ``()`` the isotropic noise variance ``σ² > 0``.
    """

    mean: Array
    weights: Array
    noise_variance: Array


def _check_params(params: PPCAParams) -> tuple[int, int]:
    """Checks the shapes of ``params`` and ``σ² > 0``; returns ``(D, q)``."""
    mean_shape = tuple(np.shape(params.mean))
    if len(mean_shape) != 1:
        raise ValueError(f"params.mean must have shape (D,); got shape {mean_shape}")
    d = mean_shape[0]
    weights_shape = tuple(np.shape(params.weights))
    if len(weights_shape) != 2 or weights_shape[0] != d:
        raise ValueError(
            f"params.weights must have shape (D, q) with D={d} (from params.mean); "
            f"got shape {weights_shape}"
        )
    noise_shape = tuple(np.shape(params.noise_variance))
    if noise_shape != ():
        raise ValueError(f"params.noise_variance must be a scalar; got shape {noise_shape}")
    check_positive("params.noise_variance", params.noise_variance)
    return d, weights_shape[1]


def _posterior_mean_and_chol(params: PPCAParams, x: Array) -> tuple[Array, Array]:
    """``(M⁻¹ Wᵀ (x_i - μ)) (n, q)`` and the lower Cholesky factor of ``M = Wᵀ W + σ² I``."""
    d, q = _check_params(params)
    check_batch("x", x, (d,))
    w = params.weights
    m = w.T @ w + params.noise_variance * jnp.eye(q, dtype=w.dtype)
    chol = jnp.linalg.cholesky(m)
    mean = cho_solve((chol, True), ((x - params.mean) @ w).T).T
    return mean, chol


def fit(x: Array, latent_dim: int) -> PPCAParams:
    """The closed-form maximum-likelihood PPCA (Tipping & Bishop 1999, eqs. 7-8).

    With ``S = (1/n) Σ_i (x_i - x̄)(x_i - x̄)ᵀ`` the sample covariance, ``λ_1 >= ... >= λ_D`` its
    eigenvalues and ``U_q`` the eigenvectors of the ``q`` largest::

        μ = x̄,   σ² = (1 / (D - q)) Σ_{j>q} λ_j,   W = U_q (Λ_q - σ² I)^{1/2}

    (the rotation ``R`` of the general solution ``W R`` is the identity; the likelihood does not
    depend on it). The eigen-decomposition is taken as the SVD of the centred data,
    ``x - x̄ = U Σ Vᵀ`` with ``λ_j = Σ_jj² / n``: forming ``S`` would square the condition number
    and lose the small eigenvalues that ``σ²`` is made of. When ``n < D`` the ``D - n`` missing
    eigenvalues are zero and enter ``σ²`` as such.

    Differences from ``sklearn.decomposition.PCA`` (whose ``noise_variance_`` and
    ``score_samples`` are the same model): scikit-learn normalises ``S`` by ``n - 1`` and, when
    ``n < D``, averages over ``min(n, D) - q`` eigenvalues only.

    Args:
      x: ``(n, D)`` floating-point data.
      latent_dim: ``q``, an integer with ``1 <= q < D`` and ``q < n``.

    Returns:
      :class:`PPCAParams` in the dtype of ``x``.

    Raises:
      ValueError: when ``x`` is not a floating-point ``(n, D)`` batch or ``latent_dim`` is out of
        range.
    """
    shape = tuple(np.shape(x))
    if len(shape) != 2:
        raise ValueError(f"x must have shape (n, D); got shape {shape}")
    n, d = shape
    check_batch("x", x, (d,))
    check_int("latent_dim", latent_dim)
    if latent_dim >= d or latent_dim >= n:
        raise ValueError(
            f"latent_dim must be < D={d} and < n={n} so that some variance is left for the "
            f"noise; got {latent_dim}"
        )
    x = jnp.asarray(x)
    mean = jnp.mean(x, axis=0)
    _, singular, vt = jnp.linalg.svd(x - mean, full_matrices=False)
    eigenvalues = singular**2 / n  # descending, min(n, D) of them
    noise_variance = jnp.sum(eigenvalues[latent_dim:]) / (d - latent_dim)
    # The top eigenvalues are >= their mean of the rest; the clip only absorbs rounding.
    scale = jnp.sqrt(jnp.maximum(eigenvalues[:latent_dim] - noise_variance, 0.0))
    return PPCAParams(mean, vt[:latent_dim].T * scale, noise_variance)


def log_prob(params: PPCAParams, x: Array) -> Array:
    """The marginal log-density ``log N(x; μ, W Wᵀ + σ² I)`` through the ``q x q`` matrix ``M``.

    With ``r = x - μ`` and ``m = M⁻¹ Wᵀ r`` (the posterior mean)::

        log p(x) = -(1/2) [ |r - W m|² / σ² + |m|² + (D - q) log σ² + log|M| + D log 2π ].

    ``log|C| = (D - q) log σ² + log|M|`` is the matrix determinant lemma, and
    ``rᵀ C⁻¹ r = min_z |r - W z|² / σ² + |z|²``, attained at ``z = m``, is the Woodbury identity
    written as a sum of two non-negative terms, which, unlike ``(|r|² - rᵀ W m) / σ²``, does not
    cancel when ``σ²`` is small (Tipping & Bishop 1999, eq. 4 and Appendix).

    Args:
      params: :class:`PPCAParams`.
      x: ``(n, D)`` floating-point batch.

    Returns:
      ``(n,)`` log-densities.

    Raises:
      ValueError: when shapes disagree or ``σ² <= 0``.
    """
    m, chol = _posterior_mean_and_chol(params, x)
    d, q = params.weights.shape
    residual = x - params.mean - m @ params.weights.T
    maha = jnp.sum(residual**2, axis=1) / params.noise_variance + jnp.sum(m**2, axis=1)
    log_det = (d - q) * jnp.log(params.noise_variance) + 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    return -0.5 * (maha + log_det + d * math.log(2 * math.pi))


def posterior(params: PPCAParams, x: Array) -> tuple[Array, Array]:
    """The exact posterior ``p(z | x) = N(M⁻¹ Wᵀ (x - μ), σ² M⁻¹)`` (Tipping & Bishop 1999,
    eq. 6), ``M = Wᵀ W + σ² I_q``.

    Args:
      params: :class:`PPCAParams`.
      x: ``(n, D)`` floating-point batch.

    Returns:
      ``(mean (n, q), covariance (q, q))``; the covariance is the same for every ``x``.

    Raises:
      ValueError: when shapes disagree or ``σ² <= 0``.
    """
    mean, chol = _posterior_mean_and_chol(params, x)
    eye = jnp.eye(chol.shape[0], dtype=chol.dtype)
    return mean, params.noise_variance * cho_solve((chol, True), eye)


def sample(params: PPCAParams, key: PRNGKey, n: int) -> Array:
    """Ancestral samples ``x = μ + W z + σ ε`` with ``z ~ N(0, I_q)``, ``ε ~ N(0, I_D)``.

    Args:
      params: :class:`PPCAParams`.
      key: PRNG key, split here into one for ``z`` and one for ``ε``.
      n: number of samples (a Python int ``>= 1``).

    Returns:
      ``(n, D)`` samples in the dtype of ``params.weights``.

    Raises:
      ValueError: when shapes disagree, ``σ² <= 0`` or ``n < 1``.
    """
    d, q = _check_params(params)
    check_int("n", n)
    key_z, key_eps = jax.random.split(key)
    w = params.weights
    z = jax.random.normal(key_z, (n, q), w.dtype)
    eps = jax.random.normal(key_eps, (n, d), w.dtype)
    return params.mean + z @ w.T + jnp.sqrt(params.noise_variance) * eps


def reconstruct(params: PPCAParams, x: Array) -> Array:
    """The posterior mean mapped back to data space, ``x̂ = W E[z | x] + μ = W M⁻¹ Wᵀ (x - μ) + μ``.

    It is shrunk towards ``μ`` relative to the orthogonal projection onto the principal subspace
    (the projection is ``W (Wᵀ W)⁻¹ M E[z | x] + μ``) and tends to it as ``σ² -> 0``
    (Tipping & Bishop 1999, Sec. 3.2).

    Args:
      params: :class:`PPCAParams`.
      x: ``(n, D)`` floating-point batch.

    Returns:
      ``(n, D)`` reconstructions.

    Raises:
      ValueError: when shapes disagree or ``σ² <= 0``.
    """
    mean, _ = _posterior_mean_and_chol(params, x)
    return mean @ params.weights.T + params.mean
