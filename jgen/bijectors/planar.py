"""Planar flow: one hyperplane-shaped contraction or expansion of space.

    f(z) = z + u_hat * tanh(w . z + b)
    log|det df/dz| = log|1 + tanh'(w . z + b) (w . u_hat)|

Rezende & Mohamed 2015, "Variational inference with normalizing flows" (Appendix A.1: the
invertibility condition ``w . u >= -1`` and the reparameterisation below).
"""

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.checks import check_events, check_int
from jgen.types import Array

# The bracket starts 2|w . u_hat| wide and halves each step: after 60 steps it is below 2e-15 for
# any |w . u_hat| < 1e3 (float64 resolution), and Newton only polishes the last bits.
_BISECTION_STEPS = 60
_NEWTON_STEPS = 4


def constrained_u(u: Array, w: Array) -> Array:
    """``u_hat = u + (m(w . u) - w . u) w / |w|^2`` with ``m(a) = -1 + softplus(a)``.

    Only the component of ``u`` along ``w`` changes, so that ``w . u_hat = m(w . u) > -1``, the
    condition under which the planar map is invertible. For ``w = 0`` it returns ``u`` (the map is
    then a translation).
    """
    wu = jnp.dot(w, u)
    ww = jnp.maximum(jnp.dot(w, w), jnp.finfo(jnp.result_type(w)).tiny)
    return u + (-1.0 + jax.nn.softplus(wu) - wu) * w / ww


class Planar(distrax.Bijector):
    """The planar flow ``f(z) = z + u_hat tanh(w . z + b)`` on batches ``(n, d)`` (or ``(..., d)``).

    ``u_hat`` is ``u`` corrected by :func:`constrained_u`, so every ``(u, w, b)`` gives an
    invertible map: with ``c = w . u_hat > -1`` and ``tanh' in (0, 1]``, the Jacobian determinant
    ``1 + tanh'(w . z + b) c`` is positive.

    Inverse: writing ``y = f(z)``, ``z = y - u_hat tanh(a + b)`` where ``a = w . z`` solves the
    scalar equation (take ``w .`` of both sides of the forward map)

        g(a) = a + c tanh(a + b) = w . y.

    ``g' = 1 + c tanh' > 0``, so the root is unique, and ``|tanh| <= 1`` puts it in the bracket
    ``[w . y - |c|, w . y + |c|]``. It is found by a fixed number of bisection steps on that
    bracket followed by a few Newton steps clipped to the final bracket (so they can only
    improve on it), which keeps the inverse free of data-dependent control flow (jit, vmap and
    grad work); a last Newton step from the gradient-stopped root gives the derivatives of the
    implicit function theorem. The inverse is as accurate as the problem allows: its condition
    number is ``1 / g'``, large only where ``c`` is close to -1 and ``w . z + b`` close to 0.

    Args:
      u: ``(d,)`` the unconstrained direction of the displacement.
      w: ``(d,)`` the normal of the hyperplane.
      b: ``()`` the offset of the hyperplane.
    """

    def __init__(self, u: Array, w: Array, b: Array):
        super().__init__(event_ndims_in=1)
        u, w, b = jnp.asarray(u), jnp.asarray(w), jnp.asarray(b)
        if u.ndim != 1:
            raise ValueError(f"u must have shape (d,); got shape {u.shape}")
        if w.shape != u.shape:
            raise ValueError(f"w must have the shape of u, {u.shape}; got shape {w.shape}")
        if b.shape != ():
            raise ValueError(f"b must be a scalar (shape ()); got shape {b.shape}")
        self._w, self._b = w, b
        self._u_hat = constrained_u(u, w)
        self._c = jnp.dot(w, self._u_hat)

    @property
    def u_hat(self) -> Array:
        """``(d,)`` the constrained direction, with ``w . u_hat > -1``."""
        return self._u_hat

    def _log_det(self, pre: Array) -> Array:
        # 1 - tanh^2 underflows gracefully for large |pre|; log1p keeps c near -1 accurate.
        return jnp.log1p((1.0 - jnp.tanh(pre) ** 2) * self._c)

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        check_events("x", x, self._w.shape[0])
        pre = x @ self._w + self._b
        y = x + jnp.tanh(pre)[..., None] * self._u_hat
        return y, self._log_det(pre)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        check_events("y", y, self._w.shape[0])
        a = self._solve(y @ self._w)
        pre = a + self._b
        x = y - jnp.tanh(pre)[..., None] * self._u_hat
        return x, -self._log_det(pre)

    def _solve(self, target: Array) -> Array:
        """The root ``a`` of ``a + c tanh(a + b) = target``, elementwise."""
        c, b = self._c, self._b

        def residual(a):
            return a + c * jnp.tanh(a + b) - target

        def bisect(_, bracket):
            lo, hi = bracket
            mid = 0.5 * (lo + hi)
            below = residual(mid) < 0
            return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

        lo, hi = jax.lax.fori_loop(
            0, _BISECTION_STEPS, bisect, (target - jnp.abs(c), target + jnp.abs(c))
        )

        def newton(_, a):
            slope = 1.0 + c * (1.0 - jnp.tanh(a + b) ** 2)
            return jnp.clip(a - residual(a) / slope, lo, hi)

        root = jax.lax.stop_gradient(jax.lax.fori_loop(0, _NEWTON_STEPS, newton, 0.5 * (lo + hi)))
        # One Newton step from the (gradient-stopped) root: the same value, and the derivatives of
        # the implicit function theorem, da/dtheta = -(dr/dtheta) / (dr/da), instead of the
        # derivative of the bisection (zero) or of the clipped iterations.
        slope = 1.0 + c * (1.0 - jnp.tanh(root + b) ** 2)
        return root - residual(root) / slope


class PlanarLayer(nn.Module):
    """Owns the parameters ``u, w ~ N(0, init_scale^2)``, ``b = 0`` of one planar flow.

    Use as ``params = layer.init(key, dim, method=PlanarLayer.bijector)`` and
    ``layer.apply(params, dim, method=PlanarLayer.bijector)``.

    Attributes:
      init_scale: standard deviation of the initial ``u`` and ``w``; nonzero so that a fresh
        layer is not the identity.
    """

    init_scale: float = 0.1

    @nn.compact
    def bijector(self, dim: int) -> Planar:
        """The :class:`Planar` bijector on events ``(dim,)`` with this layer's parameters."""
        check_int("dim", dim)
        init = nn.initializers.normal(self.init_scale)
        u = self.param("u", init, (dim,))
        w = self.param("w", init, (dim,))
        b = self.param("b", nn.initializers.zeros, ())
        return Planar(u, w, b)
