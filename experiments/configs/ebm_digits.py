"""Deep EBMs and JEM on the 8x8 digits: ``--config=experiments/configs/ebm_digits.py[:jem]
[,short_run][,smoke]``.

The clean digits ``x / 16`` in ``[0, 1]`` (DATA.md's images for FID). A conv energy (3x3 convs
of 32 and 64 channels, the second strided, a 128-unit layer; swish) trained by maximum likelihood
with persistent Langevin chains in a replay buffer of 10,000 restarted from uniform noise with
probability 0.05 (Du & Mordatch 2019; JEM), 40 steps of size 1 with noise scale 0.01 per update
(the tuned short-run setting of those papers: a near-deterministic descent of the energy, so the
model learns to shape its sampler as much as its density), chains clipped to ``[0, 1]``, Gaussian
data noise 0.03, an energy penalty of 1.0 and gradient clipping. ``short_run``: chains from noise
instead (Nijkamp et al. 2019). ``jem``: labelled digits, the energy ``-logsumexp`` of a 10-class
classifier's logits trained with its cross-entropy plus the generative term (Grathwohl et al.
2020); reports test accuracy. 5000 updates (27 min on 2 busy CPU cores); in a trial run the
samples of 100 steps from the buffer were recognisable digits after 400.
"""

from experiments.configs import default
from experiments.configs.ebm_toy2d import model_config, parse_parts


def get_config(arg: str | None = None):
    parts = parse_parts("ebm_digits", arg, ("jem", "short_run"))
    c = default.get_config()
    with c.unlocked():
        c.model = model_config(
            architecture="conv",
            channels=(32, 64),
            feature_size=128,
            init_range=(0.0, 1.0),
            langevin_steps=40,
            sample_steps=100,
            step_size=1.0,
            noise_scale=0.01,
            l2_weight=1.0,
            data_noise=0.03,
        )
    c.data.source, c.data.name, c.data.variant = "digits", "digits", "clean"
    if "short_run" in parts:
        c.model.chains = "short_run"
    if "jem" in parts:
        c.data.labels, c.model.num_classes = True, 10
    c.optim.learning_rate = 1e-4
    c.optim.schedule, c.optim.warmup_steps = "constant", 0
    c.train.num_steps = 5_000
    c.train.batch_size = 64
    c.train.eval_batch_size = 256
    c.train.log_every = 100
    c.train.eval_every = 1_000
    c.train.sample_every = 1_000
    c.train.checkpoint_every = 1_000
    c.train.num_samples = 100
    if "smoke" in parts:
        c = default.shrink_for_smoke(c)
        c.model.channels, c.model.feature_size = (8,), 16
        c.model.buffer_size, c.model.langevin_steps, c.model.sample_steps = 64, 3, 3
        c.train.batch_size, c.train.num_samples = 16, 16
    return c
