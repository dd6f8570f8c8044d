"""Gibbs samplers for binary latent-variable models: block Gibbs for bipartite models (RBMs) and
sequential-scan single-site Gibbs for fully connected Boltzmann machines.

Both run many independent chains at once (batch-first) on the shared driver
:func:`jgen.samplers.chain.run_chain`; the model supplies the conditionals, so the same loop serves
Bernoulli, Gaussian-Bernoulli and spin RBMs alike.

References:
  Geman & Geman 1984, "Stochastic relaxation, Gibbs distributions, and the Bayesian restoration
  of images". Ackley, Hinton & Sejnowski 1985, "A learning algorithm for Boltzmann machines".
  Hinton 2002, "Training products of experts by minimizing contrastive divergence".
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import is_traced
from jgen.samplers.chain import run_chain
from jgen.types import Array, PRNGKey

ConditionalSampler = Callable[[PRNGKey, Array], Array]  # (key, x (n, ...)) -> sample (n, ...)
ConditionalLogit = Callable[[Array, Array], Array]  # (s (n, d), i ()) -> log-odds (n,)


class BlockGibbsState(NamedTuple):
    """The state of a batch of block Gibbs chains on a bipartite model.

    Attributes:
      v: visible units ``(n, *visible_event)``.
      h: hidden units ``(n, *hidden_event)``: the hidden sample from which ``v`` was drawn, so
        ``(v, h)`` is a joint sample once the chain is stationary.
    """

    v: Array
    h: Array


def block_gibbs(
    sample_h_given_v: ConditionalSampler,
    sample_v_given_h: ConditionalSampler,
    v0: Array,
    key: PRNGKey,
    *,
    n_steps: int,
    record_every: int = 0,
) -> tuple[BlockGibbsState, dict]:
    """Alternating block Gibbs sampling on a bipartite model such as an RBM.

    Each step draws every hidden unit given the visibles, then every visible unit given the
    hiddens::

        h_t ~ p(h | v_{t-1}),    v_t ~ p(v | h_t).

    Because the units in one layer are conditionally independent given the other layer, each block
    is one vectorised draw; for a Bernoulli RBM with energy ``E(v, h) = -v.b - h.c - v^T W h`` the
    conditionals are ``h ~ Bernoulli(sigmoid(v W + c))`` and ``v ~ Bernoulli(sigmoid(h W^T + b))``.
    When ``v_{t-1} ~ p(v)`` the pair ``(v_t, h_t)`` is an exact joint sample of ``p(v, h)``. Run
    for ``k`` steps from data this is the negative phase of CD-k (Hinton 2002); from the previous
    batch's chains, of PCD (Tieleman 2008).

    Args:
      sample_h_given_v: ``(key, v (n, *visible_event)) -> h (n, *hidden_event)``, a draw from
        ``p(h | v)`` for every chain (the model supplies it).
      sample_v_given_h: ``(key, h) -> v (n, *visible_event)``, a draw from ``p(v | h)``.
      v0: initial visible states ``(n, *visible_event)``: ``n`` independent chains.
      key: PRNG key of the chains; each step's key (from ``run_chain``) is split between the
        two blocks.
      n_steps: number of full ``v -> h -> v`` steps (Python int, >= 1).
      record_every: when ``k > 0``, keep the state after every ``k``-th step (``k`` must divide
        ``n_steps``); 0 keeps no trajectory, so memory does not grow with ``n_steps``.

    Returns:
      ``(state, info)``: ``state`` is a :class:`BlockGibbsState` ``(v, h)`` with ``v`` cast to the
      dtype of ``v0``; ``info`` holds the means over steps of ``visible_change_rate`` and
      ``hidden_change_rate`` (the fraction of units whose value changed in a step: the flip rate
      for binary units, a mixing diagnostic) and, when ``record_every > 0``, ``trajectory``: a
      :class:`BlockGibbsState` of stacked states ``(n_steps // record_every, n, ...)``.
    """
    if jnp.ndim(v0) < 1:
        raise ValueError(f"v0 must be a batch of shape (n, *event); got shape {jnp.shape(v0)}")
    v0 = jnp.asarray(v0)
    h_shape = jax.eval_shape(sample_h_given_v, key, v0)
    state = BlockGibbsState(v0, jnp.zeros(h_shape.shape, h_shape.dtype))

    def step(state, key, i):
        del i
        key_h, key_v = jax.random.split(key)
        h = sample_h_given_v(key_h, state.v).astype(h_shape.dtype)
        v = sample_v_given_h(key_v, h).astype(v0.dtype)
        info = {
            "visible_change_rate": jnp.mean(v != state.v),
            "hidden_change_rate": jnp.mean(h != state.h),
        }
        return BlockGibbsState(v, h), info

    state, info, trajectory = run_chain(step, state, key, n_steps, record_every=record_every)
    if trajectory is not None:
        info["trajectory"] = trajectory
    return state, info


def boltzmann_conditional_logit(weights: Array, bias: Array) -> ConditionalLogit:
    """The log-odds of one unit of a fully connected binary Boltzmann machine given the rest.

    For ``s in {0, 1}^d`` and energy ``E(s) = -s.b - 1/2 s^T W s`` (Ackley et al. 1985) the
    conditional of unit ``i`` is ``p(s_i = 1 | s_-i) = sigmoid(E(s_i=0) - E(s_i=1))`` with::

        logit_i = b_i + sum_{j != i} (W_ij + W_ji) / 2 s_j + W_ii / 2,

    which for the usual symmetric ``W`` with zero diagonal is ``b_i + (W s)_i``. The general form
    is exact for any ``W`` (only its symmetric part enters the energy, and ``s_i^2 = s_i`` turns the
    diagonal into a bias), so a slightly asymmetric or unmasked ``W`` gives no silent bias.

    Args:
      weights: couplings ``W`` of shape ``(d, d)``.
      bias: biases ``b`` of shape ``(d,)``.

    Returns:
      ``conditional_logit(s (n, d), i ()) -> (n,)`` for :func:`single_site_gibbs`.
    """
    w_shape, b_shape = tuple(jnp.shape(weights)), tuple(jnp.shape(bias))
    if len(w_shape) != 2 or w_shape[0] != w_shape[1]:
        raise ValueError(f"weights must be a square matrix (d, d); got shape {w_shape}")
    if b_shape != w_shape[:1]:
        raise ValueError(f"bias must have shape ({w_shape[0]},) to match weights; got {b_shape}")

    def conditional_logit(s: Array, i: Array) -> Array:
        coupling = 0.5 * (weights[:, i] + weights[i, :])
        w_ii = weights[i, i]
        s = s.astype(jnp.result_type(coupling.dtype, float))  # states may be stored as ints
        return bias[i] + s @ coupling - w_ii * s[:, i] + 0.5 * w_ii

    return conditional_logit


def single_site_gibbs(
    conditional_logit: ConditionalLogit,
    s0: Array,
    key: PRNGKey,
    *,
    n_sweeps: int,
    order: Array | None = None,
    record_every: int = 0,
) -> tuple[Array, dict]:
    """Sequential-scan single-site Gibbs sampling of a binary model over ``{0, 1}^d``.

    One sweep visits the units in ``order`` and resamples each from its full conditional given the
    current values of all the others (Geman & Geman 1984)::

        for i in order:  s_i ~ Bernoulli(sigmoid(conditional_logit(s, i))).

    Every single-site update leaves ``p`` invariant, so a sweep does too; with all conditionals in
    ``(0, 1)`` the chain is irreducible and converges to ``p``. Use it where the units are all
    coupled (a fully connected Boltzmann machine, see :func:`boltzmann_conditional_logit`), so no
    block structure allows parallel updates.

    Args:
      conditional_logit: ``(s (n, d), i) -> (n,)``, the log-odds of ``s_i = 1`` given the other
        units, for every chain; ``i`` is a traced int32 scalar.
      s0: initial states ``(n, d)`` with values in ``{0, 1}`` (any dtype; it is kept).
      key: PRNG key of the chains; each sweep's key (from ``run_chain``) is split across the
        units of the sweep.
      n_sweeps: number of sweeps (Python int, >= 1).
      order: the unit indices in visiting order, a permutation of ``0 .. d-1``; default
        ``0, 1, .., d-1``.
      record_every: when ``k > 0``, keep the state after every ``k``-th sweep (``k`` must divide
        ``n_sweeps``); 0 keeps no trajectory.

    Returns:
      ``(s, info)``: the final states ``(n, d)`` and a dict with ``flip_rate`` (mean over sweeps of
      the fraction of units that changed value in a sweep) and, when ``record_every > 0``,
      ``trajectory`` of shape ``(n_sweeps // record_every, n, d)``.
    """
    if jnp.ndim(s0) != 2:
        raise ValueError(f"s0 must have shape (n, d); got shape {tuple(jnp.shape(s0))}")
    s0 = jnp.asarray(s0)
    d = s0.shape[1]
    if order is None:
        order = jnp.arange(d, dtype=jnp.int32)
    else:
        if not is_traced(order):
            concrete = np.asarray(order)
            if concrete.ndim != 1 or not np.array_equal(np.sort(concrete), np.arange(d)):
                raise ValueError(
                    f"order must be a permutation of 0..{d - 1} (one entry per unit of s0); "
                    f"got {concrete.tolist()}"
                )
        order = jnp.asarray(order, jnp.int32)

    def update_unit(s, inputs):
        i, key = inputs
        logit = conditional_logit(s, i)
        u = jax.random.uniform(key, logit.shape, dtype=logit.dtype)
        # u < sigmoid(logit)  <=>  logit(u) < logit, written stably as log(u) - log1p(-u).
        new = (jnp.log(u) - jnp.log1p(-u) < logit).astype(s.dtype)
        return s.at[:, i].set(new), None

    def sweep(s, key, t):
        del t
        keys = jax.random.split(key, order.shape[0])
        s_new, _ = jax.lax.scan(update_unit, s, (order, keys))
        return s_new, {"flip_rate": jnp.mean(s_new != s)}

    s, info, trajectory = run_chain(sweep, s0, key, n_sweeps, record_every=record_every)
    if trajectory is not None:
        info["trajectory"] = trajectory
    return s, info
