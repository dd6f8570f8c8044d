"""Monotonic rational-quadratic splines with linear tails, and the spline coupling layer.

On ``[-B, B]`` the spline has ``K`` bins with knots ``(x_k, y_k)``, ``x_0 = y_0 = -B``,
``x_K = y_K = B``, and positive knot derivatives ``d_k`` with ``d_0 = d_K = 1``. In bin ``k``, with
width ``w_k``, height ``h_k``, slope ``s_k = h_k / w_k`` and ``t = (x - x_k) / w_k``,

    y = y_k + h_k (s_k t^2 + d_k t (1 - t)) / (s_k + (d_{k+1} + d_k - 2 s_k) t (1 - t))
    dy/dx = s_k^2 (d_{k+1} t^2 + 2 s_k t (1 - t) + d_k (1 - t)^2)
            / (s_k + (d_{k+1} + d_k - 2 s_k) t (1 - t))^2

and outside ``[-B, B]`` the map is the identity (log-det 0). The unit boundary derivatives make it
continuously differentiable on the whole line. The inverse solves the quadratic
``a t^2 + b t + c = 0`` of bin ``k`` (found on the y knots) in the stable form
``t = 2c / (-b - sqrt(b^2 - 4ac))``.

The spline coupling layer transforms the masked-out part of ``x`` elementwise by splines whose
parameters a conditioner computes from the masked-in part, as in RealNVP.

Durkan, Bekasov, Murray & Papamakarios 2019, "Neural Spline Flows" (eqs. 4, 5 and 29, appendix A);
Gregory & Delbourgo 1982, "Piecewise rational quadratic interpolation to monotonic data".
"""

import functools
import math
from collections.abc import Callable, Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.bijectors.coupling import (
    SplitMLP,
    merge_elements,
    parity_mask,
    split_indices,
    take_elements,
)
from jgen.checks import check_int, check_positive
from jgen.types import Array

SplineConditioner = Callable[[Array], Array]


def _check_spline_args(x, widths, heights, derivatives, bound, min_sizes) -> tuple[int, tuple]:
    """Validates the arguments of ``rational_quadratic_spline``; returns ``K`` and the batch shape
    that ``x`` and the parameters broadcast to."""
    num_bins = np.shape(widths)[-1] if np.ndim(widths) else 0
    if num_bins < 1:
        raise ValueError(
            f"unnormalized_widths must have shape (..., K) with K >= 1; got {np.shape(widths)}"
        )
    for name, value, size in [
        ("unnormalized_heights", heights, num_bins),
        ("unnormalized_derivatives", derivatives, num_bins - 1),
    ]:
        if np.ndim(value) < 1 or np.shape(value)[-1] != size:
            raise ValueError(
                f"{name} must have shape (..., {size}) for K = {num_bins} bins "
                f"(from unnormalized_widths); got {np.shape(value)}"
            )
    check_positive("bound", bound)
    for name, value in min_sizes.items():
        check_positive(name, value)
        limit = 1.0 if name == "min_derivative" else 1.0 / num_bins
        if not value < limit:
            raise ValueError(f"{name} must be < {limit:g} (K = {num_bins} bins); got {value!r}")
    try:
        batch_shape = jnp.broadcast_shapes(
            np.shape(x), *(np.shape(p)[:-1] for p in (widths, heights, derivatives))
        )
    except ValueError:
        raise ValueError(
            f"x of shape {np.shape(x)} does not broadcast with the parameters' leading shapes "
            f"{np.shape(widths)[:-1]}, {np.shape(heights)[:-1]}, {np.shape(derivatives)[:-1]}"
        ) from None
    return num_bins, batch_shape


def _knot_positions(unnormalized: Array, bound, min_size: float) -> Array:
    """Knots ``-B = z_0 < ... < z_K = B`` from bin sizes ``2B (m + (1 - K m) softmax(u))``."""
    num_bins = unnormalized.shape[-1]
    sizes = min_size + (1.0 - min_size * num_bins) * jax.nn.softmax(unnormalized, axis=-1)
    inner = -bound + 2.0 * bound * jnp.cumsum(sizes[..., :-1], axis=-1)
    edge = jnp.ones_like(sizes[..., :1]) * bound
    # The last knot is set to B exactly (not a rounded cumulative sum), so the bins tile [-B, B].
    return jnp.concatenate([-edge, inner, edge], axis=-1)


