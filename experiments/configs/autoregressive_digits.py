"""Autoregressive models on the 8x8 digits:
``--config=experiments/configs/autoregressive_digits.py[:VARIANT][,NETWORK][,smoke]``.

VARIANT: ``binary`` (default; Bernoulli pixels as a 2-way categorical, NLL in nats per image) or
``levels17`` (the 17 pixel levels as a 17-way categorical: exact discrete NLL and bits/dim,
comparable with the dequantized flows' bounds and the VAE's importance-sampled NLL).
NETWORK: ``made`` (default), ``made_agnostic`` (MADE trained over 16 orderings and
connectivities, evaluated as the ensemble of 16), ``pixelcnn``, ``gated_pixelcnn``,
``transformer`` (over the 64 pixels in raster order, sampled with its key/value cache).

The state with the best validation NLL (evaluated every 100 steps) is kept: 1000 training images
are overfitted within a few hundred steps (a 512-512 MADE's validation NLL rises from 21 nats at
step 500 to 41 at step 5000); one hidden layer of 512 did best of the MADE sizes tried.
"""

import ml_collections

from experiments.configs import default
from experiments.configs.vae_digits import digits_training

NETWORKS = {
    "made": dict(network="made", hidden_sizes=(512,)),
    "made_agnostic": dict(network="made", hidden_sizes=(512,), num_masks=16, eval_masks=16),
    "pixelcnn": dict(network="pixelcnn", features=32, num_layers=5, kernel_size=3),
    "gated_pixelcnn": dict(network="gated_pixelcnn", features=32, num_layers=5, kernel_size=3),
    "transformer": dict(network="transformer", num_layers=4, num_heads=4, model_dim=128),
}
VARIANTS = ("binary", "levels17")


def model_config(**overrides) -> ml_collections.ConfigDict:
    """The ``model`` block of an autoregressive model (``jgen.models.autoregressive.make``
    documents every field)."""
    fields = dict(
        name="autoregressive",
        network="made",
        output="categorical",  # or logistic_mixture (PixelCNN++)
        num_mixtures=5,
        temperature=1.0,
        top_k=0,
        cached_sampling=True,
        num_classes=0,  # > 0: class-conditional on one_hot(y) (needs data.labels=True)
        hidden_sizes=(512,),  # MADE
        num_masks=1,  # MADE: mask sets for order- and connectivity-agnostic training
        eval_masks=1,  # MADE: mask sets averaged in evaluation
        mask_seed=0,
        features=64,  # PixelCNN / gated PixelCNN channels, WaveNet channels
        num_layers=4,  # PixelCNN layers, transformer blocks, RNN layers
        kernel_size=3,  # PixelCNN (after the first 7x7), WaveNet (2)
        num_heads=4,  # transformer
        model_dim=128,  # transformer
        hidden_size=256,  # LSTM / GRU
        dilations=(1, 2, 4, 8, 16, 32),  # WaveNet
    )
    fields.update(overrides)
    return ml_collections.ConfigDict(fields)


def get_config(arg: str | None = None):
    parts = [p for p in (arg or "").split(",") if p]
    unknown = [p for p in parts if p not in (*VARIANTS, *NETWORKS, "smoke")]
    if unknown:
        raise ValueError(
            f"autoregressive_digits takes [VARIANT][,NETWORK][,smoke] with VARIANT in "
            f"{list(VARIANTS)} and NETWORK in {list(NETWORKS)}; got {arg!r}"
        )
    variant = next((p for p in parts if p in VARIANTS), "binary")
    network = next((p for p in parts if p in NETWORKS), "made")
    c = default.get_config()
    with c.unlocked():
        c.model = model_config(**NETWORKS[network])
    c.model.lock()
    digits_training(c, binary=variant == "binary")
    c.train.num_steps, c.train.eval_every = 4_000, 100  # evaluation is cheap: select finely
    if "smoke" in parts:
        c = default.shrink_for_smoke(c)
        c.model.hidden_sizes = (64, 64)
        c.model.features, c.model.model_dim, c.model.num_layers = 16, 16, 2
    return c
