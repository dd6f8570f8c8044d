"""Supervised disentanglement metrics: the beta-VAE metric, the FactorVAE metric and the mutual
information gap (MIG).

Each scores a representation against the ground-truth generative factors of a dataset that holds
every factor combination (e.g. :mod:`jgen.data.shapes`, or dSprites). A representation is given
by its codes ``(n, num_latents)`` for the dataset's ``n`` images, for a VAE the mean of
``q(z | x)``; :func:`encode_dataset` computes them once with any (jitted) ``encode`` function.
Because the representation of an image is deterministic, drawing images "with factor ``k`` fixed"
reduces to drawing dataset indices whose factor ``k`` agrees, which is how the protocols below are
implemented; drawing uniformly from the examples that share an anchor's value of factor ``k``
equals the papers' "sample the other factors afresh" when the dataset is the full grid.

The defaults are those of disentanglement_lib (Locatello et al. 2019, "Challenging common
assumptions in the unsupervised learning of disentangled representations"): batches of 64,
10000 training and 5000 evaluation points, 20 histogram bins for MIG, latents pruned below a
standard deviation of 0.05 for the FactorVAE metric. On 6144 codes the default beta-VAE and
FactorVAE metrics take about a second on one CPU core; tests use fewer points.

The factors are host arrays ``(n, num_factors)`` of discrete values (any numbers: each column is
relabelled ``0..num_values - 1``); every factor must take at least two values. The metrics run on
the host in numpy (and scikit-learn's logistic regression, which is part of the beta-VAE metric's
definition): they draw data-dependent index sets that JAX would need static.
"""

from collections.abc import Callable

import jax
import numpy as np
import sklearn.linear_model

from jgen.checks import check_finite, check_int, check_positive
from jgen.metrics.clustering import mutual_information, relabel
from jgen.types import Array, PRNGKey

Seed = PRNGKey | np.random.Generator

# Points handled at once when gathering (points, batch, latents) code arrays: bounds memory.
_CHUNK = 1024


def _host_rng(key: Seed) -> np.random.Generator:
    """A numpy Generator seeded from a JAX key, or ``key`` itself when it is a Generator."""
    if isinstance(key, np.random.Generator):
        return key
    try:
        data = np.asarray(jax.random.key_data(key))
    except (TypeError, ValueError):
        raise ValueError(f"key must be a JAX PRNG key or a numpy Generator; got {key!r}") from None
    return np.random.default_rng(data.astype(np.uint64).ravel())