def spline_knots(
    unnormalized_widths: Array,
    unnormalized_heights: Array,
    unnormalized_derivatives: Array,
    *,
    bound: float,
    min_bin_width: float = 1e-3,
    min_bin_height: float = 1e-3,
    min_derivative: float = 1e-3,
) -> tuple[Array, Array, Array]:
    """The knots ``(x_k, y_k, d_k)``, each of shape ``(..., K + 1)``, of the spline that
    ``rational_quadratic_spline`` applies to these parameters (see there for the mapping)."""
    x_knots = _knot_positions(unnormalized_widths, bound, min_bin_width)
    y_knots = _knot_positions(unnormalized_heights, bound, min_bin_height)
    # The offset makes an unnormalized derivative of 0 give exactly 1: zero parameters give the
    # identity map, so a conditioner with a zero output layer starts the flow at the identity.
    offset = math.log(math.expm1(1.0 - min_derivative))
    inner = min_derivative + jax.nn.softplus(unnormalized_derivatives + offset)
    ones = jnp.ones(inner.shape[:-1] + (1,), inner.dtype)
    derivatives = jnp.concatenate([ones, inner, ones], axis=-1)
    return x_knots, y_knots, derivatives


def _gather(knots: Array, index: Array) -> Array:
    return jnp.take_along_axis(knots, index[..., None], axis=-1)[..., 0]


def _bin_log_derivative(t, slope, d_left, d_right, denominator) -> Array:
    """``log dy/dx`` in a bin at relative position ``t`` (eq. 5 of Durkan et al.)."""
    t1mt = t * (1.0 - t)
    numerator = d_right * t**2 + 2.0 * slope * t1mt + d_left * (1.0 - t) ** 2
    return 2.0 * jnp.log(slope) + jnp.log(numerator) - 2.0 * jnp.log(denominator)


