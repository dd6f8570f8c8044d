"""2D toy densities: samplers, true log-densities and entropies.

The generators follow the conventions of the FFJORD toy suite (Grathwohl et al. 2019, "FFJORD:
Free-form Continuous Dynamics for Scalable Reversible Generative Models"), plus the two
mode-coverage benchmarks of the GAN literature: ``grid25`` (VEEGAN, Srivastava et al. 2017; PacGAN,
Lin et al. 2018) and ``ring8`` (Unrolled GAN, Metz et al. 2017). The exact definitions are in
``DATA.md`` ("2D toy densities").

For every toy the module exposes three things:

- :func:`sample` draws ``n`` points, deterministically given a JAX key;
- :func:`log_prob` is the true normalised log-density as a differentiable ``jnp`` function, so
  ``jax.grad`` of it gives the true score. It is closed form where one exists (``gaussian``,
  ``8gaussians``, ``checkerboard``, ``grid25``, ``ring8``, and, through the Rice density,
  ``circles`` and ``rings``); otherwise it is a quadrature along the toy's 1-D generating curve
  (``moons``, ``swissroll``, ``2spirals``) or an exact change of variables (``pinwheel``);
- :func:`entropy` is the differential entropy ``-∫ p log p``, computed from the density alone (never
  from samples): the number a trained model's test NLL is compared with.

Conventions: points are ``(n, 2)`` arrays, log-densities are in nats.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import i0e, log_ndtr
from sklearn.datasets import make_circles, make_moons, make_swiss_roll

NAMES: tuple[str, ...] = (
    "8gaussians",
    "checkerboard",
    "moons",
    "circles",
    "swissroll",
    "2spirals",
    "pinwheel",
    "rings",
    "gaussian",
    "grid25",
    "ring8",
)

_LOG_2PI = math.log(2.0 * math.pi)

# Points per chunk when a log-density materialises a (points, nodes) matrix: bounds memory to a few
# tens of MB whatever n is.
_CHUNK = 512


# ---------------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------------


def _chunked(fn, x):
    """Applies ``fn: (B, 2) -> (B,)`` to ``x: (n, 2)`` in chunks of B points, in bounded memory."""
    n = x.shape[0]
    n_chunks = -(-n // _CHUNK)
    padded = jnp.pad(x, ((0, n_chunks * _CHUNK - n), (0, 0)))
    out = jax.lax.map(fn, padded.reshape(n_chunks, _CHUNK, 2))
    return out.reshape(-1)[:n]


def _gaussian_mixture_log_prob(x, centres, log_weights, std):
    """log Σ_k w_k N(x; μ_k, std² I) for an isotropic mixture; x (n, 2), centres (K, 2)."""
    c0, c1 = jnp.asarray(centres.T, x.dtype)
    log_weights = jnp.asarray(log_weights, x.dtype)
    log_norm = -_LOG_2PI - 2.0 * math.log(std)

    def chunk(points):
        # Coordinates as separate (B, K) planes: a trailing axis of size 2 vectorises poorly; and
        # squared differences rather than |x|² - 2x·μ + |μ|², which cancels in float32.
        d2 = (points[:, :1] - c0) ** 2 + (points[:, 1:] - c1) ** 2
        return jax.nn.logsumexp(log_weights - 0.5 * d2 / std**2, axis=-1) + log_norm

    return _chunked(chunk, x)


def _curve_nodes(curve, cdf, t_lo, t_hi, std):
    """Quadrature nodes along a generating curve, equally spaced in arc length, graded at its ends.

    The curve ``c(t)``, ``t ∈ [t_lo, t_hi]`` with distribution function ``cdf(t)``, is cut into
    pieces of arc length ``std/8``; each piece is represented by the point at its arc-length
    midpoint, weighted by the exact probability of its ``t``-interval, so the weights sum to one.
    Along the interior of the curve the integrand is smooth and the midpoint rule converges
    spectrally (errors ~1e-8 nats). At an end the integrand is cut off, which makes the rule only
    second order there, and beyond the end it decays over ``std²/D`` at distance ``D``: the
    ``2·std`` of arc next to each end is therefore cut 8 times finer (``std/64``), which keeps the
    error below ~3e-4 nats even in the tails past the ends.

    Args:
        curve: ``t (K,) -> points (K, 2)`` in numpy.
        cdf: ``t (K,) -> P(T ≤ t) (K,)`` in numpy, ``cdf(t_lo) = 0``, ``cdf(t_hi) = 1``.
        t_lo: Start of the parameter range.
        t_hi: End of the parameter range.
        std: The kernel std, which sets the node spacing.

    Returns:
        ``(centres (M, 2), log_weights (M,))`` as float64 numpy arrays.
    """
    t = np.linspace(t_lo, t_hi, 2**16 + 1)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve(t), axis=0), axis=1))])
    length, end = arc[-1], 2.0 * std

    def cut(lo, hi, spacing):
        return np.linspace(lo, hi, max(1, int(np.ceil((hi - lo) / spacing))) + 1)[1:]

    s_edges = np.concatenate(
        [
            [0.0],
            cut(0.0, end, std / 64.0),
            cut(end, length - end, std / 8.0),
            cut(length - end, length, std / 64.0),
        ]
    )
    edges = np.interp(s_edges, arc, t)
    mids = np.interp(0.5 * (s_edges[:-1] + s_edges[1:]), arc, t)
    return curve(mids), np.log(np.diff(cdf(edges)))


def _rice_mixture_log_prob(x, radii, log_weights, std):
    """log Σ_k w_k p_k(x), p_k the uniform-angle circle of radius R_k blurred by N(0, std² I).

    Averaging the Gaussian over the angle gives the Rice density, in 2-D
    ``p_k(x) = exp(-(r² + R_k²) / 2σ²) I₀(r R_k / σ²) / (2πσ²)`` with ``r = |x|``; written with the
    scaled Bessel function ``i0e`` it is ``exp(-(r - R_k)² / 2σ²) i0e(r R_k / σ²) / (2πσ²)``, which
    neither overflows nor cancels.
    """
    radii = jnp.asarray(radii, x.dtype)
    log_weights = jnp.asarray(log_weights, x.dtype)
    r2 = jnp.sum(x**2, axis=-1)
    # |x| is not differentiable at 0, but the density is even in r there: a zero gradient is exact.
    positive = r2 > 0
    r = jnp.where(positive, jnp.sqrt(jnp.where(positive, r2, 1.0)), 0.0)[:, None]
    log_terms = (
        log_weights
        - 0.5 * ((r - radii) / std) ** 2
        + jnp.log(i0e(r * radii / std**2))
        - _LOG_2PI
        - 2.0 * math.log(std)
    )
    return jax.nn.logsumexp(log_terms, axis=-1)


def _seed(key):
    """An int seed for scikit-learn, derived deterministically from a JAX key."""
    return int(jax.random.randint(key, (), 0, 2**31 - 1, jnp.int32))


# ---------------------------------------------------------------------------------------------
# gaussian
# ---------------------------------------------------------------------------------------------


def _sample_gaussian(key, n):
    return jax.random.normal(key, (n, 2), jnp.float32)


def _log_prob_gaussian(x):
    return -0.5 * jnp.sum(x**2, axis=-1) - _LOG_2PI


# ---------------------------------------------------------------------------------------------
# 8gaussians
# ---------------------------------------------------------------------------------------------

_S = 1.0 / math.sqrt(2.0)
# FFJORD divides by the literal 1.414, not √2: kept so samples match the published toy exactly.
_8G_CENTRES = (
    4.0
    * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (_S, _S), (_S, -_S), (-_S, _S), (-_S, -_S)])
    / 1.414
)
_8G_STD = 0.5 / 1.414


def _sample_equal_mixture(key, n, centres, std):
    """A uniformly chosen centre plus ``std * N(0, I)``: 8gaussians, grid25 and ring8."""
    k_idx, k_noise = jax.random.split(key)
    idx = jax.random.randint(k_idx, (n,), 0, len(centres), jnp.int32)
    return jnp.asarray(centres, jnp.float32)[idx] + std * jax.random.normal(
        k_noise, (n, 2), jnp.float32
    )


def _log_prob_equal_mixture(x, centres, std):
    log_weights = np.full(len(centres), -math.log(len(centres)))
    return _gaussian_mixture_log_prob(x, centres, log_weights, std)


_sample_8gaussians = functools.partial(_sample_equal_mixture, centres=_8G_CENTRES, std=_8G_STD)
_log_prob_8gaussians = functools.partial(_log_prob_equal_mixture, centres=_8G_CENTRES, std=_8G_STD)


# ---------------------------------------------------------------------------------------------
# checkerboard
# ---------------------------------------------------------------------------------------------


def _sample_checkerboard(key, n):
    k1, k2, kb = jax.random.split(key, 3)
    x1 = 4.0 * jax.random.uniform(k1, (n,), jnp.float32) - 2.0
    flip = jax.random.randint(kb, (n,), 0, 2, jnp.int32).astype(jnp.float32)  # B ~ Bernoulli(1/2)
    x2 = jax.random.uniform(k2, (n,), jnp.float32) - 2.0 * flip + jnp.mod(jnp.floor(x1), 2.0)
    return 2.0 * jnp.stack([x1, x2], axis=-1)


def _log_prob_checkerboard(x):
    # The support is the 8 squares of side 2 in [-4, 4)² whose integer cell indices have even sum.
    cells = jnp.floor(x / 2.0)
    inside = jnp.all((x >= -4.0) & (x < 4.0), axis=-1)
    even = jnp.mod(cells[:, 0] + cells[:, 1], 2.0) == 0
    return jnp.where(inside & even, -math.log(32.0), -jnp.inf).astype(x.dtype)


# ---------------------------------------------------------------------------------------------
# moons
# ---------------------------------------------------------------------------------------------

_MOONS_STD = 0.2  # scikit-learn's noise 0.1, times the scale 2


def _moons_arc(outer):
    """The moon arcs after ``2·x + (-1, -0.2)``; scikit-learn spaces t evenly on [0, π]."""
    if outer:
        return lambda t: np.stack([2.0 * np.cos(t) - 1.0, 2.0 * np.sin(t) - 0.2], axis=-1)
    return lambda t: np.stack([1.0 - 2.0 * np.cos(t), 0.8 - 2.0 * np.sin(t)], axis=-1)


@functools.cache
def _moons_nodes():
    # make_moons puts n // 2 points on the outer arc and n - n // 2 on the inner one: half each.
    arcs = [
        _curve_nodes(_moons_arc(outer), lambda t: t / np.pi, 0.0, np.pi, _MOONS_STD)
        for outer in (True, False)
    ]
    centres = np.concatenate([c for c, _ in arcs])
    return centres, np.concatenate([lw for _, lw in arcs]) - math.log(2.0)


def _sample_moons(key, n):
    points, _ = make_moons(n_samples=n, noise=0.1, random_state=_seed(key))
    return 2.0 * points + np.array([-1.0, -0.2])


def _log_prob_moons(x):
    return _gaussian_mixture_log_prob(x, *_moons_nodes(), _MOONS_STD)


# ---------------------------------------------------------------------------------------------
# circles
# ---------------------------------------------------------------------------------------------

# make_circles(factor=0.5, noise=0.08) times 3: n // 2 points on radius 3, the rest on radius 1.5.
_CIRCLES_RADII = np.array([3.0, 1.5])
_CIRCLES_STD = 3.0 * 0.08


def _sample_circles(key, n):
    points, _ = make_circles(n_samples=n, factor=0.5, noise=0.08, random_state=_seed(key))
    return 3.0 * points


def _log_prob_circles(x):
    return _rice_mixture_log_prob(x, _CIRCLES_RADII, np.full(2, -math.log(2.0)), _CIRCLES_STD)


# ---------------------------------------------------------------------------------------------
# swissroll
# ---------------------------------------------------------------------------------------------

_SWISS_T = (1.5 * np.pi, 4.5 * np.pi)  # make_swiss_roll's t = 1.5π (1 + 2U)
_SWISS_STD = 1.0 / 5.0  # noise 1.0 on every coordinate, then divided by 5


@functools.cache
def _swissroll_nodes():
    lo, hi = _SWISS_T
    return _curve_nodes(
        lambda t: np.stack([t * np.cos(t), t * np.sin(t)], axis=-1) / 5.0,
        lambda t: (t - lo) / (hi - lo),
        lo,
        hi,
        _SWISS_STD,
    )


def _sample_swissroll(key, n):
    points, _ = make_swiss_roll(n_samples=n, noise=1.0, random_state=_seed(key))
    return points[:, [0, 2]] / 5.0


def _log_prob_swissroll(x):
    return _gaussian_mixture_log_prob(x, *_swissroll_nodes(), _SWISS_STD)


# ---------------------------------------------------------------------------------------------
# 2spirals
# ---------------------------------------------------------------------------------------------

_SPIRAL_T_MAX = 540.0 * 2.0 * np.pi / 360.0  # 3π
_SPIRAL_BOX = 0.5 / 3.0  # the U[0, 0.5) arm offset, after the division by 3
_SPIRAL_STD = 0.1


@functools.cache
def _spiral_nodes():
    # t = sqrt(U) 3π has distribution function (t / 3π)². The kernel std is at least 0.1.
    return _curve_nodes(
        lambda t: np.stack([-np.cos(t) * t, np.sin(t) * t], axis=-1) / 3.0,
        lambda t: (t / _SPIRAL_T_MAX) ** 2,
        0.0,
        _SPIRAL_T_MAX,
        _SPIRAL_STD,
    )


def _log_box_normal(z):
    """log density of U[0, h) + N(0, σ²) at z, elementwise: log((Φ(z/σ) − Φ((z−h)/σ)) / h).

    The density is symmetric about h/2, so z is first reflected into the left half z ≤ h/2; there
    Φ((z−h)/σ) ≤ Φ(z/σ)/4, so ``log Φ(a) + log(1 − Φ(b)/Φ(a))`` is accurate from the centre out to
    the far tail, where the direct difference would cancel (right) or underflow (left). As the ratio
    is at most 1/4, ``log(1 - r)`` loses nothing to ``log1p``, which is ~4x slower on XLA:CPU.
    """
    z = 0.5 * _SPIRAL_BOX - jnp.abs(z - 0.5 * _SPIRAL_BOX)
    log_a = log_ndtr(z / _SPIRAL_STD)
    log_b = log_ndtr((z - _SPIRAL_BOX) / _SPIRAL_STD)
    return log_a + jnp.log(1.0 - jnp.exp(log_b - log_a)) - math.log(_SPIRAL_BOX)


def _sample_2spirals(key, n):
    k_t, k_box, k_noise, k_perm = jax.random.split(key, 4)
    m = (n + 1) // 2
    t = jnp.sqrt(jax.random.uniform(k_t, (m,), jnp.float32)) * _SPIRAL_T_MAX
    arm = jnp.stack([-jnp.cos(t) * t, jnp.sin(t) * t], axis=-1)
    arm = arm + 0.5 * jax.random.uniform(k_box, (m, 2), jnp.float32)
    points = jnp.concatenate([arm, -arm])[:n] / 3.0
    points = points + _SPIRAL_STD * jax.random.normal(k_noise, (n, 2), jnp.float32)
    return jax.random.permutation(k_perm, points)


def _log_prob_2spirals(x):
    centres, log_weights = _spiral_nodes()
    c0, c1 = jnp.asarray(centres.T, x.dtype)
    log_weights = jnp.asarray(log_weights, x.dtype)

    def arm(points):
        # The kernel is a product over coordinates: q(x) = Σ_i w_i k(x₀ - c_i0) k(x₁ - c_i1).
        log_k0 = _log_box_normal(points[:, :1] - c0)
        log_k1 = _log_box_normal(points[:, 1:] - c1)
        return jax.nn.logsumexp(log_weights + log_k0 + log_k1, axis=-1)

    def chunk(points):
        # The second arm is the first one negated, offset included: p(x) = ½ q(x) + ½ q(−x).
        return jnp.logaddexp(arm(points), arm(-points)) - math.log(2.0)

    return _chunked(chunk, x)


# ---------------------------------------------------------------------------------------------
# pinwheel
# ---------------------------------------------------------------------------------------------

_PIN_ARMS = 2.0 * np.pi * np.arange(5) / 5.0
_PIN_RADIAL_STD, _PIN_TANGENTIAL_STD, _PIN_RATE = 0.3, 0.1, 0.25
# f₀ preimages are searched on [1 − 7σ, 1 + 7σ]: the mass outside (< 3e-12) is ignored.
_PIN_F0_GRID = np.linspace(1.0 - 7.0 * _PIN_RADIAL_STD, 1.0 + 7.0 * _PIN_RADIAL_STD, 512)
# A ray from the origin meets one arm at most ~3 times over this f₀ range (θ sweeps < 2π).
_PIN_MAX_ROOTS = 6
_PIN_NEWTON_STEPS = 2


def _sample_pinwheel(key, n):
    k_f, k_perm = jax.random.split(key)
    f = jax.random.normal(k_f, (n, 2), jnp.float32)
    f0, f1 = _PIN_RADIAL_STD * f[:, 0] + 1.0, _PIN_TANGENTIAL_STD * f[:, 1]
    # Equal arm counts (up to one), as FFJORD's num_per_class; the permutation mixes the arms.
    theta = jnp.asarray(_PIN_ARMS, jnp.float32)[jnp.arange(n) % 5] + _PIN_RATE * jnp.exp(f0)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    y = jnp.stack([cos * f0 - sin * f1, sin * f0 + cos * f1], axis=-1)
    return jax.random.permutation(k_perm, 2.0 * y)


def _log_prob_pinwheel(x):
    dtype = x.dtype
    arms = jnp.asarray(_PIN_ARMS, dtype)[:, None]  # (5, 1)
    grid = jnp.asarray(_PIN_F0_GRID, dtype)
    grid_theta = arms + _PIN_RATE * jnp.exp(grid)  # (5, G): independent of the point
    grid_cos, grid_sin = jnp.cos(grid_theta), jnp.sin(grid_theta)
    step = grid[1] - grid[0]
    slots = jnp.arange(1, _PIN_MAX_ROOTS + 1)[:, None]  # (R, 1)

    def frame(f0, y0, y1):
        """Residual g(f0), tangential feature f1 and g'(f0) = 1 − rate e^{f0} f1, the Jacobian."""
        theta = arms + _PIN_RATE * jnp.exp(f0)
        cos, sin = jnp.cos(theta), jnp.sin(theta)
        f1 = -sin * y0 + cos * y1
        return f0 - (cos * y0 + sin * y1), f1, 1.0 - _PIN_RATE * jnp.exp(f0) * f1

    def one(point):
        y0, y1 = point[0] / 2.0, point[1] / 2.0
        g = grid - (grid_cos * y0 + grid_sin * y1)  # (5, G)
        negative = g < 0
        crossing = negative[:, :-1] != negative[:, 1:]  # (5, G - 1)
        # Interval index of the r-th sign change of each arm = how many intervals precede it.
        count = jnp.cumsum(crossing, axis=-1)
        idx = jnp.sum(count[:, None, :] < slots, axis=-1)  # (5, R)
        found = slots[:, 0] <= count[:, -1:]
        idx = jnp.minimum(idx, grid.shape[0] - 2)
        g_lo = jnp.take_along_axis(g, idx, axis=1)
        g_hi = jnp.take_along_axis(g, idx + 1, axis=1)
        lo = grid[idx]
        # Linear interpolation, then Newton kept inside the bracket; every division is guarded
        # so that empty slots stay finite and cannot put NaNs into the gradient.
        f0 = lo + step * g_lo / jnp.where(found, g_lo - g_hi, 1.0)
        for _ in range(_PIN_NEWTON_STEPS):
            res, _, slope = frame(f0, y0, y1)
            slope = jnp.where(found & (slope != 0), slope, 1.0)
            f0 = jnp.clip(f0 - res / slope, lo, lo + step)
        _, f1, det = frame(f0, y0, y1)
        log_det = jnp.log(jnp.abs(jnp.where(found, det, 1.0)))
        log_p = (
            -0.5 * ((f0 - 1.0) / _PIN_RADIAL_STD) ** 2
            - 0.5 * (f1 / _PIN_TANGENTIAL_STD) ** 2
            - _LOG_2PI
            - math.log(_PIN_RADIAL_STD * _PIN_TANGENTIAL_STD)
            - log_det
        )
        # Each arm has weight 1/5; x = 2y contributes the Jacobian 1/4.
        log_p = jnp.where(found, log_p, -jnp.inf)
        return jax.nn.logsumexp(log_p) - math.log(5.0) - math.log(4.0)

    return _chunked(jax.vmap(one), x)


