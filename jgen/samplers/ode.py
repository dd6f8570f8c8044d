"""ODE solvers, probability-flow sampling and exact likelihoods of score-based models.

The probability-flow ODE of a diffusion SDE ``dx = f(x, t) dt + g(t) dw`` is

    dx/dt = f(x, t) - g(t)^2 / 2 * grad_x log p_t(x),

whose solutions carry ``p_T`` to ``p_0`` with the same marginals as the SDE (Song et al. 2021,
"Score-based generative modeling through stochastic differential equations", Sec. 4.3). Run
backwards from the prior it samples; run forwards from the data with the instantaneous change of
variables ``d/dt log p(x_t) = -div_x f(x_t, t)`` (Chen et al. 2018, "Neural ordinary differential
equations"; Grathwohl et al. 2019, FFJORD) it gives ``log p_0(x)`` exactly, up to solver error.

Solvers act on ``dy/dt = f(y, t)`` where ``y`` is a batch-first array or pytree of arrays (every
leaf ``(n, ...)``) and ``t`` is passed to ``f`` as ``(n,)``:

* ``odeint_fixed``: Euler, Heun (2nd order) and classical RK4 with ``n_steps`` equal steps, a
  ``lax.scan`` through ``jgen.samplers.chain.run_chain``; differentiable in reverse mode.
* ``odeint_dopri5``: Dormand & Prince 1980, the embedded 5(4) pair behind torchdiffeq's ``dopri5``
  (FFJORD) and scipy's ``RK45`` (Song et al.), with Hairer's PI step-size controller, as a
  ``lax.while_loop`` guarded by ``max_steps``. One step size is shared by the whole batch and the
  error norm is the per-example RMS error maximised over the batch: a single loop with no
  per-example masking, and every example still meets ``rtol`` / ``atol`` (Song et al.'s scipy
  ``RK45`` on the flattened batch does the same). The price: the batch takes the steps of its
  hardest example, and an example's result moves, within tolerance, with its batch-mates. (Under
  ``vmap`` each mapped batch gets its own step size.) Reverse-mode autodiff through
  ``while_loop`` is not supported: differentiate through a fixed-step solver instead.

Why not diffrax: it would be a dependency for one solver, whereas dopri5 is some eighty lines of
``lax``; written here it keeps no trajectory, no ``equinox`` modules and follows the batch-first
conventions of the rest of ``jgen``.
"""

import math
import numbers
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp

from jgen.checks import check_choice, check_int, check_positive
from jgen.losses.likelihood import bits_per_dim, dequantized_nll, rescaled_nll
from jgen.samplers.chain import run_chain
from jgen.sdes.sde import SDE, reverse
from jgen.types import Array, PRNGKey, PyTree, TimeScoreFn

VectorField = Callable[[PyTree, Array], PyTree]  # f(y, t (n,)) -> dy/dt, same structure as y


# ---------------------------------------------------------------------------------------------
# Argument checks.


# ---------------------------------------------------------------------------------------------
# Pytree helpers.


def _batch_size_and_dtype(y: PyTree) -> tuple[int, jnp.dtype]:
    leaves = jax.tree.leaves(y)
    if not leaves or any(jnp.ndim(leaf) < 1 for leaf in leaves):
        raise ValueError("the ODE state must be a non-empty pytree of batch-first arrays (n, ...)")
    return leaves[0].shape[0], jnp.result_type(*leaves, float)


def _batched_field(f: VectorField, n: int, dtype, y: PyTree, t: Array) -> PyTree:
    """``f(y, t)`` at a scalar time broadcast to ``(n,)``, cast to the state's dtypes (so a field
    that promotes, e.g. float32 states times float64 constants, keeps the loop's types)."""
    dy = f(y, jnp.full((n,), t, dtype))
    return jax.tree.map(lambda d, s: d.astype(s.dtype), dy, y)


