"""Optimizers and learning-rate schedules built from the ``optim`` block of a config."""

import optax

from jgen.checks import check_choice

_OPTIMIZERS = {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd}
SCHEDULES = ("constant", "cosine", "linear")


def make_schedule(learning_rate: float, schedule: str, warmup_steps: int, num_steps: int):
    """Linear warm-up from 0 over ``warmup_steps``, then constant, cosine or linear decay to 0."""
    check_choice("optim.schedule", schedule, SCHEDULES)
    decay_steps = max(num_steps - warmup_steps, 1)
    decays = {
        "constant": optax.constant_schedule(learning_rate),
        "cosine": optax.cosine_decay_schedule(learning_rate, decay_steps),
        "linear": optax.linear_schedule(learning_rate, 0.0, decay_steps),
    }
    if warmup_steps <= 0:
        return decays[schedule]
    warmup = optax.linear_schedule(0.0, learning_rate, warmup_steps)
    return optax.join_schedules([warmup, decays[schedule]], [warmup_steps])


def make_optimizer(
    name: str,
    learning_rate: float,
    *,
    schedule: str = "constant",
    warmup_steps: int = 0,
    num_steps: int = 1,
    grad_clip: float = 0.0,
    weight_decay: float = 0.0,
    b1: float = 0.9,
    b2: float = 0.999,
) -> optax.GradientTransformation:
    """``clip_by_global_norm(grad_clip)`` (when > 0) followed by the named optimizer.

    Args:
      name: ``adam``, ``adamw`` (decoupled weight decay, Loshchilov & Hutter 2019) or ``sgd``.
      learning_rate: peak learning rate.
      schedule: ``constant``, ``cosine`` or ``linear`` decay after the warm-up.
      warmup_steps: length of the linear warm-up.
      num_steps: total training steps, the horizon of the decay.
      grad_clip: maximum global gradient norm; 0 disables clipping.
      weight_decay: decoupled weight decay, only for ``adamw``.
      b1, b2: Adam's moment decay rates (``adam`` / ``adamw``); GANs use ``b1 = 0.5`` (Radford
        et al. 2016) or ``b1 = 0, b2 = 0.9`` (Gulrajani et al. 2017; Miyato et al. 2018).
    """
    check_choice("optim.name", name, _OPTIMIZERS)
    if name != "adamw" and weight_decay:
        raise ValueError(f"optim.weight_decay needs optim.name='adamw'; got name={name!r}")
    lr = make_schedule(learning_rate, schedule, warmup_steps, num_steps)
    if name == "sgd":
        opt = optax.sgd(lr)
    elif name == "adamw":
        opt = optax.adamw(lr, b1=b1, b2=b2, weight_decay=weight_decay)
    else:
        opt = optax.adam(lr, b1=b1, b2=b2)
    return optax.chain(optax.clip_by_global_norm(grad_clip), opt) if grad_clip > 0 else opt


def optimizer_from_config(config, learning_rate: float | None = None):
    """The optimizer described by ``config.optim``, decaying over ``config.train.num_steps``
    (``optim.b1`` / ``optim.b2`` when the config has them); ``learning_rate`` overrides
    ``optim.learning_rate`` (a GAN's discriminator, TTUR)."""
    o = config.optim
    return make_optimizer(
        o.name,
        o.learning_rate if learning_rate is None else learning_rate,
        schedule=o.schedule,
        warmup_steps=o.warmup_steps,
        num_steps=config.train.num_steps,
        grad_clip=o.grad_clip,
        weight_decay=o.weight_decay,
        b1=o.get("b1", 0.9),
        b2=o.get("b2", 0.999),
    )
