"""The expectation-maximisation loop shared by the mixture models, as one ``lax.while_loop``.

A model supplies one EM iteration ``em_step_fn(θ) -> (θ', ℓ(θ))``, where ``ℓ(θ)`` is the mean
log-likelihood of the data under the parameters that entered the step (the E-step computes it
for free); :func:`run_em` iterates it until ``|ℓ_t - ℓ_{t-1}| < tol`` or ``max_iter`` steps
(scikit-learn's stopping rule) and records ``ℓ_t`` in a :class:`FitHistory` (Dempster, Laird &
Rubin 1977; Bishop, PRML §9.4).
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jgen.checks import check_int, check_positive
from jgen.types import Array, PyTree

EMStepFn = Callable[[PyTree], tuple[PyTree, Array]]
"""``em_step_fn(params) -> (new_params, ℓ)``: one EM iteration; ``ℓ`` is the scalar mean
log-likelihood under ``params`` (the parameters that entered the step)."""


class FitHistory(NamedTuple):
    """Convergence record of an EM fit (:func:`run_em`).

    Attributes:
      log_likelihood: ``(max_iter,)`` mean log-likelihood of ``x`` under the parameters that
        entered iteration ``t`` (so entry 0 is the initialisation's); ``NaN`` after ``n_iter``.
      n_iter: number of EM iterations run (a scalar int array).
      converged: whether ``|ℓ_t - ℓ_{t-1}| < tol`` stopped the loop before ``max_iter``.
    """

    log_likelihood: Array
    n_iter: Array
    converged: Array


def run_em(
    em_step_fn: EMStepFn,
    init_params: PyTree,
    *,
    max_iter: int,
    tol: float,
    dtype=None,
) -> tuple[PyTree, FitHistory]:
    """Iterates ``(θ_{t+1}, ℓ_t) = em_step_fn(θ_t)`` from ``θ_0 = init_params`` in a
    ``lax.while_loop``.

    Stops after iteration ``t`` when ``t > 0`` and ``|ℓ_t - ℓ_{t-1}| < tol``, or after
    ``max_iter`` iterations; ``tol = 0`` runs exactly ``max_iter``. This is scikit-learn's rule
    for ``GaussianMixture``, so both stop at the same iteration from the same start. EM never
    decreases the likelihood (Dempster, Laird & Rubin 1977), or the posterior for MAP-EM.

    Args:
      em_step_fn: ``params -> (new_params, ℓ)``; ``new_params`` must have the structure, shapes
        and dtypes of ``params``, ``ℓ`` is a scalar.
      init_params: the starting parameters ``θ_0`` (any pytree).
      max_iter: maximum number of iterations, ``>= 1`` (a Python int).
      tol: ``>= 0`` threshold on the change of ``ℓ``.
      dtype: floating dtype of the recorded ``ℓ``; default the dtype that ``em_step_fn`` returns.

    Returns:
      ``(params, history)``: the parameters after the last M-step and a :class:`FitHistory`.

    Raises:
      ValueError: if ``max_iter`` is not an integer ``>= 1`` or ``tol`` is negative or not finite.
    """
    check_int("max_iter", max_iter)
    check_positive("tol", tol, allow_zero=True)
    if dtype is None:
        dtype = jax.eval_shape(em_step_fn, init_params)[1].dtype

    def cond(state):
        i, _, _, _, converged = state
        return (i < max_iter) & ~converged

    def body(state):
        i, params, prev, history, _ = state
        new_params, ll = em_step_fn(params)
        ll = jnp.asarray(ll, dtype)
        converged = (i > 0) & (jnp.abs(ll - prev) < tol)
        return i + 1, new_params, ll, history.at[i].set(ll), converged

    state = (
        jnp.asarray(0),
        init_params,
        jnp.asarray(-jnp.inf, dtype),
        jnp.full((max_iter,), jnp.nan, dtype),
        jnp.asarray(False),
    )
    n_iter, params, _, history, converged = jax.lax.while_loop(cond, body, state)
    return params, FitHistory(history, n_iter, converged)
