"""A (beta-)VAE on the shapes grid (``jgen.data.shapes``, a dSprites-like dataset) whose encoder
the disentanglement metrics score: ``python experiments/disentanglement.py
--config=experiments/configs/vae_shapes.py[:OPTIONS] --workdir=DIR`` with OPTIONS
``[BETA][,smoke]``.

BETA: ``beta4`` (default; the beta-VAE of Higgins et al. 2017 with ``beta = 4``, their choice for
dSprites) or ``beta1`` (the plain VAE). The model is an MLP VAE with 10 latents (as in
disentanglement_lib) and hidden widths (512, 256), a Bernoulli decoder on the binary images, and
``beta`` annealed linearly from 0 over the first 1000 steps (Bowman et al. 2016) so that the
KL does not close the latents before the decoder can use them. 20000 steps of batch 64 (260
epochs of the 4916 training images) and the evaluation take about 7 minutes on a busy 2-core
CPU (docs/disentanglement.md).

The data are the 6144 images of the full factor grid, split 4916 / 614 / 614 (80 / 10 / 10) by a
fixed permutation (``experiments.disentanglement.shapes_dataset``); the test NLL is importance
sampled with 1000 proposals from the encoder. ``disentanglement`` sets the protocol sizes of the
beta-VAE and FactorVAE metrics (disentanglement_lib's 10000 training and 5000 evaluation points);
the metrics score the encoder means of all 6144 images.
"""

import ml_collections

from experiments.configs import default, vae_digits

BETAS = {"beta1": 1.0, "beta4": 4.0}

# The fixed 80 / 10 / 10 split of the 6144 images of the grid.
SPLIT_SIZES = (4916, 614, 614)


def get_config(arg: str | None = None):
    parts = [p for p in (arg or "").split(",") if p]
    unknown = [p for p in parts if p not in (*BETAS, "smoke")]
    betas = [p for p in parts if p in BETAS]
    if unknown or len(betas) > 1:
        raise ValueError(
            f"vae_shapes takes [BETA][,smoke] with at most one BETA in {list(BETAS)}; got {arg!r}"
        )
    beta = BETAS[betas[0] if betas else "beta4"]
    c = default.get_config()
    with c.unlocked():
        c.model = vae_digits.model_config(
            latent_dim=10,
            hidden_sizes=(512, 256),
            decoder="bernoulli",
            beta=beta,
            kl_warmup_steps=1_000,
            eval_samples=1_000,
            eval_chunk=100,
        )
        c.disentanglement = ml_collections.ConfigDict(dict(num_train=10_000, num_eval=5_000))
    c.model.lock()
    c.data.source, c.data.name, c.data.variant = "shapes", "shapes", "binary"
    c.data.num_train, c.data.num_validation, c.data.num_test = SPLIT_SIZES
    c.optim.learning_rate = 1e-3
    c.train.num_steps = 20_000
    c.train.batch_size = 64
    c.train.eval_batch_size = 128
    c.train.eval_every = 5_000  # each importance-sampled validation NLL takes ~10 s
    c.train.checkpoint_every = 5_000
    c.train.num_samples = 64
    if "smoke" in parts:
        c = default.shrink_for_smoke(c)
        c.model.eval_samples, c.model.eval_chunk, c.model.kl_warmup_steps = 20, 10, 10
        c.model.hidden_sizes = (256,)  # one hidden layer each way: a shorter compile
        c.disentanglement.num_train, c.disentanglement.num_eval = 500, 500
    return c
