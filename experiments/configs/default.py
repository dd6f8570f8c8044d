"""The shared default that every experiment config overrides.

The returned config is locked: assigning a key that does not exist (a typo in a config file or
on the command line) raises instead of being silently ignored.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    c = ml_collections.ConfigDict()
    c.seed = 0

    # source: toy2d | digits | tfds. num_levels > 0 marks dequantized data scaled to [0, 1).
    # labels: splits become {"x": images, "y": int32 class labels} for conditional models
    # (digits, and tfds mnist / fashion_mnist / cifar10). source="text": the shipped character
    # corpus in chunks of seq_len characters (num_levels = the vocabulary size).
    c.data = ml_collections.ConfigDict(
        dict(
            source="toy2d",
            name="moons",
            variant="continuous",
            num_train=20_000,
            num_validation=5_000,
            num_test=20_000,
            num_levels=0,
            labels=False,
            seq_len=0,
        )
    )
    # flow: a family of jgen.models.flow.FAMILIES. num_layers counts couplings / MADE layers /
    # Glow steps (per scale for image Glow); num_bins, spline_bound: the spline families;
    # num_scales: image Glow; ode_steps: FFJORD's RK4 steps; dequantization: uniform | variational.
    c.model = ml_collections.ConfigDict(
        dict(
            name="flow",
            flow="realnvp",
            num_layers=8,
            hidden_sizes=(64, 64),
            logit_alpha=0.0,
            num_bins=8,
            spline_bound=4.0,
            num_scales=2,
            ode_steps=16,
            dequantization="uniform",
        )
    )
    c.optim = ml_collections.ConfigDict(
        dict(
            name="adam",
            learning_rate=1e-3,
            schedule="cosine",
            warmup_steps=100,
            grad_clip=1.0,
            weight_decay=0.0,
            ema_decay=0.0,
        )
    )
    # select_metric: "" evaluates the last state on the test split; a per-example metric of the
    # model's evaluate (e.g. "nll") keeps the state with its lowest validation mean instead (model
    # selection on the validation split, for small data that a model overfits).
    c.train = ml_collections.ConfigDict(
        dict(
            num_steps=3_000,
            batch_size=256,
            eval_batch_size=1_024,
            log_every=100,
            eval_every=1_000,
            sample_every=0,
            checkpoint_every=1_000,
            keep_checkpoints=3,
            num_samples=2_000,
            progress=True,
            select_metric="",
        )
    )
    # distributed=True calls jax.distributed.initialize with the three fields below (empty / -1
    # leave them to cluster auto-detection).
    c.parallel = ml_collections.ConfigDict(
        dict(
            num_devices=0,
            distributed=False,
            coordinator_address="",
            num_processes=-1,
            process_id=-1,
        )
    )
    c.lock()
    return c


def shrink_for_smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The ``:smoke`` variant: the same experiment, a few steps on a little data (for tests)."""
    c.data.num_train = min(c.data.num_train, 512)
    c.data.num_validation = min(c.data.num_validation, 128)
    c.data.num_test = min(c.data.num_test, 128)
    c.train.num_steps = 20
    c.train.batch_size = 32
    c.train.eval_batch_size = 64
    c.train.log_every = 5
    c.train.eval_every = 10
    c.train.checkpoint_every = 10
    c.train.num_samples = 64
    c.optim.warmup_steps = 5
    c.train.progress = False
    return c
