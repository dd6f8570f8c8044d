"""The multinomial diffusion trainer: on the binary digits a fresh U-Net gives the bound of the
uniform x0 prediction; a short training on four 6-pixel patterns brings the bound from the
uniform model's down to near the entropy and samples the patterns in their proportions (its
loss is the bound estimate in bits/dim); config errors name the field. The digits config runs
end to end in tests/experiments/test_configs.py (smoke)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import multinomial_digits
from jgen.data import digits
from jgen.losses import multinomial_diffusion as md
from jgen.models import multinomial_diffusion
from jgen.sdes.schedules import cosine_betas


@pytest.fixture(scope="module")
def digits_batch():
    images, _ = digits.load("binary", "train")
    return jnp.asarray(images[:16])


def test_unet_starts_as_the_uniform_prediction(digits_batch):
    # The U-Net's output convolution starts at zero, so a fresh model predicts x0_hat uniform
    # and its bound equals the one of a network returning zero logits, with the same draws.
    # One resolution level keeps the U-Net's compilation short.
    config = multinomial_digits.get_config("smoke")
    config.model.channel_mults, config.model.eval_vlb = (1,), "sample"
    trainer = multinomial_diffusion.make(config, (8, 8))
    state = jax.jit(trainer.init)(jax.random.key(0), digits_batch)
    metrics = jax.jit(trainer.evaluate)(state, digits_batch, jax.random.key(1))
    x0 = jnp.asarray(digits_batch, jnp.int32)
    zeros = lambda x_t, t: jnp.zeros((*x_t.shape, 2))  # noqa: E731
    betas = cosine_betas(config.model.diffusion_steps)
    expected, _ = jax.jit(lambda k: md.vlb(zeros, x0, k, betas, 2, estimator="sample"))(
        jax.random.key(1)
    )
    np.testing.assert_allclose(metrics["nll"], expected, rtol=1e-5)


PATTERNS = np.array(
    [[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1], [1, 0, 1, 0, 1, 0], [0, 1, 0, 1, 0, 1]], np.float32
)


def test_short_training_brings_the_bound_towards_the_entropy():
    # Four equally likely 6-pixel patterns: entropy ln 4 = 1.39 nats; the uniform model 6 ln 2 =
    # 4.16. 20 diffusion steps, a 64-64 MLP, 200 Adam steps of batch 128 (lr 3e-3). Measured:
    # the exact bound on 512 draws goes from 4.32 to 1.54 nats.
    config = multinomial_digits.get_config("mlp,smoke")
    config.model.hidden_sizes, config.model.embedding_dim = (64, 64), 16
    config.optim.schedule, config.optim.warmup_steps, config.optim.learning_rate = (
        "constant",
        0,
        3e-3,
    )
    config.optim.ema_decay = 0.0
    trainer = multinomial_diffusion.make(config, (6,))
    patterns = jnp.asarray(PATTERNS)

    def data(key, n):
        return patterns[jax.random.randint(key, (n,), 0, len(PATTERNS))]

    key = jax.random.key(0)
    state = trainer.init(key, data(key, 128))
    evaluate = jax.jit(trainer.evaluate)
    test = data(jax.random.key(1), 512)
    before = float(evaluate(state, test, jax.random.key(2))["nll"].mean())

    @jax.jit
    def run(state, key):
        def body(state, k):
            # Independent keys for the data and the step: fold_in(k, 0) would equal the
            # step's first split, the key of t, and tie t to the pattern drawn.
            data_key, step_key = jax.random.split(k)
            state, metrics = trainer.step(state, data(data_key, 128), step_key)
            return state, (metrics["loss"], metrics["nll_estimate"])

        return jax.lax.scan(body, state, jax.random.split(key, 200))

    state, (losses, nats) = run(state, jax.random.key(3))
    assert np.all(np.isfinite(losses))
    # The training loss is the one-step bound estimate in bits per dimension.
    np.testing.assert_allclose(losses, nats / (6 * math.log(2)), rtol=1e-5)
    after = float(evaluate(state, test, jax.random.key(4))["nll"].mean())
    entropy = math.log(len(PATTERNS))
    assert before > 6 * math.log(2) - 0.2, before
    assert entropy - 0.1 < after < entropy + 0.5, (before, after)
    # Measured: 98% of 2000 samples are one of the patterns, each 0.23 - 0.27 of them.
    x = np.asarray(jax.jit(trainer.sample, static_argnums=2)(state, jax.random.key(5), 2000))
    assert x.shape == (2000, 6) and set(np.unique(x)) <= {0.0, 1.0}
    match = np.all(x[:, None, :] == PATTERNS[None], axis=-1)
    assert match.any(1).mean() > 0.9
    np.testing.assert_allclose(match.mean(0), 0.25, atol=0.05)


@pytest.mark.parametrize(
    "model, event_shape, match",
    [
        ({"num_categories": 1}, (8, 8), "model.num_categories"),
        ({"diffusion_steps": 1}, (8, 8), "model.diffusion_steps"),
        ({"schedule": "linear"}, (8, 8), "model.schedule"),
        ({"eval_vlb": "importance"}, (8, 8), "model.eval_vlb"),
        ({"architecture": "unet"}, (6,), "images"),
        ({"architecture": "mlp", "hidden_sizes": (0,)}, (6,), r"model.hidden_sizes\[0\]"),
    ],
)
def test_config_errors_name_the_field(model, event_shape, match):
    config = multinomial_digits.get_config("smoke")
    config.model.update(model)
    with pytest.raises(ValueError, match=match):
        multinomial_diffusion.make(config, event_shape)
