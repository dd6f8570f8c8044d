"""GANs on the 2-D toys, the mode-coverage benchmark of Unrolled GAN / VEEGAN / PacGAN:
``--config=experiments/configs/gan_toy2d.py:TOY[,LOSS][,REGULARISER...][,smoke]``.

TOY is one of ``jgen.data.toy2d.NAMES`` (default ``ring8``; ``grid25`` is the other benchmark),
LOSS one of ``jgen.losses.gan.LOSSES`` (default ``non_saturating``), REGULARISER any of
:data:`REGULARISERS` (``gp``: WGAN-GP, lambda = 10; ``r1``: R1, gamma = 0.01 here: the modes'
std is 0.02-0.05, so the data-side gradients a critic needs are large, and gamma = 0.1 already
collapsed grid25 to no covered mode in a trial run; ``sn``: spectral normalisation; ``mbstd``:
minibatch standard deviation; ``replay``: replay of old fakes). MLP players with 3 hidden layers
of 128 (in the range of the benchmark papers: Metz et al. 2017 and PacGAN use 2-4 layers of
128-400), Adam 5e-4 (0.5, 0.999): on grid25, 1e-4 covered 0-5 of the 25 modes in 20,000 steps
where 5e-4 covered 8-22 (trial runs, one seed each). ``model_config`` is the GAN model block
every GAN config starts from.
"""

import ml_collections

from experiments.configs import default
from jgen.data import toy2d
from jgen.losses import gan as gan_losses

REGULARISERS = {
    "gp": dict(gradient_penalty=10.0),
    "r1": {},  # its weight gamma is scaled to each config's data: with_options(r1_gamma=)
    "sn": dict(spectral_norm=True),
    "mbstd": dict(minibatch_std=True),
    "replay": dict(replay_size=4096),
}


def model_config(**overrides) -> ml_collections.ConfigDict:
    """The ``model`` block of a GAN (fields: ``jgen.models.gan``)."""
    fields = dict(
        name="gan",
        architecture="mlp",
        latent_dim=16,
        hidden_sizes=(128, 128, 128),
        features=64,
        loss="non_saturating",
        gradient_penalty=0.0,
        gp_one_sided=False,
        r1=0.0,
        r2=0.0,
        weight_clip=0.0,
        spectral_norm=False,
        d_batch_norm=False,
        minibatch_std=False,
        num_classes=0,
        disc_steps=1,
        d_learning_rate=0.0,
        replay_size=0,
        replay_fraction=0.5,
    )
    fields.update(overrides)
    return ml_collections.ConfigDict(fields)


def parse_options(name: str, arg: str | None, positional: tuple[str, ...], flags: tuple[str, ...]):
    """``arg`` split at commas, checked against the allowed words: ``(parts, loss)``."""
    parts = [p for p in (arg or "").split(",") if p]
    allowed = (*positional, *gan_losses.LOSSES, *REGULARISERS, *flags, "smoke")
    unknown = [p for p in parts if p not in allowed]
    if unknown:
        raise ValueError(
            f"{name} takes words from {list(positional)}, LOSS in {list(gan_losses.LOSSES)}, "
            f"regularisers {list(REGULARISERS)} and {[*flags, 'smoke']}; got {arg!r}"
        )
    loss = next((p for p in parts if p in gan_losses.LOSSES), "non_saturating")
    return parts, loss


def with_options(c: ml_collections.ConfigDict, parts: list[str], loss: str, r1_gamma: float):
    """Sets ``model.loss`` and the regularisers named in ``parts`` (R1 with weight
    ``r1_gamma``); WGAN critics get 5 updates per generator update (Arjovsky et al. 2017;
    Gulrajani et al. 2017) and Adam (0.5, 0.9)."""
    c.model.loss = loss
    for part in parts:
        c.model.update(REGULARISERS.get(part, {}))
    if "r1" in parts:
        c.model.r1 = r1_gamma
    if loss == "wasserstein":
        c.model.disc_steps = 5
        c.train.batch_size *= 5
        c.optim.b1, c.optim.b2 = 0.5, 0.9
        if "gp" not in parts and "sn" not in parts:
            c.model.weight_clip = 0.01
    return c


def gan_defaults(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Adam (0.5, 0.999) without decay or clipping for both players, as GAN papers train."""
    with c.unlocked():
        c.optim.b1, c.optim.b2 = 0.5, 0.999
    c.optim.schedule, c.optim.warmup_steps, c.optim.grad_clip = "constant", 0, 0.0
    return c


def get_config(arg: str | None = None):
    parts, loss = parse_options("gan_toy2d", arg, toy2d.NAMES, ())
    c = gan_defaults(default.get_config())
    with c.unlocked():
        c.model = model_config()
    c.data.source = "toy2d"
    c.data.name = next((p for p in parts if p in toy2d.NAMES), "ring8")
    c.optim.learning_rate = 5e-4
    c.train.num_steps = 20_000
    c.train.batch_size = 256
    c.train.log_every = 500
    c.train.eval_every = 5_000
    c.train.sample_every = 5_000
    c.train.checkpoint_every = 5_000
    c.train.num_samples = 2_500  # PacGAN's sample size for mode counting
    c = with_options(c, parts, loss, r1_gamma=0.01)
    if "smoke" in parts:
        c = default.shrink_for_smoke(c)
        c.train.batch_size = 32 * c.model.disc_steps
        c.model.hidden_sizes = (16, 16)
        c.model.replay_size = min(c.model.replay_size, 64)
    return c
