"""The one ``lax.scan`` driver that every iterative sampler runs on.

A sampler supplies a transition ``step(state, key, i) -> (state, info)``; ``run_chain`` scans it
``n_steps`` times with per-step keys ``fold_in(key, i)``, keeps the running mean of every ``info``
entry in the carry (so memory does not grow with the number of steps), and records a thinned
trajectory only when asked.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jgen.types import PRNGKey, PyTree

Step = Callable[[PyTree, PRNGKey, jax.Array], tuple[PyTree, dict]]


def run_chain(
    step: Step,
    state: PyTree,
    key: PRNGKey,
    n_steps: int,
    *,
    record_every: int = 0,
    record: Callable[[PyTree], Any] = lambda state: state,
) -> tuple[PyTree, dict, Any]:
    """Runs ``state <- step(state, fold_in(key, i), i)`` for ``i = 0 .. n_steps - 1``.

    Args:
      step: the transition; ``info`` is a dict of arrays with the same shapes at every step.
      state: the initial state (any pytree).
      key: the chain's key; step ``i`` uses ``fold_in(key, i)``.
      n_steps: number of transitions (a Python int).
      record_every: when ``k > 0``, record ``record(state)`` after every ``k``-th step; must divide
        ``n_steps``. 0 records nothing.
      record: what to keep of a state in the trajectory (default: all of it).

    Returns:
      ``(state, info, trajectory)``: the final state, the mean over steps of each ``info`` entry,
      and the stacked records ``(n_steps // k, ...)`` or ``None``.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1; got {n_steps}")
    if record_every < 0 or (record_every and n_steps % record_every):
        raise ValueError(
            f"record_every must be 0 or a divisor of n_steps={n_steps}; got {record_every}"
        )
    _, info_shapes = jax.eval_shape(step, state, key, jnp.zeros((), jnp.int32))
    zero_info = jax.tree.map(
        lambda s: jnp.zeros(s.shape, jnp.result_type(s.dtype, float)), info_shapes
    )

    def body(carry, i):
        state, info_sum = carry
        state, info = step(state, jax.random.fold_in(key, i), i)
        return (state, jax.tree.map(jnp.add, info_sum, info)), None

    def run(carry, indices):
        return jax.lax.scan(body, carry, indices)[0]

    indices = jnp.arange(n_steps, dtype=jnp.int32)
    if record_every:

        def block(carry, block_indices):
            carry = run(carry, block_indices)
            return carry, record(carry[0])

        carry, trajectory = jax.lax.scan(
            block, (state, zero_info), indices.reshape(-1, record_every)
        )
    else:
        carry, trajectory = run((state, zero_info), indices), None
    state, info_sum = carry
    return state, jax.tree.map(lambda s: s / n_steps, info_sum), trajectory
