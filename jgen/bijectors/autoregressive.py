"""Autoregressive bijectors: the masked autoregressive flow (MAF), the inverse autoregressive
flow (IAF), and their rational-quadratic spline versions.

Each variable goes through a monotone element-wise map ``tau`` (the "transformer") whose
parameters an autoregressive conditioner computes: ``theta_i = c(v)_i`` depends on ``v_<i`` only
(in some ordering; MADE, ``jgen.nets.masked``, is one). Two transformers are provided:

    affine (AFFINE):    theta_i = (shift_i, log_scale_i)
        tau(z_i) = z_i * exp(log_scale_i) + shift_i,       log tau'(z_i) = log_scale_i
    spline (SplineTransformer(K, B)):    theta_i = 3K - 1 unnormalised widths, heights and
        internal knot derivatives of a monotone rational-quadratic spline on [-B, B] with identity
        tails (``jgen.bijectors.spline.rational_quadratic_spline``)

MAF and IAF differ in which side of the map feeds the conditioner:

    MAF (kind='maf'): the data side.     x_i = tau(z_i; c(x)_i)
        inverse x -> z (density, ONE pass):     z_i = tau^-1(x_i; c(x)_i)
        forward z -> x (sampling, d passes):    x_i from x_<i, one variable per pass
        log|det dx/dz| = sum_i log tau'(z_i; c(x)_i)

    IAF (kind='iaf'): the noise side.    x_i = tau(z_i; c(z)_i)
        forward z -> x (sampling, ONE pass)
        inverse x -> z (density, d passes):     z_i from z_<i, one variable per pass
        log|det dx/dz| = sum_i log tau'(z_i; c(z)_i)

In both, ``forward`` maps the base side ``z`` to the data side ``x``, so
``distrax.Transformed(base, bijector)`` has a one-pass ``log_prob`` for MAF and a one-pass
``sample`` for IAF. The Jacobian is triangular (in the conditioner's ordering) with diagonal
``tau'``, hence the log-determinants above (for the affine transformer, ``exp(log_scale)``).

The sequential direction runs ``d`` full passes of the conditioner in a ``lax.fori_loop``: after
pass ``k`` the first ``k`` variables in the ordering are exact, because each only needs its
predecessors, so after ``d`` passes all are, whatever the ordering and the transformer.

Papamakarios, Pavlakou & Murray 2017, "Masked Autoregressive Flow for Density Estimation";
Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling 2016, "Improved Variational Inference
with Inverse Autoregressive Flow"; Durkan, Bekasov, Murray & Papamakarios 2019, "Neural Spline
Flows" (the autoregressive variant, RQ-NSF (AR)).
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.bijectors.spline import rational_quadratic_spline
from jgen.checks import check_choice, check_int, check_positive
from jgen.nets.masked import MADE, Ordering
from jgen.types import Array

Conditioner = Callable[[Array], Any]
KINDS = ("maf", "iaf")
TRANSFORMERS = ("affine", "spline")


class Transformer(Protocol):
    """An element-wise monotone bijection ``tau(v; theta)`` with per-variable parameters.

    ``forward`` and ``inverse`` both map ``(v (n, d), theta) -> (out (n, d), log|dout/dv|
    (n, d))``; ``theta`` is what the conditioner returns, checked and cast by ``check_params``.
    """

    num_params: int

    def check_params(self, theta: Any, v: Array) -> Any: ...

    def forward(self, v: Array, theta: Any) -> tuple[Array, Array]: ...

    def inverse(self, v: Array, theta: Any) -> tuple[Array, Array]: ...


@dataclasses.dataclass(frozen=True)
class AffineTransformer:
    """``tau(z) = z * exp(log_scale) + shift``, ``log tau'(z) = log_scale``, inverse
    ``tau^-1(x) = (x - shift) * exp(-log_scale)``; the conditioner returns ``theta = (shift,
    log_scale)``, each of the shape of ``v`` (Papamakarios et al. 2017; Kingma et al. 2016)."""

    num_params = 2

    def check_params(self, theta, v: Array) -> tuple[Array, Array]:
        """Checks ``theta = (shift, log_scale)`` against ``v`` and casts it to ``v``'s dtype."""
        if not (isinstance(theta, tuple | list) and len(theta) == 2):
            raise ValueError(
                f"conditioner must return a pair (shift, log_scale); got {type(theta).__name__}"
            )
        shift, log_scale = theta
        if jnp.shape(shift) != v.shape or jnp.shape(log_scale) != v.shape:
            raise ValueError(
                f"conditioner must return shift and log_scale of shape {v.shape}; "
                f"got shapes {jnp.shape(shift)} and {jnp.shape(log_scale)}"
            )
        # The loop carry keeps the input's dtype.
        return shift.astype(v.dtype), log_scale.astype(v.dtype)

    def forward(self, z: Array, theta) -> tuple[Array, Array]:
        shift, log_scale = theta
        return z * jnp.exp(log_scale) + shift, log_scale

    def inverse(self, x: Array, theta) -> tuple[Array, Array]:
        shift, log_scale = theta
        return (x - shift) * jnp.exp(-log_scale), -log_scale


