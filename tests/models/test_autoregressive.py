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
from tests.params import random_like, redraw

# Small sizes of every network, for enumeration (D <= 12) and sampling tests.
SMALL = {
    "made": dict(network="made", hidden_sizes=(24, 24)),
    "made_agnostic": dict(network="made", hidden_sizes=(24, 24), num_masks=4, eval_masks=4),
    "pixelcnn": dict(network="pixelcnn", features=8, num_layers=2, kernel_size=3),
    "gated_pixelcnn": dict(network="gated_pixelcnn", features=8, num_layers=2, kernel_size=3),
    "transformer": dict(network="transformer", num_layers=2, num_heads=2, model_dim=8),
    "lstm": dict(network="lstm", hidden_size=8, num_layers=2),
    "gru": dict(network="gru", hidden_size=8, num_layers=1),
    "wavenet": dict(network="wavenet", features=8, kernel_size=2, dilations=(1, 2, 4)),
}
CACHED = ["transformer", "lstm", "gru"]


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


def _model(config, event_shape, key=0, cached_sampling=True):
    """The model's pure functions with random parameters (redrawn, so no layer is at its
    zero/identity initialisation), in float64."""
    coding = autoregressive.data_coding(config.data)
    head = autoregressive.head_from_config(config.model, coding.num_levels)
    builder = autoregressive.NETWORKS[config.model.network]
    network = builder(config.model, event_shape, head.num_params, coding.num_levels)
    model = autoregressive.autoregressive_model(network, head, event_shape, cached_sampling)
    tokens = jnp.zeros((2, *event_shape), jnp.int32)
    shapes = jax.eval_shape(model.init, jax.random.key(key), tokens)
    params = random_like(shapes, seed=key)
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
    event_shape = (2, 4)  # D = 8, an image for the PixelCNNs
    model, params = _model(_config(**SMALL[network]), event_shape)
    vectors = _all_vectors(event_shape, 2)
    probs = np.exp(np.asarray(model.log_prob(params, jnp.asarray(vectors))))
    samples = jax.jit(model.sample, static_argnums=2)(params, jax.random.key(7), 40_000)
    index = np.asarray(samples).reshape(-1, 8) @ (2 ** np.arange(8)[::-1])
    counts = np.bincount(index, minlength=256)
    # Pool the rare vectors so every expected count is >= 5 (the chi-square approximation).
    expected = probs * len(index)
    rare = expected < 5
    if rare.any():
        observed = np.append(counts[~rare], counts[rare].sum())
        expected = np.append(expected[~rare], expected[rare].sum())
    else:
        observed = counts
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_order_agnostic_ensemble_is_the_mixture_of_its_masks(x64):
    """``log (1/M) sum_m p_m(x)`` from the per-mask log-probabilities; a normalised mixture."""
    model, params = _model(_config(**SMALL["made_agnostic"]), (2, 5))
    vectors = jnp.asarray(_all_vectors((2, 5), 2))
    per_mask = np.stack([np.asarray(model.log_prob(params, vectors, None, m)) for m in range(4)])
    ensemble = np.asarray(model.ensemble_log_prob(params, vectors, None, 4))
    np.testing.assert_allclose(ensemble, special.logsumexp(per_mask, axis=0) - np.log(4), 1e-12)
    np.testing.assert_allclose(special.logsumexp(ensemble), 0.0, atol=1e-10)
    assert np.ptp(per_mask, axis=0).max() > 0.1  # the masks are different models


@pytest.mark.parametrize("network", CACHED)
def test_cached_sampling_equals_full_pass_sampling(x64, network):
    """Both samplers split the key alike, so with the same parameters they draw the same
    tokens when the cached decoder's conditionals equal the full pass's."""
    config = _config(num_levels=17, **SMALL[network])
    cached, params = _model(config, (3, 4), cached_sampling=True)
    full, _ = _model(config, (3, 4), cached_sampling=False)
    key = jax.random.key(8)
    a = jax.jit(cached.sample, static_argnums=2)(params, key, 64)
    b = jax.jit(full.sample, static_argnums=2)(params, key, 64)
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(np.asarray(a))) > 5  # 17 levels drawn: the test is not vacuous


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
    np.testing.assert_allclose(samples * 17 - 0.5, np.round(samples * 17 - 0.5), atol=1e-5)
    # Cell centres go back to their levels (the evaluation of samples gives finite NLLs).
    np.testing.assert_array_equal(
        autoregressive.data_coding(config.data).to_tokens(samples), np.round(samples * 17 - 0.5)
    )
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


@pytest.mark.parametrize("num_levels", [17, 256])
def test_cell_corners_and_centres_map_to_their_level(num_levels):
    """The datasets store float32 corners ``k / K``, samples are centres ``(k + 1/2) / K``;
    float rounding of ``K x`` must not move either to a neighbouring level."""
    coding = autoregressive.data_coding(_config(num_levels=num_levels).data)
    levels = np.arange(num_levels)
    corners = (levels / np.float32(num_levels)).astype(np.float32)
    np.testing.assert_array_equal(coding.to_tokens(jnp.asarray(corners)), levels)
    np.testing.assert_array_equal(coding.to_tokens(coding.from_tokens(jnp.asarray(levels))), levels)
