"""The NCSN trainer: trained on a known 2-D Gaussian, annealed Langevin dynamics with the final
denoising step reproduces its mean and covariance, the evaluated loss sits just above the
closed-form minimum of the multi-noise loss, ``sigma_max = 0`` picks the largest pairwise
distance; config errors name the field."""

import jax
import numpy as np
import pytest
from scipy.spatial.distance import pdist

from experiments.configs import ncsn_toy2d
from jgen.models import ncsn
from tests.models.toy_training import COV, MEAN, gaussian, train

TRAIN_STEPS, BATCH = 1000, 256


def _config(**model):
    c = ncsn_toy2d.get_config("gaussian")
    c.model.hidden_sizes, c.model.embedding_dim = (64, 64), 32
    c.model.update(model)
    c.optim.schedule, c.optim.warmup_steps = "constant", 0
    c.optim.ema_decay = 0.99
    return c


@pytest.fixture(scope="module")
def trained():
    config = _config()
    trainer = ncsn.make(config, (2,))
    state = train(trainer, gaussian, TRAIN_STEPS, BATCH)
    first_batch = gaussian(jax.random.key(0), BATCH)  # the batch init saw
    return config, trainer, state, np.asarray(first_batch)


def test_auto_sigma_max_is_the_largest_pairwise_distance(trained):
    _, _, state, first_batch = trained
    np.testing.assert_allclose(float(state.sigma_max), pdist(first_batch).max(), rtol=1e-4)


def test_annealed_langevin_samples_reproduce_a_gaussian(trained):
    # 10 levels from sigma_1 = 6.56 to 0.01, 100 Langevin steps per level of 0.5 sigma_i^2, then
    # Tweedie's step. Seeds 3-4: mean within 0.047, covariance entries within 0.016 (2000
    # samples: sampling error of a covariance entry ~0.03). With steps of 0.05 sigma_i^2 the
    # chains stop contracting near sigma = 0.75 and the covariance comes out 0.45 too large.
    _, trainer, state, _ = trained
    x = np.asarray(jax.jit(trainer.sample, static_argnums=2)(state, jax.random.key(3), 2000))
    np.testing.assert_allclose(x.mean(0), MEAN, atol=0.15)
    np.testing.assert_allclose(np.cov(x.T), COV, atol=0.25)


def test_evaluated_loss_is_close_to_its_closed_form_minimum(trained):
    # For Gaussian data N(m, C), E 1/2 |sigma s(x~) + z|^2 is minimised by the score
    # -(C + sigma^2 I)^{-1} (x~ - m) at 1/2 (D - sigma^2 tr (C + sigma^2 I)^{-1}), averaged over
    # the L levels: 0.668 here. 4000 points carry a standard error of 0.014; the band is 4 of
    # them, plus 0.02 of model error above. Seeds 5 and 7: +0.022 and -0.007 (untrained: +2).
    _, trainer, state, _ = trained
    sigmas = np.exp(np.linspace(np.log(float(state.sigma_max)), np.log(0.01), 10))
    minimum = np.mean(
        [0.5 * (2 - s**2 * np.trace(np.linalg.inv(COV + s**2 * np.eye(2)))) for s in sigmas]
    )
    metrics = jax.jit(trainer.evaluate)(state, gaussian(jax.random.key(5), 4000), jax.random.key(6))
    assert metrics["loss"].shape == (4000,)
    loss = float(metrics["loss"].mean())
    se = float(metrics["loss"].std()) / np.sqrt(4000)
    assert minimum - 4 * se < loss < minimum + 4 * se + 0.02


@pytest.mark.parametrize(
    "model, event_shape, match",
    [
        ({"num_levels": 1}, (2,), "model.num_levels"),
        ({"sigma_min": 0.0}, (2,), "model.sigma_min"),
        ({"sigma_max": 0.005}, (2,), "model.sigma_max"),
        ({"sigma_max": -1.0}, (2,), "model.sigma_max"),
        ({"n_steps_each": 0}, (2,), "model.n_steps_each"),
        ({"step_lr": 0.0}, (2,), "model.step_lr"),
        ({"num_classes": 3}, (2,), "model.num_classes"),
        ({"architecture": "unet"}, (2,), "images"),
    ],
)
def test_config_errors_name_the_field(model, event_shape, match):
    with pytest.raises(ValueError, match=match):
        ncsn.make(_config(**model), event_shape)
