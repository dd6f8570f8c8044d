"""Autoregressive samplers: per-element draws by chi-square against their probabilities, and the
two drivers against a Markov chain whose joint law is known in closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from jgen.losses.autoregressive import discretized_logistic_mixture_log_likelihood, tokens_to_grid
from jgen.samplers.autoregressive import (
    sample_cached,
    sample_categorical,
    sample_logistic_mixture,
    sample_sequential,
)

# With fixed seeds a chi-square test is deterministic; p > 1e-3 fails for a wrong law (the
# sample sizes give power ~1 against the mistakes tested for: an untempered or untruncated law).
P_MIN = 1e-3


def _chi_square_p(draws, probs):
    counts = np.bincount(np.asarray(draws).ravel(), minlength=len(probs))
    keep = probs > 0
    assert counts[~keep].sum() == 0, "drew a value of probability zero"
    expected = probs[keep] / probs[keep].sum() * counts.sum()
    return stats.chisquare(counts[keep], expected).pvalue


@pytest.mark.parametrize("temperature,top_k", [(1.0, 0), (0.5, 0), (2.0, 3), (1.0, 1)])
def test_categorical_draws_follow_the_tempered_truncated_softmax(temperature, top_k):
    logits = np.array([0.3, -1.0, 2.0, 0.0, 1.2, -0.4])
    draws = sample_categorical(jax.random.key(0), jnp.tile(logits, (20_000, 1)), temperature, top_k)
    probs = special.softmax(logits / temperature)
    if top_k:
        probs[np.argsort(logits)[:-top_k]] = 0.0
    if top_k == 1:
        np.testing.assert_array_equal(draws, np.argmax(logits))
    else:
        assert _chi_square_p(draws, probs / probs.sum()) > P_MIN
    # The same law without tempering fails (the test has power).
    if temperature != 1.0:
        assert _chi_square_p(draws, special.softmax(logits)) < P_MIN


def test_zero_temperature_is_the_argmax_and_bad_arguments_raise():
    logits = jax.random.normal(jax.random.key(1), (5, 7))
    np.testing.assert_array_equal(
        sample_categorical(jax.random.key(2), logits, 0.0), np.argmax(logits, -1)
    )
    with pytest.raises(ValueError, match="top_k must be <= the number of values 7"):
        sample_categorical(jax.random.key(2), logits, 1.0, 8)
    with pytest.raises(ValueError, match="temperature"):
        sample_categorical(jax.random.key(2), logits, -1.0)


def test_logistic_mixture_draws_follow_the_bin_masses(x64):
    num_levels, n = 17, 40_000
    params = [np.array(v) for v in ([0.5, -0.5], [-0.6, 0.4], [-1.5, -2.5])]
    tiled = [jnp.tile(p, (n, 1)) for p in params]
    draws = sample_logistic_mixture(jax.random.key(3), *tiled, num_levels)
    levels = jnp.arange(num_levels)[:, None]
    log_p = discretized_logistic_mixture_log_likelihood(
        tokens_to_grid(levels, num_levels),
        *[jnp.tile(p, (num_levels, 1, 1)) for p in params],
        num_levels,
    )
    assert _chi_square_p(draws, np.exp(np.asarray(log_p))) > P_MIN


# A binary Markov chain of length 4: p(x_0) = start, p(x_i | x_{i-1}) = transition[x_{i-1}].
START = np.log(np.array([0.3, 0.7]))
TRANSITION = np.log(np.array([[0.9, 0.1], [0.25, 0.75]]))
LENGTH = 4


def _chain_probabilities():
    states = np.array(np.meshgrid(*[[0, 1]] * LENGTH, indexing="ij")).reshape(LENGTH, -1).T
    log_p = START[states[:, 0]] + sum(
        TRANSITION[states[:, i - 1], states[:, i]] for i in range(1, LENGTH)
    )
    return states, np.exp(log_p)


def _state_index(samples):
    return np.asarray(samples) @ (2 ** np.arange(LENGTH)[::-1])


def test_sequential_sampling_follows_a_markov_chain():
    # outputs_fn sees the whole (partly filled) sequence and returns every position's logits,
    # position i a function of x_{i-1} only: the autoregressive contract.
    def outputs_fn(x):
        previous = jnp.concatenate([jnp.zeros_like(x[:, :1]), x[:, :-1]], axis=1)
        logits = jnp.asarray(TRANSITION)[previous]
        return logits.at[:, 0].set(jnp.asarray(START))

    n = 30_000
    samples = sample_sequential(
        jax.random.key(4),
        outputs_fn,
        lambda k, p: sample_categorical(k, p),
        jnp.zeros((n, LENGTH), jnp.int32),
    )
    _, probs = _chain_probabilities()
    assert _chi_square_p(_state_index(samples), probs) > P_MIN


def test_sequential_sampling_respects_the_order():
    # The chain generated right to left: position order[i] is drawn given order[i - 1].
    order = np.arange(LENGTH)[::-1]

    def outputs_fn(x):
        following = jnp.concatenate([x[:, 1:], jnp.zeros_like(x[:, :1])], axis=1)
        logits = jnp.asarray(TRANSITION)[following]
        return logits.at[:, -1].set(jnp.asarray(START))

    samples = sample_sequential(
        jax.random.key(5),
        outputs_fn,
        lambda k, p: sample_categorical(k, p),
        jnp.zeros((30_000, LENGTH), jnp.int32),
        order=order,
    )
    _, probs = _chain_probabilities()
    assert _chi_square_p(_state_index(np.asarray(samples)[:, ::-1]), probs) > P_MIN
    with pytest.raises(ValueError, match=r"order must have shape \(4,\)"):
        sample_sequential(jax.random.key(5), outputs_fn, None, jnp.zeros((2, 4), int), [0, 1])


def test_cached_sampling_follows_a_markov_chain():
    # The cache is the position; the previous token arrives one-hot.
    def decode(position, x_prev):
        logits = x_prev @ jnp.asarray(TRANSITION)
        logits = jnp.where(position == 0, jnp.asarray(START), logits)
        return logits, position + 1

    samples = sample_cached(
        jax.random.key(6),
        decode,
        jnp.int32(0),
        lambda k, p: sample_categorical(k, p),
        lambda t: jax.nn.one_hot(t, 2),
        30_000,
        LENGTH,
    )
    assert samples.shape == (30_000, LENGTH)
    _, probs = _chain_probabilities()
    assert _chi_square_p(_state_index(samples), probs) > P_MIN
