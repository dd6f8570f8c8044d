"""The DBN trainer: the greedy schedule updates exactly one layer per step on data propagated
through the frozen layers below (checked against the RBM update on numpy-propagated data), the
passes against numpy sigmoid formulas, the importance-sampled NLL against the enumerated
likelihood of a small DBN, and sampling. (The smoke config runs end to end in
tests/experiments/test_configs.py.)"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from experiments.configs import dbn_digits
from jgen.models import dbn
from jgen.models import rbm as rbm_model
from tests.models.test_rbm import all_states, jitted, numpy_log_p, random_rbm, sigmoid


def _config(hidden_sizes, **model):
    c = dbn_digits.get_config()
    c.model.hidden_sizes = hidden_sizes
    c.model.update(model)
    return c


def _layers(dims, dtype=jnp.float32):
    return tuple(
        random_rbm(d_v, d_h, seed=i, dtype=dtype)
        for i, (d_v, d_h) in enumerate(itertools.pairwise(dims))
    )


def test_each_step_trains_only_the_scheduled_layer_on_propagated_data(x64):
    c = _config((4, 3, 2), steps_per_layer=2, persistent=True, num_chains=5)
    c.train.num_steps = 7
    trainer = jitted(dbn.make(c, (6,)))
    v = (np.random.default_rng(0).random((8, 6)) < 0.5).astype(np.float64)
    state = trainer.init(jax.random.key(0), v)
    state = state._replace(layers=_layers((6, 4, 3, 2), jnp.float64))
    assert [ch.shape for ch in state.chains] == [(5, 6), (5, 4), (5, 3)]
    tx = rbm_model.optimizer(c, 2)
    for s, layer in enumerate([0, 0, 1, 1, 2, 2, 2]):
        key = jax.random.key(s)
        new, metrics = trainer.step(state, v, key)
        assert int(metrics["layer"]) == layer and int(new.step) == s + 1
        for i in range(3):
            same = all(
                np.array_equal(x, y) for x, y in zip(new.layers[i], state.layers[i], strict=True)
            )
            assert same == (i != layer), (s, i)
            assert np.array_equal(new.chains[i], state.chains[i]) == (i != layer), (s, i)
        if s == 2:  # layer 1's data: p(h_1 = 1 | v) of the frozen bottom RBM, in numpy
            w0, _, b0 = (np.asarray(x) for x in state.layers[0])
            want = rbm_model.cd_update(
                state.layers[1], state.opt_states[1], state.chains[1], sigmoid(v @ w0 + b0),
                jax.random.split(key)[1], tx=tx, k=1,
            )[0]  # fmt: skip
            for got, expected in zip(new.layers[1], want, strict=True):
                np.testing.assert_allclose(got, expected, rtol=1e-12)
        state = new


def test_passes_and_reconstruction_error_follow_the_sigmoid_formulas(x64):
    layers = _layers((6, 4, 3), jnp.float64)
    (w0, a0, b0), (w1, a1, b1) = ([np.asarray(x) for x in p] for p in layers)
    v = all_states(6)[::5]
    up = sigmoid(sigmoid(v @ w0 + b0) @ w1 + b1)
    np.testing.assert_allclose(dbn.up_pass(layers, v), up, rtol=1e-12)
    down = sigmoid(sigmoid(up @ w1.T + a1) @ w0.T + a0)
    np.testing.assert_allclose(dbn.down_pass(layers, up), down, rtol=1e-12)
    trainer = jitted(dbn.make(_config((4, 3), eval_samples=4), (6,)))
    state = trainer.init(jax.random.key(0), v)._replace(layers=layers)
    out = trainer.evaluate(state, v, jax.random.key(1))
    np.testing.assert_allclose(out["reconstruction_error"], np.sum((v - down) ** 2, 1), rtol=1e-10)
    np.testing.assert_allclose(out["bottom_rbm_nll"], -numpy_log_p(layers[0], v), rtol=1e-10)
    # Stochastic downward pass: binary intermediate layers, visible probabilities at the bottom.
    sampled = dbn.down_pass(layers, up, jax.random.key(2), probabilities=True)
    h1 = dbn.down_pass(layers[1:], up, jax.random.key(2), probabilities=False)
    assert set(np.unique(h1)) <= {0.0, 1.0}
    assert np.all((sampled > 0) & (sampled < 1))


def test_nll_bound_brackets_the_enumerated_dbn_likelihood(x64):
    # p(v) = sum_{h1} p(v | h1) p_top(h1) with p_top the top RBM's marginal over its visibles,
    # enumerated in numpy. With K = 4000 recognition samples the estimate is within 0.1 nats per
    # example (measured: at most 0.043); with K = 1 its mean over 400 (example, draw) pairs lies
    # above the exact mean NLL (Jensen; the measured gap is 0.8 nats, 20 standard errors).
    layers = _layers((6, 4, 3), jnp.float64)
    w0, a0, _ = (np.asarray(x) for x in layers[0])
    v = all_states(6)[::4]
    h1 = all_states(4)
    log_p_v_given_h = v @ (h1 @ w0.T + a0).T - np.sum(np.logaddexp(0, h1 @ w0.T + a0), 1)
    exact = -scipy.special.logsumexp(log_p_v_given_h + numpy_log_p(layers[1], h1), axis=1)
    many = dbn.nll_bound(layers, v, jax.random.key(0), 4000, max_units=20)
    np.testing.assert_allclose(many, exact, atol=0.1)
    one = jax.vmap(lambda k: dbn.nll_bound(layers, v, k, 1, max_units=20))(
        jax.random.split(jax.random.key(1), 25)
    )
    gap = np.asarray(one) - exact
    assert gap.mean() > 4 * gap.std() / math.sqrt(gap.size), gap.mean()


def test_samples_have_the_event_shape_and_range():
    c = _config((5, 3), sample_steps=5)
    for probabilities in (True, False):
        c.model.sample_probabilities = probabilities
        trainer = jitted(dbn.make(c, (2, 4)))
        state = trainer.init(jax.random.key(0), np.zeros((3, 2, 4), np.float32))
        x = np.asarray(trainer.sample(state, jax.random.key(1), 50))
        assert x.shape == (50, 2, 4) and x.min() >= 0 and x.max() <= 1
        assert (set(np.unique(x)) <= {0.0, 1.0}) == (not probabilities)


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(hidden_sizes=()), r"model.hidden_sizes must hold at least one layer"),
        (dict(hidden_sizes=(4, 0)), r"model.hidden_sizes\[1\] must be an integer >= 1"),
        (dict(propagate="mean"), r"model.propagate must be one of"),
        (dict(steps_per_layer=20_000), r"train.num_steps must exceed"),
        (dict(momentum=1.5), r"model.momentum must be in"),
    ],
)
def test_bad_configs_name_the_field(change, match):
    c = dbn_digits.get_config()
    c.model.update(change)
    with pytest.raises(ValueError, match=match):
        dbn.make(c, (8, 8))
