"""Deep energy-based models and JEM trained by maximum likelihood with Langevin negatives, as one
:class:`~jgen.train.trainer.Trainer`.

A network ``f_theta`` maps an example to ``K`` logits; its energy is

    E(x) = -logsumexp_y f(x)[y],

which for ``K = 1`` (``model.num_classes = 0``) is just ``-f(x)``, and for ``K = C`` classes is
JEM's energy with ``p(y | x) = softmax f(x)`` (Grathwohl et al. 2020, "Your classifier is secretly
an energy based model and you should treat it like one"; :mod:`jgen.energies.jem`). One ``step``:

1. negatives: chains start from noise (``model.chains = "short_run"``, Nijkamp et al. 2019,
   "Learning non-convergent non-persistent short-run MCMC toward energy-based model") or from a
   replay buffer of earlier chain ends, 5% restarted from noise (``"persistent"``, Du & Mordatch
   2019, "Implicit generation and modeling with energy-based models"; JEM), and run
   ``model.langevin_steps`` steps of Langevin dynamics on the current energy
   (:func:`jgen.samplers.langevin.langevin`: step size ``model.step_size``, noise scale
   ``model.noise_scale``, per-example score clipping ``model.score_clip``; chains are clipped
   to the support of the model: ``[0, 1]`` for images, the box ``model.box`` (per coordinate)
   otherwise); a persistent run writes the ends back to its buffer;
2. the loss :func:`jgen.losses.ebm.contrastive_loss` of the data (plus Gaussian noise of std
   ``model.data_noise``, which smooths image data) and the negatives, with the energy-magnitude
   penalty ``model.l2_weight``, energies clipped to ``[-model.energy_clip, model.energy_clip]``
   when that is set;
3. one optimiser update (``optim.grad_clip`` clips the global gradient norm).

JEM (``model.num_classes = C``, labelled batches ``{"x", "y"}``) minimises
``CE(f(x), y) + model.gen_weight * L``, the classifier's cross-entropy plus the generative term.

Divergence: EBM training fails by the two phases' energies running away together (the
likelihood fixes them only up to a constant) or by the chains leaving the data range. When any
energy of a step exceeds ``model.max_energy`` in magnitude, or is not finite, the step's loss is
``+inf``; the training loop then stops at that step without checkpointing it and says so, and
``diverged_energy`` in the logged metrics is the largest magnitude seen. Raise ``l2_weight``,
lower ``step_size`` / the learning rate, or clip scores.

``sample`` runs ``model.sample_steps`` Langevin steps from noise (short-run) or from the replay
buffer (persistent). ``evaluate`` reports per example the energy of the test example and of a
short-run sample, and for 2-D data the exact negative log-likelihood ``E(x) + log Z`` of the
model on its support, the box, with ``log Z`` by quadrature of ``exp(-E)`` on a grid over it,
and for JEM the classifier's cross-entropy and accuracy. (Without the box an MLP energy is free
to fall below the data's energy far away: in a trial run on ``moons`` the persistent chains
drifted to ``|x| ~ 20`` while the NLL over the box looked fine.)
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jgen.checks import check_choice, check_int, check_positive
from jgen.convert import score_from_energy
from jgen.data.labels import split_batch
from jgen.energies import jem
from jgen.losses.ebm import contrastive_loss
from jgen.nets.classifier import ConvClassifier
from jgen.nets.mlp import MLP
from jgen.samplers import replay_buffer
from jgen.samplers.langevin import langevin
from jgen.train.optim import optimizer_from_config
from jgen.train.trainer import Trainer
from jgen.types import Array, Params, PRNGKey

ARCHITECTURES = ("mlp", "conv")
CHAINS = ("short_run", "persistent")


class EBMState(NamedTuple):
    """Training state of a deep EBM.

    Attributes:
      step: updates done.
      params: the network's parameters.
      opt_state: the optimiser's state.
      buffer: ``(capacity, *event)`` persistent chain states, or None for short-run chains.
    """

    step: Array
    params: Params
    opt_state: optax.OptState
    buffer: Array | None


def _network(config, event_shape: tuple[int, ...], num_outputs: int):
    mc = config.model
    check_choice("model.architecture", mc.architecture, ARCHITECTURES)
    if mc.architecture == "mlp":
        for i, width in enumerate(mc.hidden_sizes):
            check_int(f"model.hidden_sizes[{i}]", width)
        module = MLP(tuple(mc.hidden_sizes), num_outputs, activation=jax.nn.swish)
        return module, lambda x: x.reshape((x.shape[0], -1))
    if len(event_shape) not in (2, 3):
        raise ValueError(
            f"model.architecture='conv' needs images (H, W) or (H, W, C); got event shape "
            f"{event_shape}"
        )
    module = ConvClassifier(num_outputs, tuple(mc.channels), mc.feature_size, jax.nn.swish)
    if len(event_shape) == 2:
        return module, lambda x: x[..., None]
    return module, lambda x: x


def _check_config(config) -> None:
    mc = config.model
    check_choice("model.chains", mc.chains, CHAINS)
    check_int("model.num_classes", mc.num_classes, minimum=0)
    check_int("model.langevin_steps", mc.langevin_steps)
    check_int("model.sample_steps", mc.sample_steps)
    check_positive("model.step_size", mc.step_size)
    check_positive("model.max_energy", mc.max_energy)
    for name in ("noise_scale", "score_clip", "l2_weight", "energy_clip", "data_noise"):
        check_positive(f"model.{name}", mc[name], allow_zero=True)
    check_positive("model.gen_weight", mc.gen_weight, allow_zero=True)
    for name in ("init_range", "box"):
        lo, hi = mc[name]
        if not lo < hi:
            raise ValueError(f"model.{name} must be (lo, hi) with lo < hi; got {mc[name]}")
    if mc.chains == "persistent":
        check_int("model.buffer_size", mc.buffer_size)
        if not 0.0 <= mc.reinit_fraction <= 1.0:
            raise ValueError(f"model.reinit_fraction must be in [0, 1]; got {mc.reinit_fraction}")


def cross_entropy(logits: Array, labels: Array) -> Array:
    """``-log p(y | x) = E(x, y) - E(x)`` per example, JEM's classifier loss."""
    return jem.joint_energy(logits, labels) - jem.energy(logits)


