"""Mode coverage against exact samples of the toy mixtures, brute force and scipy's KL."""

import functools
import math

import jax
import numpy as np
import pytest
from scipy.stats import chi2, entropy, ncx2

from jgen.data import toy2d
from jgen.metrics.coverage import mode_coverage

# P(|x - μ| <= 3σ) for a 2D isotropic Gaussian: |x - μ|²/σ² is chi-square with 2 degrees of
# freedom, whose distribution function at 9 is 1 - exp(-9/2).
P_WITHIN_3_STD = 1.0 - math.exp(-4.5)


def _kl_to_uniform(counts):
    """KL(counts / sum || uniform) by scipy (``entropy(p, q)`` is ``KL(p || q)``)."""
    return entropy(counts, np.ones(len(counts)))


@pytest.mark.parametrize("name", ["8gaussians", "grid25", "ring8"])
def test_exact_samples_cover_every_mode(name):
    centres, std = toy2d.mixture_modes(name)
    n = 10_000
    out = mode_coverage(toy2d.sample(name, jax.random.key(0), n), centres, std)
    k = len(centres)
    # The exact share: the 3-std disks are disjoint (centres >= 6.1 stds apart), so it is
    # (1/K) Σ_k Σ_j P(x ~ N(μ_j, σ² I) within 3σ of μ_k), a noncentral chi-square CDF at 9 with
    # 2 degrees of freedom and noncentrality |μ_j - μ_k|²/σ². The j = k terms give
    # 1 - exp(-9/2); the neighbours add 1.2e-3 on 8gaussians (6.1 stds apart), nothing on grid25
    # and ring8 (40 and 77 stds apart).
    noncentrality = np.sum((centres[:, None] - centres[None]) ** 2, axis=-1) / std**2
    expected = ncx2.cdf(9.0, 2, noncentrality).sum() / k
    if name != "8gaussians":
        assert expected == pytest.approx(P_WITHIN_3_STD, abs=1e-12)
    # Binomial standard error of a share p: sqrt(p (1 - p) / n).
    se = math.sqrt(expected * (1 - expected) / n)
    assert abs(float(out["high_quality"]) - expected) < 4 * se
    assert int(out["modes_covered"]) == k
    counts = np.asarray(out["counts"])
    assert counts.sum() == round(float(out["high_quality"]) * n)
    np.testing.assert_allclose(out["reverse_kl"], _kl_to_uniform(counts), rtol=1e-5)
    # 2 · n_hq · KL(q || u) is the G statistic of the uniform multinomial: chi-square with K - 1
    # degrees of freedom for exact samples; above its 0.999 quantile with probability 0.001.
    assert 2 * counts.sum() * float(out["reverse_kl"]) < chi2.ppf(0.999, k - 1)


def test_samples_from_three_modes_cover_three():
    centres, std = toy2d.mixture_modes("grid25")
    rng = np.random.default_rng(1)
    chosen = [0, 7, 19]
    x = centres[np.repeat(chosen, 1000)] + std * rng.normal(size=(3000, 2))
    out = mode_coverage(x, centres, std)
    counts = np.asarray(out["counts"])
    assert int(out["modes_covered"]) == 3
    assert np.all(counts[chosen] > 0) and counts.sum() == counts[chosen].sum()
    np.testing.assert_allclose(out["reverse_kl"], _kl_to_uniform(counts), rtol=1e-5)
    # Near log(25 / 3) for thirds: KL = log K - H(q), and H(q) <= log 3 with equality at thirds.
    assert 0 <= float(out["reverse_kl"]) - math.log(25 / 3) < 0.01


def test_samples_far_from_every_mode_have_no_quality():
    centres, std = toy2d.mixture_modes("grid25")
    rng = np.random.default_rng(2)
    # Odd-integer cells between the grid's even points, jittered by at most 0.4: every point is
    # at least 0.6·√2 = 0.85 = 17 stds from every centre.
    x = rng.choice([-5.0, -3.0, -1.0, 1.0, 3.0, 5.0], size=(500, 2)) + rng.uniform(
        -0.4, 0.4, size=(500, 2)
    )
    out = mode_coverage(x, centres, std)
    assert float(out["high_quality"]) == 0.0
    assert int(out["modes_covered"]) == 0
    assert not np.asarray(out["counts"]).any()
    assert np.isnan(float(out["reverse_kl"]))