def _check_data(codes, factors) -> tuple[np.ndarray, np.ndarray]:
    """``(codes (n, L) float64, factor labels (n, K) int64)`` after checking both."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[0] < 2 or codes.shape[1] < 1:
        raise ValueError(
            f"codes must have shape (n, num_latents) with n >= 2; got shape {codes.shape}"
        )
    if not np.issubdtype(codes.dtype, np.floating):
        raise ValueError(f"codes must have a floating-point dtype; got dtype {codes.dtype}")
    check_finite("codes", codes)
    labels = relabel("factors", factors)
    if labels.shape[0] != codes.shape[0]:
        raise ValueError(
            f"factors must have one row per code: expected {codes.shape[0]} rows; got shape "
            f"{np.shape(factors)}"
        )
    constant = np.flatnonzero(labels.max(axis=0) == 0)
    if constant.size:
        raise ValueError(
            f"every factor must take at least 2 values; factors[:, {constant[0]}] is constant"
        )
    return codes.astype(np.float64), labels


def _partners(rng: np.random.Generator, labels: np.ndarray, k: np.ndarray, anchors: np.ndarray):
    """For each ``i``, a uniformly drawn example ``j`` with
    ``labels[j, k[i]] == labels[anchors[i], k[i]]`` (the anchor itself included).

    Args:
      rng: the generator.
      labels: ``(n, K)`` factor labels.
      k: ``(m,)`` the factor to share.
      anchors: ``(m,)`` example indices.

    Returns:
      ``(m,)`` example indices.
    """
    out = np.empty_like(anchors)
    for factor in range(labels.shape[1]):
        rows = np.flatnonzero(k == factor)
        if rows.size == 0:
            continue
        order = np.argsort(labels[:, factor], kind="stable")
        values = labels[anchors[rows], factor]
        lo = np.searchsorted(labels[order, factor], values, side="left")
        hi = np.searchsorted(labels[order, factor], values, side="right")
        out[rows] = order[rng.integers(lo, hi)]
    return out


def encode_dataset(
    encode: Callable[[Array], Array], images, *, batch_size: int = 256
) -> np.ndarray:
    """Applies a representation function to a dataset in batches: ``codes = encode(images)``.

    Every batch has ``batch_size`` rows (the last is padded by repeating its final image, and the
    padding dropped), so a jitted ``encode`` compiles once.

    Args:
      encode: ``(b, *event) -> (b, num_latents)``, e.g. the mean of a VAE's ``q(z | x)``.
      images: ``(n, *event)`` host or device array.
      batch_size: images per call, ``>= 1``.

    Returns:
      ``(n, num_latents)`` numpy codes.

    Raises:
      ValueError: if ``images`` is empty, ``batch_size`` is not a positive integer, ``encode``
        returns an array of the wrong shape, or the codes are not finite.
    """
    check_int("batch_size", batch_size)
    n = np.shape(images)[0] if np.ndim(images) else 0
    if n == 0:
        raise ValueError(
            f"images must be a non-empty batch (n, *event); got shape {np.shape(images)}"
        )
    codes = []
    for start in range(0, n, batch_size):
        batch = images[start : start + batch_size]
        size = batch.shape[0]
        if size < batch_size:
            pad = np.repeat(np.asarray(batch[-1:]), batch_size - size, axis=0)
            batch = np.concatenate([np.asarray(batch), pad])
        out = np.asarray(encode(batch))
        if out.ndim != 2 or out.shape[0] != batch_size:
            raise ValueError(
                f"encode must map a batch of {batch_size} images to shape ({batch_size}, "
                f"num_latents); got shape {out.shape}"
            )
        codes.append(out[:size])
    codes = np.concatenate(codes)
    check_finite("codes", codes)
    return codes


def beta_vae_score(
    key: Seed,
    codes,
    factors,
    *,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
) -> float:
    """The beta-VAE disentanglement metric (Higgins et al. 2017, "beta-VAE: Learning basic visual
    concepts with a constrained variational framework", ICLR, Sec. 3).

    One point: draw a factor ``k`` uniformly; draw ``batch_size`` pairs of examples ``(x1, x2)``
    that share the value of factor ``k`` (``x1`` uniform over the data, ``x2`` uniform among the
    examples with the same value of ``k``, so the other factors are resampled); the point's
    features are ``mean_l |z(x1_l) - z(x2_l)|`` (``num_latents`` values) and its label is ``k``.
    A linear classifier (multinomial logistic regression, scikit-learn's defaults as in
    disentanglement_lib) is fitted on ``num_train`` points; the score is its accuracy on
    ``num_eval`` fresh points. A disentangled code has one latent that stays put when ``k`` is
    fixed, so the classifier reads ``k`` off the smallest feature; chance is ``1 / num_factors``.

    Args:
      key: a JAX PRNG key, or a numpy Generator (advanced in place).
      codes: ``(n, num_latents)`` floating-point codes of the dataset's examples.
      factors: ``(n, num_factors)`` discrete factor values of the same examples.
      batch_size: pairs averaged per point, ``>= 1`` (paper: 64).
      num_train: points to fit the classifier, ``>= 1`` (10000).
      num_eval: points to score it, ``>= 1`` (5000).

    Returns:
      The held-out accuracy in ``[0, 1]``.

    Raises:
      ValueError: on malformed codes or factors, a constant factor, or counts below 1.
    """
    check_int("batch_size", batch_size)
    check_int("num_train", num_train)
    check_int("num_eval", num_eval)
    codes, labels = _check_data(codes, factors)
    rng = _host_rng(key)
    n, num_factors = labels.shape

    def points(num_points):
        k = rng.integers(num_factors, size=num_points)
        first = rng.integers(n, size=(num_points, batch_size))
        second = _partners(rng, labels, np.repeat(k, batch_size), first.reshape(-1))
        second = second.reshape(num_points, batch_size)
        features = np.concatenate(
            [
                np.mean(np.abs(codes[first[i : i + _CHUNK]] - codes[second[i : i + _CHUNK]]), 1)
                for i in range(0, num_points, _CHUNK)
            ]
        )
        return features, k

    train_x, train_y = points(num_train)
    eval_x, eval_y = points(num_eval)
    # scikit-learn's default model (multinomial, L2 penalty with C = 1), fitted with Newton-CG
    # rather than L-BFGS: on these unstandardised features L-BFGS often stops at its default 100
    # iterations before converging, while Newton-CG converges in about ten.
    model = sklearn.linear_model.LogisticRegression(solver="newton-cg", max_iter=1000)
    model.fit(train_x, train_y)
    return float(np.mean(model.predict(eval_x) == eval_y))


def factor_vae_score(
    key: Seed,
    codes,
    factors,
    *,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    prune_threshold: float = 0.05,
) -> float:
    """The FactorVAE disentanglement metric (Kim & Mnih 2018, "Disentangling by factorising",
    ICML, Sec. 4).

    Each latent is divided by its standard deviation ``s_j`` over the dataset; latents with
    ``s_j < prune_threshold`` have collapsed to the prior and are dropped. One vote: draw a factor
    ``k`` uniformly and one of its values (that of a uniformly drawn example), draw
    ``batch_size`` examples with that value, compute the variance of each normalised latent over
    the batch; the latent ``d = argmin_j Var(z_j) / s_j^2`` votes for ``k``. The classifier maps
    each latent to the factor that got most of its ``num_train`` training votes; the score is its
    accuracy on ``num_eval`` fresh votes. Chance is ``1 / num_factors``.

    Args:
      key: a JAX PRNG key, or a numpy Generator (advanced in place).
      codes: ``(n, num_latents)`` floating-point codes of the dataset's examples.
      factors: ``(n, num_factors)`` discrete factor values of the same examples.
      batch_size: examples per vote, ``>= 2`` (paper and disentanglement_lib: 64).
      num_train: training votes, ``>= 1`` (10000).
      num_eval: evaluation votes, ``>= 1`` (5000).
      prune_threshold: ``>= 0``; the minimum standard deviation of an active latent, in the
        codes' units (0.05 in disentanglement_lib's study, for codes on the scale of a unit
        Gaussian prior).

    Returns:
      The held-out accuracy in ``[0, 1]``; 0 when every latent is pruned (as disentanglement_lib).

    Raises:
      ValueError: on malformed codes or factors, a constant factor, or out-of-range arguments.
    """
    check_int("batch_size", batch_size, minimum=2)
    check_int("num_train", num_train)
    check_int("num_eval", num_eval)
    check_positive("prune_threshold", prune_threshold, allow_zero=True)
    codes, labels = _check_data(codes, factors)
    rng = _host_rng(key)
    n, num_factors = labels.shape

    scale = np.std(codes, axis=0, ddof=1)
    active = scale >= prune_threshold
    if not active.any():
        return 0.0
    normalised = codes[:, active] / scale[active]

    def votes(num_votes):
        k = rng.integers(num_factors, size=num_votes)
        anchors = rng.integers(n, size=num_votes)
        members = _partners(
            rng, labels, np.repeat(k, batch_size), np.repeat(anchors, batch_size)
        ).reshape(num_votes, batch_size)
        latent = np.concatenate(
            [
                np.argmin(np.var(normalised[members[i : i + _CHUNK]], axis=1, ddof=1), axis=1)
                for i in range(0, num_votes, _CHUNK)
            ]
        )
        return latent, k

    train_latent, train_k = votes(num_train)
    table = np.zeros((normalised.shape[1], num_factors), np.int64)
    np.add.at(table, (train_latent, train_k), 1)
    classifier = np.argmax(table, axis=1)
    eval_latent, eval_k = votes(num_eval)
    return float(np.mean(classifier[eval_latent] == eval_k))


def discretize(codes, num_bins: int = 20) -> np.ndarray:
    """Histogram discretisation of each latent into ``num_bins`` equal-width bins spanning its
    range over the data (disentanglement_lib's ``histogram_discretize``, used by MIG).

    Args:
      codes: ``(n, num_latents)`` floating-point values.
      num_bins: ``>= 1``.

    Returns:
      ``(n, num_latents)`` int64 bin indices in ``[0, num_bins)``; the maximum falls in the last
      bin, a constant latent in a single bin.

    Raises:
      ValueError: if ``codes`` is not a 2-D floating-point array or ``num_bins < 1``.
    """
    check_int("num_bins", num_bins)
    codes = np.asarray(codes)
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.floating):
        raise ValueError(
            f"codes must be a floating-point array of shape (n, num_latents); got shape "
            f"{codes.shape} and dtype {codes.dtype}"
        )
    columns = [
        np.digitize(column, np.histogram_bin_edges(column, num_bins)[1:-1]) for column in codes.T
    ]
    return np.stack(columns, axis=1).astype(np.int64) if columns else codes.astype(np.int64)


def mig(codes, factors, *, num_bins: int = 20) -> tuple[float, np.ndarray]:
    """The mutual information gap (Chen, Li, Grosse & Duvenaud 2018, "Isolating sources of
    disentanglement in variational autoencoders", NeurIPS, Sec. 4.1):

        MIG = 1/K sum_k (I(z_(1); v_k) - I(z_(2); v_k)) / H(v_k)

    where ``z_(1)``, ``z_(2)`` are the latents with the largest and second-largest mutual
    information with factor ``v_k``. As in disentanglement_lib, the latents are discretised into
    ``num_bins`` equal-width bins (:func:`discretize`) and the information is the empirical
    :func:`mutual_information` over the given examples (the paper integrates over ``q(z | x)``
    instead). Each gap lies in ``[0, 1]``: 1 when one latent determines the factor and no other
    latent carries information about it. Deterministic: it uses every row given.

    Args:
      codes: ``(n, num_latents)`` floating-point codes, ``num_latents >= 2``.
      factors: ``(n, num_factors)`` discrete factor values of the same examples.
      num_bins: bins per latent, ``>= 1`` (20 in disentanglement_lib).

    Returns:
      ``(mig, gaps)``: the mean gap as a float and the ``(num_factors,)`` normalised gaps.

    Raises:
      ValueError: on malformed codes or factors, a constant factor, fewer than two latents, or
        ``num_bins < 1``.
    """
    check_int("num_bins", num_bins)
    codes, labels = _check_data(codes, factors)
    if codes.shape[1] < 2:
        raise ValueError(f"codes must have at least 2 latents for a gap; got shape {codes.shape}")
    information = mutual_information(discretize(codes, num_bins), labels)
    entropy = np.diag(mutual_information(labels, labels))
    top = -np.sort(-information, axis=0)
    gaps = (top[0] - top[1]) / entropy
    return float(np.mean(gaps)), gaps


def disentanglement_scores(
    key: Seed, codes, factors, *, num_train: int = 10000, num_eval: int = 5000
) -> dict[str, float]:
    """All three metrics on one set of codes, with their other settings at the defaults.

    Args:
      key: a JAX PRNG key, or a numpy Generator (advanced in place).
      codes: ``(n, num_latents)`` floating-point codes of the dataset's examples.
      factors: ``(n, num_factors)`` discrete factor values of the same examples.
      num_train: training points (votes) of the beta-VAE (FactorVAE) metric.
      num_eval: evaluation points (votes) of both.

    Returns:
      ``{"beta_vae": ..., "factor_vae": ..., "mig": ...}``.

    Raises:
      ValueError: as the metrics.
    """
    rng = _host_rng(key)
    return {
        "beta_vae": beta_vae_score(rng, codes, factors, num_train=num_train, num_eval=num_eval),
        "factor_vae": factor_vae_score(rng, codes, factors, num_train=num_train, num_eval=num_eval),
        "mig": mig(codes, factors)[0],
    }
