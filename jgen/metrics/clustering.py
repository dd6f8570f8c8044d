"""Agreement of a clustering with class labels: homogeneity, completeness and V-measure
(Rosenberg & Hirschberg 2007, "V-measure: a conditional entropy-based external cluster
evaluation measure", EMNLP).

Used to score how well a model's latent clusters (mixture components, VQ codes, a classifier's
predictions on samples) recover the classes of the data. Labels are small host arrays, so this is
numpy: the number of distinct labels fixes array sizes, which JAX would need statically.
"""

import numpy as np

from jgen.checks import check_positive


def relabel(name: str, x) -> np.ndarray:
    """Each column of a 2-D array mapped to the labels ``0..num_values - 1`` (sorted values)."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(
            f"{name} must have shape (n, num_columns) with n >= 1; got shape {x.shape}"
        )
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{name} must hold numbers; got dtype {x.dtype}")
    columns = [np.unique(column, return_inverse=True)[1].reshape(-1) for column in x.T]
    return np.stack(columns, axis=1).astype(np.int64)


def mutual_information(a, b) -> np.ndarray:
    """Empirical mutual information, in nats, between every column of ``a`` and of ``b``:

        I(a_i; b_j) = sum_{u, v} p(u, v) log(p(u, v) / (p(u) p(v)))

    with ``p`` the joint and marginal frequencies of the discrete values over the ``n`` rows.

    Args:
      a: ``(n, A)`` discrete values (any numbers; equal values are one symbol).
      b: ``(n, B)`` discrete values.

    Returns:
      ``(A, B)`` float64, ``>= 0``; ``I(b_j; b_j)`` is the entropy of ``b_j``.

    Raises:
      ValueError: if either is not a non-empty 2-D numeric array or their lengths differ.
    """
    a, b = relabel("a", a), relabel("b", b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"a and b must have the same number of rows; got {a.shape[0]} and {b.shape[0]}"
        )
    n = a.shape[0]
    out = np.empty((a.shape[1], b.shape[1]))
    for i, x in enumerate(a.T):
        for j, y in enumerate(b.T):
            rows, cols = x.max() + 1, y.max() + 1
            joint = np.bincount(x * cols + y, minlength=rows * cols).reshape(rows, cols) / n
            outer = joint.sum(axis=1)[:, None] * joint.sum(axis=0)[None, :]
            seen = joint > 0
            out[i, j] = np.sum(joint[seen] * np.log(joint[seen] / outer[seen]))
    # Rounding can make a zero mutual information (independent columns) slightly negative.
    return np.maximum(out, 0.0)


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
      labels_true: ``(n,)`` class labels (integers, or any numbers).
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

    labels = np.stack([labels_true, labels_pred], axis=1)
    information = mutual_information(labels, labels)  # the diagonal holds the entropies
    mutual, entropy_c, entropy_k = information[0, 1], information[0, 0], information[1, 1]

    homogeneity = mutual / entropy_c if entropy_c > 0 else 1.0
    completeness = mutual / entropy_k if entropy_k > 0 else 1.0
    if homogeneity + completeness == 0:
        return homogeneity, completeness, 0.0
    v_measure = (1 + beta) * homogeneity * completeness / (beta * homogeneity + completeness)
    return homogeneity, completeness, v_measure