def _brute_force_counts(x, centres, radius):
    counts = np.zeros(len(centres), int)
    for point in x:
        distances = [math.dist(point, c) for c in centres]
        nearest = int(np.argmin(distances))
        if distances[nearest] <= radius:
            counts[nearest] += 1
    return counts


def test_counts_match_brute_force(x64):
    centres, std = toy2d.mixture_modes("ring8")
    rng = np.random.default_rng(3)
    # Blurred by 2.5 stds (about a third of the points fall beyond 3 stds), plus uniform clutter.
    near = centres[rng.integers(0, 8, size=700)] + 2.5 * std * rng.normal(size=(700, 2))
    x = np.concatenate([near, rng.uniform(-3, 3, size=(300, 2))])
    for num_stds in (1.0, 3.0, 5.0):
        out = mode_coverage(x, centres, std, num_stds=num_stds, min_share=0.5)
        counts = _brute_force_counts(x, centres, num_stds * std)
        assert 0 < counts.sum() < len(x)
        np.testing.assert_array_equal(out["counts"], counts)
        assert float(out["high_quality"]) == pytest.approx(counts.sum() / len(x), rel=1e-12)
        assert int(out["modes_covered"]) == np.sum(counts >= 0.5 * len(x) / 8)
        np.testing.assert_allclose(out["reverse_kl"], _kl_to_uniform(counts), rtol=1e-12)


def test_min_share_counts_a_mode_from_the_threshold_on():
    centres, std = toy2d.mixture_modes("grid25")
    # 2500 samples as in PacGAN: a mode is covered from 0.2 · 2500 / 25 = 20 samples on.
    for first, covered in ((19, 24), (20, 25)):
        per_mode = np.full(25, (2500 - first) // 24)
        per_mode[0] = first
        per_mode[1] += 2500 - per_mode.sum()
        x = np.repeat(centres, per_mode, axis=0)
        out = mode_coverage(x, centres, std)
        assert int(out["modes_covered"]) == covered
    # min_share = 0: one high-quality sample is enough, none is not.
    x = np.concatenate([centres[:3], centres[3:4] + 10 * std])
    assert int(mode_coverage(x, centres, std, min_share=0.0)["modes_covered"]) == 3


def test_works_under_jit():
    centres, std = toy2d.mixture_modes("ring8")
    x = toy2d.sample("ring8", jax.random.key(4), 400)
    coverage = functools.partial(mode_coverage, centres=centres, std=std)
    eager, jitted = coverage(x), jax.jit(coverage)(x)
    for key in ("counts", "modes_covered"):
        np.testing.assert_array_equal(jitted[key], eager[key])
    for key in ("high_quality", "reverse_kl"):
        np.testing.assert_allclose(jitted[key], eager[key], rtol=1e-6)


def test_bad_arguments():
    centres, std = toy2d.mixture_modes("grid25")
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match=r"samples must have shape \(n, D\) .*got shape \(10,\)"):
        mode_coverage(np.zeros(10), centres, std)
    with pytest.raises(ValueError, match=r"centres must have shape \(K, D\) .*got shape \(0, 2\)"):
        mode_coverage(x, np.zeros((0, 2)), std)
    with pytest.raises(ValueError, match=r"same dimension D; got samples of shape \(10, 3\)"):
        mode_coverage(np.zeros((10, 3)), centres, std)
    with pytest.raises(ValueError, match="std must be finite and > 0; got 0.0"):
        mode_coverage(x, centres, 0.0)
    with pytest.raises(ValueError, match="num_stds must be finite and > 0"):
        mode_coverage(x, centres, std, num_stds=-3.0)
    with pytest.raises(ValueError, match="min_share must be finite and >= 0"):
        mode_coverage(x, centres, std, min_share=-0.1)
