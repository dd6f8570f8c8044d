"""Noise-contrastive estimation (Gutmann & Hyvarinen 2010, "Noise-contrastive estimation: a new
estimation principle for unnormalized statistical models"; 2012, JMLR 13, "Noise-contrastive
estimation of unnormalized statistical models, with applications to natural image statistics").

An unnormalised model is fitted by logistic regression between the data and ``nu`` times as many
samples of a noise distribution ``p_n`` whose density is known. The model's log-normaliser is
one more parameter ``c``: NCE, unlike maximum likelihood, cannot make the density grow without
bound, so ``c`` converges to ``log Z`` and the fitted model is normalised. The pattern for an
energy model::

    def log_model_fn(x):                       # log p_theta(x) = -E_theta(x) - c
        return -energy_fn(params["energy"], x) - params["c"]

    loss = nce_loss(log_model_fn, noise.log_prob, x_data, noise.sample(key, nu * n)).mean()

The noise can be :func:`gaussian_noise` fitted to the data or any ``(sample, log_prob)`` pair
such as a trained flow (:class:`Noise`); the closer it is to the data the more efficient the
estimator (Gutmann & Hyvarinen 2012, Section 2.4).
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_batch, is_traced
from jgen.types import Array, PRNGKey

LogProbFn = Callable[[Array], Array]


class Noise(NamedTuple):
    """A noise distribution for NCE: ``sample(key, n) -> (n, *event)`` and ``log_prob(x (n,
    *event)) -> (n,)``, its normalised log-density."""

    sample: Callable[[PRNGKey, int], Array]
    log_prob: LogProbFn


def gaussian_noise(mean, cov) -> Noise:
    """The noise ``N(mean, cov)`` on ``R^d``.

    ``log N(x; m, C) = -1/2 |L^-1 (x - m)|^2 - sum_i log L_ii - (d / 2) log(2 pi)`` with
    ``C = L L^T`` (Cholesky), and samples ``m + L z``, ``z ~ N(0, I)``.

    Args:
      mean: ``(d,)``.
      cov: ``(d, d)`` symmetric positive definite.

    Returns:
      :class:`Noise` with ``sample(key, n) -> (n, d)`` and ``log_prob(x (n, d)) -> (n,)``.

    Raises:
      ValueError: when the shapes do not match or ``cov`` is not positive definite.
    """
    mean, cov = jnp.asarray(mean), jnp.asarray(cov)
    d = mean.shape[0] if mean.ndim == 1 else -1
    if mean.ndim != 1 or cov.shape != (d, d):
        raise ValueError(
            f"mean must have shape (d,) and cov shape (d, d); got shapes {mean.shape} and "
            f"{cov.shape}"
        )
    chol = jnp.linalg.cholesky(cov)
    # Cholesky returns NaNs rather than raising; a traced cov (fitted inside jit) is not checked.
    if not is_traced(chol) and not bool(jnp.all(jnp.isfinite(chol))):
        raise ValueError("cov must be symmetric positive definite; its Cholesky factor failed")
    log_norm = jnp.sum(jnp.log(jnp.diag(chol))) + 0.5 * d * math.log(2.0 * math.pi)

    def sample(key: PRNGKey, n: int) -> Array:
        return mean + jax.random.normal(key, (n, d), mean.dtype) @ chol.T

    def log_prob(x: Array) -> Array:
        check_batch("x", x, (d,))
        white = jax.scipy.linalg.solve_triangular(chol, (x - mean).T, lower=True)
        return -0.5 * jnp.sum(white**2, axis=0) - log_norm

    return Noise(sample, log_prob)


def _check_log_density(name: str, values, n: int, points: str) -> None:
    if tuple(np.shape(values)) != (n,):
        raise ValueError(
            f"{name} must return shape ({n},) (one value per row of {points}); "
            f"got shape {tuple(np.shape(values))}"
        )


def nce_loss(
    log_model_fn: LogProbFn, log_noise_fn: LogProbFn, x_data: Array, x_noise: Array
) -> Array:
    """The NCE logistic loss, one value per data point (Gutmann & Hyvarinen 2012, Eq. 8).

    With ``n`` data points ``x_i``, ``m`` noise points ``y_j``, the noise ratio ``nu = m / n`` and
    the log-odds of "data" against "noise"

        G(u) = log p_m(u) - log(nu p_n(u)),

    NCE maximises ``J = 1/n [sum_i log sigmoid(G(x_i)) + sum_j log(1 - sigmoid(G(y_j)))]``. Its
    negative is split over the data points as

        loss_i = -log sigmoid(G(x_i)) - nu * mean_j log sigmoid(-G(y_j)),

    every row carrying its own data term and the same noise term (``nu`` times the noise mean,
    that is ``1/n`` of the noise sum), so that ``mean_i loss_i = -J`` exactly; a sum over rows
    (data-parallel shards) counts each noise point once in total. ``log(1 - sigmoid(G)) =
    log sigmoid(-G)`` is computed with ``log_sigmoid``, finite for any ``G``.

    As the sample sizes grow, the minimiser converges to the data density *including its
    normaliser* when the model family contains it (Theorem 2 of the 2012 paper): the model must
    carry its own log-normaliser ``c`` (module docstring).

    Args:
      log_model_fn: ``(k, *event) -> (k,)``, the model's log-density ``-E(x) - c`` with a learned
        ``c``; called once on ``x_data`` and once on ``x_noise``.
      log_noise_fn: ``(k, *event) -> (k,)``, the noise's normalised log-density.
      x_data: ``(n, *event)`` data.
      x_noise: ``(m, *event)`` noise samples (drawn independently of the data; gradients do not
        need to flow into them).

    Returns:
      ``(n,)``, the per-example loss (minimise its mean).

    Raises:
      ValueError: when ``x_data`` is not a floating-point batch, ``x_noise`` has another event
        shape, or either function does not return one value per row.
    """
    if np.ndim(x_data) < 1:
        raise ValueError(f"x_data must be a batch (n, *event); got shape {np.shape(x_data)}")
    event = tuple(np.shape(x_data))[1:]
    check_batch("x_data", x_data, event)
    check_batch("x_noise", x_noise, event)
    n, m = x_data.shape[0], x_noise.shape[0]
    log_nu = math.log(m / n)

    def log_odds(x: Array, name: str) -> Array:
        log_model, log_noise = log_model_fn(x), log_noise_fn(x)
        _check_log_density("log_model_fn", log_model, x.shape[0], name)
        _check_log_density("log_noise_fn", log_noise, x.shape[0], name)
        return log_model - log_noise - log_nu

    data_term = -jax.nn.log_sigmoid(log_odds(x_data, "x_data"))
    noise_term = -jnp.sum(jax.nn.log_sigmoid(-log_odds(x_noise, "x_noise"))) / n
    return data_term + noise_term