# ---------------------------------------------------------------------------------------------
# rings
# ---------------------------------------------------------------------------------------------

_RINGS_RADII = np.array([3.0, 2.25, 1.5, 0.75])
_RINGS_STD = 0.08


def _sample_rings(key, n):
    k_angle, k_noise, k_perm = jax.random.split(key, 3)
    # A quarter per ring; as in FFJORD the remainder goes to the innermost ring.
    counts = [n // 4] * 3 + [n - 3 * (n // 4)]
    radius = jnp.asarray(np.repeat(_RINGS_RADII, counts), jnp.float32)[:, None]
    angle = 2.0 * jnp.pi * jax.random.uniform(k_angle, (n,), jnp.float32)
    points = radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1)
    points = points + _RINGS_STD * jax.random.normal(k_noise, (n, 2), jnp.float32)
    return jax.random.permutation(k_perm, points)


def _log_prob_rings(x):
    return _rice_mixture_log_prob(x, _RINGS_RADII, np.full(4, -math.log(4.0)), _RINGS_STD)


# ---------------------------------------------------------------------------------------------
# grid25 and ring8
# ---------------------------------------------------------------------------------------------

_GRID25_CENTRES = np.stack(np.meshgrid(*2 * [np.arange(-4.0, 5.0, 2.0)]), -1).reshape(-1, 2)
_GRID25_STD = 0.05
_RING8_ANGLES = 2.0 * np.pi * np.arange(8) / 8.0
_RING8_CENTRES = 2.0 * np.stack([np.cos(_RING8_ANGLES), np.sin(_RING8_ANGLES)], axis=-1)
_RING8_STD = 0.02