@functools.partial(
    jax.jit,
    static_argnames=("bound", "inverse", "min_bin_width", "min_bin_height", "min_derivative"),
)
def rational_quadratic_spline(
    x: Array,
    unnormalized_widths: Array,
    unnormalized_heights: Array,
    unnormalized_derivatives: Array,
    *,
    bound: float,
    inverse: bool = False,
    min_bin_width: float = 1e-3,
    min_bin_height: float = 1e-3,
    min_derivative: float = 1e-3,
) -> tuple[Array, Array]:
    """Applies a monotonic rational-quadratic spline (or its inverse) elementwise.

    The spline maps ``[-B, B]`` onto itself through ``K`` bins (formulas in the module docstring)
    and is the identity outside it. Its parameters are unconstrained:

        w_k = 2B (m_w + (1 - K m_w) softmax(u_w)_k)           bin widths
        h_k = 2B (m_h + (1 - K m_h) softmax(u_h)_k)           bin heights
        d_k = m_d + softplus(u_d,k + log(exp(1 - m_d) - 1))   internal knot derivatives

    so the minimum bin sizes are fractions of the interval, and all-zero parameters give the
    identity. ``d_0 = d_K = 1`` make the spline match the identity tails to first order.

    Gradients are finite everywhere, also far outside the interval: the spline branch is evaluated
    at a safe point (0) where it is not taken, so ``jnp.where`` never mixes in a NaN cotangent.

    The function is jitted (like ``jax.numpy``'s own), so eager calls run one compiled kernel; the
    hyperparameters ``bound``, ``inverse`` and the minimums are static Python values.

    Args:
      x: inputs of any shape ``S``; with ``inverse=True``, the outputs ``y`` to invert.
      unnormalized_widths: ``(..., K)``, the leading shape broadcasting with ``S``.
      unnormalized_heights: ``(..., K)``.
      unnormalized_derivatives: ``(..., K - 1)``, the derivatives at the internal knots.
      bound: ``B > 0`` (a Python float), the half-width of the interval.
      inverse: apply the inverse map instead.
      min_bin_width: minimum bin width as a fraction of ``2B``; ``K * min_bin_width < 1``.
      min_bin_height: minimum bin height as a fraction of ``2B``; ``K * min_bin_height < 1``.
      min_derivative: minimum knot derivative, in ``(0, 1)``.

    Returns:
      ``(y, log_abs_det)``, both of the broadcast shape: the transformed values and the
      elementwise ``log |dy/dx|`` (of the inverse map when ``inverse=True``).

    Raises:
      ValueError: when the parameter shapes disagree with ``K``, do not broadcast with ``x``, or
        ``bound`` or a minimum is out of range.

    Durkan et al. 2019, "Neural Spline Flows".
    """
    min_sizes = {
        "min_bin_width": min_bin_width,
        "min_bin_height": min_bin_height,
        "min_derivative": min_derivative,
    }
    num_bins, batch_shape = _check_spline_args(
        x, unnormalized_widths, unnormalized_heights, unnormalized_derivatives, bound, min_sizes
    )
    knots = spline_knots(
        unnormalized_widths,
        unnormalized_heights,
        unnormalized_derivatives,
        bound=bound,
        **min_sizes,
    )
    x_knots, y_knots, d_knots = (jnp.broadcast_to(k, batch_shape + (num_bins + 1,)) for k in knots)
    x = jnp.broadcast_to(x, batch_shape)

    inside = (x >= -bound) & (x <= bound)
    # The "double where": 0 lies inside every interval, so the untaken spline branch stays finite
    # for any x and its zero cotangent does not turn into NaN.
    safe = jnp.where(inside, x, jnp.zeros_like(x))

    search_knots = y_knots if inverse else x_knots
    index = jnp.sum(safe[..., None] >= search_knots[..., 1:-1], axis=-1)
    x_left, y_left = _gather(x_knots, index), _gather(y_knots, index)
    width = _gather(x_knots, index + 1) - x_left
    height = _gather(y_knots, index + 1) - y_left
    d_left, d_right = _gather(d_knots, index), _gather(d_knots, index + 1)
    slope = height / width
    curvature = d_right + d_left - 2.0 * slope

    if inverse:
        dy = safe - y_left
        a = height * (slope - d_left) + dy * curvature
        b = height * d_left - dy * curvature
        c = -slope * dy
        discriminant = jnp.maximum(b**2 - 4.0 * a * c, 0.0)
        t = 2.0 * c / (-b - jnp.sqrt(discriminant))
        out = x_left + t * width
    else:
        # Bins are found with x_k <= x < x_{k+1} (x <= B in the last), so t is in [0, 1] exactly:
        # no clipping, whose gradient would be halved at the knots.
        t = (safe - x_left) / width
        t1mt = t * (1.0 - t)
        out = y_left + height * (slope * t**2 + d_left * t1mt) / (slope + curvature * t1mt)
    denominator = slope + curvature * t * (1.0 - t)
    log_det = _bin_log_derivative(t, slope, d_left, d_right, denominator)
    log_det = -log_det if inverse else log_det

    out = jnp.where(inside, out, x)
    log_det = jnp.where(inside, log_det, jnp.zeros_like(log_det))
    return out, log_det