def _combine(y: PyTree, h, coeffs, ks) -> PyTree:
    """``y + h * sum_j coeffs[j] * ks[j]``, skipping zero coefficients."""
    terms = [(c, k) for c, k in zip(coeffs, ks, strict=False) if c != 0]

    def leaf(y_leaf, *k_leaves):
        total = sum(c * k for (c, _), k in zip(terms, k_leaves, strict=True))
        return y_leaf + h * total

    return jax.tree.map(leaf, y, *[k for _, k in terms])


def _rms_norm(y: PyTree, scale: PyTree) -> Array:
    """``max_i sqrt(mean_j (y_ij / scale_ij)^2)``: the RMS norm of Hairer, Norsett & Wanner
    (Solving ODEs I, Sec. II.4) per example ``i``, over all leaves, maximised over the batch."""
    sq = [
        jnp.sum(jnp.reshape((a / s) ** 2, (a.shape[0], -1)), -1)
        for a, s in zip(jax.tree.leaves(y), jax.tree.leaves(scale), strict=True)
    ]
    count = sum(math.prod(a.shape[1:]) for a in jax.tree.leaves(y))
    return jnp.max(jnp.sqrt(sum(sq) / count))


# ---------------------------------------------------------------------------------------------
# Fixed-step solvers.


def _euler_step(f, y, t, h):
    return _combine(y, h, (1.0,), (f(y, t),))


def _heun_step(f, y, t, h):
    k1 = f(y, t)
    k2 = f(_combine(y, h, (1.0,), (k1,)), t + h)
    return _combine(y, h, (0.5, 0.5), (k1, k2))


def _rk4_step(f, y, t, h):
    k1 = f(y, t)
    k2 = f(_combine(y, h / 2, (1.0,), (k1,)), t + h / 2)
    k3 = f(_combine(y, h / 2, (1.0,), (k2,)), t + h / 2)
    k4 = f(_combine(y, h, (1.0,), (k3,)), t + h)
    return _combine(y, h, (1 / 6, 1 / 3, 1 / 3, 1 / 6), (k1, k2, k3, k4))


# method -> (one step y(t) -> y(t + h), function evaluations per step)
FIXED_STEPS = {"euler": (_euler_step, 1), "heun": (_heun_step, 2), "rk4": (_rk4_step, 4)}
ADAPTIVE = "dopri5"
METHODS = (*FIXED_STEPS, ADAPTIVE)


def _info(nfe, n_accepted, n_rejected, success) -> dict:
    return {
        "nfe": jnp.asarray(nfe, jnp.int32),
        "n_accepted": jnp.asarray(n_accepted, jnp.int32),
        "n_rejected": jnp.asarray(n_rejected, jnp.int32),
        "success": jnp.asarray(success, bool),
    }


def odeint_fixed(
    f: VectorField,
    x0: PyTree,
    t0,
    t1,
    n_steps: int,
    method: str = "euler",
    record_every: int = 0,
) -> tuple[PyTree, dict, PyTree | None]:
    """Integrates ``dx/dt = f(x, t)`` from ``t0`` to ``t1`` with ``n_steps`` equal steps.

    With ``h = (t1 - t0) / n_steps`` (negative when ``t1 < t0``: integration backwards in time):

    * ``euler``: ``x + h f(x, t)``; global error ``O(h)`` (Euler 1768).
    * ``heun``:  ``x + h/2 [f(x, t) + f(x + h f(x, t), t + h)]``; ``O(h^2)`` (Heun 1900).
    * ``rk4``:   the classical four-stage Runge-Kutta method; ``O(h^4)`` (Kutta 1901).

    Args:
      f: the vector field ``f(x, t) -> dx/dt``; ``x`` is a batch-first array or pytree of arrays
        ``(n, ...)`` and ``t`` has shape ``(n,)``.
      x0: the initial state, a batch-first array or pytree.
      t0: initial time (scalar, may be traced).
      t1: final time (scalar, may be traced).
      n_steps: number of steps (a Python int >= 1).
      method: ``'euler'``, ``'heun'`` or ``'rk4'``.
      record_every: when ``k > 0`` also keep the state after every ``k``-th step (``k`` must
        divide ``n_steps``) as ``info["trajectory"]``, stacked ``(n_steps // k, ...)``; 0 keeps
        no trajectory.

    Returns:
      ``(x1, info)``: the state at ``t1``; ``info`` with ``nfe`` (evaluations of ``f``),
      ``n_accepted`` (= ``n_steps``), ``n_rejected`` (0), ``success`` (True) and, when recorded,
      ``trajectory``.
    """
    check_choice("method", method, FIXED_STEPS)
    check_int("n_steps", n_steps, 1)
    step_fn, stages = FIXED_STEPS[method]
    n, dtype = _batch_size_and_dtype(x0)
    t0 = jnp.asarray(t0, dtype)
    h = (jnp.asarray(t1, dtype) - t0) / n_steps
    f_batched = partial(_batched_field, f, n, dtype)

    def step(y, key, i):
        del key  # deterministic
        return step_fn(f_batched, y, t0 + i.astype(dtype) * h, h), {}

    x1, _, trajectory = run_chain(step, x0, jax.random.key(0), n_steps, record_every=record_every)
    info = _info(n_steps * stages, n_steps, 0, True)
    return x1, info if trajectory is None else {**info, "trajectory": trajectory}