_sample_grid25 = functools.partial(_sample_equal_mixture, centres=_GRID25_CENTRES, std=_GRID25_STD)
_log_prob_grid25 = functools.partial(
    _log_prob_equal_mixture, centres=_GRID25_CENTRES, std=_GRID25_STD
)
_sample_ring8 = functools.partial(_sample_equal_mixture, centres=_RING8_CENTRES, std=_RING8_STD)
_log_prob_ring8 = functools.partial(_log_prob_equal_mixture, centres=_RING8_CENTRES, std=_RING8_STD)


# ---------------------------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------------------------

_SAMPLERS = {
    "8gaussians": _sample_8gaussians,
    "checkerboard": _sample_checkerboard,
    "moons": _sample_moons,
    "circles": _sample_circles,
    "swissroll": _sample_swissroll,
    "2spirals": _sample_2spirals,
    "pinwheel": _sample_pinwheel,
    "rings": _sample_rings,
    "gaussian": _sample_gaussian,
    "grid25": _sample_grid25,
    "ring8": _sample_ring8,
}

_LOG_PROBS = {
    "8gaussians": _log_prob_8gaussians,
    "checkerboard": _log_prob_checkerboard,
    "moons": _log_prob_moons,
    "circles": _log_prob_circles,
    "swissroll": _log_prob_swissroll,
    "2spirals": _log_prob_2spirals,
    "pinwheel": _log_prob_pinwheel,
    "rings": _log_prob_rings,
    "gaussian": _log_prob_gaussian,
    "grid25": _log_prob_grid25,
    "ring8": _log_prob_ring8,
}

