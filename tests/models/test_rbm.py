"""The RBM trainer against numpy: the update rule of Hinton's practical guide (momentum switch,
weight decay on the weights only) with the CD statistics written out, PCD chains carried in the
state, the exact NLL of ``evaluate`` against enumeration of every (v, h) pair, sampling against
enumerated marginals, training that approaches a known data entropy, AIS against the exact
``log Z``. (The smoke configs run end to end in tests/experiments/test_configs.py.)"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from experiments.configs import default, rbm_digits
from jgen.energies import rbm
from jgen.losses.contrastive_divergence import cd_loss
from jgen.models import rbm as rbm_model
from jgen.train.trainer import Trainer


def _config(**model):
    c = default.get_config()
    with c.unlocked():
        c.model = rbm_digits.model_config(**model)
    rbm_digits.rbm_training(c)
    return c


def jitted(trainer):
    """The trainer's functions jitted: run eagerly, init and evaluate dispatch many small ops
    (seconds each); compiled, a fraction of that."""
    return Trainer(
        jax.jit(trainer.init),
        jax.jit(trainer.step),
        jax.jit(trainer.sample, static_argnums=2),
        jax.jit(trainer.evaluate),
    )


def all_states(d):
    return np.array(list(itertools.product([0.0, 1.0], repeat=d)))


def numpy_log_p(params, v):
    """``log p(v)`` by summing ``exp(-E(v, h))`` over every hidden state and every pair."""
    w, a, b = (np.asarray(x, np.float64) for x in params)
    vs, hs = all_states(len(a)), all_states(len(b))

    def neg_energy(v):
        return (v @ a)[:, None] + (hs @ b)[None, :] + v @ w @ hs.T

    log_z = scipy.special.logsumexp(neg_energy(vs))
    return scipy.special.logsumexp(neg_energy(np.asarray(v, np.float64)), axis=1) - log_z


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def random_rbm(d_v, d_h, seed=0, scale=1.0, dtype=jnp.float32):
    rng = np.random.default_rng(seed)
    return rbm.BernoulliRBM(
        jnp.asarray(rng.normal(0, scale, (d_v, d_h)), dtype),
        jnp.asarray(rng.normal(0, 0.5, d_v), dtype),
        jnp.asarray(rng.normal(0, 0.5, d_h), dtype),
    )


@pytest.mark.parametrize("persistent", [False, True], ids=["cd", "pcd"])
def test_steps_are_sgd_with_switched_momentum_and_weight_decay_on_cd_statistics(x64, persistent):
    # Hinton's guide, written out: g = -(<v h>_data - <v h>_model) with the data phase's
    # p(h | v) (Rao-Blackwellised), u <- mu u - lr (g + lambda W), mu = 0.5 then 0.9 from step 2.
    c = _config(num_hidden=3, persistent=persistent, num_chains=7, weight_decay=0.01)
    c.model.momentum_switch_step = 2
    c.optim.learning_rate, c.optim.schedule = 0.1, "constant"
    trainer = jitted(rbm_model.make(c, (2, 3)))
    rng = np.random.default_rng(0)
    v = (rng.random((10, 2, 3)) < 0.4).astype(np.float64)
    state = trainer.init(jax.random.key(0), v)
    state = state._replace(params=random_rbm(6, 3, dtype=jnp.float64))
    w, a, b = (np.asarray(x) for x in state.params)
    u = [np.zeros_like(w), np.zeros_like(a), np.zeros_like(b)]
    chains = state.chains
    flat = v.reshape(10, 6)
    step = trainer.step
    negatives = jax.jit(lambda p, x, k, c: cd_loss(p, x, k, 1, c)[1]["chains"])
    for t, mu in enumerate([0.5, 0.5, 0.9]):
        key = jax.random.key(10 + t)
        # The negative samples: the same key's Gibbs chains (cd_loss is tested on its own).
        neg = np.asarray(negatives(state.params, flat, key, chains))
        state, metrics = step(state, v, key)
        ph_d, ph_m = sigmoid(flat @ w + b), sigmoid(neg @ w + b)
        grads = [
            -(flat.T @ ph_d / 10 - neg.T @ ph_m / len(neg)) + 0.01 * w,
            -(flat.mean(0) - neg.mean(0)),
            -(ph_d.mean(0) - ph_m.mean(0)),
        ]
        u = [mu * ui - 0.1 * g for ui, g in zip(u, grads, strict=True)]
        w, a, b = w + u[0], a + u[1], b + u[2]
        for got, want in zip(state.params, (w, a, b), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
        if persistent:
            np.testing.assert_array_equal(state.chains, neg)
            assert neg.shape == (7, 6)
            chains = state.chains
        else:
            assert state.chains is None
        assert int(state.step) == t + 1
    assert {"loss", "reconstruction_error", "pseudo_log_likelihood"} <= set(metrics)


def test_pcd_chains_start_random_persist_and_move():
    c = _config(num_hidden=5, persistent=True, num_chains=64)
    trainer = jitted(rbm_model.make(c, (8,)))
    rates = np.array([0.9] * 4 + [0.1] * 4)
    v = (np.random.default_rng(0).random((100, 8)) < rates).astype(np.float32)
    state = trainer.init(jax.random.key(1), v)
    assert state.chains.shape == (64, 8)
    start = np.asarray(state.chains)
    # Started at the base rates sigmoid(a) = the batch's unit means (0.9 and 0.1), within 4
    # standard errors of 256 draws each (se = 0.019).
    assert abs(start[:, :4].mean() - v[:, :4].mean()) < 0.08
    assert abs(start[:, 4:].mean() - v[:, 4:].mean()) < 0.08
    step = trainer.step
    history = [start]
    for t in range(5):
        state, _ = step(state, v, jax.random.key(t))
        history.append(np.asarray(state.chains))
    changes = [np.mean(x != y) for x, y in itertools.pairwise(history)]
    assert all(ch > 0 for ch in changes), changes


def test_evaluate_nll_is_exact_by_enumeration_and_falls_back_when_too_large(x64):
    params = random_rbm(5, 3, seed=3, scale=1.5, dtype=jnp.float64)
    v = all_states(5)[::3]
    w, a, b = (np.asarray(x) for x in params)
    recon = np.sum((v - sigmoid(sigmoid(v @ w + b) @ w.T + a)) ** 2, axis=1)
    nll = -numpy_log_p(params, v)
    for max_enumerate in (20, 2):
        trainer = jitted(rbm_model.make(_config(num_hidden=3, max_enumerate=max_enumerate), (5,)))
        state = trainer.init(jax.random.key(0), v)._replace(params=params)
        out = trainer.evaluate(state, v, jax.random.key(1))
        np.testing.assert_allclose(out["reconstruction_error"], recon, rtol=1e-10)
        assert out["pseudo_log_likelihood"].shape == (len(v),)
        if max_enumerate == 2:  # both layers larger than 2: no exact likelihood
            assert "nll" not in out and "bits_per_dim" not in out
            continue
        np.testing.assert_allclose(out["nll"], nll, rtol=1e-10)
        np.testing.assert_allclose(out["nll"], -rbm.log_likelihood(params, v), rtol=1e-12)
        np.testing.assert_allclose(out["bits_per_dim"], nll / (5 * math.log(2)), rtol=1e-10)


def test_samples_have_the_event_shape_and_the_enumerated_marginals():
    # 4000 chains of 30 Gibbs steps of a 6 x 3 RBM against p(v_i = 1) by enumeration: every
    # unit's frequency within 4 standard errors (binary samples), probabilities in [0, 1].
    params = random_rbm(6, 3, seed=5, scale=1.0)
    vs = all_states(6)
    marginal = np.exp(numpy_log_p(params, vs)) @ vs
    n = 4000
    for probabilities in (False, True):
        c = _config(num_hidden=3, sample_steps=30, sample_probabilities=probabilities)
        trainer = jitted(rbm_model.make(c, (2, 3)))
        state = trainer.init(jax.random.key(0), np.zeros((4, 2, 3), np.float32))
        state = state._replace(params=params)
        x = np.asarray(trainer.sample(state, jax.random.key(2), n))
        assert x.shape == (n, 2, 3) and x.min() >= 0 and x.max() <= 1
        if not probabilities:
            assert set(np.unique(x)) <= {0.0, 1.0}
        freq = x.reshape(n, 6).mean(0)
        se = np.sqrt(marginal * (1 - marginal) / n)
        assert np.all(np.abs(freq - marginal) < 4 * se), (freq, marginal)


def test_training_approaches_the_entropy_of_a_known_distribution(x64):
    # Data: a mixture of two product-Bernoulli prototypes on 10 units (an RBM with one hidden
    # unit represents it exactly), fresh samples every step. The cross-entropy
    # -sum_v p(v) log q(v) over all 1024 states, exact on both sides, must fall from its start
    # to within 0.1 nats of the entropy H(p) = 5.0 nats after 600 PCD steps (measured: start
    # 6.93, end 5.03).
    probs = np.array([[0.9] * 5 + [0.1] * 5, [0.1] * 5 + [0.9] * 5])
    probs_jax = jnp.asarray(probs)
    vs = all_states(10)
    p_true = 0.5 * np.prod(np.where(vs[:, None] == 1, probs, 1 - probs), axis=2).sum(1)
    entropy = -np.sum(p_true * np.log(p_true))
    c = _config(num_hidden=4, persistent=True, num_chains=200, momentum=0.5)
    c.optim.learning_rate, c.optim.schedule, c.train.num_steps = 0.1, "linear", 600
    trainer = jitted(rbm_model.make(c, (10,)))

    def data(key):
        z = jax.random.bernoulli(jax.random.fold_in(key, 0), 0.5, (100,)).astype(int)
        return jax.random.bernoulli(jax.random.fold_in(key, 1), probs_jax[z]).astype(jnp.float64)

    @jax.jit
    def train(state, key):
        def body(state, k):
            return trainer.step(state, data(jax.random.fold_in(k, 7)), k)[0], None

        return jax.lax.scan(body, state, jax.random.split(key, 600))[0]

    state = trainer.init(jax.random.key(0), data(jax.random.key(1)))
    before = -np.sum(p_true * numpy_log_p(state.params, vs))
    state = train(state, jax.random.key(2))
    after = -np.sum(p_true * numpy_log_p(state.params, vs))
    assert before - entropy > 1.0, (before, entropy)
    assert after - entropy < 0.1, (before, after, entropy)
    # evaluate's mean NLL on fresh data estimates the same cross-entropy (SE ~ 0.05 at n=2000).
    test = jax.random.bernoulli(jax.random.key(3), probs[np.arange(2000) % 2]).astype(float)
    nll = np.asarray(trainer.evaluate(state, test, jax.random.key(4))["nll"])
    assert abs(nll.mean() - after) < 4 * nll.std() / np.sqrt(2000)


def test_ais_log_likelihood_matches_enumeration_on_a_10x6_rbm(x64):
    params = random_rbm(10, 6, seed=7, scale=1.0, dtype=jnp.float64)
    vs = all_states(10)
    log_p = numpy_log_p(params, vs)
    rng = np.random.default_rng(0)
    v = vs[rng.choice(len(vs), 300, p=np.exp(log_p))]
    exact_log_z = np.asarray(rbm.log_partition(params))
    res = jax.jit(
        lambda p, x, k: rbm_model.ais_log_likelihood(
            p, x, k, num_betas=500, num_chains=200, gibbs_steps=200
        )
    )(params, v, jax.random.key(0))
    # The AIS error is its own standard error (a few 1e-3 here); 4 of them plus 0.01 nats.
    tol = 4 * float(res.log_partition_stderr) + 0.01
    assert abs(float(res.log_partition) - exact_log_z) < tol, (res, exact_log_z)
    assert abs(float(res.log_partition_upper) - exact_log_z) < tol, (res, exact_log_z)
    exact_ll = numpy_log_p(params, v).mean()
    assert abs(float(res.log_likelihood) - exact_ll) < tol
    assert abs(float(res.log_likelihood_lower) - exact_ll) < tol
    data_se = numpy_log_p(params, v).std(ddof=1) / np.sqrt(len(v))
    assert data_se <= float(res.standard_error) < data_se + float(res.log_partition_stderr) + 1e-9


def test_gaussian_bernoulli_rbm_trains_on_continuous_data(x64):
    # A 2-D Gaussian mixture with well separated means; the exact density NLL (2 hidden units
    # enumerated, Gaussian visibles integrated) must drop below that of the diagonal Gaussian
    # the model starts as, on the same 2000 test points (measured: 3.219 -> 3.178; learning is
    # slow: with sigma ~ 2 the hidden inputs v W / sigma^2 are small, Cho et al. 2011).
    c = _config(rbm="gaussian_bernoulli", num_hidden=2, persistent=True, num_chains=200)
    c.model.momentum = 0.5
    c.optim.learning_rate, c.train.num_steps = 0.05, 800
    trainer = jitted(rbm_model.make(c, (2,)))
    means = jnp.array([[-2.0, 0.0], [2.0, 1.0]])

    def data(key, n=200):
        z = jax.random.bernoulli(jax.random.fold_in(key, 0), 0.5, (n,)).astype(int)
        return means[z] + 0.5 * jax.random.normal(jax.random.fold_in(key, 1), (n, 2))

    @jax.jit
    def train(state, key):
        def body(state, k):
            return trainer.step(state, data(k), k)[0], None

        return jax.lax.scan(body, state, jax.random.split(key, 800))[0]

    test = data(jax.random.key(9), 2000)
    state = trainer.init(jax.random.key(0), test)
    assert isinstance(state.params, rbm.GaussianBernoulliRBM)
    before = float(jnp.mean(trainer.evaluate(state, test, jax.random.key(1))["nll"]))
    state = train(state, jax.random.key(2))
    out = trainer.evaluate(state, test, jax.random.key(1))
    assert "pseudo_log_likelihood" not in out
    np.testing.assert_allclose(out["nll"], -rbm.log_likelihood(state.params, test), rtol=1e-12)
    assert before - float(jnp.mean(out["nll"])) > 0.02, (before, out["nll"].mean())


@pytest.mark.parametrize(
    "change,match",
    [
        (("model", "rbm", "spin"), r"model.rbm must be one of"),
        (("model", "num_hidden", 0), r"model.num_hidden must be an integer >= 1"),
        (("model", "momentum", 1.0), r"model.momentum must be in \[0, 1\)"),
        (("model", "weight_decay", -1.0), r"model.weight_decay must be finite and >= 0"),
        (("optim", "name", "adam"), r"optim.name must be one of \('sgd',\)"),
        (("optim", "weight_decay", 0.1), r"optim.weight_decay must be 0 for an RBM"),
    ],
)
def test_bad_configs_name_the_field(change, match):
    c = _config()
    section, field, value = change
    c[section][field] = value
    with pytest.raises(ValueError, match=match):
        rbm_model.make(c, (8, 8))


def test_labelled_batches_and_wrong_shapes_are_refused():
    trainer = rbm_model.make(_config(), (8, 8))
    with pytest.raises(ValueError, match="data.labels=False"):
        trainer.init(jax.random.key(0), {"x": np.zeros((2, 8, 8)), "y": np.zeros(2)})
    with pytest.raises(ValueError, match=r"batch must have shape \(n, \*\(8, 8\)\)"):
        trainer.init(jax.random.key(0), np.zeros((2, 64)))
    with pytest.raises(ValueError, match="rbm_digits takes"):
        rbm_digits.get_config("cd1,pcd")
