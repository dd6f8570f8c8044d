"""Gradient-based MCMC: unadjusted Langevin, MALA and Hamiltonian Monte Carlo.

All three run ``n`` independent chains at once on a batch-first state ``x`` of shape
``(n, *event)``, take the model in the interface they need (a score for Langevin, a log-density
for the Metropolis-adjusted samplers; see :mod:`jgen.convert`), and run on
:func:`jgen.samplers.chain.run_chain`, so they keep no trajectory unless ``record_every > 0`` and
never jit themselves: callers jit, and may ``vmap`` over an extra leading axis of states and keys.

The step-size convention is shared: a Langevin move with step ``h`` is

    x' = x + (h / 2) grad log p(x) + sqrt(h) z,        z ~ N(0, I),

the Euler-Maruyama step of ``dx = (1/2) grad log p dt + dW`` over time ``h``, whose stationary law
is ``p``. In energy form, ``x' = x - (h/2) grad E(x) + eps`` with ``eps ~ N(0, h I)``.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_int, check_positive, is_traced
from jgen.convert import log_prob_and_score
from jgen.samplers.chain import run_chain
from jgen.types import Array, PRNGKey

BatchFn = Callable[[Array], Array]


# --------------------------------------------------------------------------------------------------
# Argument checks (only concrete values are checked: a traced step size passes through).


def _check_state(x0) -> Array:
    x0 = jnp.asarray(x0)
    if x0.ndim < 2:
        raise ValueError(
            f"x0 must be a batch of shape (n, *event) with rank >= 2; got shape {tuple(x0.shape)}"
        )
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        raise ValueError(f"x0 must have a floating-point dtype; got dtype {x0.dtype}")
    return x0


def _check_common(x0, step_size, n_steps, record_every) -> Array:
    x0 = _check_state(x0)
    check_positive("step_size", step_size)
    check_int("n_steps", n_steps)
    if (
        isinstance(record_every, bool)
        or not isinstance(record_every, int | np.integer)
        or record_every < 0
        or (record_every and n_steps % record_every)
    ):
        raise ValueError(
            f"record_every must be 0 or a divisor of n_steps={n_steps}; got {record_every!r}"
        )
    return x0


# --------------------------------------------------------------------------------------------------
# Per-example helpers.


def _sq_norm(x: Array) -> Array:
    """Squared L2 norm of each example: ``(n, *event) -> (n,)``."""
    return jnp.sum(jnp.square(x.reshape(x.shape[0], -1)), axis=1)


def _per_example(v: Array, x: Array) -> Array:
    """Reshapes ``(n,)`` to ``(n, 1, ..., 1)`` so it broadcasts against ``x``."""
    return v.reshape(v.shape + (1,) * (x.ndim - 1))


def _metropolis(key: PRNGKey, log_alpha: Array) -> tuple[Array, Array]:
    """Accepts chain ``i`` when ``log u_i < log_alpha_i`` with ``u_i ~ U[0, 1)``.

    A NaN ``log_alpha`` (a proposal where the density is undefined) compares false: rejected.
    Returns the boolean decisions and the acceptance probabilities ``min(1, alpha)``.
    """
    log_u = jnp.log(jax.random.uniform(key, log_alpha.shape, log_alpha.dtype))
    accept = log_u < log_alpha
    prob = jnp.where(jnp.isnan(log_alpha), 0.0, jnp.exp(jnp.minimum(log_alpha, 0.0)))
    return accept, prob


def _metropolis_chain(propose, value_and_score, x0, key, n_steps, record_every):
    """The Metropolis-Hastings chain shared by MALA and HMC. The state carries ``log p`` and the
    score at ``x`` so neither is recomputed; ``propose(key, x, log_p, score) -> (y, log_p(y),
    score(y), log_alpha)``; each chain accepts or rejects on its own."""

    def step(state, key, i):
        x, lp, g = state
        key_propose, key_accept = jax.random.split(key)
        y, lp_y, g_y, log_alpha = propose(key_propose, x, lp, g)
        accept, prob = _metropolis(key_accept, log_alpha)
        keep = _per_example(accept, x)
        state = (jnp.where(keep, y, x), jnp.where(accept, lp_y, lp), jnp.where(keep, g_y, g))
        return state, {"accepted": accept.astype(x.dtype), "accept_prob": prob, "log_prob": lp}

    (x, _, _), info, trajectory = run_chain(
        step,
        (x0, *value_and_score(x0)),
        key,
        n_steps,
        record_every=record_every,
        record=lambda s: s[0],
    )
    info = {
        "acceptance_rate": info["accepted"].mean(),
        "chain_acceptance_rate": info["accepted"],
        "accept_prob": info["accept_prob"].mean(),
        "log_prob": info["log_prob"].mean(),
    }
    return x, _finish(info, trajectory)


def _finish(info: dict, trajectory) -> dict:
    if trajectory is not None:
        info["trajectory"] = trajectory
    return info


# --------------------------------------------------------------------------------------------------
# Unadjusted Langevin.


def langevin(
    score_fn: BatchFn,
    x0: Array,
    key: PRNGKey,
    *,
    step_size: float,
    n_steps: int,
    noise_scale: float = 1.0,
    grad_clip: float | None = None,
    x_range: tuple[float, float] | None = None,
    record_every: int = 0,
) -> tuple[Array, dict]:
    """Unadjusted Langevin dynamics on ``n`` independent chains.

    Each step is

        x <- clip(x + (h / 2) s(x) + sigma sqrt(h) z,  lo, hi),     z ~ N(0, I),

    with ``s`` the (optionally norm-clipped) score, ``h = step_size`` and ``sigma = noise_scale``.
    With ``sigma = 1`` this is the Euler-Maruyama discretisation of the Langevin diffusion, which
    samples ``p`` only as ``h -> 0``: the chain has an ``O(h)`` bias (for a Gaussian target with
    covariance ``S`` its stationary covariance is ``sigma^2 S (I - (h/4) S^-1)^-1``). EBM training
    usually tunes ``h`` and ``sigma`` apart (``sigma < 1``) to get short-run samples quickly
    (Du & Mordatch 2019, "Implicit Generation and Generalization in Energy-Based Models";
    Nijkamp et al. 2019, "Learning Non-Convergent Non-Persistent Short-Run MCMC Toward
    Energy-Based Model"); the method is the unadjusted Langevin algorithm of Roberts & Tweedie
    1996, "Exponential convergence of Langevin distributions and their discrete approximations".

    Args:
      score_fn: ``(n, *event) -> (n, *event)``, the score ``grad_x log p = -grad_x E``
        (see :mod:`jgen.convert`).
      x0: initial states ``(n, *event)``, floating point; the output has the same dtype.
      key: PRNG key of the chains (split once per step by ``run_chain``).
      step_size: ``h > 0``, a scalar (may be traced).
      n_steps: number of steps, a Python int ``>= 1``.
      noise_scale: ``sigma >= 0`` multiplying the ``sqrt(h)`` noise; 0 gives gradient ascent on
        ``log p``.
      grad_clip: if set, each example's score is rescaled to have L2 norm at most ``grad_clip``
        (the whole example's vector, not elementwise, so the drift keeps its direction).
      x_range: ``(lo, hi)``: after each step ``x`` is clipped elementwise to ``[lo, hi]`` (the data
        domain, e.g. ``(0, 1)`` for images).
      record_every: if ``k > 0``, keep ``x`` after every ``k``-th step (``k`` must divide
        ``n_steps``).

    Returns:
      ``(x, info)``: final states ``(n, *event)`` and a dict with ``score_norm`` (mean over steps
      and chains of the per-example L2 norm of the score before clipping), ``step_norm`` (mean
      per-example L2 norm of the move ``x' - x``, after clipping) and, when ``record_every > 0``,
      ``trajectory`` of shape ``(n_steps // k, n, *event)``.

    Raises:
      ValueError: for a non-batch ``x0``, a non-positive ``step_size``, ``grad_clip``, negative
        ``noise_scale``, ``n_steps < 1``, or ``x_range`` with ``lo >= hi``.
    """
    x0 = _check_common(x0, step_size, n_steps, record_every)
    check_positive("noise_scale", noise_scale, allow_zero=True)
    check_positive("grad_clip", grad_clip)
    if x_range is not None:
        if len(x_range) != 2:
            raise ValueError(f"x_range must be a pair (lo, hi); got {x_range!r}")
        lo, hi = x_range
        if not (is_traced(lo) or is_traced(hi)) and not np.all(np.asarray(lo) < np.asarray(hi)):
            raise ValueError(f"x_range must satisfy lo < hi; got {x_range!r}")
    dtype = x0.dtype
    h = jnp.asarray(step_size, dtype)
    noise = jnp.asarray(noise_scale, dtype) * jnp.sqrt(h)

    def step(x, key, i):
        score = score_fn(x)
        norm = jnp.sqrt(_sq_norm(score))
        if grad_clip is not None:
            # c / max(norm, tiny) is finite at norm 0, where the factor is then 1.
            tiny = jnp.finfo(dtype).tiny
            factor = jnp.minimum(1.0, grad_clip / jnp.maximum(norm, tiny)).astype(dtype)
            score = score * _per_example(factor, score)
        x_new = x + 0.5 * h * score + noise * jax.random.normal(key, x.shape, dtype)
        if x_range is not None:
            x_new = jnp.clip(x_new, x_range[0], x_range[1]).astype(dtype)
        info = {"score_norm": norm.mean(), "step_norm": jnp.sqrt(_sq_norm(x_new - x)).mean()}
        return x_new, info

    x, info, trajectory = run_chain(step, x0, key, n_steps, record_every=record_every)
    return x, _finish(info, trajectory)


# --------------------------------------------------------------------------------------------------
# Metropolis-adjusted Langevin.


def mala(
    log_prob_fn: BatchFn,
    x0: Array,
    key: PRNGKey,
    *,
    step_size: float,
    n_steps: int,
    record_every: int = 0,
) -> tuple[Array, dict]:
    """Metropolis-adjusted Langevin algorithm (MALA) on ``n`` independent chains.

    Each chain proposes a Langevin move and accepts it with the Metropolis-Hastings probability
    for the asymmetric Gaussian proposal ``q(y | x) = N(y; x + (h/2) grad log p(x), h I)``:

        y = x + (h / 2) grad log p(x) + sqrt(h) z,
        alpha = min(1, p(y) q(x | y) / (p(x) q(y | x))),
        log q(y | x) = -|y - x - (h/2) grad log p(x)|^2 / (2h) + const,

    so ``p`` is exactly invariant for any ``h`` (Roberts & Tweedie 1996, "Exponential convergence
    of Langevin distributions and their discrete approximations"). ``log p`` may be unnormalised.

    Args:
      log_prob_fn: ``(n, *event) -> (n,)``, e.g. ``jgen.convert.log_prob_from_energy(E)``.
      x0: initial states ``(n, *event)``, floating point.
      key: PRNG key of the chains (split once per step by ``run_chain``).
      step_size: ``h > 0``, a scalar (may be traced).
      n_steps: number of proposals per chain, a Python int ``>= 1``.
      record_every: if ``k > 0``, keep ``x`` after every ``k``-th step.

    Returns:
      ``(x, info)``: final states and a dict with ``acceptance_rate`` (fraction of accepted
      proposals over steps and chains), ``chain_acceptance_rate`` ``(n,)``, ``accept_prob``
      (mean of ``min(1, alpha)``, a lower-variance estimate of the same quantity), ``log_prob``
      (mean of ``log p(x)`` over steps and chains) and, if asked, ``trajectory``
      ``(n_steps // k, n, *event)``.

    Raises:
      ValueError: for a non-batch ``x0``, a non-positive ``step_size`` or ``n_steps < 1``.
    """
    x0 = _check_common(x0, step_size, n_steps, record_every)
    dtype = x0.dtype
    h = jnp.asarray(step_size, dtype)

    def propose(key, x, lp, g):
        z = jax.random.normal(key, x.shape, dtype)
        y = x + 0.5 * h * g + jnp.sqrt(h) * z
        lp_y, g_y = value_and_score(y)
        log_q_forward = -0.5 * _sq_norm(z)  # |y - x - (h/2) g(x)|^2 / (2h) = |z|^2 / 2
        log_q_backward = -_sq_norm(x - y - 0.5 * h * g_y) / (2.0 * h)
        return y, lp_y, g_y, lp_y - lp + log_q_backward - log_q_forward

    value_and_score = log_prob_and_score(log_prob_fn)
    return _metropolis_chain(propose, value_and_score, x0, key, n_steps, record_every)


# --------------------------------------------------------------------------------------------------
# Hamiltonian Monte Carlo.


def leapfrog(
    grad_fn: BatchFn, x: Array, p: Array, step_size: float | Array, n: int
) -> tuple[Array, Array]:
    """``n`` leapfrog steps of Hamiltonian dynamics with ``H(x, p) = -log p(x) + |p|^2 / 2``.

        p <- p + (e/2) grad log p(x);   then n - 1 times: x <- x + e p,  p <- p + e grad log p(x);
        x <- x + e p;                   p <- p + (e/2) grad log p(x).

    Volume-preserving and time-reversible (negating ``p`` at the end inverts the map), with
    ``n + 1`` gradient evaluations (Neal 2011, "MCMC using Hamiltonian dynamics", section 2.3).

    Args:
      grad_fn: ``(n, *event) -> (n, *event)``, the gradient of the *log-density* (the score;
        ``-grad E``), so the momentum moves uphill in ``log p``.
      x: positions ``(n, *event)``.
      p: momenta, same shape.
      step_size: ``e``, a scalar or an array that broadcasts against ``x`` (e.g. per chain,
        ``(n, 1, ..., 1)``).
      n: number of leapfrog steps ``>= 1`` (a Python int, or a traced int).

    Returns:
      ``(x, p)`` after ``n`` steps.
    """
    if not is_traced(n):
        check_int("n", n)

    def value_and_grad(x):  # the value is not needed here
        return jnp.zeros(x.shape[:1], x.dtype), grad_fn(x)

    zero = jnp.zeros(x.shape[:1], x.dtype)
    x, p, _, _ = _leapfrog(value_and_grad, x, p, zero, grad_fn(x), step_size, n)
    return x, p


def _leapfrog(value_and_grad_fn, x, p, value, grad, step_size, n):
    """``n`` leapfrog steps that reuse the gradient at the start and return the value and the
    gradient at the end, so a chain of HMC proposals costs ``n`` evaluations per proposal (the
    bookkeeping of blackjax's velocity Verlet)."""
    e = jnp.asarray(step_size, x.dtype)

    def body(_, carry):
        x, p, _, grad = carry
        p_half = p + 0.5 * e * grad
        x = x + e * p_half
        value, grad = value_and_grad_fn(x)
        return x, p_half + 0.5 * e * grad, value, grad

    return jax.lax.fori_loop(0, n, body, (x, p, value, grad))


def hmc(
    log_prob_fn: BatchFn,
    x0: Array,
    key: PRNGKey,
    *,
    step_size: float,
    n_leapfrog: int,
    n_steps: int,
    record_every: int = 0,
) -> tuple[Array, dict]:
    """Hamiltonian Monte Carlo with an identity mass matrix on ``n`` independent chains.

    Each step draws a momentum ``p ~ N(0, I)``, integrates ``n_leapfrog`` leapfrog steps of size
    ``e`` to ``(x', p')`` (:func:`leapfrog`), and accepts ``x'`` per chain with probability

        min(1, exp(log p(x') - |p'|^2 / 2 - log p(x) + |p|^2 / 2)),

    which makes ``p`` exactly invariant (Duane et al. 1987; Neal 2011, "MCMC using Hamiltonian
    dynamics"). ``log p`` may be unnormalised.

    Args:
      log_prob_fn: ``(n, *event) -> (n,)``.
      x0: initial states ``(n, *event)``, floating point.
      key: PRNG key of the chains (split once per step by ``run_chain``).
      step_size: leapfrog step ``e > 0``, a scalar (may be traced).
      n_leapfrog: leapfrog steps per proposal, a Python int ``>= 1``.
      n_steps: number of proposals per chain, a Python int ``>= 1``.
      record_every: if ``k > 0``, keep ``x`` after every ``k``-th step.

    Returns:
      ``(x, info)``: final states and a dict with ``acceptance_rate``, ``chain_acceptance_rate``
      ``(n,)``, ``accept_prob``, ``log_prob`` (as in :func:`mala`) and, if asked, ``trajectory``.

    Raises:
      ValueError: for a non-batch ``x0``, a non-positive ``step_size``, ``n_leapfrog < 1`` or
        ``n_steps < 1``.
    """
    x0 = _check_common(x0, step_size, n_steps, record_every)
    check_int("n_leapfrog", n_leapfrog)
    dtype = x0.dtype
    e = jnp.asarray(step_size, dtype)

    def propose(key, x, lp, g):
        p = jax.random.normal(key, x.shape, dtype)
        y, p_y, lp_y, g_y = _leapfrog(value_and_score, x, p, lp, g, e, n_leapfrog)
        return y, lp_y, g_y, (lp_y - 0.5 * _sq_norm(p_y)) - (lp - 0.5 * _sq_norm(p))

    value_and_score = log_prob_and_score(log_prob_fn)
    return _metropolis_chain(propose, value_and_score, x0, key, n_steps, record_every)