_CLOSED_FORM_ENTROPY = {
    "gaussian": math.log(2.0 * math.pi * math.e),
    "checkerboard": math.log(32.0),
    # Neighbouring modes are 40 (grid25) and 76 (ring8) stds apart, so the components' overlap
    # changes the entropy by far less than float64 resolution: log K + the Gaussian's entropy.
    "grid25": math.log(25.0) + math.log(2.0 * math.pi * math.e * _GRID25_STD**2),
    "ring8": math.log(8.0) + math.log(2.0 * math.pi * math.e * _RING8_STD**2),
}

# (half-width L, spacing h) of the square grid [-L, L]² of cell midpoints used for the entropy
# quadrature. L leaves out only mass beyond ~7 kernel stds. The densities are Gaussian-smoothed, so
# the midpoint rule converges spectrally: h = std/2 already agrees with std/4 and std/8 to 1e-7
# nats. 2spirals, whose kernel is the expensive one, uses std/2; the cheap toys keep std/4; the
# pinwheel (no kernel: folds of the map slow the convergence) uses a quarter of its narrowest width,
# the tangential std 0.2 of x, where halving h changes H by < 1e-6.
_ENTROPY_GRID = {
    "8gaussians": (6.0, _8G_STD / 4.0),
    "moons": (4.5, _MOONS_STD / 4.0),
    "circles": (4.8, _CIRCLES_STD / 4.0),
    "swissroll": (4.3, _SWISS_STD / 4.0),
    "2spirals": (4.1, _SPIRAL_STD / 2.0),
    "pinwheel": (6.0, 2.0 * _PIN_TANGENTIAL_STD / 4.0),
    "rings": (3.7, _RINGS_STD / 4.0),
}

