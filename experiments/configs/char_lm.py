"""Character-level language models on the shipped corpus (``jgen.data.text``: Bierce's "The
Devil's Dictionary", 383k characters, 84 symbols):
``--config=experiments/configs/char_lm.py[:NETWORK][,smoke]``.

NETWORK: ``lstm`` (default), ``gru`` (Flax recurrent cells scanned over time, Graves 2013),
``transformer`` (decoder-only, sampled with its key/value cache) or ``wavenet`` (dilated causal
convolutions, van den Oord et al. 2016). Chunks of 128 characters, each modelled on its own (the
first character of a chunk is predicted without context); the test number is bits per
character (``test/bits_per_dim``). Samples are written to ``samples.txt``. Sized to train in
minutes on a 2-core CPU (3000 steps of 32 x 128 characters, about 3.4 epochs); widen on a GPU.
"""

from experiments.configs import default
from experiments.configs.autoregressive_digits import model_config
from jgen.data import text

NETWORKS = {
    "lstm": dict(network="lstm", hidden_size=256, num_layers=1),
    "gru": dict(network="gru", hidden_size=256, num_layers=1),
    "transformer": dict(network="transformer", num_layers=3, num_heads=4, model_dim=128),
    "wavenet": dict(
        network="wavenet", features=64, kernel_size=2, dilations=(1, 2, 4, 8, 16, 32, 64)
    ),
}


def get_config(arg: str | None = None):
    parts = [p for p in (arg or "").split(",") if p]
    unknown = [p for p in parts if p not in (*NETWORKS, "smoke")]
    if unknown:
        raise ValueError(
            f"char_lm takes [NETWORK][,smoke] with NETWORK in {list(NETWORKS)}; got {arg!r}"
        )
    network = next((p for p in parts if p in NETWORKS), "lstm")
    c = default.get_config()
    with c.unlocked():
        c.model = model_config(**NETWORKS[network])
    c.model.lock()
    c.data.source, c.data.name = "text", "devils_dictionary"
    c.data.seq_len = 128
    c.data.num_levels = len(text.vocabulary(text.load_text()))
    c.data.num_train, c.data.num_validation, c.data.num_test = 100_000, 100_000, 100_000
    c.optim.learning_rate = 2e-3
    c.train.num_steps = 3_000
    c.train.batch_size = 32
    c.train.eval_batch_size = 128
    c.train.eval_every = 500
    c.train.select_metric = "nll"
    c.train.num_samples = 8
    if "smoke" in parts:
        c = default.shrink_for_smoke(c)
        c.data.seq_len = 16
        c.model.hidden_size, c.model.model_dim, c.model.features = 16, 16, 16
        c.model.num_layers, c.model.dilations = 1, (1, 2)
        c.train.num_samples = 4
    return c
