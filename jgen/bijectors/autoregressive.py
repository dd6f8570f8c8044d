"""Affine autoregressive bijectors: the masked autoregressive flow (MAF) and the inverse
autoregressive flow (IAF).

Both use a conditioner ``c(v) -> (shift, log_scale)`` that is autoregressive: output ``i``
depends on ``v_<i`` only (in some ordering; MADE, ``jgen.nets.masked``, is one). They differ in
which side of the map feeds the conditioner:

    MAF (kind='maf'): the data side.     x = z * exp(log_scale(x)) + shift(x)
        inverse x -> z (density, ONE pass):     z = (x - shift(x)) * exp(-log_scale(x))
        forward z -> x (sampling, d passes):    x_i from x_<i, one variable per pass
        log|det dx/dz| = sum_i log_scale_i(x)

    IAF (kind='iaf'): the noise side.    x = z * exp(log_scale(z)) + shift(z)
        forward z -> x (sampling, ONE pass)
        inverse x -> z (density, d passes):     z_i from z_<i, one variable per pass
        log|det dx/dz| = sum_i log_scale_i(z)

In both, ``forward`` maps the base side ``z`` to the data side ``x``, so
``distrax.Transformed(base, bijector)`` has a one-pass ``log_prob`` for MAF and a one-pass
``sample`` for IAF. The Jacobian is triangular (in the conditioner's ordering) with diagonal
``exp(log_scale)``, hence the log-determinants above.

The sequential direction runs ``d`` full passes of the conditioner in a ``lax.fori_loop``: after
pass ``k`` the first ``k`` variables in the ordering are exact, because each only needs its
predecessors, so after ``d`` passes all are, whatever the ordering.

Papamakarios, Pavlakou & Murray 2017, "Masked Autoregressive Flow for Density Estimation";
Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling 2016, "Improved Variational Inference
with Inverse Autoregressive Flow".
"""

from collections.abc import Callable, Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.checks import check_choice
from jgen.nets.masked import MADE, Ordering
from jgen.types import Array

Conditioner = Callable[[Array], tuple[Array, Array]]
KINDS = ("maf", "iaf")


class MaskedAutoregressive(distrax.Bijector):
    """The affine autoregressive layer; ``forward`` maps the base side ``z`` to the data side
    ``x`` (module docstring).

    Args:
      conditioner: ``c(v (n, d)) -> (shift (n, d), log_scale (n, d))``, autoregressive in ``v``.
      kind: ``'maf'`` (conditioned on ``x``: one-pass inverse, sequential forward) or ``'iaf'``
        (conditioned on ``z``: one-pass forward, sequential inverse).

    Raises:
      ValueError: naming ``kind`` when it is neither.
    """

    def __init__(self, conditioner: Conditioner, kind: str = "maf"):
        check_choice("kind", kind, KINDS)
        if not callable(conditioner):
            raise ValueError(f"conditioner must be callable; got {conditioner!r}")
        super().__init__(event_ndims_in=1)
        self._conditioner = conditioner
        self._kind = kind

    @property
    def kind(self) -> str:
        return self._kind

    def _params(self, v: Array) -> tuple[Array, Array]:
        shift, log_scale = self._conditioner(v)
        if shift.shape != v.shape or log_scale.shape != v.shape:
            raise ValueError(
                f"conditioner must return shift and log_scale of shape {v.shape}; "
                f"got shapes {shift.shape} and {log_scale.shape}"
            )
        # The loop carry keeps the input's dtype.
        return shift.astype(v.dtype), log_scale.astype(v.dtype)

    def _sequential(self, target: Array, step) -> tuple[Array, Array]:
        """Fixed point of ``v <- step(target, c(v))`` reached in ``d`` passes; returns ``v`` and
        the log-scales of the last pass (exact: they only need ``v`` before its last variable)."""

        def body(_, carry):
            v, _ = carry
            shift, log_scale = self._params(v)
            return step(target, shift, log_scale), log_scale

        init = (jnp.zeros_like(target), jnp.zeros_like(target))
        return jax.lax.fori_loop(0, target.shape[-1], body, init)

    @staticmethod
    def _to_x(z, shift, log_scale):
        return z * jnp.exp(log_scale) + shift

    @staticmethod
    def _to_z(x, shift, log_scale):
        return (x - shift) * jnp.exp(-log_scale)

    def _check(self, name: str, v: Array) -> None:
        if v.ndim < 1 or v.shape[-1] < 1:
            raise ValueError(f"{name} must have shape (n, d); got shape {v.shape}")

    def forward_and_log_det(self, z: Array) -> tuple[Array, Array]:
        """``z -> x`` with ``log|det dx/dz| = sum(log_scale)``; sequential for MAF."""
        self._check("z", z)
        if self._kind == "iaf":
            shift, log_scale = self._params(z)
            x = self._to_x(z, shift, log_scale)
        else:
            x, log_scale = self._sequential(z, self._to_x)
        return x, jnp.sum(log_scale, axis=-1)

    def inverse_and_log_det(self, x: Array) -> tuple[Array, Array]:
        """``x -> z`` with ``log|det dz/dx| = -sum(log_scale)``; sequential for IAF."""
        self._check("x", x)
        if self._kind == "maf":
            shift, log_scale = self._params(x)
            z = self._to_z(x, shift, log_scale)
        else:
            z, log_scale = self._sequential(x, self._to_z)
        return z, -jnp.sum(log_scale, axis=-1)


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
    """The parameters of one MAF or IAF layer: a MADE conditioner that builds the bijector.

    Use inside a flow module: ``self.layer.bijector(d)`` returns the ``MaskedAutoregressive``
    bijector (``forward``: base ``z`` -> data ``x``); calling the layer on ``x (n, d)`` returns
    ``(z, log|det dz/dx|)`` and initialises it.

    Attributes:
      hidden_sizes: hidden widths of the MADE (at least ``d - 1`` each for full dependence).
      ordering: ``'natural'`` or a permutation of ``range(d)``: the autoregressive order.
      kind: ``'maf'`` (one-pass density, sequential sampling) or ``'iaf'`` (the reverse).
      activation: the MADE's nonlinearity.
    """

    hidden_sizes: Sequence[int] = (64, 64)
    ordering: Ordering = "natural"
    kind: str = "maf"
    activation: Callable[[jax.Array], jax.Array] = nn.gelu

    def setup(self):
        check_choice("kind", self.kind, KINDS)
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
        return MaskedAutoregressive(lambda v: module.apply(variables, v), self.kind)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``x (n, d) -> (z (n, d), log|det dz/dx| (n,))``, the density direction."""
        if x.ndim != 2:
            raise ValueError(f"x must have shape (n, d); got shape {x.shape}")
        return self.bijector(x.shape[-1]).inverse_and_log_det(x)
