"""Gaussian mixture models fitted by expectation-maximisation, as pure JAX functions.

The density is ``p(x) = Σ_k π_k N(x; μ_k, Σ_k)`` with mixing weights ``π`` (stored as
``log π``), means ``μ_k`` and covariances ``Σ_k`` of one of three shapes (``covariance_type``):

- ``'full'``: ``Σ_k`` an arbitrary SPD matrix, stored ``(K, D, D)``;
- ``'diag'``: ``Σ_k = diag(σ²_k)``, stored ``(K, D)``;
- ``'spherical'``: ``Σ_k = σ²_k I``, stored ``(K,)``.

EM (Dempster, Laird & Rubin 1977; Bishop, PRML §9.2) alternates

- E-step: responsibilities ``r_ik = π_k N(x_i; μ_k, Σ_k) / Σ_j π_j N(x_i; μ_j, Σ_j)``;
- M-step: ``N_k = Σ_i r_ik``, ``π_k = N_k / n``, ``μ_k = Σ_i r_ik x_i / N_k``,
  ``Σ_k = Σ_i r_ik (x_i - μ_k)(x_i - μ_k)ᵀ / N_k + reg_covar I``,

and never decreases the mean log-likelihood ``(1/n) Σ_i log p(x_i)`` (up to the ``reg_covar``
term). The M-step follows scikit-learn's ``GaussianMixture`` exactly (``N_k`` is offset by
``10 eps`` so empty components do not divide by zero, ``reg_covar`` is added to every variance),
so both give the same iterates from the same initialisation. Initial means come from k-means++
(Arthur & Vassilvitskii 2007).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from jgen.checks import check_batch, check_choice, check_int, check_positive
from jgen.mixtures.em import FitHistory, run_em
from jgen.types import Array, PRNGKey

COVARIANCE_TYPES = ("full", "diag", "spherical")
"""The covariance parametrisations, as in scikit-learn (its ``'tied'`` is not provided)."""


class GMMParams(NamedTuple):
    """Parameters of a ``K``-component mixture in ``D`` dimensions (a pytree).

    Attributes:
      log_weights: ``(K,)`` log mixing weights ``log π_k`` (``Σ_k π_k = 1``).
      means: ``(K, D)`` component means ``μ_k``.
      covariances: ``(K, D, D)`` for ``'full'``, ``(K, D)`` variances for ``'diag'``, ``(K,)``
        variances for ``'spherical'``.
    """

    log_weights: Array
    means: Array
    covariances: Array


def _covariance_shape(covariance_type: str, k: int, d: int) -> tuple[int, ...]:
    return {"full": (k, d, d), "diag": (k, d), "spherical": (k,)}[covariance_type]


def _check_x(name: str, x, dim: int | None = None) -> None:
    shape = tuple(np.shape(x))
    if len(shape) != 2:
        shown = "(n, D)" if dim is None else f"(n, {dim})"
        raise ValueError(f"{name} must have shape {shown}; got shape {shape}")
    check_batch(name, x, (shape[1] if dim is None else dim,))


def _check_params(name: str, params: GMMParams, covariance_type: str) -> None:
    check_choice("covariance_type", covariance_type, COVARIANCE_TYPES)
    means_shape = tuple(np.shape(params.means))
    if len(means_shape) != 2:
        raise ValueError(f"{name}.means must have shape (K, D); got shape {means_shape}")
    k, d = means_shape
    expected = {
        "log_weights": (k,),
        "covariances": _covariance_shape(covariance_type, k, d),
    }
    for field, shape in expected.items():
        got = tuple(np.shape(getattr(params, field)))
        if got != shape:
            raise ValueError(
                f"{name}.{field} must have shape {shape} for K={k}, D={d} and "
                f"covariance_type={covariance_type!r}; got shape {got}"
            )


# ---------------------------------------------------------------------------------------------
# Densities
# ---------------------------------------------------------------------------------------------


def _full_log_normal(x, means, covariances):
    """``log N(x; μ, Σ) = -|(x - μ)ᵀ L⁻ᵀ|²/2 - Σ_d log L_dd - (D/2) log 2π`` with ``Σ = L Lᵀ``.

    The small ``D x D`` inverse factors ``L_k⁻ᵀ`` come from one triangular solve against the
    identity each; the ``n`` examples then go through a plain matrix product per component
    (``lax.map``, so only one ``(n, D)`` temporary lives at a time). A triangular solve with
    ``n`` right-hand sides per component, the textbook form, ran 7x slower on CPU
    (``benchmarks/metrics.py``)."""
    chol = jnp.linalg.cholesky(covariances)  # (K, D, D)
    eye = jnp.broadcast_to(jnp.eye(x.shape[1], dtype=x.dtype), chol.shape)
    inv_t = jnp.swapaxes(jax.scipy.linalg.solve_triangular(chol, eye, lower=True), 1, 2)

    def maha(args):
        mean, w = args
        return jnp.sum(((x - mean) @ w) ** 2, axis=1)

    maha = jax.lax.map(maha, (means, inv_t))  # (K, n)
    half_log_det = jnp.sum(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)), axis=1)  # (K,)
    d = x.shape[1]
    return (-0.5 * maha - half_log_det[:, None]).T - 0.5 * d * math.log(2 * math.pi)


def _diag_log_normal(x, means, variances):
    """``log N(x; μ, diag σ²) = -Σ_d [(x_d - μ_d)²/σ²_d + log σ²_d]/2 - (D/2) log 2π``."""
    precision = 1.0 / variances  # (K, D)
    # Expanded square: one (n, D) @ (D, K) product instead of an (n, K, D) temporary.
    maha = (
        (x**2) @ precision.T
        - 2.0 * x @ (means * precision).T
        + jnp.sum(means**2 * precision, axis=1)[None, :]
    )
    log_det = jnp.sum(jnp.log(variances), axis=1)
    d = x.shape[1]
    return -0.5 * (maha + log_det[None, :]) - 0.5 * d * math.log(2 * math.pi)


def _spherical_log_normal(x, means, variances):
    """``log N(x; μ, σ² I) = -|x - μ|²/(2σ²) - (D/2) log σ² - (D/2) log 2π``."""
    return _diag_log_normal(x, means, jnp.broadcast_to(variances[:, None], means.shape))


_LOG_NORMALS = {
    "full": _full_log_normal,
    "diag": _diag_log_normal,
    "spherical": _spherical_log_normal,
}


def component_log_probs(params: GMMParams, x: Array, covariance_type: str) -> Array:
    """Joint log-densities ``log π_k + log N(x_i; μ_k, Σ_k)`` of every example and component.

    Args:
      params: the mixture's :class:`GMMParams`.
      x: ``(n, D)`` floating-point batch.
      covariance_type: one of :data:`COVARIANCE_TYPES`.

    Returns:
      ``(n, K)`` array; full covariances are evaluated through their Cholesky factor.
    """
    _check_params("params", params, covariance_type)
    _check_x("x", x, params.means.shape[1])
    log_normal = _LOG_NORMALS[covariance_type](x, params.means, params.covariances)
    return log_normal + params.log_weights[None, :]


def log_prob(params: GMMParams, x: Array, covariance_type: str) -> Array:
    """Per-example log-density ``log p(x_i) = logsumexp_k [log π_k + log N(x_i; μ_k, Σ_k)]``.

    Args:
      params: the mixture's :class:`GMMParams`.
      x: ``(n, D)`` floating-point batch.
      covariance_type: one of :data:`COVARIANCE_TYPES`.

    Returns:
      ``(n,)`` log-densities (Bishop, PRML eq. 9.7).
    """
    return logsumexp(component_log_probs(params, x, covariance_type), axis=1)


def responsibilities(params: GMMParams, x: Array, covariance_type: str) -> Array:
    """Posterior component probabilities ``r_ik = π_k N(x_i; μ_k, Σ_k) / p(x_i)`` (E-step).

    Args:
      params: the mixture's :class:`GMMParams`.
      x: ``(n, D)`` floating-point batch.
      covariance_type: one of :data:`COVARIANCE_TYPES`.

    Returns:
      ``(n, K)`` array whose rows sum to 1 (Bishop, PRML eq. 9.23).
    """
    joint = component_log_probs(params, x, covariance_type)
    return jnp.exp(joint - logsumexp(joint, axis=1, keepdims=True))


def sample(params: GMMParams, key: PRNGKey, n: int, covariance_type: str) -> Array:
    """Ancestral samples: ``c ~ Categorical(π)``, then ``x = μ_c + L_c ε`` with ``ε ~ N(0, I)``
    and ``L_c`` the Cholesky factor of ``Σ_c`` (``σ_c`` for diagonal and spherical).

    Args:
      params: the mixture's :class:`GMMParams`.
      key: PRNG key, split here into one for the components and one for the noise.
      n: number of samples (a Python int).
      covariance_type: one of :data:`COVARIANCE_TYPES`.

    Returns:
      ``(n, D)`` samples in the dtype of ``params.means``.
    """
    _check_params("params", params, covariance_type)
    check_int("n", n)
    k_comp, k_noise = jax.random.split(key)
    comp = jax.random.categorical(k_comp, params.log_weights, shape=(n,))
    means = params.means
    eps = jax.random.normal(k_noise, (n, means.shape[1]), means.dtype)
    if covariance_type == "full":
        chol = jnp.linalg.cholesky(params.covariances)
        noise = jnp.einsum("nij,nj->ni", chol[comp], eps)
    else:
        std = jnp.sqrt(params.covariances)
        noise = (std[comp, None] if covariance_type == "spherical" else std[comp]) * eps
    return means[comp] + noise


# ---------------------------------------------------------------------------------------------
# EM
# ---------------------------------------------------------------------------------------------


def _full_covariances(x, resp, nk, means, reg_covar):
    """``Σ_k = Σ_i r_ik (x_i - μ_k)(x_i - μ_k)ᵀ / N_k + reg_covar I``, one component at a time
    (``lax.map``: an ``(n, D)`` temporary instead of ``(K, n, D)``)."""

    def covariance(args):
        r, mean, n = args
        diff = x - mean
        return (r[:, None] * diff).T @ diff / n

    cov = jax.lax.map(covariance, (resp.T, means, nk))
    return cov + reg_covar * jnp.eye(x.shape[1], dtype=x.dtype)


def _diag_covariances(x, resp, nk, means, reg_covar):
    """``σ²_kd = Σ_i r_ik x_id² / N_k - μ_kd² + reg_covar`` (the expanded square, as
    scikit-learn computes it)."""
    avg_x2 = resp.T @ (x * x) / nk[:, None]
    avg_x_means = means * (resp.T @ x) / nk[:, None]
    return avg_x2 - 2.0 * avg_x_means + means**2 + reg_covar


def _spherical_covariances(x, resp, nk, means, reg_covar):
    """``σ²_k = (1/D) Σ_d σ²_kd``: the mean of the diagonal variances."""
    return jnp.mean(_diag_covariances(x, resp, nk, means, reg_covar), axis=1)


_COVARIANCE_ESTIMATORS = {
    "full": _full_covariances,
    "diag": _diag_covariances,
    "spherical": _spherical_covariances,
}


def _m_step(x, resp, covariance_type, reg_covar) -> GMMParams:
    """Maximises the expected complete-data log-likelihood given responsibilities (PRML 9.24-9.26).

    ``N_k`` gets ``10 eps`` so a component without responsibility keeps finite parameters.
    """
    nk = jnp.sum(resp, axis=0) + 10 * jnp.finfo(resp.dtype).eps
    means = resp.T @ x / nk[:, None]
    covariances = _COVARIANCE_ESTIMATORS[covariance_type](x, resp, nk, means, reg_covar)
    log_weights = jnp.log(nk) - jnp.log(jnp.sum(nk))
    return GMMParams(log_weights, means, covariances)


def em_step(
    params: GMMParams, x: Array, covariance_type: str, reg_covar: float = 1e-6
) -> tuple[GMMParams, Array]:
    """One EM iteration (Dempster, Laird & Rubin 1977; PRML §9.2.2).

    E-step ``r_ik ∝ π_k N(x_i; μ_k, Σ_k)``; M-step ``N_k = Σ_i r_ik``, ``π_k = N_k / n``,
    ``μ_k = Σ_i r_ik x_i / N_k``, ``Σ_k = Σ_i r_ik (x_i - μ_k)(x_i - μ_k)ᵀ / N_k + reg_covar I``
    (diagonal: its diagonal; spherical: the mean of that diagonal).

    Args:
      params: current :class:`GMMParams`.
      x: ``(n, D)`` floating-point batch.
      covariance_type: one of :data:`COVARIANCE_TYPES`.
      reg_covar: ``>= 0`` added to every variance so covariances stay positive definite.

    Returns:
      ``(new_params, ℓ)`` with ``ℓ = (1/n) Σ_i log p(x_i)`` under the OLD ``params`` (it comes
      for free from the E-step; scikit-learn's ``lower_bound_`` is the same quantity).
    """
    check_positive("reg_covar", reg_covar, allow_zero=True)
    joint = component_log_probs(params, x, covariance_type)
    log_norm = logsumexp(joint, axis=1, keepdims=True)
    resp = jnp.exp(joint - log_norm)
    return _m_step(x, resp, covariance_type, reg_covar), jnp.mean(log_norm)


def kmeans_plus_plus(key: PRNGKey, x: Array, k: int) -> Array:
    """k-means++ seeding by ``D²`` sampling (Arthur & Vassilvitskii 2007).

    The first centre is a uniformly drawn row of ``x``; each next one is row ``i`` with
    probability ``D(x_i)² / Σ_j D(x_j)²``, ``D(x)`` the distance to the nearest centre chosen so
    far. Rows already chosen have ``D = 0``, so the centres are distinct rows whenever ``x`` has
    at least ``k`` distinct rows. (This is the plain algorithm, not scikit-learn's greedy variant
    that keeps the best of ``2 + log k`` candidates.)

    Args:
      key: PRNG key; step ``j`` uses ``fold_in(key, j)``.
      x: ``(n, D)`` floating-point batch.
      k: number of centres, ``1 <= k <= n`` (a Python int).

    Returns:
      ``(k, D)`` centres, rows of ``x`` in the order chosen.
    """
    _check_x("x", x)
    _check_k(k, x.shape[0])
    x = jnp.asarray(x)  # a numpy x cannot be indexed by the traced draws below
    n = x.shape[0]
    first = x[jax.random.randint(jax.random.fold_in(key, 0), (), 0, n)]
    centres = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(first)
    d2 = jnp.sum((x - first) ** 2, axis=1)

    def body(j, carry):
        centres, d2 = carry
        total = jnp.sum(d2)
        # All-zero distances (fewer than k distinct rows): fall back to a uniform draw.
        logits = jnp.where(total > 0, jnp.log(d2), 0.0)
        idx = jax.random.categorical(jax.random.fold_in(key, j), logits)
        new = x[idx]
        return centres.at[j].set(new), jnp.minimum(d2, jnp.sum((x - new) ** 2, axis=1))

    centres, _ = jax.lax.fori_loop(1, k, body, (centres, d2))
    return centres


def _check_k(k, n) -> None:
    check_int("k", k)
    if k > n:
        raise ValueError(f"k must be <= the number of examples n={n}; got k={k}")


def initialize(
    key: PRNGKey, x: Array, k: int, covariance_type: str = "full", reg_covar: float = 1e-6
) -> GMMParams:
    """Initial parameters: k-means++ centres, then one M-step from hard assignments.

    Each example is assigned to its nearest centre, ``r_ik = 1[k = argmin_j |x_i - c_j|]``, and
    the M-step of :func:`em_step` turns these responsibilities into weights, means and
    covariances (scikit-learn initialises from k-means labels the same way). Every cluster holds
    at least its own centre, so with ``reg_covar > 0`` every covariance is positive definite.

    Args:
      key: PRNG key for :func:`kmeans_plus_plus`.
      x: ``(n, D)`` floating-point batch.
      k: number of components, ``1 <= k <= n``.
      covariance_type: one of :data:`COVARIANCE_TYPES`.
      reg_covar: ``>= 0`` added to every variance.

    Returns:
      :class:`GMMParams`.
    """
    check_choice("covariance_type", covariance_type, COVARIANCE_TYPES)
    check_positive("reg_covar", reg_covar, allow_zero=True)
    centres = kmeans_plus_plus(key, x, k)
    d2 = jnp.sum((x[:, None, :] - centres[None, :, :]) ** 2, axis=2)
    resp = jax.nn.one_hot(jnp.argmin(d2, axis=1), k, dtype=x.dtype)
    return _m_step(x, resp, covariance_type, reg_covar)


def fit(
    key: PRNGKey,
    x: Array,
    k: int,
    covariance_type: str = "full",
    *,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    init_params: GMMParams | None = None,
) -> tuple[GMMParams, FitHistory]:
    """Maximum-likelihood mixture by EM, run in a ``lax.while_loop``.

    Iterates ``(θ_{t+1}, ℓ_t) = em_step(θ_t)`` until ``|ℓ_t - ℓ_{t-1}| < tol`` or ``max_iter``
    iterations, ``ℓ_t = (1/n) Σ_i log p(x_i; θ_t)`` — scikit-learn's stopping rule, so both stop
    at the same iteration from the same start. ``tol = 0`` runs exactly ``max_iter`` iterations.

    Args:
      key: PRNG key for :func:`initialize` (unused when ``init_params`` is given).
      x: ``(n, D)`` floating-point batch.
      k: number of components, ``1 <= k <= n``.
      covariance_type: one of :data:`COVARIANCE_TYPES`.
      max_iter: maximum number of EM iterations, ``>= 1``.
      tol: ``>= 0`` threshold on the change of mean log-likelihood.
      reg_covar: ``>= 0`` added to every variance.
      init_params: starting :class:`GMMParams`; default :func:`initialize`.

    Returns:
      ``(params, history)``: the parameters after the last M-step and a :class:`FitHistory`.
    """
    _check_x("x", x)
    _check_k(k, x.shape[0])
    check_choice("covariance_type", covariance_type, COVARIANCE_TYPES)
    check_int("max_iter", max_iter)
    check_positive("tol", tol, allow_zero=True)
    check_positive("reg_covar", reg_covar, allow_zero=True)
    if init_params is None:
        init_params = initialize(key, x, k, covariance_type, reg_covar)
    else:
        _check_params("init_params", init_params, covariance_type)
        got = tuple(np.shape(init_params.means))
        if got != (k, x.shape[1]):
            raise ValueError(
                f"init_params.means must have shape (k, D) = {(k, x.shape[1])}; got shape {got}"
            )
        init_params = GMMParams(*(jnp.asarray(p, x.dtype) for p in init_params))

    return run_em(
        lambda params: em_step(params, x, covariance_type, reg_covar),
        init_params,
        max_iter=max_iter,
        tol=tol,
        dtype=x.dtype,
    )
