"""Tests for the 2D toy densities: samplers, true log-densities and entropies."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from jgen.data import toy2d

N_SAMPLES = 20_000

# (half-width L, spacing h) of the midpoint grid on [-L, L]² for the normalisation check. h is about
# half the narrowest kernel std (the rule is spectrally accurate there); the checkerboard's cell
# edges fall on its square boundaries, so its rule is exact.
NORMALISATION_GRID = {
    "8gaussians": (6.0, 0.15),
    "checkerboard": (4.5, 0.05),
    "moons": (4.5, 0.1),
    "circles": (4.8, 0.1),
    "swissroll": (4.3, 0.1),
    "2spirals": (4.1, 0.05),
    "pinwheel": (6.0, 0.1),
    "rings": (3.7, 0.04),
    "gaussian": (8.0, 0.25),
    "grid25": (4.5, 0.025),
    "ring8": (2.2, 0.01),
}

# The toys whose density is smooth, for the finite-difference check of the score.
SMOOTH = tuple(name for name in toy2d.NAMES if name != "checkerboard")

EIGHT_CENTRES = (
    4.0
    * np.array(
        [
            (1, 0),
            (-1, 0),
            (0, 1),
            (0, -1),
            (1 / math.sqrt(2), 1 / math.sqrt(2)),
            (1 / math.sqrt(2), -1 / math.sqrt(2)),
            (-1 / math.sqrt(2), 1 / math.sqrt(2)),
            (-1 / math.sqrt(2), -1 / math.sqrt(2)),
        ]
    )
    / 1.414
)
EIGHT_STD = 0.5 / 1.414


def _midpoint_grid(half_width, spacing):
    m = int(round(2 * half_width / spacing))
    axis = -half_width + (np.arange(m) + 0.5) * (2 * half_width / m)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    return grid.astype(np.float32), (2 * half_width / m) ** 2


@pytest.mark.parametrize("name", toy2d.NAMES)
def test_mean_nll_of_samples_matches_entropy(name):
    x = toy2d.sample(name, jax.random.key(0), N_SAMPLES)
    nll = -np.asarray(toy2d.log_prob(name, x), np.float64)
    assert np.all(np.isfinite(nll))
    standard_error = nll.std() / math.sqrt(N_SAMPLES)
    # The floor covers the checkerboard, whose -log p is constant (zero standard error).
    assert abs(nll.mean() - toy2d.entropy(name)) <= 4 * standard_error + 1e-5


@pytest.mark.parametrize("name", toy2d.NAMES)
def test_log_prob_integrates_to_one(name):
    grid, cell = _midpoint_grid(*NORMALISATION_GRID[name])
    logp = np.asarray(toy2d.log_prob(name, grid), np.float64)
    assert np.sum(np.exp(logp)) * cell == pytest.approx(1.0, abs=1e-4)


def test_closed_form_entropies():
    assert toy2d.entropy("gaussian") == pytest.approx(math.log(2 * math.pi * math.e))
    assert toy2d.entropy("checkerboard") == pytest.approx(math.log(32))
    assert toy2d.entropy("grid25") == pytest.approx(
        math.log(25) + math.log(2 * math.pi * math.e * 0.05**2)
    )
    assert toy2d.entropy("ring8") == pytest.approx(
        math.log(8) + math.log(2 * math.pi * math.e * 0.02**2)
    )


@pytest.mark.parametrize("name", toy2d.NAMES)
@pytest.mark.parametrize("n", [1, 7, 1001])
def test_sample_is_deterministic_with_right_shape_and_dtype(name, n):
    a = toy2d.sample(name, jax.random.key(3), n)
    b = toy2d.sample(name, jax.random.key(3), n)
    c = toy2d.sample(name, jax.random.key(4), n)
    assert isinstance(a, np.ndarray)
    assert a.shape == (n, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", toy2d.NAMES)
def test_sample_does_not_depend_on_x64(name):
    a = toy2d.sample(name, jax.random.key(5), 101)
    with jax.enable_x64(True):
        b = toy2d.sample(name, jax.random.key(5), 101)
    np.testing.assert_array_equal(a, b)


def test_rings_put_the_remainder_on_the_innermost_ring():
    # n // 4 on each of the outer three rings (0.375 = 4.7 noise stds from each), the rest inside.
    x = toy2d.sample("rings", jax.random.key(0), 4003)
    radius = np.linalg.norm(x, axis=1)
    counts = [np.sum(np.abs(radius - r) < 0.375) for r in (3.0, 2.25, 1.5, 0.75)]
    assert counts == [1000, 1000, 1000, 1003]


def test_gaussian_score_is_minus_x(x64):
    x = jax.random.normal(jax.random.key(1), (50, 2), jnp.float64)
    score = jax.grad(lambda x: jnp.sum(toy2d.log_prob("gaussian", x)))(x)
    np.testing.assert_allclose(score, -x, rtol=1e-12, atol=1e-12)


def test_8gaussians_score_matches_closed_form(x64):
    x = np.asarray(toy2d.sample("8gaussians", jax.random.key(2), 200), np.float64)
    x = np.concatenate([x, 1.7 * x[:50]])  # also between and beyond the modes
    diff = EIGHT_CENTRES[None] - x[:, None]  # (n, 8, 2)
    log_r = -0.5 * np.sum(diff**2, axis=-1) / EIGHT_STD**2
    resp = np.exp(log_r - logsumexp(log_r, axis=1, keepdims=True))
    expected = np.sum(resp[..., None] * diff, axis=1) / EIGHT_STD**2
    score = jax.grad(lambda x: jnp.sum(toy2d.log_prob("8gaussians", x)))(jnp.asarray(x))
    np.testing.assert_allclose(score, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", SMOOTH)
def test_score_matches_finite_differences(name, x64):
    x = np.asarray(toy2d.sample(name, jax.random.key(6), 8), np.float64)
    score = np.asarray(jax.grad(lambda x: jnp.sum(toy2d.log_prob(name, x)))(jnp.asarray(x)))
    eps = 1e-5
    for axis in range(2):
        step = np.zeros(2)
        step[axis] = eps
        up = np.asarray(toy2d.log_prob(name, jnp.asarray(x + step)))
        down = np.asarray(toy2d.log_prob(name, jnp.asarray(x - step)))
        np.testing.assert_allclose(score[:, axis], (up - down) / (2 * eps), rtol=1e-5, atol=1e-4)


def test_gaussian_log_prob_matches_scipy(x64):
    x = np.random.default_rng(0).normal(size=(100, 2)) * 3
    expected = multivariate_normal(np.zeros(2), np.eye(2)).logpdf(x)
    np.testing.assert_allclose(toy2d.log_prob("gaussian", jnp.asarray(x)), expected, rtol=1e-12)


def test_8gaussians_log_prob_matches_scipy(x64):
    x = np.random.default_rng(1).uniform(-4, 4, size=(200, 2))
    components = [multivariate_normal(c, EIGHT_STD**2 * np.eye(2)).logpdf(x) for c in EIGHT_CENTRES]
    expected = logsumexp(np.stack(components), axis=0) - math.log(8)
    np.testing.assert_allclose(toy2d.log_prob("8gaussians", jnp.asarray(x)), expected, rtol=1e-10)


def test_rings_rice_density_matches_quadrature_over_the_angle(x64):
    # Independent of the Bessel closed form: average the Gaussian over 4096 angles per ring.
    x = np.asarray(toy2d.sample("rings", jax.random.key(7), 50), np.float64)
    x = np.concatenate([x, [[0.0, 0.0], [0.3, -0.1], [4.0, 0.5]]])
    phi = 2 * np.pi * (np.arange(4096) + 0.5) / 4096
    terms = []
    for radius in (3.0, 2.25, 1.5, 0.75):
        circle = radius * np.stack([np.cos(phi), np.sin(phi)], axis=-1)
        d2 = np.sum((x[:, None] - circle[None]) ** 2, axis=-1)
        terms.append(logsumexp(-0.5 * d2 / 0.08**2, axis=1) - math.log(4096))
    expected = logsumexp(np.stack(terms), axis=0) - math.log(4) - math.log(2 * np.pi * 0.08**2)
    np.testing.assert_allclose(toy2d.log_prob("rings", jnp.asarray(x)), expected, rtol=1e-9)


def test_checkerboard_log_prob_on_and_off_support():
    # x = 2 (x1, x2): squares whose integer cells of (x1, x2) have even index sum.
    on = np.array([[-3.0, -3.0], [-1.0, -1.0], [1.0, 1.0], [1.0, -3.0], [-4.0, -4.0]])
    off = np.array([[-3.0, -1.0], [3.0, 1.0], [1.0, 3.0], [5.0, 0.0], [4.0, 4.0], [0.0, -4.5]])
    np.testing.assert_allclose(toy2d.log_prob("checkerboard", on), -math.log(32), rtol=1e-6)
    assert np.all(np.isneginf(np.asarray(toy2d.log_prob("checkerboard", off))))


@pytest.mark.parametrize("name", ["moons", "2spirals", "pinwheel"])
def test_log_prob_under_jit_matches_eager(name):
    x = toy2d.sample(name, jax.random.key(8), 600)
    eager = toy2d.log_prob(name, x)
    jitted = jax.jit(lambda x: toy2d.log_prob(name, x))(x)
    assert eager.shape == (600,) and eager.dtype == jnp.float32
    np.testing.assert_allclose(jitted, eager, rtol=1e-6)


@pytest.mark.parametrize(
    "call", [toy2d.entropy, lambda name: toy2d.log_prob(name, np.zeros((3, 2)))]
)
def test_unknown_name_raises(call):
    with pytest.raises(ValueError, match=r"name must be one of \(.*'moons'.*\); got 'mooons'"):
        call("mooons")
    with pytest.raises(ValueError, match=r"^name must be one of"):
        toy2d.sample("mooons", jax.random.key(0), 10)


@pytest.mark.parametrize("shape", [(5, 3), (10,), (2, 2, 2)])
def test_bad_x_shape_raises(shape):
    message = r"x must have shape \(n, 2\); got " + re.escape(str(shape))
    with pytest.raises(ValueError, match=message):
        toy2d.log_prob("gaussian", np.zeros(shape))


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_n_raises(n):
    with pytest.raises(ValueError, match="n must be a positive int"):
        toy2d.sample("gaussian", jax.random.key(0), n)


# The equal-weight isotropic Gaussian mixtures, with their centres and std written out from DATA.md.
_GRID = np.arange(-4.0, 5.0, 2.0)
_ANGLES = 2 * np.pi * np.arange(8) / 8
MIXTURE_TOYS = {
    "8gaussians": (EIGHT_CENTRES, EIGHT_STD),
    "grid25": (np.array([(a, b) for a in _GRID for b in _GRID]), 0.05),
    "ring8": (2.0 * np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], axis=1), 0.02),
}


@pytest.mark.parametrize("name", list(MIXTURE_TOYS))
def test_mixture_modes_are_the_documented_centres_and_std(name):
    centres, std = toy2d.mixture_modes(name)
    expected_centres, expected_std = MIXTURE_TOYS[name]
    assert isinstance(centres, np.ndarray) and centres.dtype == np.float64
    assert centres.shape == expected_centres.shape and std == pytest.approx(expected_std, 1e-12)
    # The same set of points (the order is the sampler's).
    order = np.lexsort(centres.T)
    np.testing.assert_allclose(
        centres[order], expected_centres[np.lexsort(expected_centres.T)], atol=1e-12
    )
    centres[:] = 0.0  # a fresh copy: the module's constants are untouched
    assert not np.allclose(toy2d.mixture_modes(name)[0], 0.0)


@pytest.mark.parametrize("name", list(MIXTURE_TOYS))
def test_samples_lie_within_4_std_of_their_nearest_mode(name):
    centres, std = toy2d.mixture_modes(name)
    n = 5000
    x = np.asarray(toy2d.sample(name, jax.random.key(9), n), np.float64)
    d2 = np.sum((x[:, None, :] - centres[None]) ** 2, axis=-1)
    radius = np.sqrt(d2.min(axis=1)) / std
    # |x - μ| / σ is Rayleigh in 2D, P(r > t) = exp(-t²/2): e^-8 = 3.4e-4 beyond 4 std, so the
    # share within 4 std is 1 - e^-8 up to 4 binomial standard errors (the bound is one-sided:
    # nothing can exceed 1); e^-18 beyond 6 std, so with n = 5000 none lies there (P < 1e-4).
    p4 = 1 - math.exp(-8.0)
    assert np.mean(radius < 4) > p4 - 4 * math.sqrt(p4 * (1 - p4) / n)
    assert np.all(radius < 6)
    # The std is the right one: the share within 1 std is 1 - e^-1/2 within 4 standard errors.
    p1 = 1 - math.exp(-0.5)
    assert abs(np.mean(radius < 1) - p1) < 4 * math.sqrt(p1 * (1 - p1) / n)
    # Every mode gets its 1/K share (binomial standard error sqrt(p (1 - p) / n)).
    k = len(centres)
    counts = np.bincount(d2.argmin(axis=1), minlength=k)
    assert np.all(np.abs(counts / n - 1 / k) < 4 * math.sqrt((1 / k) * (1 - 1 / k) / n))


@pytest.mark.parametrize("name", ["moons", "gaussian", "mooons"])
def test_mixture_modes_rejects_other_toys(name):
    message = r"name must be one of \('8gaussians', 'grid25', 'ring8'\) .*got '" + name
    with pytest.raises(ValueError, match=message):
        toy2d.mixture_modes(name)