# ---------------------------------------------------------------------------------------------
# Dormand-Prince 5(4).

# Butcher tableau (Dormand & Prince 1980, Table 2; Hairer, Norsett & Wanner, Table II.5.2). The
# last row of A is the 5th-order solution, whose derivative is the first stage of the next step
# (first same as last, FSAL). E = b5 - b4 weighs the stages into the local error estimate.
_DP_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_DP_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_DP_E = (
    71 / 57600,
    0.0,
    -71 / 16695,
    71 / 1920,
    -17253 / 339200,
    22 / 525,
    -1 / 40,
)

# Step-size control of Hairer's DOPRI5 code: PI controller h_new = h / fac with
# fac = err^(1/5 - 0.75 beta) / err_prev^beta / safety, clipped to [1/10, 5].
_SAFETY = 0.9
_BETA = 0.04
_FAC_MIN = 0.2  # h_new >= h / 5
_FAC_MAX = 10.0  # h_new <= 10 h
_EXPO1 = 0.2 - 0.75 * _BETA


def _dopri5_step(f, y, k1, t, h):
    """One attempted step: the 5th-order solution, its derivative (FSAL) and the error."""
    ks = [k1]
    for i in range(1, 7):
        yi = _combine(y, h, _DP_A[i], ks)
        ks.append(f(yi, t + _DP_C[i] * h))
    err = jax.tree.map(lambda e: h * e, _combine(jax.tree.map(jnp.zeros_like, y), 1.0, _DP_E, ks))
    return yi, ks[-1], err


def _initial_step(f, y0, f0, t0, span, direction, rtol, atol):
    """Hairer, Norsett & Wanner (Solving ODEs I, Sec. II.4) starting step size (one more f)."""
    scale = jax.tree.map(lambda y: atol + rtol * jnp.abs(y), y0)
    d0, d1 = _rms_norm(y0, scale), _rms_norm(f0, scale)
    h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / jnp.maximum(d1, 1e-30))
    h0 = jnp.minimum(h0, span)
    f1 = f(_combine(y0, direction * h0, (1.0,), (f0,)), t0 + direction * h0)
    d2 = _rms_norm(jax.tree.map(jnp.subtract, f1, f0), scale) / h0
    dmax = jnp.maximum(d1, d2)
    h1 = jnp.where(
        dmax <= 1e-15,
        jnp.maximum(1e-6, h0 * 1e-3),
        (0.01 / jnp.maximum(dmax, 1e-30)) ** (1 / 5),
    )
    return jnp.minimum(jnp.minimum(100 * h0, h1), span)