_jit_log_prob = jax.jit(lambda name, x: _LOG_PROBS[name](x), static_argnums=0)


def _check_name(name):
    if name not in _LOG_PROBS:
        raise ValueError(f"name must be one of {NAMES}; got {name!r}")


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def sample(name: str, key: jax.Array, n: int) -> np.ndarray:
    """Draws ``n`` points from a 2D toy density.

    The definitions are those of ``DATA.md`` (FFJORD conventions, Grathwohl et al. 2019; ``grid25``
    from VEEGAN / PacGAN, ``ring8`` from Unrolled GAN, Metz et al. 2017). ``moons``, ``circles`` and
    ``swissroll`` call scikit-learn (``make_moons(noise=0.1)``, ``make_circles(factor=0.5,
    noise=0.08)``, ``make_swiss_roll(noise=1.0)``) with an integer seed drawn from ``key``; the
    others use ``jax.random``. Where points are generated in blocks (the two arms of
    ``2spirals``, the arms of ``pinwheel``, the rings of ``rings``) the rows are randomly permuted,
    so any prefix of the output is itself a sample.

    Odd sizes return exactly ``n`` rows: ``2spirals`` draws ``ceil(n/2)`` arm points ``d`` and
    keeps the first ``n`` rows of ``[d; -d]``; ``pinwheel`` gives arm ``k`` the points with index
    ``i ≡ k (mod 5)``; ``rings`` puts ``n // 4`` points on each of the three outer rings and the
    rest on the innermost.

    ``pinwheel`` rotates the features counter-clockwise, ``y = R(θ) f`` with
    ``R(θ) = [[cos θ, -sin θ], [sin θ, cos θ]]``. FFJORD's ``einsum("ti,tij->tj", f, R)`` computes
    ``R(θ)ᵀ f``, the clockwise rotation: its pinwheel is the mirror image of this one, with the
    same entropy.

    Args:
        name: One of :data:`NAMES`.
        key: A JAX PRNG key (``jax.random.key(seed)``).
        n: Number of points, ``n ≥ 1``.

    Returns:
        A float32 numpy array of shape ``(n, 2)``, deterministic given ``(key, n)``.

    Raises:
        ValueError: If ``name`` is unknown or ``n`` is not a positive int.
    """
    _check_name(name)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive int; got {n!r}")
    return np.asarray(_SAMPLERS[name](key, int(n)), dtype=np.float32)


