"""Continuous normalizing flows (FFJORD): a bijector defined by an ODE.

The flow ``x = phi(z)`` solves ``dx/dt = f(x, t)`` from ``x(0) = z`` to ``t = 1``. By the
instantaneous change of variables ``d/dt log|det d x(t) / d z| = div_x f(x(t), t)``, so

    forward:  (z, 0) -> (x, int_0^1 div f(x(t), t) dt)       integrating from t = 0 to 1,
    inverse:  (x, 0) -> (z, int_1^0 div f(x(t), t) dt)       the same augmented ODE from 1 to 0,

and the inverse log-det comes out with the opposite sign by itself. The divergence is either exact
(``tr(df/dx)`` by a per-example Jacobian: ``d`` forward-mode passes, small ``d`` only) or
Hutchinson's estimate ``u^T (df/dx) u`` with one probe ``u`` per example, fixed along the
trajectory (one Jacobian-vector product).

Chen, Rubanova, Bettencourt & Duvenaud 2018, "Neural ordinary differential equations" (Thm. 1);
Grathwohl, Chen, Bettencourt, Sutskever & Duvenaud 2019, "FFJORD: Free-form continuous dynamics
for scalable reversible generative models".
"""

import math
from collections.abc import Callable, Sequence

import distrax
import flax.linen as nn
import jax.numpy as jnp

from jgen.checks import check_choice, check_int, check_positive
from jgen.nets.mlp import MLP
from jgen.samplers.ode import (
    DIVERGENCES,
    METHODS,
    PROBES,
    divergence_fn,
    odeint,
)
from jgen.types import Array, PRNGKey

# f(x (n, *event), t (n,)) -> dx/dt (n, *event)
VectorField = Callable[[Array, Array], Array]


class ContinuousFlow(distrax.Bijector):
    """The time-1 map of ``dx/dt = f(x, t)`` (FFJORD) as a distrax bijector.

    ``forward`` integrates from ``t = 0`` (base ``z``) to ``t = 1`` (data ``x``) with the log-det
    ``int_0^1 div f dt`` accumulated in an augmented state; ``inverse`` integrates the same
    augmented ODE from 1 to 0, which gives minus that log-det. Both are exact up to solver error:
    ``inverse(forward(z))`` is ``z`` only to the solver's accuracy (``O(h^4)`` for RK4).

    With ``divergence='hutchinson'`` the bijector is stochastic: its log-det is an unbiased
    estimate ``int_0^1 u^T (df/dx) u dt`` with probes ``u`` drawn from ``key`` (one per example,
    the same along the trajectory, ``E[u u^T] = I``), while the transformed points are the exact
    ones. A fixed ``key`` fixes the probes, so draw a fresh key per training step; the probes
    depend on the batch's shape only, so under ``vmap`` every mapped batch gets the same ones.

    Inputs are ``(n, *event)`` (any leading shape, or none, is flattened into one batch). The
    field must treat examples independently (no batch statistics): the divergence of example
    ``i`` differentiates only it.

    Args:
      vector_field: ``f(x (n, *event), t (n,)) -> (n, *event)``.
      method: an ODE solver of ``jgen.samplers.ode.METHODS`` (``'euler'``, ``'heun'``,
        ``'rk4'``, ``'dopri5'``). Fixed-step methods are differentiable in reverse mode;
        ``'dopri5'`` (a ``while_loop``) is for evaluation only.
      n_steps: steps of a fixed-step method.
      divergence: ``'exact'`` or ``'hutchinson'``.
      key: the PRNG key of the Hutchinson probes; required for ``'hutchinson'``, unused else.
      probe: ``'rademacher'`` or ``'gaussian'`` Hutchinson probes.
      rtol: relative tolerance of ``'dopri5'`` (the log-det component is controlled too).
      atol: absolute tolerance of ``'dopri5'``.
      max_steps: step attempts allowed to ``'dopri5'``.
      event_ndims: number of trailing axes that form one event.
    """

    def __init__(
        self,
        vector_field: VectorField,
        *,
        method: str = "rk4",
        n_steps: int = 32,
        divergence: str = "exact",
        key: PRNGKey | None = None,
        probe: str = "rademacher",
        rtol: float = 1e-5,
        atol: float = 1e-5,
        max_steps: int = 10_000,
        event_ndims: int = 1,
    ):
        if not callable(vector_field):
            raise ValueError(f"vector_field must be callable f(x, t); got {vector_field!r}")
        check_choice("method", method, METHODS)
        check_int("n_steps", n_steps, 1)
        check_choice("divergence", divergence, DIVERGENCES)
        check_choice("probe", probe, PROBES)
        if divergence == "hutchinson" and key is None:
            raise ValueError("key must be a PRNG key when divergence='hutchinson'; got None")
        check_positive("rtol", rtol)
        check_positive("atol", atol, allow_zero=True)
        check_int("max_steps", max_steps, 1)
        check_int("event_ndims", event_ndims, 1)
        super().__init__(event_ndims_in=event_ndims)
        self._field = vector_field
        self._solver = dict(
            method=method, n_steps=n_steps, rtol=rtol, atol=atol, max_steps=max_steps
        )
        self._divergence = divergence
        self._key = key
        self._probe = probe

    def integrate(
        self, x: Array, t0: float, t1: float, name: str = "x"
    ) -> tuple[Array, Array, dict]:
        """Solves the augmented ODE from ``t0`` to ``t1``.

        Args:
          x: the state at ``t0``, ``(..., *event)``.
          t0: initial time.
          t1: final time (``t1 < t0`` integrates backwards).
          name: the argument's name in error messages.

        Returns:
          ``(x1, delta, info)``: the state at ``t1`` (shape of ``x``), ``int_t0^t1 div f dt``
          (the leading shape of ``x``) and the solver's ``info`` (``nfe``, ``success`` ...).
        """
        k = self.event_ndims_in
        shape = jnp.shape(x)
        if len(shape) < k or not jnp.issubdtype(jnp.result_type(x), jnp.floating):
            raise ValueError(
                f"{name} must be a floating-point array (n, *event) with {k} event axes; got "
                f"shape {shape} and dtype {jnp.result_type(x)}"
            )
        batch_shape, event_shape = shape[: len(shape) - k], shape[len(shape) - k :]
        flat = jnp.reshape(x, (math.prod(batch_shape), *event_shape))

        def field(y, t):
            dy = self._field(y, t)
            if jnp.shape(dy) != jnp.shape(y):
                raise ValueError(
                    f"vector_field must return the shape of its input {jnp.shape(y)}; got "
                    f"shape {jnp.shape(dy)}"
                )
            return dy

        div_fn = divergence_fn(
            field, self._divergence, self._probe, self._key, flat.shape, flat.dtype
        )

        def augmented(state, t):
            return div_fn(state[0], t)

        state0 = (flat, jnp.zeros(flat.shape[:1], flat.dtype))
        (x1, delta), info = odeint(augmented, state0, t0, t1, **self._solver)
        return jnp.reshape(x1, shape), jnp.reshape(delta, batch_shape), info

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        """``x(1)`` from ``x(0) = x`` and ``log|det dx(1)/dx(0)| = int_0^1 div f dt``."""
        y, log_det, _ = self.integrate(x, 0.0, 1.0, "x")
        return y, log_det

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        """``x(0)`` from ``x(1) = y`` and ``log|det dx(0)/dx(1)| = -int_0^1 div f dt``."""
        x, log_det, _ = self.integrate(y, 1.0, 0.0, "y")
        return x, log_det


