"""The deep-EBM / JEM trainer: maximum likelihood with persistent Langevin chains recovers a
known Gaussian (samples and the grid NLL against the closed-form entropy), the grid log Z of a
quadratic energy against its closed form, JEM's classifier metrics against scipy, what one
step does to the replay buffer, divergence detection, and config errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import log_softmax, logsumexp

from experiments.configs import ebm_toy2d
from jgen.models import ebm
from jgen.nets.mlp import MLP
from tests.models.toy_training import COV, MEAN, gaussian, train


def _config(*options, **model):
    c = ebm_toy2d.get_config(",".join(("gaussian", *options)))
    c.model.hidden_sizes = (32, 32)
    c.model.langevin_steps, c.model.buffer_size = 20, 2000
    c.model.update(model)
    c.optim.schedule, c.optim.warmup_steps = "constant", 0
    c.train.batch_size = 128
    return c


def test_maximum_likelihood_recovers_a_gaussian():
    # 600 updates, 20 Langevin steps (h = 0.1) per update from a buffer of 2000 chains. Trial
    # runs: samples' mean within 0.03, covariance entries within 0.07, grid NLL 0.06 above the
    # entropy (the learned density is a little wider). Sampling error of 4000 samples ~0.02;
    # the initial model (flat) has mean ~0 and covariance ~8 I.
    trainer = ebm.make(_config(), (2,))
    state = train(trainer, gaussian, 600, 128)
    x = np.asarray(jax.jit(trainer.sample, static_argnums=2)(state, jax.random.key(3), 2000))
    np.testing.assert_allclose(x.mean(0), MEAN, atol=0.15)
    np.testing.assert_allclose(np.cov(x.T), COV, atol=0.25)
    metrics = jax.jit(trainer.evaluate)(state, gaussian(jax.random.key(5), 2000), jax.random.key(6))
    entropy = 0.5 * math.log(np.linalg.det(2 * math.pi * math.e * COV))
    assert entropy <= float(metrics["nll"].mean()) < entropy + 0.15


def test_grid_log_partition_of_a_quadratic_energy(x64):
    # Z = 2 pi / sqrt(det P) for E = x^T P x / 2; the box holds all but ~1e-12 of the mass.
    precision = jnp.array([[2.0, 0.6], [0.6, 1.0]])
    energy = lambda x: 0.5 * jnp.einsum("ni,ij,nj->n", x, precision, x)  # noqa: E731
    log_z = ebm.grid_log_partition(energy, (-9.0, 9.0), 300)
    expected = math.log(2 * math.pi) - 0.5 * math.log(np.linalg.det(precision))
    assert float(log_z) == pytest.approx(expected, abs=1e-6)


def test_jem_metrics_are_the_classifier_of_the_logits(x64):
    # Three classes on 2-D data: the energy is -logsumexp of the network's logits and the
    # classifier's cross-entropy and accuracy those of log_softmax, recomputed with scipy.
    config = _config(num_classes=3)
    trainer = ebm.make(config, (2,))
    x = np.random.default_rng(0).normal(size=(7, 2))
    batch = {"x": jnp.asarray(x), "y": jnp.array([0, 1, 2, 0, 1, 2, 0])}
    state = trainer.init(jax.random.key(0), batch)
    metrics = trainer.evaluate(state, batch, jax.random.key(1))
    net = MLP(tuple(config.model.hidden_sizes), 3, activation=jax.nn.swish)
    logits = np.asarray(net.apply({"params": state.params}, batch["x"]))
    np.testing.assert_allclose(metrics["energy_data"], -logsumexp(logits, 1), rtol=1e-12)
    log_probs = log_softmax(logits, 1)[np.arange(7), batch["y"]]
    np.testing.assert_allclose(metrics["cross_entropy"], -log_probs, rtol=1e-12)
    np.testing.assert_array_equal(metrics["accuracy"], logits.argmax(1) == batch["y"])


def test_jem_learns_to_classify_and_to_generate():
    # Two well separated classes: after 300 steps the classifier is nearly perfect and most
    # samples of the energy land within 1.5 of a class mean (data: 99%; the initial, flat model's
    # uniform samples on [-5, 5]^2: ~14%; measured 90%), from both classes.
    means = jnp.array([[2.0, 0.0], [-2.0, 1.0]])

    def data(key, n):
        ky, kx = jax.random.split(key)
        y = jax.random.randint(ky, (n,), 0, 2)
        return {"x": means[y] + 0.5 * jax.random.normal(kx, (n, 2)), "y": y}

    trainer = ebm.make(_config(num_classes=2), (2,))
    state = train(trainer, data, 300, 128)
    test = data(jax.random.key(9), 1000)
    assert float(trainer.evaluate(state, test, jax.random.key(2))["accuracy"].mean()) > 0.97
    x = np.asarray(trainer.sample(state, jax.random.key(3), 1000))
    distance = np.min(np.linalg.norm(x[:, None] - np.asarray(means)[None], axis=2), axis=1)
    assert np.mean(distance < 1.5) > 0.75
    nearest = np.argmin(np.linalg.norm(x[:, None] - np.asarray(means)[None], axis=2), axis=1)
    assert 0.2 < nearest.mean() < 0.8


def test_a_step_writes_the_chain_ends_back_to_the_drawn_rows():
    config = _config(buffer_size=500, reinit_fraction=0.0)
    trainer = ebm.make(config, (2,))
    batch = gaussian(jax.random.key(0), 16)
    state = trainer.init(jax.random.key(1), batch)
    new, metrics = jax.jit(trainer.step)(state, batch, jax.random.key(2))
    changed = np.any(np.asarray(new.buffer) != np.asarray(state.buffer), axis=1)
    assert 0 < changed.sum() <= 16  # only the (at most 16 distinct) drawn rows moved
    assert int(new.step) == 1 and np.isfinite(float(metrics["loss"]))
    short = ebm.make(_config("short_run"), (2,))
    assert short.init(jax.random.key(1), batch).buffer is None


@pytest.mark.parametrize("energy_clip", [0.0, 1e-7])
def test_divergence_gives_an_infinite_loss_and_the_energy(energy_clip):
    # Judged on the raw energies, also when the loss clips them below the threshold.
    trainer = ebm.make(_config(max_energy=1e-6, energy_clip=energy_clip), (2,))
    batch = gaussian(jax.random.key(0), 16)
    state = trainer.init(jax.random.key(1), batch)
    _, metrics = jax.jit(trainer.step)(state, batch, jax.random.key(2))
    assert float(metrics["loss"]) == math.inf
    assert float(metrics["diverged_energy"]) > 1e-6


@pytest.mark.parametrize(
    "model, event_shape, match",
    [
        ({"chains": "forever"}, (2,), "model.chains"),
        ({"architecture": "conv"}, (2,), "images"),
        ({"init_range": (1.0, -1.0)}, (2,), "model.init_range"),
        ({"box": (3.0, 3.0)}, (2,), "model.box"),
        ({"reinit_fraction": 1.5}, (2,), "model.reinit_fraction"),
        ({"step_size": 0.0}, (2,), "model.step_size"),
        ({"l2_weight": -1.0}, (2,), "model.l2_weight"),
    ],
)
def test_config_errors_name_the_field(model, event_shape, match):
    with pytest.raises(ValueError, match=match):
        ebm.make(_config(**model), event_shape)
