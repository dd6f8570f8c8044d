"""Homogeneity, completeness and V-measure against scikit-learn and the closed-form edge cases."""

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import homogeneity_completeness_v_measure as sklearn_hcv

from jgen.metrics.clustering import homogeneity_completeness_v_measure as hcv


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("beta", [1.0, 0.5, 3.0])
def test_matches_sklearn_on_random_labelings(seed, beta):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    labels_true = rng.integers(0, rng.integers(1, 8), size=n)
    # Clusters partly follow the classes, so h and c are neither 0 nor 1.
    labels_pred = np.where(rng.uniform(size=n) < 0.6, labels_true, rng.integers(0, 6, size=n))
    labels_pred = labels_pred * 7 + 3  # arbitrary, non-contiguous cluster ids
    np.testing.assert_allclose(
        hcv(labels_true, labels_pred, beta=beta),
        sklearn_hcv(labels_true, labels_pred, beta=beta),
        rtol=1e-12,
        atol=1e-15,
    )


def test_beta_changes_the_weighting():
    labels_true = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    labels_pred = np.array([0, 0, 1, 2, 2, 3, 4, 4, 4])  # over-segmented: h = 1 > c
    h, c, v1 = hcv(labels_true, labels_pred)
    assert h == pytest.approx(1.0) and c < 1.0
    _, _, v3 = hcv(labels_true, labels_pred, beta=3.0)
    np.testing.assert_allclose(v3, 4 * h * c / (3 * h + c), rtol=1e-14)
    assert v3 < v1  # weighting completeness more lowers V for an incomplete clustering
    np.testing.assert_allclose(
        (h, c, v3), sklearn_hcv(labels_true, labels_pred, beta=3.0), rtol=1e-12
    )


def test_perfect_clustering_under_renaming():
    labels_true = jnp.array([0, 0, 1, 1, 2, 2, 2])  # JAX arrays are accepted
    assert hcv(labels_true, 5 - 2 * labels_true) == pytest.approx((1.0, 1.0, 1.0), abs=1e-15)


def test_single_cluster_and_single_class():
    labels = np.array([0, 1, 1, 2, 2, 2])
    # One cluster: complete (c = 1) but with no information about the classes (h = 0).
    ones = np.ones_like(labels)
    assert hcv(labels, ones) == (0.0, 1.0, 0.0) == sklearn_hcv(labels, ones)
    # One class split into clusters: homogeneous but not complete.
    assert hcv(ones, labels) == (1.0, 0.0, 0.0) == sklearn_hcv(ones, labels)
    # Independent labelings (every class spread evenly over every cluster): I(C; K) = 0.
    assert hcv([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx((0.0, 0.0, 0.0), abs=1e-15)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"labels_true and labels_pred must have the same shape"):
        hcv(np.zeros(3, int), np.zeros(4, int))
    with pytest.raises(ValueError, match=r"labels_pred must be a non-empty array of shape \(n,\)"):
        hcv(np.zeros(4, int), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match=r"labels_true must be a non-empty .* got shape \(0,\)"):
        hcv(np.zeros(0, int), np.zeros(0, int))
    with pytest.raises(ValueError, match="beta must be finite and > 0; got 0.0"):
        hcv(np.zeros(3, int), np.zeros(3, int), beta=0.0)
