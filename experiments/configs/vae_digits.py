"""A VAE on the 8x8 digits: ``--config=experiments/configs/vae_digits.py[:OPTIONS]`` with OPTIONS
``[VARIANT][,MODEL][,OBJECTIVE][,iaf][,conditional][,pixelvae][,smoke]``.

VARIANT: ``binary`` (default; Bernoulli decoder, NLL in nats per image) or ``continuous`` (the 17
pixel levels with a discretised-logistic decoder, exact discrete NLL and bits/dim).
MODEL: ``vae`` (default) or ``ladder`` (a two-layer Ladder VAE, 32 and 16 latents).
OBJECTIVE: ``elbo`` (default), ``iwae5``, ``iwae50`` (IWAE bound with k samples) or ``dreg50``
(the same bound with doubly reparameterised gradients). ``iaf``: the VAE's posterior refined by
two inverse-autoregressive-flow steps (Kingma et al. 2016; the KL becomes Monte Carlo and DReG is
unavailable). ``conditional``: the conditional VAE ``p(x | y)`` of the digit's class (Sohn et al.
2015; labelled batches, ``model.num_classes = 10``, samples cycling through the classes), whose
NLL is ``-log p(x | y)``; the Ladder VAE has no conditional form. ``pixelvae``: the PixelVAE
(Gulrajani et al. 2017), whose decoder ``p(x | z)`` is a small gated PixelCNN (3 layers of 3 x 3
kernels, 32 features) conditioned on a spatial map of ``z``: a 2-way categorical per pixel for
``binary``, a 17-way one for ``continuous`` (exact discrete NLL either way); it combines with the
objectives, ``iaf`` and ``conditional``, not with ``ladder``. The test NLL is importance sampled
with 5000 proposals from the encoder.
"""

import ml_collections

from experiments.configs import default

OBJECTIVES = {
    "elbo": dict(objective="elbo", num_samples=1, gradient="standard"),
    "iwae5": dict(objective="iwae", num_samples=5, gradient="standard"),
    "iwae50": dict(objective="iwae", num_samples=50, gradient="standard"),
    "dreg50": dict(objective="iwae", num_samples=50, gradient="dreg"),
}
MODELS = {
    "vae": dict(name="vae"),
    "ladder": dict(name="hvae", latent_dims=(32, 16)),
}
VARIANTS = {
    "binary": dict(decoder="bernoulli"),
    "continuous": dict(decoder="logistic"),
}


def model_config(**overrides) -> ml_collections.ConfigDict:
    """The ``model`` block of a VAE (``jgen.models.vae.make`` documents every field)."""
    fields = dict(
        name="vae",
        latent_dim=16,
        latent_dims=(16,),  # the Ladder VAE's sizes, bottom to top (latent_dim: the VAE's)
        hidden_sizes=(256, 256),
        decoder="bernoulli",
        decoder_std=0.1,
        objective="elbo",
        num_samples=1,
        gradient="standard",
        beta=1.0,
        kl_warmup_steps=500,
        eval_samples=5000,
        eval_chunk=250,
        iaf_steps=0,  # IAF steps of the VAE's posterior (0: the diagonal Gaussian alone)
        iaf_context=64,  # size of the encoder's context h fed to every IAF step
        iaf_hidden=(128, 128),  # hidden widths of each step's MADE
        num_classes=0,  # > 0: conditional VAE p(x | y) on one_hot(y) (needs data.labels=True)
        # decoder="pixelcnn" (PixelVAE): the gated PixelCNN p(x | z) and its conditioning map.
        pixelcnn_features=32,
        pixelcnn_layers=3,
        pixelcnn_kernel_size=3,  # every layer's (the first included): a weak, local decoder
        pixelcnn_context=8,  # channels of the spatial map of z per pixel
    )
    fields.update(overrides)
    return ml_collections.ConfigDict(fields)


def digits_training(c, *, binary: bool) -> None:
    """The data and training fields every latent-variable model on the digits shares: binary
    digits, or the 17 levels as cell corners; 5000 steps of batch 128, selecting the state with
    the best validation NLL (1000 training images are overfitted long before 5000 steps: the
    continuous VAE's validation NLL doubles from step 1000 to 5000)."""
    c.data.source, c.data.name = "digits", "digits"
    if binary:
        c.data.variant = "binary"
    else:
        c.data.num_levels = 17
    c.optim.learning_rate = 1e-3
    c.train.num_steps = 5_000
    c.train.batch_size = 128
    c.train.eval_batch_size = 128
    c.train.eval_every = 500
    c.train.select_metric = "nll"
    c.train.sample_every = 0
    c.train.num_samples = 64


def get_config(arg: str | None = None):
    parts = [p for p in (arg or "").split(",") if p]
    flags = ("iaf", "conditional", "pixelvae", "smoke")
    unknown = [p for p in parts if p not in (*VARIANTS, *MODELS, *OBJECTIVES, *flags)]
    if unknown:
        raise ValueError(
            f"vae_digits takes [VARIANT][,MODEL][,OBJECTIVE][,iaf][,conditional][,pixelvae]"
            f"[,smoke] with "
            f"VARIANT in {list(VARIANTS)}, MODEL in {list(MODELS)} and OBJECTIVE in "
            f"{list(OBJECTIVES)}; got {arg!r}"
        )
    if "iaf" in parts and "ladder" in parts:
        raise ValueError(
            f"vae_digits: 'iaf' refines the VAE's posterior and does not combine with 'ladder'; "
            f"got {arg!r}"
        )
    if "conditional" in parts and "ladder" in parts:
        raise ValueError(
            f"vae_digits: 'conditional' conditions the VAE on the class and does not combine "
            f"with 'ladder' (the Ladder VAE is unconditional); got {arg!r}"
        )
    if "pixelvae" in parts and "ladder" in parts:
        raise ValueError(
            f"vae_digits: 'pixelvae' gives the VAE a PixelCNN decoder and does not combine with "
            f"'ladder' (the Ladder VAE's decoder is factorised); got {arg!r}"
        )
    variant = next((p for p in parts if p in VARIANTS), "binary")
    objective = next((p for p in parts if p in OBJECTIVES), "elbo")
    model = next((p for p in parts if p in MODELS), "vae")
    c = default.get_config()
    with c.unlocked():
        c.model = model_config(**VARIANTS[variant], **OBJECTIVES[objective], **MODELS[model])
    if "iaf" in parts:
        c.model.iaf_steps = 2
    if "conditional" in parts:
        c.model.num_classes, c.data.labels = 10, True
    if "pixelvae" in parts:
        # A PixelCNN pass per importance sample: smaller chunks keep the evaluation's
        # activations (chunk x batch images of 64 features) near 200 MB.
        c.model.decoder, c.model.eval_chunk = "pixelcnn", 100
    c.model.lock()
    digits_training(c, binary=variant == "binary")
    if "smoke" in parts:
        c = default.shrink_for_smoke(c)
        c.model.eval_samples, c.model.eval_chunk, c.model.kl_warmup_steps = 20, 10, 10
    return c