def log_prob(name: str, x: jax.Array) -> jax.Array:
    """True normalised log-density of a 2D toy, differentiable in ``x``.

    Closed forms:

    - ``gaussian``: ``-|x|²/2 - log 2π``.
    - ``8gaussians``: ``log (1/8) Σ_k N(x; 4 c_k / 1.414, (0.5/1.414)² I)``.
    - ``checkerboard``: ``-log 32`` on the 8 squares of side 2, ``-inf`` off the support.
    - ``grid25``: ``log (1/25) Σ_k N(x; μ_k, 0.05² I)``, ``μ_k ∈ {-4, -2, 0, 2, 4}²``.
    - ``ring8``: ``log (1/8) Σ_k N(x; 2 (cos 2πk/8, sin 2πk/8), 0.02² I)``.
    - ``circles`` (radii 3, 1.5, weights ½, std 0.24) and ``rings`` (radii 3, 2.25, 1.5, 0.75,
      weights ¼, std 0.08): a uniform-angle circle blurred by ``N(0, σ² I)`` has the Rice density
      ``exp(-(r² + R²)/2σ²) I₀(rR/σ²) / 2πσ²``, the exact limit of a quadrature along the circle.

    Quadrature along the generating curve ``c(t)``, ``p(x) = ∫ k(x - c(t)) p(t) dt``, written as a
    mixture ``Σ_i w_i k(x - c(t_i))`` (logsumexp) over nodes equally spaced in arc length by 1/8 of
    the kernel std (1/64 within 2 stds of the curve's ends), with ``w_i`` the exact probability of
    each node's ``t``-interval; the error is ~1e-8 nats near the curve and below ~3e-4 nats
    anywhere:

    - ``moons``: arcs ``(2 cos t - 1, 2 sin t - 0.2)`` and ``(1 - 2 cos t, 0.8 - 2 sin t)``,
      ``t ~ U[0, π]``, weights ½, Gaussian kernel of std 0.2.
    - ``swissroll``: ``(t cos t, t sin t)/5``, ``t ~ U[1.5π, 4.5π]``, Gaussian kernel of std 0.2.
    - ``2spirals``: ``p(x) = ½ q(x) + ½ q(-x)`` with ``c(t) = (-t cos t, t sin t)/3``, ``t`` of
      density ``2t/(3π)²`` on ``[0, 3π]`` and per coordinate the kernel ``U[0, 1/6) * N(0, 0.1²)``,
      ``k(z) = 6 (Φ(z/0.1) - Φ((z - 1/6)/0.1))``.

    Exact change of variables for ``pinwheel``: ``y = x/2 = R(θ) f`` with ``θ = a_k + 0.25 e^{f₀}``,
    ``f₀ ~ N(1, 0.3²)``, ``f₁ ~ N(0, 0.1²)``, ``a_k = 2πk/5``. For each arm the preimages solve
    ``f₀ = (cos θ, sin θ)·y``, with ``f₁ = (-sin θ, cos θ)·y`` and Jacobian
    ``|1 - 0.25 e^{f₀} f₁|``; they are found on a grid of ``f₀ ∈ [1 - 7·0.3, 1 + 7·0.3]`` (sign
    changes, linear interpolation, Newton) and
    ``p(x) = ¼ Σ_k ⅕ Σ_roots N(f₀; 1, 0.3²) N(f₁; 0, 0.1²) / |1 - 0.25 e^{f₀} f₁|``. Where no
    preimage has ``f₀`` in that range (every one is more than 7 stds out, so the density is
    negligible) the result is ``-inf``.

    Works under ``jit`` and ``grad``; the curve quadratures are evaluated in chunks of points, so
    memory stays bounded for any ``n``.

    Args:
        name: One of :data:`NAMES`.
        x: Points of shape ``(n, 2)``; integer input is promoted to the default float dtype.

    Returns:
        Log-densities of shape ``(n,)`` in the floating dtype of ``x``.

    Raises:
        ValueError: If ``name`` is unknown or ``x`` is not of shape ``(n, 2)``.
    """
    _check_name(name)
    x = jnp.asarray(x)
    x = x.astype(jnp.result_type(float, x.dtype))
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (n, 2); got {x.shape}")
    return _jit_log_prob(name, x)