@dataclasses.dataclass(frozen=True)
class SplineTransformer:
    """A monotone rational-quadratic spline on ``[-B, B]`` with identity tails, per variable.

    The conditioner returns ``theta (n, d, 3K - 1) = [widths (K) | heights (K) | internal knot
    derivatives (K - 1)]``, unnormalised, which give the knots ``(x_k, y_k, d_k)`` as in
    ``jgen.bijectors.spline.rational_quadratic_spline``. For ``v`` in bin ``k``, with width
    ``w_k``, height ``h_k``, slope ``s_k = h_k / w_k`` and ``t = (v - x_k) / w_k``,

        tau(v) = y_k + h_k (s_k t^2 + d_k t (1 - t)) / (s_k + (d_{k+1} + d_k - 2 s_k) t (1 - t))

    and ``tau(v) = v`` outside ``[-B, B]``. All-zero ``theta`` gives the identity.

    Attributes:
      num_bins: ``K >= 1``, bins per spline.
      bound: ``B > 0``, the half-width of the spline's interval.

    Raises:
      ValueError: naming ``num_bins`` or ``bound`` when out of range.

    Durkan, Bekasov, Murray & Papamakarios 2019, "Neural Spline Flows".
    """

    num_bins: int = 8
    bound: float = 3.0

    def __post_init__(self):
        check_int("num_bins", self.num_bins)
        check_positive("bound", self.bound)
        # A static argument of the jitted spline: a plain, hashable float.
        object.__setattr__(self, "bound", float(self.bound))

    @property
    def num_params(self) -> int:
        """Parameters per variable: ``3K - 1``."""
        return 3 * self.num_bins - 1

    def check_params(self, theta, v: Array) -> Array:
        """Checks ``theta`` of shape ``(*v.shape, 3K - 1)`` and casts it to ``v``'s dtype."""
        expected = (*v.shape, self.num_params)
        if jnp.shape(theta) != expected:
            raise ValueError(
                f"conditioner must return spline parameters of shape {expected} (3 * num_bins - 1 "
                f"= {self.num_params} per variable); got shape {jnp.shape(theta)}"
            )
        return theta.astype(v.dtype)

    def _spline(self, v: Array, theta: Array, inverse: bool) -> tuple[Array, Array]:
        k = self.num_bins
        w, h, d = theta[..., :k], theta[..., k : 2 * k], theta[..., 2 * k :]
        return rational_quadratic_spline(v, w, h, d, bound=self.bound, inverse=inverse)

    def forward(self, z: Array, theta: Array) -> tuple[Array, Array]:
        return self._spline(z, theta, inverse=False)

    def inverse(self, x: Array, theta: Array) -> tuple[Array, Array]:
        return self._spline(x, theta, inverse=True)


AFFINE = AffineTransformer()


class MaskedAutoregressive(distrax.Bijector):
    """The autoregressive layer ``x_i = tau(z_i; c(.)_i)``; ``forward`` maps the base side ``z``
    to the data side ``x`` (module docstring).

    Args:
      conditioner: ``c(v (n, d)) -> theta``, autoregressive in ``v``: ``(shift (n, d),
        log_scale (n, d))`` for ``AFFINE``, ``(n, d, 3K - 1)`` for ``SplineTransformer(K, B)``.
      kind: ``'maf'`` (conditioned on ``x``: one-pass inverse, sequential forward) or ``'iaf'``
        (conditioned on ``z``: one-pass forward, sequential inverse).
      transformer: the element-wise map ``tau``: ``AFFINE`` (default) or a
        ``SplineTransformer``.

    Raises:
      ValueError: naming ``kind`` or ``conditioner`` when invalid, and ``conditioner`` when its
        output does not fit the transformer.
    """

    def __init__(
        self, conditioner: Conditioner, kind: str = "maf", transformer: Transformer = AFFINE
    ):
        check_choice("kind", kind, KINDS)
        if not callable(conditioner):
            raise ValueError(f"conditioner must be callable; got {conditioner!r}")
        if not all(hasattr(transformer, a) for a in ("check_params", "forward", "inverse")):
            raise ValueError(
                "transformer must have check_params, forward and inverse, like AFFINE or "
                f"SplineTransformer(num_bins, bound); got {transformer!r}"
            )
        super().__init__(event_ndims_in=1)
        self._conditioner = conditioner
        self._kind = kind
        self._transformer = transformer

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def transformer(self) -> Transformer:
        return self._transformer

    def _params(self, v: Array):
        return self._transformer.check_params(self._conditioner(v), v)

    def _sequential(self, target: Array, step) -> tuple[Array, Array]:
        """Fixed point of ``v <- step(target, c(v))`` reached in ``d`` passes; returns ``v`` and
        the element-wise log-dets of the last pass (exact: they only need ``v`` before its last
        variable)."""

        def body(_, carry):
            v, _ = carry
            return step(target, self._params(v))

        init = (jnp.zeros_like(target), jnp.zeros_like(target))
        return jax.lax.fori_loop(0, target.shape[-1], body, init)

    def _check(self, name: str, v: Array) -> None:
        if v.ndim < 1 or v.shape[-1] < 1:
            raise ValueError(f"{name} must have shape (n, d); got shape {v.shape}")

    def forward_and_log_det(self, z: Array) -> tuple[Array, Array]:
        """``z -> x`` with ``log|det dx/dz| = sum_i log tau'(z_i)``; sequential for MAF."""
        self._check("z", z)
        if self._kind == "iaf":
            x, log_det = self._transformer.forward(z, self._params(z))
        else:
            x, log_det = self._sequential(z, self._transformer.forward)
        return x, jnp.sum(log_det, axis=-1)

    def inverse_and_log_det(self, x: Array) -> tuple[Array, Array]:
        """``x -> z`` with ``log|det dz/dx| = -sum_i log tau'(z_i)``; sequential for IAF."""
        self._check("x", x)
        if self._kind == "maf":
            z, log_det = self._transformer.inverse(x, self._params(x))
        else:
            z, log_det = self._sequential(x, self._transformer.inverse)
        return z, jnp.sum(log_det, axis=-1)


