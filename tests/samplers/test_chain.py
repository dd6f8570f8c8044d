"""The scan driver: keys, running means, thinning, and memory that does not grow with steps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.samplers.annealed_langevin import annealed_langevin
from jgen.samplers.chain import run_chain
from jgen.samplers.langevin import hmc, langevin, mala
from jgen.samplers.ode import odeint_fixed
from jgen.samplers.sde import sample_sde
from jgen.sdes.sde import VPSDE


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


def _temp_bytes(fn, *args) -> int:
    return jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes


SAMPLERS = {
    "langevin": lambda n: lambda x, k: langevin(_score, x, k, step_size=0.1, n_steps=n)[0],
    "mala": lambda n: lambda x, k: mala(_log_prob, x, k, step_size=0.1, n_steps=n)[0],
    "hmc": lambda n: lambda x, k: hmc(_log_prob, x, k, step_size=0.1, n_leapfrog=3, n_steps=n)[0],
    "annealed_langevin": lambda n: (
        lambda x, k: annealed_langevin(
            lambda x, s: _score(x),
            x,
            k,
            sigmas=jnp.array([1.0, 0.5]),
            n_steps_each=n // 2,
            step_lr=1e-3,
        )[0]
    ),
    "sample_sde": lambda n: (
        lambda x, k: sample_sde(
            VPSDE(), lambda x, t: -x, k, x.shape, n_steps=n, corrector="langevin"
        )[0]
    ),
    "odeint_fixed": lambda n: lambda x, k: odeint_fixed(lambda x, t: -x, x, 0.0, 1.0, n, "rk4")[0],
}


def _log_prob(x):
    return -0.5 * jnp.sum(x**2, -1)


def _score(x):
    return -x


@pytest.mark.parametrize("name", SAMPLERS)
def test_sampler_memory_does_not_grow_with_steps(name):
    """10,000 steps need no more temporary memory than 10 (no trajectory requested)."""
    x, key = jnp.zeros((256, 8)), jax.random.key(0)
    assert _temp_bytes(SAMPLERS[name](10_000), x, key) <= _temp_bytes(SAMPLERS[name](10), x, key)
