"""Sample-quality scores computed from the features or logits of a fixed network: the Fréchet
distance (FID), the Kernel Inception Distance (KID) and the Inception Score (IS).

They take arrays from any extractor, so the same functions score images with the Inception-v3 of
:mod:`jgen.nets.inception` (the published protocol, 2048 pool features and 1008 logits) and
low-resolution data with a small classifier trained on it. Scores from different extractors,
resolutions or sample sizes are not comparable: FID and IS are biased in the sample size
(Binkowski et al. 2018; Chong & Forsyth 2020), so report ``n`` with them.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_int
from jgen.metrics.mmd import mmd2_unbiased, polynomial_kernel
from jgen.types import Array, PRNGKey


def _check_features(name: str, features, minimum: int = 2) -> None:
    shape = tuple(np.shape(features))
    if len(shape) != 2 or shape[0] < minimum:
        raise ValueError(f"{name} must have shape (n, d) with n >= {minimum}; got shape {shape}")


def _check_same_dim(features1, features2) -> None:
    d1, d2 = np.shape(features1)[1], np.shape(features2)[1]
    if d1 != d2:
        raise ValueError(
            f"features1 and features2 must have the same feature dimension; got {d1} and {d2}"
        )


def gaussian_statistics(features: Array) -> tuple[Array, Array]:
    """The mean and the unbiased covariance of a set of features.

    ``mean = (1/n) sum_i f_i`` and ``cov = 1/(n-1) sum_i (f_i - mean)(f_i - mean)^T``, the
    statistics of the TTUR code and pytorch-fid (``np.cov(rowvar=False)``).

    Args:
      features: ``(n, d)`` with ``n >= 2``.

    Returns:
      ``(mean (d,), cov (d, d))``.

    Raises:
      ValueError: when ``features`` is not ``(n, d)`` with ``n >= 2``.
    """
    _check_features("features", features)
    features = jnp.asarray(features)
    mean = jnp.mean(features, axis=0)
    centred = features - mean
    return mean, centred.T @ centred / (features.shape[0] - 1)


def _psd_sqrt(cov: Array) -> Array:
    """``V sqrt(max(L, 0)) V^T`` for the symmetric PSD ``cov = V L V^T``."""
    eigenvalues, eigenvectors = jnp.linalg.eigh(cov)
    return (eigenvectors * jnp.sqrt(jnp.maximum(eigenvalues, 0.0))) @ eigenvectors.T


def frechet_distance(mean1: Array, cov1: Array, mean2: Array, cov2: Array) -> Array:
    """The squared Fréchet (2-Wasserstein) distance between ``N(m1, C1)`` and ``N(m2, C2)``.

    ``d^2 = |m1 - m2|^2 + tr(C1) + tr(C2) - 2 tr((C1 C2)^{1/2})`` (Dowson & Landau 1982, "The
    Fréchet distance between multivariate normal distributions"; Heusel, Ramsauer, Unterthiner,
    Nessler & Hochreiter 2017, "GANs trained by a two time-scale update rule converge to a local
    Nash equilibrium", the FID).

    ``C1 C2`` is not symmetric, and the general ``scipy.linalg.sqrtm`` that pytorch-fid applies to
    it returns complex parts from rounding and fails on the singular covariances of ``n < d``
    samples. But ``C1 C2 = C1^{1/2} (C1^{1/2} C2)`` has the eigenvalues of the symmetric PSD
    ``M = C1^{1/2} C2 C1^{1/2}`` (``AB`` and ``BA`` share their nonzero eigenvalues), so
    ``tr((C1 C2)^{1/2}) = sum_i sqrt(lambda_i(M))``: two symmetric eigendecompositions, real and
    stable, with the eigenvalues that rounding pushes below zero clipped to it. Jittable.

    Args:
      mean1: ``(d,)``.
      cov1: ``(d, d)``, symmetric positive semi-definite.
      mean2: ``(d,)``.
      cov2: ``(d, d)``, symmetric positive semi-definite.

    Returns:
      A scalar ``>= 0`` (up to rounding).

    Raises:
      ValueError: when the shapes do not agree.
    """
    d = np.shape(mean1)[-1] if np.ndim(mean1) == 1 else None
    expected = {"mean1": (d,), "cov1": (d, d), "mean2": (d,), "cov2": (d, d)}
    for (name, shape), value in zip(expected.items(), (mean1, cov1, mean2, cov2), strict=True):
        if d is None or tuple(np.shape(value)) != shape:
            shown = "(d,)" if d is None else str(shape)
            raise ValueError(f"{name} must have shape {shown}; got shape {tuple(np.shape(value))}")
    sqrt1 = _psd_sqrt(cov1)
    middle = sqrt1 @ cov2 @ sqrt1
    # Symmetrised so that eigvalsh reads a matrix that is symmetric to the last bit.
    eigenvalues = jnp.linalg.eigvalsh((middle + middle.T) / 2.0)
    trace_sqrt = jnp.sum(jnp.sqrt(jnp.maximum(eigenvalues, 0.0)))
    diff = mean1 - mean2
    return diff @ diff + jnp.trace(cov1) + jnp.trace(cov2) - 2.0 * trace_sqrt


def fid(features1: Array, features2: Array) -> Array:
    """The Fréchet Inception Distance between two sets of features (Heusel et al. 2017).

    ``FID = frechet_distance(mean(f1), cov(f1), mean(f2), cov(f2))`` with the statistics of
    :func:`gaussian_statistics`. The published protocol uses the 2048 pool features of
    :class:`jgen.nets.inception.InceptionV3` of 50,000 samples against the training set.

    Args:
      features1: ``(n, d)``, ``n >= 2``.
      features2: ``(m, d)``, ``m >= 2``.

    Returns:
      A scalar.

    Raises:
      ValueError: when a set is not ``(n, d)`` with ``n >= 2`` or the dimensions differ.
    """
    _check_features("features1", features1)
    _check_features("features2", features2)
    _check_same_dim(features1, features2)
    return frechet_distance(*gaussian_statistics(features1), *gaussian_statistics(features2))


def kid(
    features1: Array,
    features2: Array,
    key: PRNGKey,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
) -> tuple[Array, Array]:
    """The Kernel Inception Distance (Binkowski, Sutherland, Arbel & Gretton 2018, "Demystifying
    MMD GANs"), with the subset protocol of their code and torch-fidelity.

    Each of ``num_subsets`` rounds draws ``s = min(subset_size, n, m)`` rows without replacement
    from each set and computes the unbiased ``MMD_u^2`` (:func:`jgen.metrics.mmd.mmd2_unbiased`)
    with the cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3``. The estimate is unbiased for
    every ``s``, so, unlike FID, its expectation does not depend on the sample size.

    Args:
      features1: ``(n, d)``, ``n >= 2``.
      features2: ``(m, d)``, ``m >= 2``.
      key: a PRNG key for the subsets.
      num_subsets: number of rounds, ``>= 1``.
      subset_size: rows per round, ``>= 2`` (capped at ``n`` and ``m``).

    Returns:
      ``(mean, std)`` of the ``num_subsets`` estimates (``std`` with ``ddof = 0``, as
      torch-fidelity reports it); ``std`` measures the spread of one subset's estimate, not the
      standard error of ``mean``.

    Raises:
      ValueError: on bad shapes, mismatched dimensions or out-of-range counts.
    """
    check_int("num_subsets", num_subsets, minimum=1)
    check_int("subset_size", subset_size, minimum=2)
    _check_features("features1", features1)
    _check_features("features2", features2)
    _check_same_dim(features1, features2)
    features1, features2 = jnp.asarray(features1), jnp.asarray(features2)
    n, m = features1.shape[0], features2.shape[0]
    size = min(subset_size, n, m)
    kernel = polynomial_kernel(degree=3, gamma=None, coef0=1.0)

    def one_subset(subset_key: PRNGKey) -> Array:
        k1, k2 = jax.random.split(subset_key)
        rows1 = jax.random.choice(k1, n, (size,), replace=False)
        rows2 = jax.random.choice(k2, m, (size,), replace=False)
        return mmd2_unbiased(features1[rows1], features2[rows2], kernel)

    # Vectorised over subsets in chunks: three (s, s) Gram matrices per subset, so all 100 subsets
    # of the default s = 1000 at once would hold 1.2 GB.
    estimates = jax.lax.map(
        one_subset, jax.random.split(key, num_subsets), batch_size=min(num_subsets, 10)
    )
    return jnp.mean(estimates), jnp.std(estimates)


def inception_score(logits: Array, *, num_splits: int = 10) -> tuple[Array, Array]:
    """The Inception Score (Salimans, Goodfellow, Zaremba, Cheung, Radford & Chen 2016, "Improved
    techniques for training GANs"), per split of the samples.

    ``IS = exp(E_x KL(p(y|x) || p(y)))`` with ``p(y) = E_x p(y|x)``, computed in log space from
    ``log p(y|x) = log_softmax(logits)`` and ``log p(y) = logsumexp_x log p(y|x) - log n``. As in
    the original code, the samples are cut in order into ``num_splits`` contiguous splits
    ``[i n // k, (i + 1) n // k)`` and the score is computed on each. It lies in ``[1, C]``: 1 when
    every prediction is the same, ``C`` when they are confident and spread evenly over the ``C``
    classes.

    Args:
      logits: ``(n, C)`` class logits, ``n >= num_splits``.
      num_splits: number of splits ``k >= 1``.

    Returns:
      ``(mean, std)`` over the splits (``std`` with ``ddof = 0``, as in the original code).

    Raises:
      ValueError: when ``logits`` is not ``(n, C)`` or ``num_splits`` is out of range.
    """
    check_int("num_splits", num_splits, minimum=1)
    _check_features("logits", logits, minimum=1)
    n = np.shape(logits)[0]
    if num_splits > n:
        raise ValueError(f"num_splits must be <= the number of samples {n}; got {num_splits}")
    log_p = jax.nn.log_softmax(jnp.asarray(logits), axis=-1)

    def split_score(log_p_split: Array) -> Array:
        log_marginal = jax.nn.logsumexp(log_p_split, axis=0) - jnp.log(log_p_split.shape[0])
        kl = jnp.sum(jnp.exp(log_p_split) * (log_p_split - log_marginal), axis=-1)
        return jnp.exp(jnp.mean(kl))

    # Splits may differ in size by one, so they are a Python loop over static slices.
    scores = jnp.stack(
        [
            split_score(log_p[i * n // num_splits : (i + 1) * n // num_splits])
            for i in range(num_splits)
        ]
    )
    return jnp.mean(scores), jnp.std(scores)
