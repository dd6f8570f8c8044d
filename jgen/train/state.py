"""The training state of a model with one loss and one optimizer, and its generic step.

Models with a single objective (flows, VAEs, diffusion, autoregressive models) share this step;
models with several players (GANs) write their own state and step against the same Trainer
interface.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jgen.types import Array, Params, PRNGKey, PyTree


class TrainState(NamedTuple):
    """``step``: number of updates done; ``ema_params``: Polyak average, or None when disabled;
    ``model_state``: variables that are not trained by the optimizer (Flax collections other than
    ``params``: spectral-norm vectors, fixed permutations, batch statistics), ``{}`` if none."""

    step: Array
    params: Params
    opt_state: optax.OptState
    ema_params: Params | None
    model_state: PyTree = {}


def create_state(
    params: Params,
    optimizer: optax.GradientTransformation,
    ema_decay: float,
    model_state: PyTree | None = None,
):
    """A fresh state at step 0; the EMA starts at the initial parameters when enabled."""
    ema = jax.tree.map(jnp.copy, params) if ema_decay > 0 else None
    step = jnp.zeros((), jnp.int32)
    return TrainState(step, params, optimizer.init(params), ema, model_state or {})


def eval_params(state: TrainState) -> Params:
    """The parameters to evaluate and sample with: the EMA when it is kept, else the raw ones."""
    return state.params if state.ema_params is None else state.ema_params


def make_step(
    loss_fn: Callable[[Params, Array, PRNGKey], tuple[Array, dict]],
    optimizer: optax.GradientTransformation,
    ema_decay: float = 0.0,
):
    """Builds ``step(state, batch, key) -> (state, metrics)`` for ``loss_fn(params, batch, key)``.

    One step: ``g = grad loss``; ``params <- params + optimizer(g)``; and, when ``ema_decay > 0``,
    ``ema <- decay * ema + (1 - decay) * params``. ``metrics`` holds the loss, the global gradient
    norm (before clipping) and the batch mean of every auxiliary output. ``state.model_state`` is
    carried unchanged; a loss that updates it uses :func:`make_stateful_step`.
    """

    def stateful_loss(params, model_state, batch, key):
        loss, aux = loss_fn(params, batch, key)
        return loss, (aux, model_state)

    return make_stateful_step(stateful_loss, optimizer, ema_decay)


def make_stateful_step(
    loss_fn: Callable[[Params, PyTree, Array, PRNGKey], tuple[Array, tuple[dict, PyTree]]],
    optimizer: optax.GradientTransformation,
    ema_decay: float = 0.0,
):
    """:func:`make_step` for ``loss_fn(params, model_state, batch, key) -> (loss, (aux,
    new_model_state))``, e.g. a Flax model applied with ``mutable=[...]`` whose updated
    collections (power-iteration vectors, batch statistics) become the next ``model_state``."""

    def step(state: TrainState, batch: Array, key: PRNGKey):
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, (aux, model_state)), grads = grad_fn(state.params, state.model_state, batch, key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = state.ema_params
        if ema is not None:
            ema = optax.incremental_update(params, ema, step_size=1.0 - ema_decay)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
        metrics.update({name: jnp.mean(value) for name, value in aux.items()})
        return TrainState(state.step + 1, params, opt_state, ema, model_state), metrics

    return step


def tree_size(tree: PyTree) -> int:
    """Number of scalars in a pytree (for reporting model sizes)."""
    return sum(x.size for x in jax.tree.leaves(tree))