@functools.cache
def _grid_entropy(name):
    half_width, spacing = _ENTROPY_GRID[name]
    m = int(np.ceil(2.0 * half_width / spacing))
    axis = -half_width + (np.arange(m) + 0.5) * (2.0 * half_width / m)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    # float32 log-densities (accurate to ~1e-6 nats) are ~10x faster than float64 on CPU; the
    # sum runs in float64.
    with jax.ensure_compile_time_eval():
        logp = np.asarray(log_prob(name, grid.astype(np.float32)), dtype=np.float64)
    p = np.exp(logp)
    neg_p_log_p = np.where(p > 0, -p * np.where(p > 0, logp, 0.0), 0.0)
    return float(np.sum(neg_p_log_p) * (2.0 * half_width / m) ** 2)


def entropy(name: str) -> float:
    """Differential entropy ``H = -∫ p(x) log p(x) dx`` of a 2D toy density, in nats.

    Computed from the density alone, never from samples. Closed forms: ``gaussian``
    ``log(2πe)``; ``checkerboard`` ``log 32``; ``grid25`` ``log 25 + log(2πe·0.05²)``; ``ring8``
    ``log 8 + log(2πe·0.02²)`` (their modes are > 40 stds apart, so the overlap is negligible).
    The others by the midpoint rule for ``-p log p`` on a square grid, with :func:`log_prob`
    evaluated at the cell centres; the grid spacing is at most half the kernel std (a quarter of
    the tangential std 0.2 for ``pinwheel``), where the rule has converged to ~1e-6 nats, and the
    box omits only mass beyond ~7 stds. Results are cached.

    Sources: Grathwohl et al. 2019 (FFJORD) for the FFJORD toys; VEEGAN / PacGAN for ``grid25``;
    Unrolled GAN (Metz et al. 2017) for ``ring8``.

    Args:
        name: One of :data:`NAMES`.

    Returns:
        The entropy as a Python float.

    Raises:
        ValueError: If ``name`` is unknown.
    """
    _check_name(name)
    if name in _CLOSED_FORM_ENTROPY:
        return _CLOSED_FORM_ENTROPY[name]
    return _grid_entropy(name)


