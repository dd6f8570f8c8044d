"""A VQ-VAE on the 8x8 digits:
``--config=experiments/configs/vqvae_digits.py[:VARIANT][,UPDATE][,pixelcnn][,smoke]``.

VARIANT: ``continuous`` (default; the 17 pixel levels with a discretised-logistic decoder) or
``binary`` (Bernoulli decoder). UPDATE: ``ema`` (default; moving-average codebook with dead-code
restarts) or ``loss`` (codebook learned by its loss term). A 4x4 grid of codes from a codebook of
64 with a categorical prior per position, or with ``pixelcnn`` the paper's autoregressive prior
(a gated PixelCNN over the code grid, 4 layers of width 32); the test NLL is the bound
``-log p(x | z_q) - log p(z)``.
"""

import ml_collections

from experiments.configs import default, vae_digits

VARIANTS = {"continuous": dict(decoder="logistic"), "binary": dict(decoder="bernoulli")}
UPDATES = ("ema", "loss")


def get_config(arg: str | None = None):
    parts = [p for p in (arg or "").split(",") if p]
    unknown = [p for p in parts if p not in (*VARIANTS, *UPDATES, "pixelcnn", "smoke")]
    if unknown:
        raise ValueError(
            f"vqvae_digits takes [VARIANT][,UPDATE][,pixelcnn][,smoke] with VARIANT in "
            f"{list(VARIANTS)} and UPDATE in {UPDATES}; got {arg!r}"
        )
    variant = next((p for p in parts if p in VARIANTS), "continuous")
    c = default.get_config()
    with c.unlocked():
        c.model = ml_collections.ConfigDict(
            dict(
                name="vqvae",
                channels=64,
                code_dim=16,
                num_codes=64,
                commitment=0.25,
                codebook_update=next((p for p in parts if p in UPDATES), "ema"),
                ema_decay=0.99,
                dead_code_threshold=0.05,
                decoder=VARIANTS[variant]["decoder"],
                decoder_std=0.1,
                prior="pixelcnn" if "pixelcnn" in parts else "categorical",
                prior_features=32,
                prior_layers=4,
            )
        )
    c.model.lock()
    vae_digits.digits_training(c, binary=variant == "binary")
    return default.shrink_for_smoke(c) if "smoke" in parts else c
