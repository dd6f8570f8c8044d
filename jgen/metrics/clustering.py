"""Agreement of a clustering with class labels: homogeneity, completeness and V-measure
(Rosenberg & Hirschberg 2007, "V-measure: a conditional entropy-based external cluster
evaluation measure", EMNLP).

Used to score how well a model's latent clusters (mixture components, VQ codes, a classifier's
predictions on samples) recover the classes of the data. Labels are small host arrays, so this is
numpy: the number of distinct labels fixes array sizes, which JAX would need statically.
"""

import numpy as np

from jgen.checks import check_positive


def _entropy(counts: np.ndarray, n: int) -> float:
    """``-sum_i (c_i / n) log(c_i / n)`` over the non-zero counts ``c_i``."""
    p = counts[counts > 0] / n
    return float(-np.sum(p * np.log(p)))


def homogeneity_completeness_v_measure(
    labels_true, labels_pred, *, beta: float = 1.0
) -> tuple[float, float, float]:
    """Homogeneity, completeness and V-measure of a clustering (Rosenberg & Hirschberg 2007).

    From the contingency table ``n_ck`` (examples of class ``c`` in cluster ``k``), with classes
    ``C``, clusters ``K`` and entropies in nats::

        h = 1 - H(C | K) / H(C)          (1 when H(C) = 0)
        c = 1 - H(K | C) / H(K)          (1 when H(K) = 0)
        V_beta = (1 + beta) h c / (beta h + c)   (0 when h = c = 0)

    computed as ``h = I(C; K) / H(C)`` and ``c = I(C; K) / H(K)`` since
    ``H(C | K) = H(C) - I(C; K)``. ``h = 1`` when every cluster holds a single class, ``c = 1`` when
    every class lies in a single cluster; ``beta > 1`` weights completeness more. All three are
    invariant to renaming the labels.

    Args:
      labels_true: ``(n,)`` class labels (integers, or any sortable values).
      labels_pred: ``(n,)`` cluster labels.
      beta: ``> 0``, the weight of completeness relative to homogeneity.

    Returns:
      ``(homogeneity, completeness, v_measure)`` as floats in ``[0, 1]``.

    Raises:
      ValueError: if the labels are not two non-empty 1-D arrays of the same length, or if
        ``beta`` is not positive.
    """
    labels_true, labels_pred = np.asarray(labels_true), np.asarray(labels_pred)
    for name, v in (("labels_true", labels_true), ("labels_pred", labels_pred)):
        if v.ndim != 1 or v.size == 0:
            raise ValueError(f"{name} must be a non-empty array of shape (n,); got shape {v.shape}")
    if labels_true.shape != labels_pred.shape:
        raise ValueError(
            f"labels_true and labels_pred must have the same shape; got {labels_true.shape} "
            f"and {labels_pred.shape}"
        )
    check_positive("beta", beta)

    classes = np.unique(labels_true, return_inverse=True)[1]
    clusters = np.unique(labels_pred, return_inverse=True)[1]
    n = labels_true.size
    table = np.zeros((classes.max() + 1, clusters.max() + 1), np.int64)
    np.add.at(table, (classes, clusters), 1)

    n_c, n_k = table.sum(axis=1), table.sum(axis=0)
    rows, cols = np.nonzero(table)
    joint = table[rows, cols]
    # I(C; K) = sum_ck (n_ck / n) log(n n_ck / (n_c n_k)), in floats: n^2 can overflow int64.
    ratio = joint * float(n) / (n_c[rows].astype(np.float64) * n_k[cols])
    # Rounding can make a zero mutual information (independent labels) slightly negative.
    mutual_information = max(float(np.sum(joint / n * np.log(ratio))), 0.0)
    entropy_c, entropy_k = _entropy(n_c, n), _entropy(n_k, n)

    homogeneity = mutual_information / entropy_c if entropy_c > 0 else 1.0
    completeness = mutual_information / entropy_k if entropy_k > 0 else 1.0
    if homogeneity + completeness == 0:
        return homogeneity, completeness, 0.0
    v_measure = (1 + beta) * homogeneity * completeness / (beta * homogeneity + completeness)
    return homogeneity, completeness, v_measure