class SplineCoupling(distrax.Bijector):
    """A coupling layer whose transformed part goes through rational-quadratic splines.

    With a binary mask ``m`` splitting the flattened event into the passed-through elements
    ``x_p`` (mask 1) and the transformed ones ``x_t`` (mask 0), and a conditioner ``c``,

        theta = c(x_p)                                      (n, T, 3K - 1)
        y_p = x_p,   y_t = RQS(x_t; theta)
        log|det dy/dx| = sum log RQS'(x_t; theta)

    where ``theta`` splits as ``[widths (K) | heights (K) | derivatives (K - 1)]`` of
    ``rational_quadratic_spline``. The inverse uses the same ``theta``, since ``y_p = x_p``. Only
    the ``T`` transformed elements go through the conditioner's output and the splines (the form
    of distrax's ``SplitCoupling``).

    Args:
      mask: a concrete (numpy) array of the event shape; 1 marks the inputs passed through and
        fed to the conditioner, 0 the ones transformed.
      conditioner: ``c(x_p (..., P)) -> theta (..., T, 3 * num_bins - 1)``, with ``x_p`` the
        passed-through elements in flattened order and ``theta`` for the transformed ones.
      num_bins: ``K``, the number of bins of each spline.
      bound: ``B > 0``; each spline acts on ``[-B, B]`` and is the identity outside.
      event_ndims: number of trailing axes that form one event.
      min_bin_width, min_bin_height, min_derivative: as in ``rational_quadratic_spline``.

    Durkan et al. 2019, "Neural Spline Flows".
    """

    def __init__(
        self,
        mask: Array,
        conditioner: SplineConditioner,
        num_bins: int,
        bound: float,
        event_ndims: int = 1,
        min_bin_width: float = 1e-3,
        min_bin_height: float = 1e-3,
        min_derivative: float = 1e-3,
    ):
        check_int("num_bins", num_bins)
        check_positive("bound", bound)
        check_int("event_ndims", event_ndims)
        super().__init__(event_ndims_in=event_ndims)
        self._mask = np.asarray(mask)
        self._conditioner = conditioner
        self._num_bins = num_bins
        # Static arguments of the jitted spline: plain floats, hashable.
        self._bound = float(bound)
        self._min_sizes = {
            "min_bin_width": float(min_bin_width),
            "min_bin_height": float(min_bin_height),
            "min_derivative": float(min_derivative),
        }

    def _spline(self, x: Array, inverse: bool) -> tuple[Array, Array]:
        event_shape = x.shape[x.ndim - self.event_ndims_in :]
        passed, transformed = split_indices(self._mask, event_shape)
        flat = x.reshape(*x.shape[: x.ndim - self.event_ndims_in], -1)
        x_passed, x_moved = take_elements(flat, passed), take_elements(flat, transformed)
        theta = self._conditioner(x_passed)
        expected = (*x_moved.shape, 3 * self._num_bins - 1)
        if np.shape(theta) != expected:
            raise ValueError(
                f"conditioner output must have shape {expected} (3 * num_bins - 1 = "
                f"{3 * self._num_bins - 1} parameters per transformed element); "
                f"got {np.shape(theta)}"
            )
        k = self._num_bins
        out, log_det = rational_quadratic_spline(
            x_moved,
            theta[..., :k],
            theta[..., k : 2 * k],
            theta[..., 2 * k :],
            bound=self._bound,
            inverse=inverse,
            **self._min_sizes,
        )
        y = merge_elements(x_passed, passed, out, transformed).reshape(x.shape)
        return y, jnp.sum(log_det, axis=-1)

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        return self._spline(x, inverse=False)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        return self._spline(y, inverse=True)


class SplineCouplingLayer(nn.Module):
    """The parameters of one ``SplineCoupling`` with an MLP conditioner.

    The MLP maps the passed-through elements to ``3K - 1`` spline parameters per transformed element
    (:class:`jgen.bijectors.coupling.SplitMLP`); its output layer starts at zero, and zero
    parameters give the identity spline, so the layer starts as the identity (up to rounding).
    ``bijector(event_shape)`` builds the distrax bijector (call it inside ``apply``, or on a bound
    module); ``__call__(x)`` is its ``forward_and_log_det``, e.g. for ``init``.

    Attributes:
      num_bins: ``K``, bins per spline.
      bound: ``B``, the half-width of the spline interval.
      hidden_sizes: hidden widths of the conditioner MLP.
      parity: which checkerboard mask (``parity_mask``) passes through: 0 or 1.
    """

    num_bins: int = 8
    bound: float = 3.0
    hidden_sizes: Sequence[int] = (64, 64)
    parity: int = 0

    @nn.compact
    def conditioner(self, x_passed: Array, num_transformed: int) -> Array:
        """The passed-through elements ``(n, P)`` -> spline parameters ``(n, T, 3K - 1)``."""
        return SplitMLP(self.hidden_sizes, 3 * self.num_bins - 1)(x_passed, num_transformed)

    def bijector(self, event_shape: tuple[int, ...]) -> SplineCoupling:
        """The coupling bijector on events of ``event_shape``."""
        mask = parity_mask(tuple(event_shape), self.parity)
        num_transformed = len(split_indices(mask, tuple(event_shape))[1])
        return SplineCoupling(
            mask,
            lambda x_passed: self.conditioner(x_passed, num_transformed),
            self.num_bins,
            self.bound,
            event_ndims=len(event_shape),
        )

    def __call__(self, x: Array) -> tuple[Array, Array]:
        return self.bijector(x.shape[1:]).forward_and_log_det(x)
