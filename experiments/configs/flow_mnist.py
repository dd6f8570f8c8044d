"""A flow on dequantized MNIST (TFDS; prepare it once, see README), in nats and bits/dim:
``--config=experiments/configs/flow_mnist.py[:FLOW][,smoke]`` with FLOW ``realnvp`` (default; MLP
couplings) or ``glow`` (2 scales of 16 steps, 256-channel conv couplings), sized for one GPU.
The smoke variant runs a small model on whatever MNIST copy ``TFDS_DATA_DIR`` holds."""

from experiments.configs import default

FAMILY_MODELS = {
    "realnvp": dict(num_layers=8, hidden_sizes=(1024, 1024)),
    "glow": dict(num_scales=2, num_layers=16, hidden_sizes=(256,)),
}


def get_config(arg: str | None = None):
    parts = [p for p in (arg or "").split(",") if p]
    unknown = [p for p in parts if p not in (*FAMILY_MODELS, "smoke")]
    if unknown:
        raise ValueError(
            f"flow_mnist takes [FLOW][,smoke] with FLOW in {tuple(FAMILY_MODELS)}; got {arg!r}"
        )
    c = default.get_config()
    c.data.source, c.data.name = "tfds", "mnist"
    c.data.num_train, c.data.num_validation, c.data.num_test = 50_000, 10_000, 10_000
    c.data.num_levels = 256
    c.model.flow = next((p for p in parts if p in FAMILY_MODELS), "realnvp")
    c.model.update(FAMILY_MODELS[c.model.flow])
    c.model.logit_alpha = 0.05
    c.optim.learning_rate = 1e-4
    c.optim.ema_decay = 0.999
    c.train.num_steps = 100_000
    c.train.batch_size = 128
    c.train.eval_batch_size = 512
    c.train.log_every = 500
    c.train.eval_every = 5_000
    c.train.sample_every = 10_000
    c.train.checkpoint_every = 5_000
    c.train.num_samples = 64
    if "smoke" in parts:
        c.model.num_layers, c.model.hidden_sizes = 2, (32,) * len(c.model.hidden_sizes)
        return default.shrink_for_smoke(c)
    return c
