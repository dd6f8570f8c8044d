"""Invertible 1x1 convolution (Glow), LU-parameterised.

Every spatial position of an ``(H, W, C)`` event is multiplied by one ``C x C`` matrix,
``y[h, w] = W x[h, w]``, with

    W = P L (U + diag(s)),    s = sign * exp(log_abs_s)
    log|det dy/dx| = H * W * sum(log_abs_s)

``P`` a fixed permutation matrix, ``L`` unit lower triangular, ``U`` strictly upper triangular and
``sign`` fixed; ``L``, ``U`` and ``log_abs_s`` are learned. The log-det costs ``O(C)`` instead of
``O(C^3)``, and the inverse is two triangular solves, ``x = (U + diag(s))^{-1} L^{-1} P^T y``.

Kingma & Dhariwal 2018, "Glow: Generative flow with invertible 1x1 convolutions", section 3.2.
"""

import math

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from jgen.bijectors.actnorm import check_channels
from jgen.checks import check_int
from jgen.types import Array, PRNGKey

LU_KEYS = ("permutation", "lower", "upper", "log_abs_s", "sign")


def lu_decompose(matrix: Array) -> dict[str, Array]:
    """The LU parameters of an invertible square matrix ``A = P L (U + diag(s))``.

    Args:
      matrix: ``(C, C)`` invertible matrix.

    Returns:
      A dict with ``permutation`` (``P``, ``(C, C)``), ``lower`` (``L``, unit diagonal included),
      ``upper`` (strictly upper part of the LU factor), ``log_abs_s`` and ``sign`` (``(C,)``,
      from its diagonal), ready for ``Conv1x1(**params)``.
    """
    matrix = jnp.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be square (C, C); got shape {matrix.shape}")
    permutation, lower, upper = jax.scipy.linalg.lu(matrix)
    s = jnp.diag(upper)
    return {
        "permutation": permutation,
        "lower": lower,
        "upper": jnp.triu(upper, 1),
        "log_abs_s": jnp.log(jnp.abs(s)),
        "sign": jnp.sign(s),
    }


def random_rotation(key: PRNGKey, num_channels: int, dtype=None) -> Array:
    """A random orthogonal ``(C, C)`` matrix: the Q factor of a standard Gaussian matrix (Glow's
    initialisation; ``|det| = 1``, so the layer starts volume preserving)."""
    check_int("num_channels", num_channels)
    q, _ = jnp.linalg.qr(jax.random.normal(key, (num_channels, num_channels), dtype))
    return q


class Conv1x1(distrax.Bijector):
    """``y[..., :] = W x[..., :]`` per position with ``W = P L (U + diag(sign exp(log_abs_s)))``.

    Only the strictly lower part of ``lower`` and the strictly upper part of ``upper`` are read
    (the unit diagonal of ``L`` is implied), so unconstrained arrays are valid parameters.

    Args:
      permutation: ``(C, C)`` permutation matrix ``P``.
      lower: ``(C, C)``, strictly lower part of ``L``.
      upper: ``(C, C)``, strictly upper part of ``U``.
      log_abs_s: ``(C,)``, ``log|s|``.
      sign: ``(C,)``, the signs (+-1) of ``s``.
      event_ndims: 3 for ``(H, W, C)`` images; 1 gives a plain invertible linear map of vectors.

    Raises:
      ValueError: if the parameters do not all have the sizes of one ``C``.
    """

    def __init__(
        self,
        permutation: Array,
        lower: Array,
        upper: Array,
        log_abs_s: Array,
        sign: Array,
        event_ndims: int = 3,
    ):
        check_int("event_ndims", event_ndims, minimum=1)
        log_abs_s = jnp.asarray(log_abs_s)
        if log_abs_s.ndim != 1:
            raise ValueError(f"log_abs_s must have shape (C,); got shape {log_abs_s.shape}")
        c = log_abs_s.shape[0]
        arrays = {"permutation": permutation, "lower": lower, "upper": upper, "sign": sign}
        for name, value in arrays.items():
            expected = (c,) if name == "sign" else (c, c)
            if jnp.shape(value) != expected:
                raise ValueError(f"{name} must have shape {expected}; got {jnp.shape(value)}")
        super().__init__(event_ndims_in=event_ndims, is_constant_jacobian=True)
        self._permutation = jnp.asarray(permutation)
        self._lower = jnp.tril(jnp.asarray(lower), -1) + jnp.eye(c, dtype=log_abs_s.dtype)
        self._upper = jnp.triu(jnp.asarray(upper), 1) + jnp.diag(
            jnp.asarray(sign) * jnp.exp(log_abs_s)
        )
        self._log_abs_s = log_abs_s

    @property
    def num_channels(self) -> int:
        return self._log_abs_s.shape[0]

    def matrix(self) -> Array:
        """The ``(C, C)`` matrix ``W = P L (U + diag(s))``."""
        return self._permutation @ self._lower @ self._upper

    def _log_det(self, x: Array) -> Array:
        positions = math.prod(x.shape[x.ndim - self.event_ndims_in : -1])
        log_det = positions * jnp.sum(self._log_abs_s)
        return jnp.broadcast_to(log_det, x.shape[: x.ndim - self.event_ndims_in])

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        check_channels("x", x, self.num_channels, self.event_ndims_in)
        return x @ self.matrix().T, self._log_det(x)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        check_channels("y", y, self.num_channels, self.event_ndims_in)
        # Columns are positions: solve W x = y for all of them at once.
        columns = self._permutation.T @ y.reshape(-1, self.num_channels).T
        columns = solve_triangular(self._lower, columns, lower=True, unit_diagonal=True)
        columns = solve_triangular(self._upper, columns, lower=False)
        return columns.T.reshape(y.shape), -self._log_det(y)


class Conv1x1Layer(nn.Module):
    """The parameters of a :class:`Conv1x1`, initialised as the LU factors of a random rotation.

    Calling the layer on a batch ``x`` of shape ``(n, *event, C)`` returns the bijector (only the
    shape of ``x`` is read; ``event_ndims = x.ndim - 1``). Under ``module.init`` one rotation is
    drawn from the ``params`` RNG and decomposed with ``jax.scipy.linalg.lu``; ``lower``,
    ``upper`` and ``log_abs_s`` are stored as ``params``, the fixed ``permutation`` and ``sign``
    in the ``constants`` collection (read through ``stop_gradient``, so they receive zero
    gradient; keep the collection out of any weight decay). ``module.apply`` needs both
    collections, i.e. the whole dict returned by ``module.init``.
    """

    @nn.compact
    def __call__(self, x: Array) -> Conv1x1:
        if x.ndim < 2:
            raise ValueError(f"x must be a batch (n, *event, C); got shape {x.shape}")
        c = x.shape[-1]
        # One decomposition shared by all five variables; only computed while initialising.
        init = None
        if self.is_initializing():
            init = lu_decompose(random_rotation(self.make_rng("params"), c, x.dtype))

        # self.variable runs its init fn only when the variable is missing (under init); unlike
        # self.param, it does not trace the init fn under apply, where `init` is None.
        def constant(name):
            value = self.variable("constants", name, lambda: init[name]).value
            return jax.lax.stop_gradient(value)

        def param(name):
            return self.variable("params", name, lambda: init[name]).value

        return Conv1x1(
            permutation=constant("permutation"),
            lower=param("lower"),
            upper=param("upper"),
            log_abs_s=param("log_abs_s"),
            sign=constant("sign"),
            event_ndims=x.ndim - 1,
        )
