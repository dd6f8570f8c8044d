"""Time / noise-level embeddings: the sinusoidal encoding and the learned head against numpy
formulas, Gaussian Fourier features against their definition with frequencies recovered from the
output's phase (fixed, untrained, N(0, scale^2) within sampling error), label checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.nets.embeddings import (
    GaussianFourierFeatures,
    LabelEmbedding,
    TimeEmbedding,
    check_labels,
    fourier_frequencies,
    sinusoidal_embedding,
)
from tests.params import random_params


def numpy_sinusoid(t, dim, max_period):
    half = dim // 2
    freqs = max_period ** (-np.arange(half) / half)
    angles = np.outer(np.asarray(t, np.float64), freqs)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


@pytest.mark.parametrize("dim,max_period", [(2, 10_000.0), (8, 100.0), (64, 10_000.0)])
def test_sinusoidal_embedding_matches_numpy(x64, dim, max_period):
    t = np.array([0.0, 1.0, 7.0, 999.0, -2.5, 0.123])
    out = sinusoidal_embedding(jnp.asarray(t), dim, max_period)
    assert out.shape == (6, dim) and out.dtype == jnp.float64
    np.testing.assert_allclose(out, numpy_sinusoid(t, dim, max_period), rtol=0, atol=1e-12)
    # integer step indices are cast to float, with the same values
    steps = np.arange(5)
    np.testing.assert_allclose(
        sinusoidal_embedding(jnp.asarray(steps), dim, max_period),
        numpy_sinusoid(steps, dim, max_period),
        atol=1e-12,
    )


def min_pairwise_distance(e):
    e = np.asarray(e, np.float64)
    sq = (e**2).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2 * e @ e.T
    np.fill_diagonal(d2, np.inf)
    return float(np.sqrt(max(d2.min(), 0.0)))


def test_distinct_times_give_distinct_embeddings(x64):
    # DDPM's 1000 integer steps and 1000 log-noise levels of a geometric schedule 0.01 .. 50
    steps = jnp.arange(1000.0)
    log_sigmas = jnp.linspace(np.log(0.01), np.log(50.0), 1000)
    # closest pairs are neighbours, |e(t + dt) - e(t)| ~ dt sqrt(sum_k f_k^2): measured 1.17
    # (steps, dt = 1), 0.0103 (log sigma, dt = 0.0085), 2.89 (Fourier features, scale 16)
    assert min_pairwise_distance(sinusoidal_embedding(steps, 32)) > 0.5
    assert min_pairwise_distance(sinusoidal_embedding(log_sigmas, 32)) > 0.005
    fourier = GaussianFourierFeatures(32, scale=16.0)
    assert min_pairwise_distance(fourier.apply({}, log_sigmas)) > 0.5


def test_gaussian_fourier_features_are_fixed_gaussian_frequencies(x64):
    dim, scale = 256, 16.0
    module = GaussianFourierFeatures(dim, scale=scale, seed=3)
    assert module.init(jax.random.key(0), jnp.zeros(2)) == {}  # nothing trainable, no collection
    # recover w from the phase at a small t: atan2(sin, cos) = 2 pi t0 w while |2 pi t0 w| < pi
    t0 = 1e-3
    e0 = np.asarray(module.apply({}, jnp.array([t0])))[0]
    w = np.arctan2(e0[: dim // 2], e0[dim // 2 :]) / (2 * np.pi * t0)
    assert np.max(np.abs(2 * np.pi * t0 * w)) < 3.0  # the recovery was unambiguous
    t = np.array([0.37, -1.3, 2.0])
    angles = 2 * np.pi * np.outer(t, w)
    expected = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
    np.testing.assert_allclose(module.apply({}, jnp.asarray(t)), expected, atol=1e-9)
    np.testing.assert_allclose(w, fourier_frequencies(dim, scale, 3), rtol=1e-9)
    # w ~ N(0, scale^2): 128 draws, mean within 4 SE (scale / sqrt(128)), sample std within 4 SE
    # (about scale / sqrt(2 * 128))
    k = dim // 2
    assert abs(w.mean()) < 4 * scale / np.sqrt(k)
    assert abs(w.std(ddof=1) - scale) < 4 * scale / np.sqrt(2 * k)
    # another seed draws other frequencies
    assert not np.allclose(fourier_frequencies(dim, scale, 4), w)


def numpy_time_embedding(params, t, dim):
    h = numpy_sinusoid(t, dim, 10_000.0)
    p0, p1 = params["dense_0"], params["dense_1"]
    h = h @ np.asarray(p0["kernel"]) + np.asarray(p0["bias"])
    h = h / (1 + np.exp(-h))  # swish
    return h @ np.asarray(p1["kernel"]) + np.asarray(p1["bias"])


def test_time_embedding_matches_numpy(x64):
    module = TimeEmbedding(16, out_dim=24)
    t = jnp.array([0.0, 3.0, 500.0])
    variables = random_params(module, t, seed=1)
    out = module.apply(variables, t)
    assert out.shape == (3, 24)
    np.testing.assert_allclose(
        out, numpy_time_embedding(variables["params"], np.asarray(t), 16), atol=1e-10
    )
    fourier = TimeEmbedding(16, fourier_scale=16.0)
    params = random_params(fourier, t, seed=2)
    assert set(params["params"]) == {"dense_0", "dense_1"}  # the frequencies are not params
    assert fourier.apply(params, t).shape == (3, 16)


def test_label_embedding_null_class():
    module = LabelEmbedding(num_classes=3, features=5)
    y = jnp.array([0, 2, 3])
    variables = module.init(jax.random.key(0), y, 3)
    table = np.asarray(variables["params"]["table"]["embedding"])
    assert table.shape == (4, 5)  # three classes and the null class
    np.testing.assert_array_equal(module.apply(variables, y, 3), table[[0, 2, 3]])
    np.testing.assert_array_equal(module.apply(variables, None, 2), table[[3, 3]])


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: sinusoidal_embedding(jnp.zeros(3), 5), "dim must be an even integer >= 2"),
        (lambda: sinusoidal_embedding(jnp.zeros(3), 0), "dim must be an even integer >= 2"),
        (lambda: sinusoidal_embedding(jnp.zeros((3, 1)), 4), r"t must have shape \(n,\)"),
        (lambda: sinusoidal_embedding(jnp.float32(1.0), 4), r"t must have shape \(n,\)"),
        (lambda: sinusoidal_embedding(jnp.zeros(3, bool), 4), "t must have a real"),
        (lambda: sinusoidal_embedding(jnp.zeros(3), 4, max_period=0.0), "max_period must be"),
        (lambda: fourier_frequencies(4, -1.0), "scale must be"),
        (lambda: GaussianFourierFeatures(3).apply({}, jnp.zeros(2)), "dim must be an even"),
        (lambda: check_labels(jnp.array([0, 4]), 2, 3), r"y must lie in \[0, 3\]"),
        (lambda: check_labels(jnp.array([0, -1]), 2, 3), r"y must lie in \[0, 3\]"),
        (lambda: check_labels(jnp.array([0.0, 1.0]), 2, 3), "y must be integer labels"),
        (lambda: check_labels(jnp.array([0, 1, 2]), 2, 3), r"shape \(2,\)"),
        (lambda: check_labels(jnp.array([0, 1]), 2, 0), "y must be None"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
