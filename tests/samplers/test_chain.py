"""The scan driver: keys, running means, thinning, and memory that does not grow with steps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.samplers.chain import run_chain


def counting_step(state, key, i):
    noise = jax.random.normal(key, state.shape)
    return state + 1.0, {"i": i, "noise": noise}


def test_steps_keys_and_info_means():
    key = jax.random.key(0)
    state, info, trajectory = run_chain(counting_step, jnp.zeros(3), key, 10)
    np.testing.assert_allclose(state, 10.0)
    assert trajectory is None
    assert float(info["i"]) == pytest.approx(4.5)  # mean of 0..9
    noises = []
    for _ in range(10):
        key, step_key = jax.random.split(key)
        noises.append(jax.random.normal(step_key, (3,)))
    noises = jnp.stack(noises)
    np.testing.assert_allclose(info["noise"], noises.mean(0), rtol=1e-5)


def test_thinned_trajectory():
    _, _, trajectory = run_chain(
        counting_step, jnp.zeros(2), jax.random.key(0), 12, record_every=4, record=lambda s: s[0]
    )
    np.testing.assert_allclose(trajectory, [4.0, 8.0, 12.0])


def test_bad_arguments():
    with pytest.raises(
        ValueError, match="record_every must be 0 or a divisor of n_steps=10; got 3"
    ):
        run_chain(counting_step, jnp.zeros(1), jax.random.key(0), 10, record_every=3)
    with pytest.raises(ValueError, match="n_steps must be >= 1; got 0"):
        run_chain(counting_step, jnp.zeros(1), jax.random.key(0), 0)


def test_memory_does_not_grow_with_the_number_of_steps():
    x = jnp.zeros((256, 64))

    def temp_bytes(n_steps):
        f = jax.jit(lambda x, k: run_chain(counting_step, x, k, n_steps)[0])
        return f.lower(x, jax.random.key(0)).compile().memory_analysis().temp_size_in_bytes

    assert temp_bytes(10_000) <= temp_bytes(10)