def odeint_dopri5(
    f: VectorField,
    x0: PyTree,
    t0,
    t1,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 10_000,
    first_step=None,
) -> tuple[PyTree, dict]:
    """Integrates ``dx/dt = f(x, t)`` from ``t0`` to ``t1`` with adaptive Dormand-Prince 5(4).

    Each step computes the 5th-order solution ``y1`` and the error estimate
    ``e = h sum_j (b_j - b*_j) k_j`` against the embedded 4th-order one, and accepts it when

        err = max_i sqrt(mean_j (e_ij / (atol + rtol max(|y0_ij|, |y1_ij|)))^2) <= 1

    (``i`` runs over examples, ``j`` over the components of all leaves). The next step is
    ``h / fac`` with Hairer's PI controller ``fac = err^(1/5 - 0.75 beta) / err_prev^beta / 0.9``
    (``beta = 0.04``), clipped so that ``h`` shrinks at most 5-fold and grows at most 10-fold, and
    it does not grow right after a rejection. Dormand & Prince 1980, "A family of embedded
    Runge-Kutta formulae"; Hairer, Norsett & Wanner, "Solving ODEs I", Sec. II.4-II.5.

    Args:
      f: the vector field ``f(x, t) -> dx/dt`` (batch-first ``x``, ``t`` of shape ``(n,)``).
      x0: the initial state, a batch-first array or pytree.
      t0: initial time (scalar).
      t1: final time (scalar); ``t1 < t0`` integrates backwards.
      rtol: relative tolerance (> 0).
      atol: absolute tolerance (>= 0).
      max_steps: the most step attempts (accepted + rejected); the loop stops there even if it
        has not reached ``t1`` (then ``info['success']`` is False).
      first_step: the first step's size; by default Hairer's estimate (one extra evaluation).

    Returns:
      ``(x1, info)``: the state at ``t1`` and ``info`` with ``nfe`` (evaluations of ``f``),
      ``n_accepted``, ``n_rejected`` and ``success`` (whether ``t1`` was reached).
    """
    check_positive("rtol", rtol)
    check_positive("atol", atol, allow_zero=True)
    check_int("max_steps", max_steps, 1)
    if first_step is not None:
        check_positive("first_step", first_step)
    n, dtype = _batch_size_and_dtype(x0)
    t0, t1 = jnp.asarray(t0, dtype), jnp.asarray(t1, dtype)
    direction = jnp.where(t1 >= t0, 1.0, -1.0).astype(dtype)
    span = jnp.abs(t1 - t0)
    f_batched = partial(_batched_field, f, n, dtype)

    f0 = f_batched(x0, t0)
    if first_step is None:
        h = _initial_step(f_batched, x0, f0, t0, span, direction, rtol, atol).astype(dtype)
        nfe = 2
    else:
        h, nfe = jnp.minimum(jnp.asarray(first_step, dtype), span), 1

    def cond(carry):
        t, *_, n_acc, n_rej, _ = carry
        return (t != t1) & (n_acc + n_rej < max_steps)

    def body(carry):
        t, y, k1, h, err_prev, rejected, n_acc, n_rej, nfe = carry
        remaining = jnp.abs(t1 - t)
        last = h >= remaining
        h_try = jnp.minimum(h, remaining)
        y1, k7, e = _dopri5_step(f_batched, y, k1, t, direction * h_try)
        scale = jax.tree.map(lambda a, b: atol + rtol * jnp.maximum(jnp.abs(a), jnp.abs(b)), y, y1)
        err = _rms_norm(e, scale)
        err = jnp.where(jnp.isfinite(err), err, jnp.inf)  # a NaN step is rejected and shrunk
        accept = err <= 1.0

        fac11 = err**_EXPO1
        fac = jnp.clip(fac11 / err_prev**_BETA / _SAFETY, 1 / _FAC_MAX, 1 / _FAC_MIN)
        h_accept = h_try / fac
        h_accept = jnp.where(rejected, jnp.minimum(h_accept, h_try), h_accept)
        h_reject = h_try / jnp.minimum(1 / _FAC_MIN, fac11 / _SAFETY)

        select = lambda a, b: jax.tree.map(lambda u, v: jnp.where(accept, u, v), a, b)
        t_new = jnp.where(last, t1, t + direction * h_try)
        return (
            jnp.where(accept, t_new, t),
            select(y1, y),
            select(k7, k1),
            jnp.where(accept, h_accept, h_reject),
            jnp.where(accept, jnp.maximum(err, 1e-4), err_prev),
            ~accept,
            n_acc + accept.astype(jnp.int32),
            n_rej + (~accept).astype(jnp.int32),
            nfe + 6,
        )

    zero = jnp.zeros((), jnp.int32)
    carry = (t0, x0, f0, h, jnp.asarray(1e-4, dtype), jnp.asarray(False), zero, zero, zero + nfe)
    t, x1, _, _, _, _, n_acc, n_rej, nfe = jax.lax.while_loop(cond, body, carry)
    return x1, _info(nfe, n_acc, n_rej, t == t1)