def grid_log_partition(energy_fn, box: tuple[float, float], num_points: int) -> Array:
    """``log Z = log sum_grid exp(-E(x)) dA``: the midpoint rule over a square ``box`` in 2-D.

    Args:
      energy_fn: ``(n, 2) -> (n,)``.
      box: ``(lo, hi)``; the grid covers ``[lo, hi]^2`` with ``num_points`` cell centres per axis.
      num_points: cells per axis.

    Returns:
      The scalar log-partition over the box.
    """
    lo, hi = box
    width = (hi - lo) / num_points
    centres = lo + width * (jnp.arange(num_points) + 0.5)
    grid = jnp.stack(jnp.meshgrid(centres, centres, indexing="ij"), -1).reshape(-1, 2)
    energies = jax.lax.map(energy_fn, grid.reshape(num_points, num_points, 2))
    return jax.nn.logsumexp(-energies) + 2.0 * math.log(width)


def make(config, event_shape: tuple[int, ...]) -> Trainer:
    """A Trainer for the deep EBM or JEM of ``config.model`` (fields in the module docstring).

    Raises:
      ValueError: naming the field for an unknown ``architecture`` or ``chains``, non-positive
        sizes or step counts, negative weights, an empty ``init_range``, a ``reinit_fraction``
        outside ``[0, 1]``, or a conv network on data that are not images.
    """
    _check_config(config)
    mc = config.model
    event_shape = tuple(event_shape)
    images = len(event_shape) >= 2
    num_classes = mc.num_classes
    module, prepare = _network(config, event_shape, max(num_classes, 1))
    optimizer = optimizer_from_config(config)
    # Images live on [0, 1]; other data on the box, where the grid log Z of evaluate is taken:
    # the model is p(x) ∝ exp(-E(x)) on its support, and chains never leave it.
    x_range = (0.0, 1.0) if images else tuple(mc.box)
    lo, hi = mc.init_range

    def logits(params, x: Array) -> Array:
        out = module.apply({"params": params}, prepare(x))
        return out[1] if isinstance(out, tuple) else out

    def energy(params, x: Array) -> Array:
        return jem.energy(logits(params, x))

    def noise(key: PRNGKey, n: int, dtype=jnp.float32) -> Array:
        return jax.random.uniform(key, (n, *event_shape), dtype, lo, hi)

    def chains(params, x0: Array, key: PRNGKey, n_steps: int) -> tuple[Array, dict]:
        params = jax.lax.stop_gradient(params)
        x, info = langevin(
            score_from_energy(lambda x: energy(params, x)),
            x0,
            key,
            step_size=mc.step_size,
            n_steps=n_steps,
            noise_scale=mc.noise_scale,
            grad_clip=mc.score_clip or None,
            x_range=x_range,
        )
        return jax.lax.stop_gradient(x), info

    def init(key: PRNGKey, batch) -> EBMState:
        x, _ = split_batch(batch, event_shape, num_classes)
        params_key, buffer_key = jax.random.split(key)
        params = module.init(params_key, prepare(x))["params"]
        buffer = None
        if mc.chains == "persistent":
            noise_fn = lambda k, n: noise(k, n, x.dtype)  # noqa: E731
            buffer = replay_buffer.init(buffer_key, mc.buffer_size, noise_fn).samples
        return EBMState(jnp.zeros((), jnp.int32), params, optimizer.init(params), buffer)

    def loss_fn(params, x, labels, x_neg):
        out = logits(params, x)
        e_data, e_model = jem.energy(out), energy(params, x_neg)
        # Divergence is judged on the raw energies: clipped ones never exceed max_energy.
        largest = jnp.maximum(jnp.max(jnp.abs(e_data)), jnp.max(jnp.abs(e_model)))
        if mc.energy_clip:
            e_data = jnp.clip(e_data, -mc.energy_clip, mc.energy_clip)
            e_model = jnp.clip(e_model, -mc.energy_clip, mc.energy_clip)
        total, aux = contrastive_loss(e_data, e_model, l2_weight=mc.l2_weight)
        aux["max_abs_energy"] = jax.lax.stop_gradient(largest)
        if num_classes:
            aux["cross_entropy"] = jnp.mean(cross_entropy(out, labels))
            aux["accuracy"] = jnp.mean(jnp.argmax(out, -1) == labels)
            total = aux["cross_entropy"] + mc.gen_weight * total
        return total, aux

    def step(state: EBMState, batch, key: PRNGKey):
        x, context = split_batch(batch, event_shape, num_classes)
        labels = None if context is None else jnp.argmax(context, -1)
        noise_key, buffer_key, chain_key = jax.random.split(key, 3)
        n = x.shape[0]
        if mc.data_noise:
            x = x + mc.data_noise * jax.random.normal(noise_key, x.shape, x.dtype)
        noise_fn = lambda k, m: noise(k, m, x.dtype)  # noqa: E731
        if state.buffer is None:
            x0, rows = noise_fn(buffer_key, n), None
        else:
            x0, rows = replay_buffer.sample(
                replay_buffer.ReplayBuffer(state.buffer),
                buffer_key,
                n,
                noise_fn=noise_fn,
                reinit_fraction=mc.reinit_fraction,
            )
        x_neg, info = chains(state.params, x0, chain_key, mc.langevin_steps)
        buffer = state.buffer
        if buffer is not None:
            buffer = replay_buffer.write(replay_buffer.ReplayBuffer(buffer), rows, x_neg).samples
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (total, aux), grads = grad_fn(state.params, x, labels, x_neg)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        largest = aux.pop("max_abs_energy")
        diverged = ~(largest <= mc.max_energy)  # also true for NaN
        metrics = {
            **aux,
            "loss": jnp.where(diverged, jnp.inf, total),
            "diverged_energy": jnp.where(diverged, largest, 0.0),
            "grad_norm": optax.tree.norm(grads),
            "score_norm": info["score_norm"],
            "langevin_step_norm": info["step_norm"],
        }
        return EBMState(state.step + 1, params, opt_state, buffer), metrics

    def sample(state: EBMState, key: PRNGKey, n: int) -> Array:
        start_key, chain_key = jax.random.split(key)
        if state.buffer is None or n > state.buffer.shape[0]:
            x0 = noise(start_key, n)
        else:
            rows = jax.random.choice(start_key, state.buffer.shape[0], (n,), replace=False)
            x0 = state.buffer[rows]
        return chains(state.params, x0, chain_key, mc.sample_steps)[0]

    def evaluate(state: EBMState, batch, key: PRNGKey) -> dict:
        x, context = split_batch(batch, event_shape, num_classes)
        n = x.shape[0]
        x_neg, _ = chains(state.params, noise(key, n, x.dtype), key, mc.langevin_steps)
        out = logits(state.params, x)
        e_data = jem.energy(out)
        metrics = {"energy_data": e_data, "energy_model": energy(state.params, x_neg)}
        if event_shape == (2,):
            log_z = grid_log_partition(
                lambda g: energy(state.params, g), tuple(mc.box), mc.box_points
            )
            metrics["nll"] = e_data + log_z
        if num_classes:
            labels = jnp.argmax(context, -1)
            metrics["cross_entropy"] = cross_entropy(out, labels)
            metrics["accuracy"] = (jnp.argmax(out, -1) == labels).astype(x.dtype)
        return metrics

    return Trainer(init, step, sample, evaluate)
