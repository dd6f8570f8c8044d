"""Radial flow: a contraction or expansion of space around a reference point ``z0``.

    f(z) = z + beta h(alpha, r) (z - z0),   h = 1 / (alpha + r),   r = |z - z0|
    log|det df/dz| = (d - 1) log(1 + beta h) + log(1 + beta h + beta h'(r) r)

Rezende & Mohamed 2015, "Variational inference with normalizing flows" (Appendix A.2: the
invertibility condition ``beta >= -alpha`` and the reparameterisation below).
"""

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.checks import check_events, check_int
from jgen.types import Array


class Radial(distrax.Bijector):
    """The radial flow ``f(z) = z0 + (z - z0) (1 + beta / (alpha + r))`` on batches ``(n, d)``
    (or ``(..., d)``).

    Reparameterisation: ``alpha = softplus(alpha_raw) > 0`` and ``beta = -alpha + s`` with
    ``s = softplus(beta_raw) > 0``, so ``beta > -alpha`` and every ``(z0, alpha_raw, beta_raw)``
    gives an invertible map (the radius ``r -> r (s + r) / (alpha + r)`` is strictly increasing).
    Written with ``s``, the two log-det terms have no cancellation:

        log(1 + beta h) = log(s + r) - log(alpha + r)
        log(1 + beta h + beta h' r) = log(alpha s + 2 alpha r + r^2) - 2 log(alpha + r)

    Inverse, in closed form: ``f`` keeps the direction of ``z - z0`` and maps its length ``r`` to
    ``r_y = |y - z0| = r (s + r) / (alpha + r)``, i.e. ``r`` is the nonnegative root of

        r^2 + (s - r_y) r - alpha r_y = 0,

    taken in whichever of the two algebraically equal forms avoids cancellation, and then
    ``z = z0 + (y - z0) (alpha + r) / (s + r)``.

    Args:
      z0: ``(d,)`` the centre.
      alpha_raw: ``()`` unconstrained; ``alpha = softplus(alpha_raw)`` sets the radial scale.
      beta_raw: ``()`` unconstrained; ``beta = softplus(beta_raw) - alpha`` the strength
        (negative contracts towards ``z0``, positive expands).
    """

    def __init__(self, z0: Array, alpha_raw: Array, beta_raw: Array):
        super().__init__(event_ndims_in=1)
        z0, alpha_raw, beta_raw = map(jnp.asarray, (z0, alpha_raw, beta_raw))
        if z0.ndim != 1:
            raise ValueError(f"z0 must have shape (d,); got shape {z0.shape}")
        if alpha_raw.shape != ():
            raise ValueError(f"alpha_raw must be a scalar (shape ()); got shape {alpha_raw.shape}")
        if beta_raw.shape != ():
            raise ValueError(f"beta_raw must be a scalar (shape ()); got shape {beta_raw.shape}")
        self._z0 = z0
        self._alpha = jax.nn.softplus(alpha_raw)
        self._s = jax.nn.softplus(beta_raw)

    @property
    def alpha(self) -> Array:
        return self._alpha

    @property
    def beta(self) -> Array:
        return self._s - self._alpha

    def _log_det(self, r: Array) -> Array:
        a, s = self._alpha, self._s
        d = self._z0.shape[0]
        log_a_r = jnp.log(a + r)
        radial = jnp.log(a * s + 2 * a * r + r**2) - 2 * log_a_r
        return (d - 1) * (jnp.log(s + r) - log_a_r) + radial

    def _radius(self, v: Array) -> Array:
        # Clamped so that the gradient at v = 0 is finite (|v| is not differentiable there, but
        # f is: its Jacobian at z0 is (1 + beta / alpha) I).
        sq = jnp.sum(v**2, axis=-1)
        return jnp.sqrt(jnp.maximum(sq, jnp.finfo(sq.dtype).tiny))

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        check_events("x", x, self._z0.shape[0])
        v = x - self._z0
        r = self._radius(v)
        scale = (self._s + r) / (self._alpha + r)  # 1 + beta h(r)
        return self._z0 + v * scale[..., None], self._log_det(r)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        check_events("y", y, self._z0.shape[0])
        a, s = self._alpha, self._s
        v = y - self._z0
        r_y = self._radius(v)
        q = s - r_y
        disc = jnp.sqrt(q**2 + 4 * a * r_y)
        # Both are the positive root; the first cancels when q < 0, the second when q > 0. Neither
        # denominator vanishes: q + disc = 0 would need r_y = 0, where q = s > 0.
        r = jnp.where(q > 0, 2 * a * r_y / (q + disc), 0.5 * (disc - q))
        scale = (a + r) / (s + r)
        return self._z0 + v * scale[..., None], -self._log_det(r)


class RadialLayer(nn.Module):
    """Owns the parameters of one radial flow: ``z0 ~ N(0, 1)``, ``alpha_raw = 0`` and
    ``beta_raw ~ N(0, init_scale^2)`` (``beta_raw = alpha_raw`` would be the identity).

    Use as ``params = layer.init(key, dim, method=RadialLayer.bijector)`` and
    ``layer.apply(params, dim, method=RadialLayer.bijector)``.

    Attributes:
      init_scale: standard deviation of the initial ``beta_raw``.
    """

    init_scale: float = 0.1

    @nn.compact
    def bijector(self, dim: int) -> Radial:
        """The :class:`Radial` bijector on events ``(dim,)`` with this layer's parameters."""
        check_int("dim", dim)
        z0 = self.param("z0", nn.initializers.normal(1.0), (dim,))
        alpha_raw = self.param("alpha_raw", nn.initializers.zeros, ())
        beta_raw = self.param("beta_raw", nn.initializers.normal(self.init_scale), ())
        return Radial(z0, alpha_raw, beta_raw)