def odeint(
    f: VectorField,
    x0: PyTree,
    t0,
    t1,
    *,
    method: str = "rk4",
    n_steps: int = 100,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 10_000,
) -> tuple[PyTree, dict]:
    """Integrates ``dx/dt = f(x, t)`` from ``t0`` to ``t1`` with the solver named by ``method``.

    ``'euler'``, ``'heun'`` and ``'rk4'`` go to ``odeint_fixed`` (``n_steps`` equal steps),
    ``'dopri5'`` to ``odeint_dopri5`` (``rtol``, ``atol``, ``max_steps``); see those for the
    formulas and references. Every argument is checked whichever solver runs.

    Args:
      f: the vector field ``f(x, t) -> dx/dt`` (batch-first ``x``, ``t`` of shape ``(n,)``).
      x0: the initial state, a batch-first array or pytree.
      t0: initial time.
      t1: final time (may be smaller than ``t0``).
      method: one of ``METHODS``.
      n_steps: steps of a fixed-step method.
      rtol: relative tolerance of ``dopri5``.
      atol: absolute tolerance of ``dopri5``.
      max_steps: step attempts allowed to ``dopri5``.

    Returns:
      ``(x1, info)``: the state at ``t1`` and ``info`` with ``nfe``, ``n_accepted``,
      ``n_rejected`` and ``success``, the same keys for every method.
    """
    check_choice("method", method, METHODS)
    check_int("n_steps", n_steps, 1)
    check_positive("rtol", rtol)
    check_positive("atol", atol, allow_zero=True)
    check_int("max_steps", max_steps, 1)
    if method == ADAPTIVE:
        return odeint_dopri5(f, x0, t0, t1, rtol=rtol, atol=atol, max_steps=max_steps)
    x1, info = odeint_fixed(f, x0, t0, t1, n_steps, method)
    return x1, info


# ---------------------------------------------------------------------------------------------
# Probability flow: sampling and likelihood.


def _check_eps(eps, sde: SDE) -> None:
    if not isinstance(eps, jax.Array) and not (0 <= eps < sde.T):
        raise ValueError(f"eps must satisfy 0 <= eps < T = {sde.T}; got {eps!r}")


def sample_probability_flow(
    sde: SDE,
    score_fn: TimeScoreFn,
    key: PRNGKey,
    shape: tuple[int, ...],
    *,
    method: str = "rk4",
    n_steps: int = 100,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 10_000,
    eps: float = 1e-3,
) -> tuple[Array, dict]:
    """Samples by integrating the probability-flow ODE from ``t = T`` to ``t = eps``.

    ``z = sde.prior_sample(key, shape)``, then ``dx/dt = f(x, t) - g(t)^2 / 2 score(x, t)`` is
    solved backwards from ``x_T = z`` (Song et al. 2021, Sec. 4.3 and App. D.1). The map is
    deterministic: the randomness is all in ``z``. ``eps > 0`` stops short of ``t = 0`` where
    the score of the data blows up.

    Args:
      sde: the forward SDE (``VPSDE``, ``SubVPSDE``, ``VESDE``).
      score_fn: ``score_fn(x (n, *event), t (n,)) -> (n, *event)``.
      key: draws the prior sample.
      shape: ``(n, *event)``.
      method: a solver name in ``METHODS``.
      n_steps: steps of a fixed-step method.
      rtol: relative tolerance of ``dopri5``.
      atol: absolute tolerance of ``dopri5``.
      max_steps: step attempts allowed to ``dopri5``.
      eps: the final time.

    Returns:
      ``(x, info)``: samples ``(n, *event)`` and the solver's ``info`` (``nfe`` ...).
    """
    check_choice("method", method, METHODS)
    shape = tuple(shape)
    if len(shape) < 1 or any(not isinstance(s, numbers.Integral) or s < 1 for s in shape):
        raise ValueError(f"shape must be (n, *event) with positive ints; got {shape!r}")
    _check_eps(eps, sde)
    drift = reverse(sde, score_fn, probability_flow=True).drift
    z = sde.prior_sample(key, shape)
    solve = partial(
        odeint, method=method, n_steps=n_steps, rtol=rtol, atol=atol, max_steps=max_steps
    )
    return solve(drift, z, sde.T, eps)