class ContinuousFlowLayer(nn.Module):
    """An MLP vector field ``f(x, t) = MLP([x, t])`` and the :class:`ContinuousFlow` it defines.

    The time enters as one more input feature (concatenated, as in FFJORD's ``ConcatLinear``
    first layer); the output layer starts at zero, so a fresh layer is the identity flow with
    log-det 0. ``bijector(dim, key)`` builds the bijector (call it inside ``apply`` or on a bound
    module); ``__call__(x, key)`` is its ``forward_and_log_det``, e.g. for ``init``.

    Attributes:
      hidden_sizes: hidden widths of the MLP.
      activation: its nonlinearity; smooth (tanh, softplus) so the ODE is smooth for the solver.
      method: the ODE solver (see :class:`ContinuousFlow`).
      n_steps: steps of a fixed-step solver.
      divergence: ``'exact'`` or ``'hutchinson'``: the divergence used when ``bijector`` gets a
        key (training); without one it is always exact.
      probe: Hutchinson probe distribution.
      rtol: relative tolerance of ``'dopri5'``.
      atol: absolute tolerance of ``'dopri5'``.
    """

    hidden_sizes: Sequence[int] = (64, 64)
    activation: Callable[[Array], Array] = nn.tanh
    method: str = "rk4"
    n_steps: int = 32
    divergence: str = "exact"
    probe: str = "rademacher"
    rtol: float = 1e-5
    atol: float = 1e-5

    @nn.compact
    def vector_field(self, x: Array, t: Array) -> Array:
        """``f(x (n, d), t (n,)) -> (n, d)``."""
        inputs = jnp.concatenate([x, t[:, None].astype(x.dtype)], axis=-1)
        mlp = MLP(self.hidden_sizes, x.shape[-1], self.activation, zero_init_output=True)
        return mlp(inputs)

    def bijector(self, dim: int, key: PRNGKey | None = None) -> ContinuousFlow:
        """The flow on events ``(dim,)``. ``key`` draws the Hutchinson probes when
        ``divergence='hutchinson'`` (training); without a key the log-det uses the exact
        divergence (evaluation)."""
        check_int("dim", dim)
        if self.is_initializing():
            # Create the parameters outside the solver's scan, whose trace they would leak from.
            self.vector_field(jnp.zeros((1, dim)), jnp.zeros((1,)))
        # A bound Flax module cannot run inside the solver's loop (its scope would capture loop
        # tracers), so the bijector gets the field as a pure function of its variables.
        module, variables = self.unbind()

        def field(x, t):
            return module.apply(variables, x, t, method=ContinuousFlowLayer.vector_field)

        return ContinuousFlow(
            field,
            method=self.method,
            n_steps=self.n_steps,
            divergence=self.divergence if key is not None else "exact",
            key=key,
            probe=self.probe,
            rtol=self.rtol,
            atol=self.atol,
        )

    def __call__(self, x: Array, key: PRNGKey | None = None) -> tuple[Array, Array]:
        return self.bijector(x.shape[-1], key).forward_and_log_det(x)
