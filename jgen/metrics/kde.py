"""Gaussian kernel density estimates (Parzen windows) of a model's log-likelihood.

A sample ``d_1..d_m`` drawn from a model defines the density
``p_h(x) = (1/m) sum_j N(x; d_j, h^2 I)`` (Parzen 1962, "On estimation of a probability density
function and mode"). Its mean log-likelihood on held-out data, with ``h`` chosen on a validation
set, was used to compare generative models that have no tractable likelihood (Breuleux, Bengio &
Vincent 2011; Goodfellow et al. 2014, "Generative adversarial nets"). Theis, van den Oord & Bethge
2016 ("A note on the evaluation of generative models", Sec. 3.2) show why it should be read with
care: in more than a few dimensions it needs impractically many samples, ranks models differently
from their true log-likelihood and can be beaten by a model that memorises the training set.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from jgen.checks import check_int, check_positive
from jgen.metrics.mmd import squared_distances
from jgen.types import Array


def _check_samples(queries: tuple[str, Array], data: tuple[str, Array]) -> None:
    (qname, x), (dname, d) = queries, data
    for name, v in (queries, data):
        if np.ndim(v) < 1 or np.shape(v)[0] < 1:
            raise ValueError(
                f"{name} must be a non-empty batch of shape (n, *event); got shape {np.shape(v)}"
            )
    if np.shape(x)[1:] != np.shape(d)[1:]:
        raise ValueError(
            f"{qname} and {dname} must have the same event shape; got {np.shape(x)[1:]} and "
            f"{np.shape(d)[1:]}"
        )


def _log_kde(x: Array, data: Array, bandwidths: Array, chunk_size: int) -> Array:
    """``log p_h(x_i)`` for every query ``x_i`` and every ``h`` in ``bandwidths (k,)``: ``(n, k)``.

    The squared distances of a chunk of queries are computed once and shared by all bandwidths,
    which is what makes a bandwidth search cost little more than one evaluation.
    """
    dtype = jnp.result_type(x, data, jnp.float32)  # integer pixels would overflow in the squares
    x, data = jnp.asarray(x, dtype), jnp.asarray(data, dtype)
    bandwidths = jnp.asarray(bandwidths, dtype)
    m = data.shape[0]
    dim = math.prod(data.shape[1:])

    def one_query(xi: Array) -> Array:
        sq = squared_distances(xi[None], data)[0]  # (m,)
        return logsumexp(-sq[None, :] / (2.0 * bandwidths[:, None] ** 2), axis=-1)  # (k,)

    # lax.map vmaps one_query over chunk_size queries at a time, so at most a (chunk_size, m)
    # block of distances is live, whatever the number of queries.
    sums = jax.lax.map(one_query, x, batch_size=min(chunk_size, x.shape[0]))
    return sums - math.log(m) - 0.5 * dim * jnp.log(2.0 * jnp.pi * bandwidths**2)


def log_prob(x: Array, data: Array, bandwidth: float | Array, *, chunk_size: int = 1024) -> Array:
    """Log-density of ``x`` under the Gaussian kernel density estimate built on ``data``.

    ``log p_h(x_i) = logsumexp_j [-||x_i - d_j||^2 / (2 h^2)] - log m - (D/2) log(2 pi h^2)``,
    with events flattened to ``D`` numbers (Parzen 1962). Works under ``jit``; ``bandwidth`` may be
    traced.

    Args:
      x: queries ``(n, *event)``.
      data: the sample that defines the estimate, ``(m, *event)``, e.g. draws from a model.
      bandwidth: ``h > 0``, a scalar.
      chunk_size: number of queries handled at once; memory grows as ``chunk_size * m``.

    Returns:
      ``(n,)`` log-densities.

    Raises:
      ValueError: if ``x`` and ``data`` differ in event shape or are empty, if ``bandwidth`` is
        not a positive scalar, or if ``chunk_size`` is not a positive integer.
    """
    _check_samples(("x", x), ("data", data))
    if np.ndim(bandwidth) != 0:
        raise ValueError(f"bandwidth must be a scalar; got shape {np.shape(bandwidth)}")
    check_positive("bandwidth", bandwidth)
    check_int("chunk_size", chunk_size)
    return _log_kde(x, data, jnp.reshape(bandwidth, (1,)), chunk_size)[:, 0]


def select_bandwidth(
    train: Array, validation: Array, bandwidths: Array, *, chunk_size: int = 1024
) -> tuple[Array, Array]:
    """Chooses the bandwidth that maximises the mean validation log-likelihood.

    ``h* = argmax_h (1/n) sum_i log p_h(v_i)`` over the candidate ``bandwidths``, where ``p_h`` is
    the estimate built on ``train`` (the protocol of Breuleux et al. 2011 and Goodfellow et al.
    2014: ``h`` chosen on a validation split, the likelihood then reported on a test split).

    Args:
      train: the sample that defines the estimate, ``(m, *event)``.
      validation: held-out points ``(n, *event)`` with the same event shape.
      bandwidths: candidate bandwidths ``(k,)``, all ``> 0``.
      chunk_size: number of validation points handled at once; memory grows as
        ``chunk_size * m`` (times ``k`` if the compiler does not fuse the bandwidths).

    Returns:
      ``(best_bandwidth, mean_log_probs)``: the chosen ``h`` (a scalar) and the mean validation
      log-likelihood of every candidate, ``(k,)``.

    Raises:
      ValueError: if the samples differ in event shape or are empty, if ``bandwidths`` is not a
        non-empty 1-D array of positive values, or if ``chunk_size`` is not a positive integer.
    """
    _check_samples(("validation", validation), ("train", train))
    if np.ndim(bandwidths) != 1:
        raise ValueError(f"bandwidths must have shape (k,); got shape {np.shape(bandwidths)}")
    check_positive("bandwidths", bandwidths)
    check_int("chunk_size", chunk_size)
    bandwidths = jnp.asarray(bandwidths)
    mean_log_probs = jnp.mean(_log_kde(validation, train, bandwidths, chunk_size), axis=0)
    return bandwidths[jnp.argmax(mean_log_probs)], mean_log_probs