# The toys that are isotropic Gaussian mixtures with equal weights: (centres, std).
_MIXTURE_MODES = {
    "8gaussians": (_8G_CENTRES, _8G_STD),
    "grid25": (_GRID25_CENTRES, _GRID25_STD),
    "ring8": (_RING8_CENTRES, _RING8_STD),
}


def mixture_modes(name: str) -> tuple[np.ndarray, float]:
    """The modes of a toy that is an equal-weight isotropic Gaussian mixture.

    Such a toy has density ``p(x) = (1/K) Σ_k N(x; μ_k, σ² I)``; its centres ``μ_k`` and common
    std ``σ`` are what the mode-coverage metrics of the GAN literature need
    (``jgen.metrics.coverage``; VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018; Unrolled
    GAN, Metz et al. 2017):

    - ``8gaussians``: ``4 c_k / 1.414`` for the 8 unit vectors ``c_k`` at multiples of 45°,
      ``σ = 0.5 / 1.414`` (FFJORD, Grathwohl et al. 2019);
    - ``grid25``: ``{-4, -2, 0, 2, 4}²``, ``σ = 0.05``;
    - ``ring8``: ``2 (cos 2πk/8, sin 2πk/8)``, ``σ = 0.02``.

    Args:
        name: ``'8gaussians'``, ``'grid25'`` or ``'ring8'``.

    Returns:
        ``(centres, std)``: a fresh float64 numpy array of shape ``(K, 2)`` in the order
        :func:`sample` indexes them, and ``σ`` as a Python float.

    Raises:
        ValueError: If ``name`` is not one of these three toys.
    """
    if name not in _MIXTURE_MODES:
        raise ValueError(
            f"name must be one of {tuple(_MIXTURE_MODES)} (the equal-weight isotropic Gaussian "
            f"mixtures); got {name!r}"
        )
    centres, std = _MIXTURE_MODES[name]
    return np.array(centres, dtype=np.float64), float(std)