def exact_divergence(f, x, t):
    """``tr(d f_i / d x_i)`` per example by a forward-mode Jacobian of one example at a time."""

    def single(xi, ti):
        def fi(v):
            out = f(v[None], ti[None])[0]
            return out, out

        jac, out = jax.jacfwd(fi, has_aux=True)(xi)
        d = xi.size
        return out, jnp.trace(jnp.reshape(jac, (d, d)))

    return jax.vmap(single)(x, t)


def hutchinson_divergence(f, x, t, probe):
    """``probe^T (d f / d x) probe`` per example with one Jacobian-vector product."""
    out, jvp = jax.jvp(lambda v: f(v, t), (x,), (probe,))
    return out, jnp.sum(jnp.reshape(probe * jvp, (x.shape[0], -1)), -1)


PROBES = {
    "rademacher": lambda key, shape, dtype: jax.random.rademacher(key, shape, dtype),
    "gaussian": lambda key, shape, dtype: jax.random.normal(key, shape, dtype),
}
DIVERGENCES = ("exact", "hutchinson")


def divergence_fn(f, divergence: str, probe: str, key, shape, dtype):
    """``(x, t) -> (f(x, t), div f)`` with the exact divergence, or Hutchinson's estimate with one
    probe per example drawn once from ``key`` and fixed along the trajectory (as in FFJORD, so
    the integrated log-density change is an unbiased estimate)."""
    if divergence == "exact":
        return lambda y, t: exact_divergence(f, y, t)
    u = PROBES[probe](key, shape, dtype)
    return lambda y, t: hutchinson_divergence(f, y, t, u)


