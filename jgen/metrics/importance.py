"""Importance-sampled log-likelihood of latent-variable models (Rezende, Mohamed & Wierstra 2014,
"Stochastic backpropagation and approximate inference in deep generative models"; Burda,
Grosse & Salakhutdinov 2016, "Importance weighted autoencoders").

For a model ``p(x, z)`` and a proposal ``q(z | x)`` (usually the encoder), the weights
``w_k = p(x, z_k) / q(z_k | x)`` with ``z_k ~ q(. | x)`` have mean ``p(x)``, so

    log p(x) ~= log (1/K) sum_k w_k,

a stochastic lower bound (Jensen: its expectation is the IWAE bound ``L_K <= log p(x)``,
increasing in ``K``; ``K = 1`` is the ELBO) that is consistent as ``K -> infinity``. Its
standard error is the delta-method one, ``std(w) / (sqrt(K) mean(w))``
(:func:`log_mean_exp`); annealed importance sampling (:mod:`jgen.metrics.ais`) shares it.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from jgen.checks import check_int
from jgen.samplers.chain import run_chain
from jgen.types import Array, PRNGKey


class ImportanceEstimate(NamedTuple):
    """An importance-sampling estimate of ``log E[w]``.

    Attributes:
      log_mean: ``log (1/K) sum_k w_k``, e.g. ``log p(x)`` per observation ``(n,)``.
      standard_error: its delta-method standard error, same shape (NaN when ``K = 1``).
    """

    log_mean: Array
    standard_error: Array


def _estimate_from_sums(log_sum: Array, log_sum_sq: Array, k: int) -> ImportanceEstimate:
    """The estimate from ``log sum_k w_k`` and ``log sum_k w_k^2``.

    With ``m = S1 / K`` and the unbiased variance ``K / (K - 1) (S2 / K - m^2)``, the delta method
    gives ``se^2 = var / (K m^2) = (K S2 / S1^2 - 1) / (K - 1)``; the ratio is formed in log space
    (``expm1(log K + log S2 - 2 log S1)``) so weights far outside the float range do not
    overflow. Rounding can push the ratio a hair below 1 for equal weights, hence the clip.
    """
    log_k = math.log(k)
    ratio_minus_one = jnp.expm1(log_k + log_sum_sq - 2.0 * log_sum)
    if k == 1:  # the spread of a single weight is unknown
        se = jnp.full_like(log_sum, jnp.nan)
    else:
        se = jnp.sqrt(jnp.maximum(ratio_minus_one, 0.0) / (k - 1))
    return ImportanceEstimate(log_sum - log_k, se)


def log_mean_exp(log_weights: Array, axis: int = 0) -> ImportanceEstimate:
    """``log (1/K) sum_k exp(l_k)`` and its delta-method standard error along ``axis``.

    For positive weights ``w_k = exp(l_k)`` with mean ``m`` and sample standard deviation ``s``
    (``ddof=1``), ``se(log m) ~= s / (sqrt(K) m)`` (first-order Taylor expansion of ``log`` about
    ``E[w]``). Both are computed from ``logsumexp`` of ``l`` and ``2 l``, so no weight is ever
    exponentiated unshifted.

    Args:
      log_weights: log importance weights, ``K`` of them along ``axis``.
      axis: the axis holding the ``K`` weights (an int).

    Returns:
      :class:`ImportanceEstimate` with the other axes; the standard error is NaN when ``K = 1``.

    Raises:
      ValueError: if ``log_weights`` has no axis ``axis`` or it is empty.
    """
    log_weights = jnp.asarray(log_weights)
    if not -log_weights.ndim <= axis < log_weights.ndim or log_weights.shape[axis] == 0:
        raise ValueError(
            f"log_weights must have a non-empty axis {axis}; got shape {tuple(log_weights.shape)}"
        )
    k = log_weights.shape[axis]
    return _estimate_from_sums(
        logsumexp(log_weights, axis=axis), logsumexp(2.0 * log_weights, axis=axis), k
    )


def _check_data(name: str, x) -> Array:
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"{name} must be a batch of shape (n, *event); got shape {tuple(x.shape)}")
    return x


def importance_log_likelihood(
    key: PRNGKey,
    x: Array,
    sample_and_log_q: Callable[[PRNGKey, Array, int], tuple[Array, Array]],
    log_joint: Callable[[Array, Array], Array],
    *,
    num_samples: int = 5000,
    chunk_size: int = 100,
) -> ImportanceEstimate:
    """Importance-sampled ``log p(x)`` for each observation of a latent-variable model.

        log p(x) ~= logsumexp_k [log p(x, z_k) - log q(z_k | x)] - log K,     z_k ~ q(. | x),

    the estimator of Rezende et al. 2014 and Burda et al. 2016 (IWAE). Its
    expectation is the IWAE bound ``L_K``: a lower bound on ``log p(x)`` that increases with
    ``K`` (``K = 1`` is the ELBO) and is exact for every ``K`` when ``q`` is the true posterior.
    The ``K`` samples are drawn ``chunk_size`` at a time inside one ``lax.scan`` that keeps the
    running ``logsumexp`` of the log weights and of their doubles, so memory grows with
    ``chunk_size * n``, not with ``num_samples``. Chunk ``c`` uses the ``c``-th key of
    :func:`jgen.samplers.chain.run_chain`'s split chain, so the result depends on ``chunk_size``
    as well as on ``key``.

    Args:
      key: PRNG key.
      x: observations ``(n, *event)``.
      sample_and_log_q: ``(key, x (n, *event), k) -> (z (k, n, *latent), log q(z | x) (k, n))``,
        ``k`` samples of the proposal for every observation (e.g. the encoder with the
        reparameterisation trick) and their log-densities, normalised.
      log_joint: ``(x (n, *event), z (k, n, *latent)) -> log p(x, z) (k, n)``, normalised
        (``log p(z) + log p(x | z)`` for a decoder).
      num_samples: ``K``, a positive multiple of ``chunk_size``.
      chunk_size: samples drawn per scan step.

    Returns:
      :class:`ImportanceEstimate`: ``log_mean`` the estimate of ``log p(x)`` ``(n,)``, and its
      delta-method ``standard_error`` ``(n,)`` (:func:`log_mean_exp`; NaN for ``K = 1``).

    Raises:
      ValueError: for ``x`` of rank < 2, ``chunk_size`` or ``num_samples`` not a positive
        integer, ``num_samples`` not a multiple of ``chunk_size``, or functions returning the
        wrong shapes.
    """
    x = _check_data("x", x)
    check_int("chunk_size", chunk_size)
    check_int("num_samples", num_samples)
    if num_samples % chunk_size:
        raise ValueError(
            f"num_samples must be a multiple of chunk_size={chunk_size}; got {num_samples}"
        )
    n = x.shape[0]

    def draw(key):
        z, log_q = sample_and_log_q(key, x, chunk_size)
        return z, log_q, log_joint(x, z)

    expected = (chunk_size, n)
    z_shape, log_q_shape = jax.eval_shape(lambda k: sample_and_log_q(k, x, chunk_size), key)
    if z_shape.shape[:2] != expected or log_q_shape.shape != expected:
        raise ValueError(
            f"sample_and_log_q(key, x, {chunk_size}) must return z of shape ({chunk_size}, {n}, "
            f"*latent) and log_q of shape {expected}; got {tuple(z_shape.shape)} and "
            f"{tuple(log_q_shape.shape)}"
        )
    joint_shape = jax.eval_shape(draw, key)[2]
    if joint_shape.shape != expected:
        raise ValueError(
            f"log_joint(x, z) must return shape {expected}; got {tuple(joint_shape.shape)}"
        )
    dtype = jnp.result_type(joint_shape.dtype, log_q_shape.dtype)

    def step(sums, key, i):
        _, log_q, log_p = draw(key)
        lw = log_p - log_q
        log_sum, log_sum_sq = sums
        return (
            jnp.logaddexp(log_sum, logsumexp(lw, axis=0)),
            jnp.logaddexp(log_sum_sq, logsumexp(2.0 * lw, axis=0)),
        ), {}

    empty = jnp.full((n,), -jnp.inf, dtype)
    (log_sum, log_sum_sq), _, _ = run_chain(step, (empty, empty), key, num_samples // chunk_size)
    return _estimate_from_sums(log_sum, log_sum_sq, num_samples)
