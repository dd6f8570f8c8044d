"""Generative adversarial networks (Goodfellow et al. 2014, "Generative adversarial nets") as one
:class:`~jgen.train.trainer.Trainer`: a generator ``G(z)``, ``z ~ N(0, I)``, and a discriminator
(critic) ``D(x)`` returning one logit per example, trained against each other inside one jitted
step.

One call of ``step`` on a batch of ``k n`` real examples (``model.disc_steps = k``; so
``train.batch_size = k n``) does, as in Algorithm 1 of Goodfellow et al. and of Arjovsky et al.
2017::

    for i in 1..k:   D <- D - lr_D grad_D [ mean_j L_D(D(x_ij), D(G(z_ij))) + penalties ]
    G <- G - lr_G grad_G mean_j L_G(D(x_1j), D(G(z_j)))

with fresh real examples for each discriminator update (``x_i`` is the ``i``-th slice of the
batch) and fresh noise everywhere. The pieces, each a config field:

* ``model.loss``: a :data:`jgen.losses.gan.LOSSES` pair ``(L_D, L_G)`` (minimax,
  non-saturating, Wasserstein, least squares, hinge, relativistic average);
* penalties on the discriminator: WGAN-GP (``model.gradient_penalty = lambda``, two-sided or
  ``model.gp_one_sided``; Gulrajani et al. 2017), R1 / R2 (``model.r1 = gamma``: ``gamma / 2
  E ||grad D(x)||^2`` on real / fake; Mescheder, Geiger & Nowozin 2018), weight clipping
  (``model.weight_clip = c``; Arjovsky et al. 2017);
* spectral normalisation of every discriminator layer (``model.spectral_norm``; Miyato et al.
  2018), minibatch standard deviation (``model.minibatch_std``; Karras et al. 2018), batch norm
  in the DCGAN discriminator (``model.d_batch_norm``; refused with gradient penalties, which
  need per-example gradients);
* separate optimisers with their own learning rates, TTUR (``optim.learning_rate`` for ``G``,
  ``model.d_learning_rate`` for ``D``; Heusel et al. 2017), Adam's ``optim.b1`` / ``b2``;
* an exponential moving average of the generator's weights (``optim.ema_decay``; Yazıcı et al.
  2019), used by ``sample`` and ``evaluate``;
* replay of old fakes (``model.replay_size`` > 0; Shrivastava et al. 2017, SimGAN): a share
  ``model.replay_fraction`` of every discriminator batch of fakes is drawn from a buffer of
  earlier fakes, which the current fakes then replace, against mode hopping;
* class conditioning (``model.num_classes = C``, labelled batches ``{"x", "y"}``,
  ``data.labels = True``; :mod:`jgen.data.labels`): ``G(z, y)`` reads the one-hot class beside
  ``z``, the discriminator is a projection discriminator (Miyato & Koyama 2018); fakes in a
  step carry the labels of the real batch, samples cycle through the classes.

Architectures (``model.architecture``): ``mlp`` (any event, flattened; 2-D toy data) and
``dcgan`` (Radford, Metz & Chintala 2016; images ``(H, W[, C])``). Images in ``[0, 1]`` are
modelled on ``[-1, 1]`` (``2 x - 1``, the generator ends in tanh) and samples mapped back.
Generators with batch norm sample in batch-statistics mode (the statistics of the sample batch
itself, as the DCGAN reference code does), so ``sample`` needs ``n >= 2``.

A GAN has no likelihood: ``evaluate`` reports per example the discriminator's losses, its
logits on a real test example and on a fake of the raw (not averaged) generator, whether it
ranks that pair correctly (``d_accuracy``) and its input-gradient norm ``||grad_x D(x)||`` at
the real example. Sample
quality (FID / KID, mode coverage, MMD) is measured from samples by ``experiments/``.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jgen.checks import check_choice, check_int, check_positive
from jgen.data.labels import class_context, split_batch
from jgen.losses import gan as gan_losses
from jgen.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from jgen.nets.discriminator import MLPDiscriminator, MLPGenerator
from jgen.samplers import replay_buffer
from jgen.train.optim import optimizer_from_config
from jgen.train.trainer import Trainer
from jgen.types import Array, Params, PRNGKey, PyTree

ARCHITECTURES = ("mlp", "dcgan")


class GANState(NamedTuple):
    """Both players' training state.

    Attributes:
      step: generator updates done.
      g_params, d_params: the players' parameters.
      g_opt_state, d_opt_state: their optimiser states.
      g_ema: the moving average of ``g_params`` (None when ``optim.ema_decay = 0``).
      g_state, d_state: their non-trained variables (``batch_stats``, ``spectral``), ``{}`` if
        none.
      replay: ``(capacity, *event)`` earlier fakes in model space, or None.
    """

    step: Array
    g_params: Params
    d_params: Params
    g_opt_state: optax.OptState
    d_opt_state: optax.OptState
    g_ema: Params | None
    g_state: PyTree
    d_state: PyTree
    replay: Array | None


class Player(NamedTuple):
    """A Flax module as two functions: ``init(key, x, context) -> (params, state)`` and
    ``apply(params, state, x, context, train) -> (out, new_state)``, the new state holding its
    updated collections (unchanged when it has none)."""

    init: Callable
    apply: Callable


def _player(module: nn.Module, takes_train: bool) -> Player:
    def init(key, x, context):
        variables = dict(module.init(key, x, context, **({"train": False} if takes_train else {})))
        return variables.pop("params"), variables

    def apply(params, state, x, context, train: bool):
        kwargs = {"train": train} if takes_train else {}
        variables = {"params": params, **state}
        if not state:
            return module.apply(variables, x, context, **kwargs), state
        out, new_state = module.apply(variables, x, context, mutable=list(state), **kwargs)
        return out, {**state, **new_state}

    return Player(init, apply)


def _players(config, event_shape: tuple[int, ...]) -> tuple[Player, Player]:
    mc = config.model
    check_choice("model.architecture", mc.architecture, ARCHITECTURES)
    num_classes = mc.get("num_classes", 0)
    if mc.architecture == "mlp":
        for i, width in enumerate(mc.hidden_sizes):
            check_int(f"model.hidden_sizes[{i}]", width)
        hidden = tuple(mc.hidden_sizes)
        generator = MLPGenerator(hidden, math.prod(event_shape), num_classes=num_classes)
        discriminator = MLPDiscriminator(
            hidden,
            spectral_norm=mc.spectral_norm,
            minibatch_std=mc.minibatch_std,
            num_classes=num_classes,
        )
        return _player(generator, False), _player(discriminator, False)
    if len(event_shape) not in (2, 3):
        raise ValueError(
            f"model.architecture='dcgan' needs images (H, W) or (H, W, C); got event shape "
            f"{event_shape}"
        )
    check_int("model.features", mc.features)
    generator = DCGANGenerator(tuple(event_shape), mc.features, num_classes=num_classes)
    discriminator = DCGANDiscriminator(
        mc.features,
        spectral_norm=mc.spectral_norm,
        batch_norm=mc.d_batch_norm,
        minibatch_std=mc.minibatch_std,
        num_classes=num_classes,
    )
    return _player(generator, True), _player(discriminator, True)


def _check_config(config, custom_loss: bool) -> None:
    mc = config.model
    check_int("model.latent_dim", mc.latent_dim)
    check_int("model.disc_steps", mc.disc_steps)
    check_int("model.num_classes", mc.get("num_classes", 0), minimum=0)
    check_int("model.replay_size", mc.replay_size, minimum=0)
    if not custom_loss:
        check_choice("model.loss", mc.loss, gan_losses.LOSSES)
    for name in ("gradient_penalty", "r1", "r2", "weight_clip", "d_learning_rate"):
        check_positive(f"model.{name}", mc[name], allow_zero=True)
    if not 0.0 < mc.replay_fraction <= 1.0:
        raise ValueError(f"model.replay_fraction must be in (0, 1]; got {mc.replay_fraction}")
    penalties = [n for n in ("gradient_penalty", "r1", "r2") if mc[n] > 0]
    if mc.architecture == "dcgan" and mc.d_batch_norm and penalties:
        raise ValueError(
            f"model.d_batch_norm=True mixes examples in the discriminator, so its per-example "
            f"input gradients are not those of the penalty model.{penalties[0]}; set one of them "
            f"to off"
        )
    if mc.replay_size and mc.get("num_classes", 0):
        raise ValueError(
            "model.replay_size > 0 replays fakes without their classes; it needs "
            f"model.num_classes=0 (got {mc.num_classes})"
        )
    if config.train.batch_size % mc.disc_steps:
        raise ValueError(
            f"train.batch_size must be a multiple of model.disc_steps={mc.disc_steps} (one "
            f"slice of real examples per discriminator update); got {config.train.batch_size}"
        )


def make(config, event_shape: tuple[int, ...], loss: gan_losses.GanLoss | None = None) -> Trainer:
    """A Trainer for the GAN of ``config.model`` (see the module docstring for every field).

    ``loss``, when given, replaces ``model.loss``: any pair of per-example functions
    ``(real_logits, fake_logits) -> (B,)`` (``jgen.losses.gan.GanLoss``), to prototype a new
    objective with everything else unchanged.

    Raises:
      ValueError: naming the field for an unknown ``architecture`` or ``loss``, a non-positive
        size, a negative penalty weight or learning rate, ``replay_fraction`` outside
        ``(0, 1]``, a ``train.batch_size`` that ``disc_steps`` does not divide, batch norm in
        the discriminator together with a gradient penalty, replay with classes, or a DCGAN on
        data that are not images.
    """
    _check_config(config, loss is not None)
    mc = config.model
    event_shape = tuple(event_shape)
    images = len(event_shape) >= 2
    num_classes = mc.get("num_classes", 0)
    latent_dim, k = mc.latent_dim, mc.disc_steps
    loss = gan_losses.get_loss(mc.loss) if loss is None else loss
    generator, discriminator = _players(config, event_shape)
    g_optimizer = optimizer_from_config(config)
    d_optimizer = optimizer_from_config(config, mc.d_learning_rate or config.optim.learning_rate)
    ema_decay = config.optim.ema_decay

    def to_model(x: Array) -> Array:
        return 2.0 * x - 1.0 if images else x

    def to_data(y: Array) -> Array:
        return (y + 1.0) / 2.0 if images else y

    def generate(g_params, g_state, key, n: int, context, dtype=jnp.float32):
        """``n`` fakes in model space and the generator's updated state."""
        z = jax.random.normal(key, (n, latent_dim), dtype)
        out, g_state = generator.apply(g_params, g_state, z, context, True)
        out = out.reshape((n, *event_shape))
        if mc.architecture == "mlp" and images:
            out = jnp.tanh(out)
        return out, g_state

    def logits(d_params, d_state, x, context, train: bool):
        out, d_state = discriminator.apply(d_params, d_state, x, context, train)
        return out.reshape(x.shape[0]), d_state

    def critic(d_params, d_state, context):
        """``x -> D(x)`` with the stored state, for the input-gradient penalties."""
        return lambda x: logits(d_params, d_state, x, context, True)[0]

    def init(key: PRNGKey, batch) -> GANState:
        x, context = split_batch(batch, event_shape, num_classes)
        n = x.shape[0] // k
        x, context = x[:n], None if context is None else context[:n]
        g_key, d_key, replay_key = jax.random.split(key, 3)
        z = jnp.zeros((n, latent_dim), x.dtype)
        g_params, g_state = generator.init(g_key, z, context)
        d_params, d_state = discriminator.init(d_key, x, context)
        replay = None
        if mc.replay_size:
            replay = replay_buffer.init(
                replay_key,
                mc.replay_size,
                lambda key, m: generate(g_params, g_state, key, m, None, x.dtype)[0],
            ).samples
        ema = jax.tree.map(jnp.copy, g_params) if ema_decay > 0 else None
        return GANState(
            jnp.zeros((), jnp.int32),
            g_params,
            d_params,
            g_optimizer.init(g_params),
            d_optimizer.init(d_params),
            ema,
            g_state,
            d_state,
            replay,
        )

    def d_loss_fn(d_params, d_state, g_params, g_state, replay, real, context, key):
        fake_key, replay_key, gp_key = jax.random.split(key, 3)
        n = real.shape[0]
        fake, _ = generate(g_params, g_state, fake_key, n, context, real.dtype)
        fake = jax.lax.stop_gradient(fake)
        if replay is not None:
            m = max(1, round(mc.replay_fraction * n))
            old, rows = replay_buffer.sample(
                replay_buffer.ReplayBuffer(replay),
                replay_key,
                m,
                noise_fn=lambda _, size: fake[:size],
                reinit_fraction=0.0,
            )
            replay = replay_buffer.write(replay_buffer.ReplayBuffer(replay), rows, fake[n - m :])
            replay = replay.samples
            fake = jnp.concatenate([fake[: n - m], old])
        real_logits, d_state = logits(d_params, d_state, real, context, True)
        fake_logits, d_state = logits(d_params, d_state, fake, context, True)
        per_example = loss.discriminator(real_logits, fake_logits)
        total = jnp.mean(per_example)
        aux = {"d_loss": total, "d_accuracy": jnp.mean(real_logits > fake_logits)}
        penalty_critic = critic(d_params, d_state, context)
        if mc.gradient_penalty:
            gp = gan_losses.gradient_penalty(
                penalty_critic, real, fake, gp_key, one_sided=mc.gp_one_sided
            )
            aux["gradient_penalty"] = jnp.mean(gp)
            total = total + mc.gradient_penalty * aux["gradient_penalty"]
        if mc.r1:
            aux["r1"] = jnp.mean(gan_losses.r1_penalty(penalty_critic, real))
            total = total + 0.5 * mc.r1 * aux["r1"]
        if mc.r2:
            aux["r2"] = jnp.mean(gan_losses.r2_penalty(penalty_critic, fake))
            total = total + 0.5 * mc.r2 * aux["r2"]
        return total, (aux, d_state, replay)

    def d_update(carry, inputs):
        d_params, d_opt_state, d_state, replay, g_params, g_state = carry
        real, context, key = inputs
        grad_fn = jax.value_and_grad(d_loss_fn, has_aux=True)
        (_, (aux, d_state, replay)), grads = grad_fn(
            d_params, d_state, g_params, g_state, replay, real, context, key
        )
        updates, d_opt_state = d_optimizer.update(grads, d_opt_state, d_params)
        d_params = optax.apply_updates(d_params, updates)
        if mc.weight_clip:
            d_params = gan_losses.clip_weights(d_params, mc.weight_clip)
        aux["d_grad_norm"] = optax.tree.norm(grads)
        return (d_params, d_opt_state, d_state, replay, g_params, g_state), aux

    def g_loss_fn(g_params, g_state, d_params, d_state, real, context, key):
        fake, g_state = generate(g_params, g_state, key, real.shape[0], context, real.dtype)
        fake_logits, _ = logits(d_params, d_state, fake, context, True)
        real_logits, _ = logits(d_params, d_state, real, context, True)
        total = jnp.mean(loss.generator(jax.lax.stop_gradient(real_logits), fake_logits))
        return total, ({"g_loss": total}, g_state)

    def step(state: GANState, batch, key: PRNGKey):
        x, context = split_batch(batch, event_shape, num_classes)
        real = to_model(x).reshape((k, -1, *event_shape))
        contexts = None if context is None else context.reshape((k, -1, num_classes))
        d_keys = jax.random.split(jax.random.fold_in(key, 0), k)
        carry = (
            state.d_params,
            state.d_opt_state,
            state.d_state,
            state.replay,
            state.g_params,
            state.g_state,
        )
        carry, d_aux = jax.lax.scan(d_update, carry, (real, contexts, d_keys))
        d_params, d_opt_state, d_state, replay, _, _ = carry
        first_context = None if contexts is None else contexts[0]
        grad_fn = jax.value_and_grad(g_loss_fn, has_aux=True)
        (_, (g_aux, g_state)), grads = grad_fn(
            state.g_params,
            state.g_state,
            d_params,
            d_state,
            real[0],
            first_context,
            jax.random.fold_in(key, 1),
        )
        updates, g_opt_state = g_optimizer.update(grads, state.g_opt_state, state.g_params)
        g_params = optax.apply_updates(state.g_params, updates)
        ema = state.g_ema
        if ema is not None:
            ema = optax.incremental_update(g_params, ema, step_size=1.0 - ema_decay)
        metrics = {name: jnp.mean(value) for name, value in d_aux.items()}
        metrics.update(g_aux, g_grad_norm=optax.tree.norm(grads))
        metrics["loss"] = metrics["d_loss"] + metrics["g_loss"]
        new_state = GANState(
            state.step + 1, g_params, d_params, g_opt_state, d_opt_state, ema, g_state, d_state,
            replay,
        )  # fmt: skip
        return new_state, metrics

    def sample(state: GANState, key: PRNGKey, n: int) -> Array:
        g_params = state.g_params if state.g_ema is None else state.g_ema
        out, _ = generate(g_params, state.g_state, key, n, class_context(num_classes, n))
        return to_data(out)

    def evaluate(state: GANState, batch, key: PRNGKey) -> dict:
        x, context = split_batch(batch, event_shape, num_classes)
        real = to_model(x)
        # The discriminator is judged against the generator it is trained against (the raw
        # one): the lagging EMA generator's fakes are easier to spot.
        fake, _ = generate(state.g_params, state.g_state, key, x.shape[0], context, x.dtype)
        real_logits, _ = logits(state.d_params, state.d_state, real, context, False)
        fake_logits, _ = logits(state.d_params, state.d_state, fake, context, False)
        eval_critic = lambda y: logits(state.d_params, state.d_state, y, context, False)[0]  # noqa: E731
        grad_norm_sq = gan_losses.squared_gradient_norm(eval_critic, real)
        return {
            "d_loss": loss.discriminator(real_logits, fake_logits),
            "g_loss": loss.generator(real_logits, fake_logits),
            "d_real": real_logits,
            "d_fake": fake_logits,
            "d_accuracy": (real_logits > fake_logits).astype(real_logits.dtype),
            "d_grad_norm": jnp.sqrt(grad_norm_sq),
        }

    return Trainer(init, step, sample, evaluate)
