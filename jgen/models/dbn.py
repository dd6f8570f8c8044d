"""Deep belief nets (Hinton, Osindero & Teh 2006, "A fast learning algorithm for deep belief
nets") trained greedily, one Bernoulli RBM at a time, as one :class:`~jgen.train.trainer.Trainer`.

A DBN over ``v = h_0`` with hidden layers ``h_1 .. h_L`` (``model.hidden_sizes``) is a stack of
RBMs ``R_l`` on ``(h_{l-1}, h_l)``. Its generative model is the top RBM over ``(h_{L-1}, h_L)``
and directed sigmoid layers below::

    p(v, h_1, .., h_L) = p(v | h_1) .. p(h_{L-2} | h_{L-1}) p_{R_L}(h_{L-1}, h_L),
    p(h_{l-1} = 1 | h_l) = sigmoid(a_l + W_l h_l)        (R_l's visible conditional),

and its recognition model is ``q(h_l = 1 | h_{l-1}) = sigmoid(b_l + W_l^T h_{l-1})``.

Training (greedy, layer-wise). Step ``s`` updates only the RBM ``l = min(s // steps_per_layer,
L - 1)`` (a ``lax.switch`` over layers inside one jitted step), by the same CD-k / PCD-k update
as :mod:`jgen.models.rbm` (:func:`jgen.models.rbm.cd_update`, each layer with its own optimiser
state and chains), on data ``h_{l-1}`` propagated up through the frozen RBMs below: their
hidden probabilities (``model.propagate = "probabilities"``, Hinton 2010 section 3.2) or
samples (``"samples"``, as in Hinton et al. 2006). The last layer trains from ``(L - 1)
steps_per_layer`` to ``train.num_steps``.

Sampling: ``model.sample_steps`` block Gibbs steps in the top RBM from random states, then one
downward pass ``h_{l-1} ~ p(h_{l-1} | h_l)`` to the visible layer, returning ``p(v = 1 | h_1)``
(``model.sample_probabilities``) or a binary draw.

Evaluation per example: ``reconstruction_error`` ``||v - down(up(v))||^2`` through the whole
stack in mean field; ``bottom_rbm_nll``, the exact NLL of the bottom RBM alone (when its smaller
layer has at most ``model.max_enumerate`` units): the model after the first stage of training,
not the DBN; and when the top RBM is enumerable ``nll_bound``, the importance-sampled NLL of the
DBN with the recognition model as proposal (``model.eval_samples`` samples; Salakhutdinov &
Murray 2008)::

    -log (1/K sum_k p_{R_L}(h_{L-1}^k) prod_{l<L} p(h_{l-1}^k | h_l^k) / q(h_l^k | h_{l-1}^k)),

an upper bound on ``-log p(v)`` in expectation (Jensen), tight as ``K -> inf``.

Config fields of ``config.model`` (``experiments/configs/dbn_digits.py``): ``name = "dbn"``,
``hidden_sizes``, ``steps_per_layer``, ``propagate``, ``eval_samples`` and the RBM training
fields of :mod:`jgen.models.rbm` (``cd_k``, ``persistent``, ``num_chains``, ``weight_decay``,
``momentum``, ``initial_momentum``, ``momentum_switch_step``, ``init_scale``,
``sample_steps``, ``sample_probabilities``, ``max_enumerate``).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jgen.checks import check_choice, check_int
from jgen.energies import rbm
from jgen.metrics.importance import log_mean_exp
from jgen.models import rbm as rbm_model
from jgen.samplers.gibbs import block_gibbs
from jgen.train.trainer import Trainer
from jgen.types import Array, PRNGKey

PROPAGATE = ("probabilities", "samples")


class DBNState(NamedTuple):
    """The training state of a DBN.

    Attributes:
      step: updates done (int32 scalar).
      layers: the :class:`~jgen.energies.rbm.BernoulliRBM` of every layer, bottom first.
      opt_states: one optimiser state per layer (its counters move only while it trains).
      chains: one ``(num_chains, d_{l-1})`` array of PCD chains per layer, or None (CD).
    """

    step: Array
    layers: tuple[rbm.BernoulliRBM, ...]
    opt_states: tuple[optax.OptState, ...]
    chains: tuple[Array, ...] | None


def _bernoulli_log_prob(x: Array, logits: Array) -> Array:
    """``sum_i log Bernoulli(x_i; sigmoid(logits_i))`` over the last axis."""
    return jnp.sum(x * jax.nn.log_sigmoid(logits) + (1 - x) * jax.nn.log_sigmoid(-logits), -1)


def up_pass(layers, v: Array, key: PRNGKey | None = None) -> Array:
    """The recognition pass ``h_l = q(h_l = 1 | h_{l-1})`` through ``layers`` (bottom first).

    Args:
      layers: Bernoulli RBMs, bottom first (may be empty: ``v`` is returned).
      v: ``(n, d_0)``.
      key: None for probabilities at every layer; a key for binary samples at every layer.

    Returns:
      ``(n, d_L)``: the top layer's probabilities or samples.
    """
    for i, layer in enumerate(layers):
        if key is None:
            v = rbm.hidden_probs(layer, v)
        else:
            v = rbm.sample_hidden(layer, jax.random.fold_in(key, i), v)
    return v


def down_pass(layers, h: Array, key: PRNGKey | None = None, *, probabilities: bool = True) -> Array:
    """The generative pass ``h_{l-1} ~ p(h_{l-1} | h_l) = sigmoid(a_l + W_l h_l)`` from the top
    of ``layers`` (bottom first) down to the visible layer.

    Args:
      layers: Bernoulli RBMs, bottom first (at least one).
      h: ``(n, d_L)`` states of the top hidden layer.
      key: None for mean field (probabilities passed down); a key to sample every layer above
        the visible one.
      probabilities: with a key, whether the visible layer is returned as ``p(v = 1 | h_1)``
        (True) or sampled.

    Returns:
      ``(n, d_0)``.
    """
    for i, layer in reversed(list(enumerate(layers))):
        if key is None or (i == 0 and probabilities):
            h = rbm.visible_probs(layer, h)
        else:
            h = rbm.sample_visible(layer, jax.random.fold_in(key, i), h)
    return h


def nll_bound(layers, v: Array, key: PRNGKey, num_samples: int, *, max_units: int) -> Array:
    """Importance-sampled ``-log p(v)`` of a DBN (formula in the module docstring), with ``K =
    num_samples`` recognition samples ``h_l^k ~ q(h_l | h_{l-1}^k)``; ``p_{R_L}`` of the top
    RBM's visible layer is exact (:func:`jgen.energies.rbm.log_likelihood`).

    Args:
      layers: Bernoulli RBMs, bottom first; the top one enumerable (``max_units``).
      v: binary data ``(n, d_0)``.
      key: PRNG key of the samples.
      num_samples: ``K >= 1``.
      max_units: the top RBM's enumeration limit.

    Returns:
      ``(n,)`` estimates, upper bounds on ``-log p(v)`` in expectation.
    """
    check_int("num_samples", num_samples)
    n = v.shape[0]
    x = jnp.broadcast_to(v, (num_samples, *v.shape)).reshape(num_samples * n, -1)
    log_w = jnp.zeros(num_samples * n, v.dtype)
    for i, layer in enumerate(layers[:-1]):
        q_logits = x @ layer.weights + layer.hidden_bias
        h = rbm.sample_hidden(layer, jax.random.fold_in(key, i), x)
        p_logits = h @ layer.weights.T + layer.visible_bias
        log_w += _bernoulli_log_prob(x, p_logits) - _bernoulli_log_prob(h, q_logits)
        x = h
    log_w += rbm.log_likelihood(layers[-1], x, max_units=max_units)
    return -log_mean_exp(log_w.reshape(num_samples, n), axis=0).log_mean


def _check_config(config) -> tuple[int, ...]:
    mc = config.model
    sizes = tuple(mc.hidden_sizes)
    if not sizes:
        raise ValueError(f"model.hidden_sizes must hold at least one layer; got {sizes}")
    for i, width in enumerate(sizes):
        check_int(f"model.hidden_sizes[{i}]", width)
    check_int("model.steps_per_layer", mc.steps_per_layer)
    check_int("model.eval_samples", mc.eval_samples)
    check_choice("model.propagate", mc.propagate, PROPAGATE)
    rbm_model.check_config(config)
    if (len(sizes) - 1) * mc.steps_per_layer >= config.train.num_steps:
        raise ValueError(
            f"train.num_steps must exceed (len(model.hidden_sizes) - 1) * model.steps_per_layer "
            f"= {(len(sizes) - 1) * mc.steps_per_layer}, or the top RBM never trains; got "
            f"{config.train.num_steps}"
        )
    return sizes


def make(config, event_shape: tuple[int, ...]) -> Trainer:
    """A Trainer for the DBN of ``config.model`` (every field in the module docstring).

    Raises:
      ValueError: naming the field for an empty or non-positive ``hidden_sizes``, an unknown
        ``propagate``, bad RBM training fields (:func:`jgen.models.rbm.check_config`), or a
        ``train.num_steps`` that leaves the top layer untrained.
    """
    mc = config.model
    sizes = _check_config(config)
    event_shape = tuple(event_shape)
    dims = (math.prod(event_shape), *sizes)
    num_layers = len(sizes)
    spl = mc.steps_per_layer
    last_steps = config.train.num_steps - (num_layers - 1) * spl
    txs = [rbm_model.optimizer(config, spl) for _ in range(num_layers - 1)]
    txs.append(rbm_model.optimizer(config, last_steps))

    def init(key: PRNGKey, batch) -> DBNState:
        v = rbm_model.visible_batch(batch, event_shape)
        layers, chains = [], []
        for i in range(num_layers):
            key_w, key_c = jax.random.split(jax.random.fold_in(key, i))
            # Only the bottom layer sees data at init; the biases of the layers above start at 0.
            data = v if i == 0 else None
            layer = rbm_model.init_layer(
                key_w, "bernoulli", dims[i], dims[i + 1], mc.init_scale, data
            )
            layers.append(layer)
            chains.append(rbm_model.init_chains(layer, key_c, mc.num_chains, mc.persistent))
        opt_states = tuple(tx.init(p) for tx, p in zip(txs, layers, strict=True))
        return DBNState(
            jnp.zeros((), jnp.int32),
            tuple(layers),
            opt_states,
            tuple(chains) if mc.persistent else None,
        )

    def train_layer(index: int):
        def branch(operand):
            state, v, key = operand
            key_up, key_cd = jax.random.split(key)
            up_key = key_up if mc.propagate == "samples" else None
            x = up_pass(state.layers[:index], v, up_key)
            chains = None if state.chains is None else state.chains[index]
            layer, opt_state, chains, metrics = rbm_model.cd_update(
                state.layers[index], state.opt_states[index], chains, x, key_cd,
                tx=txs[index], k=mc.cd_k,
            )  # fmt: skip
            layers = state.layers[:index] + (layer,) + state.layers[index + 1 :]
            opt_states = state.opt_states[:index] + (opt_state,) + state.opt_states[index + 1 :]
            all_chains = state.chains
            if all_chains is not None:
                all_chains = all_chains[:index] + (chains,) + all_chains[index + 1 :]
            keep = ("loss", "reconstruction_error", "visible_change_rate")
            metrics = {name: metrics[name] for name in keep}
            return DBNState(state.step, layers, opt_states, all_chains), metrics

        return branch

    branches = [train_layer(i) for i in range(num_layers)]

    def step(state: DBNState, batch, key: PRNGKey):
        v = rbm_model.visible_batch(batch, event_shape).astype(state.layers[0].weights.dtype)
        index = jnp.minimum(state.step // spl, num_layers - 1)
        state, metrics = jax.lax.switch(index, branches, (state, v, key))
        metrics["layer"] = index.astype(metrics["loss"].dtype)
        return state._replace(step=state.step + 1), metrics

    def sample(state: DBNState, key: PRNGKey, n: int) -> Array:
        key_0, key_g, key_d = jax.random.split(key, 3)
        top = state.layers[-1]
        v0 = rbm_model.random_visible(top, key_0, n)
        sample_h, sample_v = rbm.conditionals(top)
        chain, _ = block_gibbs(sample_h, sample_v, v0, key_g, n_steps=mc.sample_steps)
        v = down_pass(state.layers, chain.h, key_d, probabilities=mc.sample_probabilities)
        return v.reshape((n, *event_shape))

    def evaluate(state: DBNState, batch, key: PRNGKey) -> dict:
        v = rbm_model.visible_batch(batch, event_shape).astype(state.layers[0].weights.dtype)
        top_h = up_pass(state.layers, v)
        metrics = {"reconstruction_error": jnp.sum((v - down_pass(state.layers, top_h)) ** 2, -1)}
        bottom = state.layers[0]
        if rbm_model.exact_enumerable("bernoulli", dims[0], dims[1], mc.max_enumerate):
            nll = -rbm.log_likelihood(bottom, v, max_units=mc.max_enumerate)
            metrics["bottom_rbm_nll"] = nll
        if rbm_model.exact_enumerable("bernoulli", dims[-2], dims[-1], mc.max_enumerate):
            metrics["nll_bound"] = nll_bound(
                state.layers, v, key, mc.eval_samples, max_units=mc.max_enumerate
            )
        return metrics

    return Trainer(init, step, sample, evaluate)
