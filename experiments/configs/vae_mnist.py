"""A VAE on MNIST from TFDS (prepare it once, see README), sized for one GPU:
``--config=experiments/configs/vae_mnist.py[:VARIANT][,MODEL][,OBJECTIVE][,smoke]``.

VARIANT: ``binarized`` (default; the fixed binarization of Larochelle & Murray 2011,
``binarized_mnist``, Bernoulli decoder, NLL in nats per image, the benchmark of the IWAE paper) or
``mnist`` (8-bit pixels with a discretised-logistic decoder over 256 levels, bits/dim). MODEL and
OBJECTIVE as in ``vae_digits.py``. The test NLL is importance sampled with 5000 proposals.
"""

from experiments.configs import default, vae_digits

VARIANTS = {
    "binarized": dict(name="binarized_mnist", decoder="bernoulli", num_levels=0),
    "mnist": dict(name="mnist", decoder="logistic", num_levels=256),
}


def get_config(arg: str | None = None):
    parts = [p for p in (arg or "").split(",") if p]
    choices = (*VARIANTS, *vae_digits.MODELS, *vae_digits.OBJECTIVES, "smoke")
    unknown = [p for p in parts if p not in choices]
    if unknown:
        raise ValueError(
            f"vae_mnist takes [VARIANT][,MODEL][,OBJECTIVE][,smoke] with VARIANT in "
            f"{list(VARIANTS)}, MODEL in {list(vae_digits.MODELS)} and OBJECTIVE in "
            f"{list(vae_digits.OBJECTIVES)}; got {arg!r}"
        )
    variant = VARIANTS[next((p for p in parts if p in VARIANTS), "binarized")]
    model = next((p for p in parts if p in vae_digits.MODELS), "vae")
    objective = next((p for p in parts if p in vae_digits.OBJECTIVES), "elbo")
    c = default.get_config()
    with c.unlocked():
        c.model = vae_digits.model_config(
            decoder=variant["decoder"],
            latent_dim=50,
            hidden_sizes=(512, 512),
            **vae_digits.OBJECTIVES[objective],
            **(
                dict(name="hvae", latent_dims=(100, 50))
                if model == "ladder"
                else vae_digits.MODELS[model]
            ),
        )
    c.model.lock()
    c.data.source, c.data.name, c.data.num_levels = "tfds", variant["name"], variant["num_levels"]
    c.data.num_train, c.data.num_validation, c.data.num_test = 50_000, 10_000, 10_000
    c.optim.learning_rate = 1e-3
    c.train.num_steps = 100_000
    c.train.batch_size = 128
    c.train.eval_batch_size = 500
    c.train.log_every = 500
    c.train.eval_every = 10_000
    c.train.sample_every = 10_000
    c.train.checkpoint_every = 5_000
    c.train.num_samples = 64
    if "smoke" in parts:
        c = default.shrink_for_smoke(c)
        c.model.hidden_sizes = (32,)
        c.model.eval_samples, c.model.eval_chunk, c.model.kl_warmup_steps = 20, 10, 10
    return c