def ode_log_likelihood(
    sde: SDE,
    score_fn: TimeScoreFn,
    x: Array,
    key: PRNGKey,
    *,
    divergence: str = "exact",
    probe: str = "rademacher",
    method: str = "rk4",
    n_steps: int = 100,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 10_000,
    eps: float = 1e-5,
) -> tuple[Array, dict]:
    """``log p_eps(x)`` under the probability-flow ODE, by the instantaneous change of variables.

    With ``v(x, t) = f(x, t) - g(t)^2 / 2 score(x, t)``, the augmented ODE

        dx/dt = v(x, t),   d(delta)/dt = div_x v(x, t),   x(eps) = x,  delta(eps) = 0,

    is integrated forwards to ``T``, and ``log p_eps(x) = log p_T(x_T) + delta(T)`` with the SDE's
    prior standing in for ``p_T`` (Chen et al. 2018, Thm. 1; Grathwohl et al. 2019, FFJORD;
    Song et al. 2021, App. D.2). The divergence is either exact, ``tr(dv/dx)`` from a per-example
    Jacobian (``D`` forward passes: small ``D`` only), or Hutchinson's unbiased estimate
    ``u^T (dv/dx) u`` with ``E[u u^T] = I`` (one Jacobian-vector product), drawing one probe ``u``
    per example that stays fixed along the trajectory, as in FFJORD. The estimate of ``log p`` is
    then unbiased; ``exp`` of it is not.

    Args:
      sde: the forward SDE.
      score_fn: ``score_fn(x (n, *event), t (n,)) -> (n, *event)``; examples must not interact
        (no batch statistics), since the divergence of example ``i`` differentiates only it.
      x: data ``(n, *event)``.
      key: draws the Hutchinson probes (unused when ``divergence='exact'``).
      divergence: ``'exact'`` or ``'hutchinson'``.
      probe: ``'rademacher'`` or ``'gaussian'`` (Hutchinson only).
      method: a solver name in ``METHODS``.
      n_steps: steps of a fixed-step method.
      rtol: relative tolerance of ``dopri5`` (the ``delta`` component is error-controlled too).
      atol: absolute tolerance of ``dopri5``.
      max_steps: step attempts allowed to ``dopri5``.
      eps: the starting time; ``x`` is read as a sample of ``p_eps``.

    Returns:
      ``(log_prob, info)``: ``log p_eps(x)`` of shape ``(n,)`` in nats, and the solver's ``info``
      plus ``z`` (``x_T``, the latent code), ``prior_log_prob`` (``log p_T(z)``) and
      ``delta_logp`` (``delta(T)``), so ``log_prob = prior_log_prob + delta_logp``.
    """
    check_choice("divergence", divergence, DIVERGENCES)
    check_choice("probe", probe, PROBES)
    check_choice("method", method, METHODS)
    if jnp.ndim(x) < 1 or not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise ValueError(
            f"x must be a floating-point batch (n, *event); got shape {jnp.shape(x)} and dtype "
            f"{jnp.result_type(x)}"
        )
    _check_eps(eps, sde)
    v = reverse(sde, score_fn, probability_flow=True).drift
    div_fn = divergence_fn(v, divergence, probe, key, x.shape, x.dtype)

    def augmented(state, t):
        y, _ = state
        dy, div = div_fn(y, t)
        return dy, div

    state0 = (x, jnp.zeros(x.shape[:1], x.dtype))
    (z, delta), info = odeint(
        augmented,
        state0,
        eps,
        sde.T,
        method=method,
        n_steps=n_steps,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
    )
    prior = sde.prior_log_prob(z)
    info = {**info, "z": z, "prior_log_prob": prior, "delta_logp": delta}
    return prior + delta, info


def ode_nll(
    sde: SDE,
    score_fn: TimeScoreFn,
    x: Array,
    key: PRNGKey,
    *,
    num_levels: int | None = None,
    data_scale: float = 1.0,
    **kwargs,
) -> tuple[Array, Array, dict]:
    """Negative log-likelihood in nats and bits per dimension under the probability-flow ODE.

    ``nll = -log p_eps(x) - D log(data_scale) [+ D log K]``. The model sees
    ``x = data_scale * y + shift`` for data ``y`` (``data_scale = 2`` maps [0, 1] to [-1, 1]; a
    shift leaves densities unchanged), so ``log p(y) = log p(x) + D log(data_scale)``. With
    ``num_levels = K`` the continuous NLL of uniformly dequantized ``y = (k + u) / K`` becomes the
    bound on the discrete NLL ``-log P(k) <= -log p(y) + D log K`` (Theis et al. 2016; Song et al.
    2021 report bits/dim of images this way with K = 256). Adding ``u`` is the caller's job.

    Args:
      sde: the forward SDE.
      score_fn: the model's score.
      x: the model's input ``(n, *event)``.
      key: for Hutchinson probes.
      num_levels: ``K``, the number of discrete levels per dimension, or None for continuous data.
      data_scale: ``x = data_scale * y + shift``; divides the density of ``x`` by its Jacobian.
      **kwargs: passed to ``ode_log_likelihood`` (``divergence``, ``method``, ``eps`` ...).

    Returns:
      ``(nll, bpd, info)``: per-example NLL in nats ``(n,)``, bits per dimension ``(n,)``, and
      the ``info`` of ``ode_log_likelihood``.
    """
    if num_levels is not None:
        check_int("num_levels", num_levels, 2)
    check_positive("data_scale", data_scale)
    log_prob, info = ode_log_likelihood(sde, score_fn, x, key, **kwargs)
    d = math.prod(x.shape[1:])
    nll = (
        rescaled_nll(-log_prob, d, data_scale)
        if num_levels is None
        else dequantized_nll(-log_prob, d, num_levels, data_scale)
    )
    return nll, bits_per_dim(nll, d), info
