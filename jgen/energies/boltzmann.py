"""Fully connected Boltzmann machines on binary units, and exact enumeration of small ones.

A Boltzmann machine (Ackley, Hinton & Sejnowski 1985, "A learning algorithm for Boltzmann
machines") puts the distribution

    p(x) = exp(-E(x)) / Z,    E(x) = -b^T x - 1/2 x^T W x,    x in {0, 1}^d,

on ``d`` binary units, ``W`` symmetric with a zero diagonal (``x_i^2 = x_i``, so a diagonal would
only duplicate the bias). The first ``num_visible`` units are visible, the rest hidden; the model
of the visible units is the marginal ``p(v) = sum_h p(v, h)``. Sampling is single-site Gibbs
(:func:`jgen.samplers.gibbs.single_site_gibbs` with ``functools.partial(conditional_logit,
params)``): no two units are conditionally independent, so no block update exists.

For ``d <= 20`` everything is exact by enumerating the ``2^d`` states, which is what the tests of
every binary energy-based model here rest on; :func:`logsumexp_over_states` is that enumeration,
in chunks so that memory stays bounded, shared with :mod:`jgen.energies.rbm`.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from jgen.checks import check_batch, check_int, check_positive, is_traced
from jgen.samplers.gibbs import boltzmann_conditional_logit
from jgen.types import Array

MAX_ENUMERABLE_UNITS = 30
"""Hard ceiling of every enumeration (``2^30`` states, int32 state indices)."""


class BoltzmannMachine(NamedTuple):
    """Parameters of a fully connected binary Boltzmann machine.

    Attributes:
      weights: ``W`` of shape ``(d, d)``, symmetric with a zero diagonal (see :func:`symmetrize`
        for a parametrisation that stays so under gradient steps).
      bias: ``b`` of shape ``(d,)``.
    """

    weights: Array
    bias: Array


# --------------------------------------------------------------------------------------------
# Enumeration of binary states, shared with the RBMs.


def check_enumerable(layer: str, num_units: int, max_units: int) -> None:
    """Raises ``ValueError`` when enumerating ``2^num_units`` states of ``layer`` is refused.

    Args:
      layer: what is enumerated, named in the message (``"hidden layer"``, ...).
      num_units: its number of binary units.
      max_units: the caller's limit, an int in ``[0, MAX_ENUMERABLE_UNITS]``.
    """
    check_int("max_units", max_units, minimum=0)
    if max_units > MAX_ENUMERABLE_UNITS:
        raise ValueError(
            f"max_units must be <= {MAX_ENUMERABLE_UNITS} (2^{MAX_ENUMERABLE_UNITS} states); "
            f"got {max_units}"
        )
    if num_units > max_units:
        raise ValueError(
            f"exact enumeration of the {layer} needs 2^{num_units} states: it has {num_units} "
            f"units, more than max_units={max_units}; raise max_units (cost 2^units) or use an "
            f"estimator such as AIS"
        )


def logsumexp_over_states(
    fn: Callable[[Array], Array],
    num_units: int,
    *,
    spin: bool = False,
    dtype=None,
    chunk_size: int = 4096,
) -> Array:
    """``log sum_s exp(fn(s))`` over every state ``s`` of ``num_units`` binary units.

    The ``2^num_units`` states are generated in chunks from their integer indices (bit ``k`` of
    the index is unit ``k``), each chunk reduced by ``logsumexp`` inside a ``lax.map``, so
    memory holds ``chunk_size`` states at a time, not ``2^num_units``.

    Args:
      fn: ``states (c, num_units) -> values (..., c)``: the log-weight of each state in the last
        axis; leading axes (a batch of conditioning values) are kept.
      num_units: number of units (``2^num_units`` states; 0 gives the single empty state).
      spin: states in ``{-1, +1}`` instead of ``{0, 1}``.
      dtype: dtype of the states (default: the default float).
      chunk_size: states per chunk (a power of two).

    Returns:
      The log-sum-exp, of shape ``(...)``.
    """
    check_int("num_units", num_units, minimum=0)
    check_int("chunk_size", chunk_size)
    if chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_size must be a power of two; got {chunk_size}")
    if num_units > MAX_ENUMERABLE_UNITS:
        raise ValueError(f"num_units must be <= {MAX_ENUMERABLE_UNITS}; got {num_units}")
    dtype = dtype or jnp.asarray(0.0).dtype
    n_states = 2**num_units

    def chunk_logsumexp(index):
        states = ((index[:, None] >> jnp.arange(num_units, dtype=jnp.int32)) & 1).astype(dtype)
        if spin:
            states = 2 * states - 1
        return logsumexp(fn(states), axis=-1)

    if n_states <= chunk_size:  # one chunk: no loop to compile
        return chunk_logsumexp(jnp.arange(n_states, dtype=jnp.int32))
    indices = jnp.arange(n_states, dtype=jnp.int32).reshape(n_states // chunk_size, chunk_size)
    return logsumexp(jax.lax.map(chunk_logsumexp, indices), axis=0)


# --------------------------------------------------------------------------------------------
# Parameters.


def symmetrize(weights: Array) -> Array:
    """``(W + W^T) / 2`` with the diagonal set to zero.

    Only the symmetric part of ``W`` enters ``x^T W x``, and ``x_i^2 = x_i`` makes the diagonal a
    bias, so training an unconstrained ``A`` through ``W = symmetrize(A)`` keeps the model a valid
    Boltzmann machine after every gradient step at no loss of expressiveness.

    Args:
      weights: ``(d, d)``.

    Returns:
      The symmetric, zero-diagonal ``(d, d)`` matrix.
    """
    _check_square(weights)
    sym = 0.5 * (weights + weights.T)
    return sym - jnp.diag(jnp.diag(sym))


def check_weights(weights: Array, *, atol: float = 1e-6) -> None:
    """Raises ``ValueError`` unless ``weights`` is square, symmetric and has a zero diagonal.

    Traced weights (inside ``jit`` or ``grad``) are only shape-checked: their values are unknown.

    Args:
      weights: ``(d, d)``.
      atol: largest allowed ``|W_ij - W_ji|`` and ``|W_ii|``.
    """
    _check_square(weights)
    check_positive("atol", atol, allow_zero=True)
    if is_traced(weights):
        return
    w = np.asarray(weights)
    asym = float(np.max(np.abs(w - w.T), initial=0.0))
    diag = float(np.max(np.abs(np.diag(w)), initial=0.0))
    if asym > atol:
        raise ValueError(
            f"weights must be symmetric: max |W_ij - W_ji| = {asym:.3g} > atol={atol:g}; "
            "use symmetrize(weights)"
        )
    if diag > atol:
        raise ValueError(
            f"weights must have a zero diagonal: max |W_ii| = {diag:.3g} > atol={atol:g}; "
            "use symmetrize(weights)"
        )


def _check_square(weights) -> None:
    shape = tuple(np.shape(weights))
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"weights must be a square matrix (d, d); got shape {shape}")


def _check_params(params: BoltzmannMachine) -> int:
    """Checks shapes (and, when concrete, symmetry); returns ``d``."""
    if not isinstance(params, BoltzmannMachine):
        raise ValueError(f"params must be a BoltzmannMachine; got {type(params).__name__}")
    check_weights(params.weights)
    d = np.shape(params.weights)[0]
    if tuple(np.shape(params.bias)) != (d,):
        raise ValueError(
            f"bias must have shape ({d},) to match weights; got {tuple(np.shape(params.bias))}"
        )
    return d


def _as_float(x: Array, params: BoltzmannMachine) -> Array:
    x = jnp.asarray(x)
    return x.astype(jnp.result_type(x.dtype, params.weights.dtype, float))


def _check_num_visible(num_visible, d: int) -> None:
    check_int("num_visible", num_visible, minimum=0)
    if num_visible > d:
        raise ValueError(f"num_visible must be <= d={d} (the number of units); got {num_visible}")


# --------------------------------------------------------------------------------------------
# Energies, conditionals, exact normalisation.


def energy(params: BoltzmannMachine, x: Array) -> Array:
    """``E(x) = -b^T x - 1/2 x^T W x`` for a batch of states (Ackley et al. 1985).

    Args:
      params: the machine (``d`` units).
      x: states ``(n, d)`` in ``{0, 1}`` (any numeric dtype).

    Returns:
      ``(n,)`` energies.
    """
    d = _check_params(params)
    check_batch("x", x, (d,), floating=False)
    x = _as_float(x, params)
    return -(x @ params.bias) - 0.5 * jnp.sum((x @ params.weights) * x, axis=-1)


def conditional_logit(params: BoltzmannMachine, x: Array, i) -> Array:
    """Log-odds of unit ``i`` given the others: ``log p(x_i=1|x_-i) / p(x_i=0|x_-i)``.

    ``= E(x_i=0) - E(x_i=1) = b_i + sum_j W_ij x_j`` (zero diagonal). This is
    :func:`jgen.samplers.gibbs.boltzmann_conditional_logit`, so
    ``functools.partial(conditional_logit, params)`` is the ``conditional_logit`` that
    :func:`jgen.samplers.gibbs.single_site_gibbs` takes.

    Args:
      params: the machine (``d`` units).
      x: states ``(n, d)`` (the value of unit ``i`` itself is ignored).
      i: the unit, an int or traced int32 scalar.

    Returns:
      ``(n,)`` log-odds.
    """
    d = _check_params(params)
    check_batch("x", x, (d,), floating=False)
    return boltzmann_conditional_logit(params.weights, params.bias)(x, i)


def log_partition(params: BoltzmannMachine, *, max_units: int = 20) -> Array:
    """``log Z = log sum_x exp(-E(x))`` by enumerating all ``2^d`` states.

    Args:
      params: the machine (``d`` units).
      max_units: refuse (``ValueError``) when ``d`` exceeds it (cost ``2^d``).

    Returns:
      The scalar ``log Z``.
    """
    d = _check_params(params)
    check_enumerable("Boltzmann machine (all units)", d, max_units)
    w, b = params.weights, params.bias
    return logsumexp_over_states(
        lambda x: x @ b + 0.5 * jnp.sum((x @ w) * x, axis=-1), d, dtype=w.dtype
    )


def free_energy(
    params: BoltzmannMachine, v: Array, num_visible: int, *, max_units: int = 20
) -> Array:
    """``F(v) = -log sum_h exp(-E(v, h))`` with the last ``d - num_visible`` units hidden.

    Splitting ``x = (v, h)``, ``W = [[W_vv, W_vh], [W_hv, W_hh]]`` and ``b = (b_v, b_h)``::

        -F(v) = b_v^T v + 1/2 v^T W_vv v + log sum_h exp(h^T (b_h + W_hv v) + 1/2 h^T W_hh h),

    enumerating the ``2^(d - num_visible)`` hidden states (``W_hv v`` is computed as
    ``(W_hv + W_vh^T) v / 2`` so that the gradient is symmetric).

    Args:
      params: the machine (``d`` units).
      v: visible states ``(n, num_visible)``.
      num_visible: the number of visible units (the first ones).
      max_units: refuse when there are more hidden units than this.

    Returns:
      ``(n,)`` free energies.
    """
    d = _check_params(params)
    _check_num_visible(num_visible, d)
    check_batch("v", v, (num_visible,), floating=False)
    check_enumerable("hidden units of the Boltzmann machine", d - num_visible, max_units)
    v = _as_float(v, params)
    w, b = params.weights, params.bias
    k = num_visible
    w_vv, w_hh = w[:k, :k], w[k:, k:]
    # (W_vh + W_hv^T) / 2 rather than W_hv alone: equal for a symmetric W, but the gradient then
    # is the symmetric 1/2 <x_i x_j> of the learning rule, not all of it on one block.
    w_vh = 0.5 * (w[:k, k:] + w[k:, :k].T)
    field = v @ w_vh + b[k:]  # (n, d_h): the input of each hidden unit from v

    def log_weight(h):  # (c, d_h) -> (n, c)
        return field @ h.T + 0.5 * jnp.sum((h @ w_hh) * h, axis=-1)

    visible_term = v @ b[:k] + 0.5 * jnp.sum((v @ w_vv) * v, axis=-1)
    hidden_term = logsumexp_over_states(log_weight, d - num_visible, dtype=v.dtype)
    return -(visible_term + hidden_term)


def marginal_visible_log_prob(
    params: BoltzmannMachine, v: Array, num_visible: int, *, max_units: int = 20
) -> Array:
    """Exact ``log p(v) = -F(v) - log Z`` of the first ``num_visible`` units.

    Args:
      params: the machine (``d <= max_units`` units).
      v: visible states ``(n, num_visible)``.
      num_visible: the number of visible units (the first ones; ``d`` gives ``log p(x)``).
      max_units: refuse when ``d`` exceeds it (``log Z`` enumerates every unit).

    Returns:
      ``(n,)`` log-probabilities.
    """
    return -free_energy(params, v, num_visible, max_units=max_units) - log_partition(
        params, max_units=max_units
    )