class AutoregressiveConditioner(nn.Module):
    """``v (n, d) -> (shift, log_scale)`` from a MADE with two outputs per variable;
    ``log_scale = s * tanh(raw)`` with ``s`` learned per variable keeps the scale bounded early
    in training. The output layer starts at zero, so the layer starts as the identity."""

    hidden_sizes: Sequence[int]
    ordering: Ordering = "natural"
    activation: Callable[[jax.Array], jax.Array] = nn.gelu

    @nn.compact
    def __call__(self, v: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = MADE(
            self.hidden_sizes,
            num_params_per_dim=2,
            ordering=self.ordering,
            activation=self.activation,
            zero_init_output=True,
        )(v)
        shift, raw = out[..., 0], out[..., 1]
        scale = self.param("tanh_scale", nn.initializers.ones, (v.shape[-1],))
        return shift, scale * jnp.tanh(raw)


class MAFLayer(nn.Module):
    """The parameters of one MAF or IAF layer, affine or spline: a MADE conditioner that builds
    the bijector.

    Use inside a flow module: ``self.layer.bijector(d)`` returns the ``MaskedAutoregressive``
    bijector (``forward``: base ``z`` -> data ``x``); calling the layer on ``x (n, d)`` returns
    ``(z, log|det dz/dx|)`` and initialises it. The MADE's output layer starts at zero, and zero
    parameters give the identity for both transformers, so the layer starts as the identity.

    Attributes:
      hidden_sizes: hidden widths of the MADE (at least ``d - 1`` each for full dependence).
      ordering: ``'natural'`` or a permutation of ``range(d)``: the autoregressive order.
      kind: ``'maf'`` (one-pass density, sequential sampling) or ``'iaf'`` (the reverse).
      activation: the MADE's nonlinearity.
      transformer: ``'affine'`` (``AutoregressiveConditioner``: shift and tanh-bounded
        log-scale) or ``'spline'`` (``SplineTransformer``: a MADE with ``3 * num_bins - 1``
        outputs per variable; Durkan et al. 2019).
      num_bins: ``K``, bins per spline (``'spline'`` only).
      bound: ``B``, the half-width of the spline interval (``'spline'`` only).
    """

    hidden_sizes: Sequence[int] = (64, 64)
    ordering: Ordering = "natural"
    kind: str = "maf"
    activation: Callable[[jax.Array], jax.Array] = nn.gelu
    transformer: str = "affine"
    num_bins: int = 8
    bound: float = 3.0

    def setup(self):
        check_choice("kind", self.kind, KINDS)
        check_choice("transformer", self.transformer, TRANSFORMERS)
        if self.transformer == "spline":
            self.elementwise = SplineTransformer(self.num_bins, self.bound)
            self.conditioner = MADE(
                self.hidden_sizes,
                num_params_per_dim=self.elementwise.num_params,
                ordering=self.ordering,
                activation=self.activation,
                zero_init_output=True,
            )
        else:
            self.elementwise = AFFINE
            self.conditioner = AutoregressiveConditioner(
                self.hidden_sizes, self.ordering, self.activation
            )

    def bijector(self, dim: int) -> MaskedAutoregressive:
        """The layer's bijector on ``dim`` variables."""
        if self.is_initializing():
            self.conditioner(jnp.zeros((1, dim)))
        # A bound Flax module cannot run inside lax.fori_loop (its scope would capture loop
        # tracers), so the sequential direction gets the conditioner as a pure function.
        module, variables = self.conditioner.unbind()
        return MaskedAutoregressive(
            lambda v: module.apply(variables, v), self.kind, self.elementwise
        )

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``x (n, d) -> (z (n, d), log|det dz/dx| (n,))``, the density direction."""
        if x.ndim != 2:
            raise ValueError(f"x must have shape (n, d); got shape {x.shape}")
        return self.bijector(x.shape[-1]).inverse_and_log_det(x)
