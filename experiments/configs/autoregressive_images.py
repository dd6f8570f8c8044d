"""Autoregressive models of MNIST and CIFAR-10 from TFDS (prepare them once, see README), sized
for one GPU: ``--config=experiments/configs/autoregressive_images.py[:DATASET][,NETWORK][,smoke]``.

DATASET: ``binarized_mnist`` (default; the fixed binarization of Larochelle & Murray 2011, a
2-way categorical, NLL in nats per image), ``mnist`` (8-bit pixels, a 256-way softmax as in
PixelRNN / PixelCNN, bits/dim) or ``cifar10`` (8-bit RGB, a mixture of 10 discretised logistics
per sub-pixel as in PixelCNN++, channels ordered R, G, B by the PixelCNN masks, bits/dim).
NETWORK: ``gated_pixelcnn`` (default; van den Oord et al. 2016), ``pixelcnn`` or ``made``
(MNIST only in practice).
"""

from experiments.configs import default
from experiments.configs.autoregressive_digits import model_config

DATASETS = {
    "binarized_mnist": dict(num_levels=0, output="categorical"),
    "mnist": dict(num_levels=256, output="categorical"),
    "cifar10": dict(num_levels=256, output="logistic_mixture"),
}
NETWORKS = {
    "gated_pixelcnn": dict(network="gated_pixelcnn", features=128, num_layers=15, kernel_size=3),
    "pixelcnn": dict(network="pixelcnn", features=128, num_layers=15, kernel_size=3),
    "made": dict(network="made", hidden_sizes=(1024, 1024), num_masks=32, eval_masks=32),
}


def get_config(arg: str | None = None):
    parts = [p for p in (arg or "").split(",") if p]
    unknown = [p for p in parts if p not in (*DATASETS, *NETWORKS, "smoke")]
    if unknown:
        raise ValueError(
            f"autoregressive_images takes [DATASET][,NETWORK][,smoke] with DATASET in "
            f"{list(DATASETS)} and NETWORK in {list(NETWORKS)}; got {arg!r}"
        )
    name = next((p for p in parts if p in DATASETS), "binarized_mnist")
    network = next((p for p in parts if p in NETWORKS), "gated_pixelcnn")
    c = default.get_config()
    with c.unlocked():
        c.model = model_config(
            **NETWORKS[network], output=DATASETS[name]["output"], num_mixtures=10
        )
    c.model.lock()
    c.data.source, c.data.name = "tfds", name
    c.data.num_levels = DATASETS[name]["num_levels"]
    c.data.num_train, c.data.num_validation, c.data.num_test = 50_000, 10_000, 10_000
    if name == "cifar10":
        c.data.num_train, c.data.num_validation = 45_000, 5_000
    c.optim.learning_rate = 1e-3
    c.train.num_steps = 100_000
    c.train.batch_size = 64
    c.train.eval_batch_size = 256
    c.train.log_every = 500
    c.train.eval_every = 5_000
    c.train.sample_every = 25_000
    c.train.checkpoint_every = 5_000
    c.train.num_samples = 16  # sequential sampling: H * W * C network passes
    c.train.select_metric = "nll"
    if "smoke" in parts:
        c = default.shrink_for_smoke(c)
        c.model.hidden_sizes = (32,)
        c.model.features, c.model.num_layers, c.model.num_mixtures = 8, 2, 2
        c.model.num_masks = c.model.eval_masks = min(c.model.num_masks, 2)
        c.train.num_samples = 2
    return c
