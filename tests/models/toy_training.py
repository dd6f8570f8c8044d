"""What the trainer tests share: a known 2-D Gaussian, and training a Trainer inside one jitted
``lax.scan`` (a few hundred steps compile once)."""

import jax
import numpy as np

MEAN = np.array([1.0, -2.0])
COV = np.array([[1.0, 0.5], [0.5, 0.8]])


def gaussian(key, n):
    """``n`` draws of ``N(MEAN, COV)``."""
    return MEAN + jax.random.normal(key, (n, 2)) @ np.linalg.cholesky(COV).T


def train(trainer, data_fn, num_steps: int, batch_size: int, seed: int = 0):
    """``num_steps`` steps of ``trainer`` on fresh batches ``data_fn(key, batch_size)``, from the
    state ``init`` builds on the batch ``data_fn(key(seed), batch_size)``; every loss finite."""
    key = jax.random.key(seed)
    state = trainer.init(key, data_fn(key, batch_size))

    @jax.jit
    def run(state, key):
        def body(state, k):
            k_data, k_step = jax.random.split(k)  # fold_in(k, 0) would equal split(k)[0]
            state, metrics = trainer.step(state, data_fn(k_data, batch_size), k_step)
            return state, metrics["loss"]

        return jax.lax.scan(body, state, jax.random.split(key, num_steps))

    state, losses = run(state, jax.random.fold_in(key, 1))
    assert np.all(np.isfinite(losses))
    return state
