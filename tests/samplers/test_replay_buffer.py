"""The replay buffer of persistent chains: restart rate, uniform rows, write-back, purity, jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jgen.samplers import replay_buffer
from jgen.samplers.replay_buffer import ReplayBuffer

EVENT = (3, 2)
# One compiled program per batch size instead of many small eager ones.
sample = jax.jit(replay_buffer.sample, static_argnums=2, static_argnames="noise_fn")


def noise_fn(key, n):
    return jax.random.uniform(key, (n, *EVENT), minval=-1.0, maxval=1.0)


def restarted(buffer, batch, indices):
    """Which drawn chains were restarted: continuous noise never equals a stored row exactly."""
    return np.any(np.asarray(batch != buffer.samples[indices]).reshape(len(batch), -1), axis=1)


def test_init_fills_the_buffer_from_noise():
    buffer = replay_buffer.init(jax.random.key(0), 100, noise_fn)
    assert isinstance(buffer, ReplayBuffer)
    np.testing.assert_array_equal(buffer.samples, noise_fn(jax.random.key(0), 100))


def test_restart_fraction():
    buffer = replay_buffer.init(jax.random.key(0), 1000, noise_fn)
    n = 20_000
    batch, indices = sample(buffer, jax.random.key(1), n, noise_fn=noise_fn)
    assert batch.shape == (n, *EVENT) and indices.shape == (n,) and indices.dtype == jnp.int32
    fraction = restarted(buffer, batch, indices).mean()
    se = np.sqrt(0.05 * 0.95 / n)  # binomial standard error: 0.0015
    assert abs(fraction - 0.05) < 4 * se, fraction
    # The restarted chains are fresh draws from noise_fn: uniform on [-1, 1], mean 0, variance
    # 1/3, so the mean of their m * 6 coordinates is within 4 sqrt(1 / (3 m 6)) of 0.
    fresh = np.asarray(batch)[restarted(buffer, batch, indices)]
    assert np.all(np.abs(fresh) <= 1.0)
    assert abs(fresh.mean()) < 4 * np.sqrt(1 / (3 * fresh.size))

    none, idx = sample(buffer, jax.random.key(2), 500, noise_fn=noise_fn, reinit_fraction=0.0)
    np.testing.assert_array_equal(none, buffer.samples[idx])
    everything, idx = sample(buffer, jax.random.key(2), 500, noise_fn=noise_fn, reinit_fraction=1.0)
    assert restarted(buffer, everything, idx).all()


def test_indices_are_uniform():
    capacity, n = 50, 50_000
    buffer = replay_buffer.init(jax.random.key(0), capacity, noise_fn)
    _, indices = sample(buffer, jax.random.key(3), n, noise_fn=noise_fn)
    counts = np.bincount(np.asarray(indices), minlength=capacity)
    assert counts.size == capacity  # no index outside [0, capacity)
    p_value = scipy.stats.chisquare(counts).pvalue  # 1000 expected per row
    assert p_value > 1e-3, p_value


def test_written_chains_are_read_back_and_the_input_is_not_modified():
    buffer = replay_buffer.init(jax.random.key(0), 20, noise_fn)
    before = np.array(buffer.samples)
    indices = jnp.array([3, 7, 11], jnp.int32)
    new = jnp.full((3, *EVENT), 5.0)
    written = replay_buffer.write(buffer, indices, new)
    np.testing.assert_array_equal(buffer.samples, before)  # pure: the input is unchanged
    np.testing.assert_array_equal(written.samples[indices], new)
    others = np.setdiff1d(np.arange(20), indices)
    np.testing.assert_array_equal(written.samples[others], before[others])

    # A draw without restarts returns exactly the stored rows, the written ones included.
    batch, idx = sample(written, jax.random.key(4), 200, noise_fn=noise_fn, reinit_fraction=0.0)
    np.testing.assert_array_equal(buffer.samples, before)
    hit = np.isin(np.asarray(idx), np.asarray(indices))
    assert hit.any()
    np.testing.assert_array_equal(np.asarray(batch)[hit], 5.0)
    np.testing.assert_array_equal(np.asarray(batch)[~hit], before[np.asarray(idx)[~hit]])


def test_jit_matches_eager():
    buffer = replay_buffer.init(jax.random.key(0), 64, noise_fn)
    key = jax.random.key(5)
    batch, indices = sample(buffer, key, 32, noise_fn=noise_fn)
    eager_batch, eager_indices = replay_buffer.sample(buffer, key, 32, noise_fn=noise_fn)
    np.testing.assert_array_equal(indices, eager_indices)
    np.testing.assert_allclose(batch, eager_batch)
    written = jax.jit(replay_buffer.write)(buffer, indices, batch + 1.0)
    np.testing.assert_allclose(
        written.samples, replay_buffer.write(buffer, indices, batch + 1.0).samples
    )
    # The restart probability may be traced too (e.g. annealed during training).
    traced = jax.jit(
        lambda b, k, rho: replay_buffer.sample(b, k, 32, noise_fn=noise_fn, reinit_fraction=rho)
    )
    np.testing.assert_array_equal(traced(buffer, key, 0.05)[1], eager_indices)


def test_bad_arguments():
    buffer = replay_buffer.init(jax.random.key(0), 10, noise_fn)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="capacity must be an integer >= 1; got 0"):
        replay_buffer.init(key, 0, noise_fn)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1; got 0"):
        replay_buffer.sample(buffer, key, 0, noise_fn=noise_fn)
    with pytest.raises(ValueError, match=r"reinit_fraction must be in \[0, 1\]; got 1.5"):
        replay_buffer.sample(buffer, key, 4, noise_fn=noise_fn, reinit_fraction=1.5)
    with pytest.raises(ValueError, match=r"noise_fn\(key, 4\) must return shape \(4, 3, 2\)"):
        replay_buffer.sample(buffer, key, 4, noise_fn=lambda k, n: jnp.zeros((n, 6)))
    with pytest.raises(ValueError, match=r"new_samples must have shape \(2, 3, 2\)"):
        replay_buffer.write(buffer, jnp.array([0, 1]), jnp.zeros((2, 6)))
    with pytest.raises(ValueError, match=r"indices must have shape \(b,\); got shape \(\)"):
        replay_buffer.write(buffer, jnp.int32(0), jnp.zeros((1, *EVENT)))
