"""Autoregressive models through the Trainer: normalisation by enumerating every vector, samples
against the model's own probabilities (chi-square), cached against sequential sampling, and the
data codings."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from experiments.configs import autoregressive_digits
from jgen.models import autoregressive
from tests.params import float64, redraw

# Small sizes of every network, for enumeration (D <= 12) and sampling tests.
SMALL = {
    "made": dict(network="made", hidden_sizes=(24, 24)),
}


def _config(num_levels=0, source="digits", **model):
    c = autoregressive_digits.get_config("binary")
    c.data.num_levels, c.data.source = num_levels, source
    for key, value in model.items():
        c.model[key] = value
    return c


def _all_vectors(event_shape, num_levels):
    d = int(np.prod(event_shape))
    values = np.array(list(itertools.product(range(num_levels), repeat=d)), np.int32)
    return values.reshape(-1, *event_shape)


def _model(config, event_shape, key=0):
    """The model's pure functions with random parameters (redrawn, so no layer is at its
    zero/identity initialisation), in float64."""
    coding = autoregressive.data_coding(config.data)
    head = autoregressive.head_from_config(config.model, coding.num_levels)
    builder = autoregressive.NETWORKS[config.model.network]
    network = builder(config.model, event_shape, head.num_params, coding.num_levels)
    model = autoregressive.autoregressive_model(network, head, event_shape)
    tokens = jnp.zeros((2, *event_shape), jnp.int32)
    params = float64(redraw(model.init(jax.random.key(key), tokens), jax.random.key(key + 1)))
    return model, params


@pytest.mark.parametrize("network", list(SMALL))
def test_binary_probabilities_sum_to_one(x64, network):
    event_shape = (2, 5)  # D = 10: 1024 vectors
    model, params = _model(_config(**SMALL[network]), event_shape)
    log_p = jax.jit(model.log_prob)(params, jnp.asarray(_all_vectors(event_shape, 2)))
    np.testing.assert_allclose(special.logsumexp(np.asarray(log_p)), 0.0, atol=1e-10)


@pytest.mark.parametrize("output", ["categorical", "logistic_mixture"])
def test_multilevel_probabilities_sum_to_one(x64, output):
    event_shape = (3,)  # 17^3 = 4913 vectors
    config = _config(num_levels=17, output=output, num_mixtures=2, **SMALL["made"])
    model, params = _model(config, event_shape)
    log_p = jax.jit(model.log_prob)(params, jnp.asarray(_all_vectors(event_shape, 17)))
    np.testing.assert_allclose(special.logsumexp(np.asarray(log_p)), 0.0, atol=1e-10)


@pytest.mark.parametrize("network", list(SMALL))
def test_samples_follow_the_model_probabilities(x64, network):
    """Chi-square of 40,000 samples over the 256 vectors of D = 8 against exp(log p): with a
    fixed seed the test is deterministic; p > 1e-3 for the right law (a sampler off by one
    position, or ignoring the conditioning, gives p ~ 0 at this size)."""
    event_shape = (8,)
    model, params = _model(_config(**SMALL[network]), event_shape)
    vectors = _all_vectors(event_shape, 2)
    probs = np.exp(np.asarray(model.log_prob(params, jnp.asarray(vectors))))
    samples = jax.jit(model.sample, static_argnums=2)(params, jax.random.key(7), 40_000)
    index = np.asarray(samples) @ (2 ** np.arange(8)[::-1])
    counts = np.bincount(index, minlength=256)
    # Pool the rare vectors so every expected count is >= 5 (the chi-square approximation).
    expected = probs * len(index)
    rare = expected < 5
    observed = np.append(counts[~rare], counts[rare].sum())
    expected = np.append(expected[~rare], expected[rare].sum())
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_trainer_reports_exact_nll_and_samples_on_the_data_scale():
    config = _config(num_levels=17, **SMALL["made"])
    trainer = autoregressive.make(config, (4,))
    x = jnp.asarray(np.random.default_rng(0).integers(0, 17, (5, 4)) / 17.0, jnp.float32)
    state = trainer.init(jax.random.key(0), x)
    metrics = trainer.evaluate(state, x, jax.random.key(1))
    model, _ = _model(config, (4,))
    tokens = jnp.round(x * 17).astype(jnp.int32)
    np.testing.assert_allclose(metrics["nll"], -model.log_prob(state.params, tokens), rtol=1e-6)
    np.testing.assert_allclose(metrics["bits_per_dim"], metrics["nll"] / (4 * np.log(2)))
    samples = trainer.sample(state, jax.random.key(2), 6)
    assert samples.shape == (6, 4)
    np.testing.assert_allclose(samples * 17, np.round(samples * 17), atol=1e-5)  # cell corners
    state, step_metrics = jax.jit(trainer.step)(state, x, jax.random.key(3))
    assert np.isfinite(step_metrics["loss"])


def test_class_conditional_model_needs_labels_and_uses_them():
    config = _config(num_classes=3, **SMALL["made"])
    trainer = autoregressive.make(config, (4,))
    x = jnp.asarray(np.random.default_rng(1).integers(0, 2, (6, 4)), jnp.float32)
    batch = {"x": x, "y": jnp.arange(6, dtype=jnp.int32) % 3}
    state = trainer.init(jax.random.key(0), batch)
    state = state._replace(params=redraw(state.params, jax.random.key(1)))
    nll = trainer.evaluate(state, batch, jax.random.key(1))["nll"]
    relabelled = trainer.evaluate(state, {**batch, "y": (batch["y"] + 1) % 3}, None)["nll"]
    assert np.all(np.asarray(nll) != np.asarray(relabelled))
    with pytest.raises(ValueError, match=r"model.num_classes=3 needs labelled batches"):
        trainer.init(jax.random.key(0), x)


def test_bad_configs_name_the_field():
    with pytest.raises(ValueError, match="model.network must be one of"):
        autoregressive.make(_config(network="lstmm"), (4,))
    with pytest.raises(ValueError, match="model.output must be one of"):
        autoregressive.make(_config(output="poisson"), (4,))
    with pytest.raises(ValueError, match="model.top_k applies to categorical outputs only"):
        autoregressive.make(_config(num_levels=17, output="logistic_mixture", top_k=3), (4,))
    with pytest.raises(ValueError, match="data.num_levels"):
        autoregressive.make(_config(num_levels=0, source="text"), (4,))
