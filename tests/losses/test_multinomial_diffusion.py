"""Multinomial diffusion against numpy: the marginal is the product of the one-step transition
matrices, the posterior is Bayes' rule, the KL terms and the prior term are the categorical
formulas; simulating the chain reproduces the marginal; a network that knows x0 makes every term
vanish; on a distribution over the 8 states of 3 binary pixels, the network that reproduces the
exact reverse marginals gives a bound at the entropy and samples from the data distribution."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jgen.losses import multinomial_diffusion as md
from jgen.sdes.schedules import cosine_betas

K = 3
N = 12


def _transition_matrices(betas, k):
    """``Q_t[i, j] = q(x_t = j | x_{t-1} = i) = (1 - beta_t) [i == j] + beta_t / K``."""
    betas = np.asarray(betas, np.float64)
    return [(1 - b) * np.eye(k) + b / k * np.ones((k, k)) for b in betas]


def _products(mats):
    """``Qbar_t = Q_0 Q_1 ... Q_t`` by matrix products."""
    out, acc = [], np.eye(mats[0].shape[0])
    for m in mats:
        acc = acc @ m
        out.append(acc)
    return out


def _steps(t, n):
    return jnp.full((n,), t, jnp.int32)


def test_marginal_and_transition_are_matrix_products(x64):
    betas = cosine_betas(N)
    mats = _transition_matrices(betas, K)
    bars = _products(mats)
    # Every (t, x0) pair as one example of event shape (1,), in one call.
    t, x0 = (jnp.asarray(a) for a in np.meshgrid(np.arange(N), np.arange(K), indexing="ij"))
    t, x0 = t.ravel(), x0.reshape(-1, 1)
    soft = jax.nn.softmax(jax.random.normal(jax.random.key(0), (N * K, 1, K)), -1)  # mixtures
    marginal = np.exp(md.log_marginal(md.log_one_hot(x0, K), t, betas))[:, 0]
    step = np.exp(md.log_transition(md.log_one_hot(x0, K), t, betas))[:, 0]
    mixed = np.exp(md.log_marginal(jnp.log(soft), t, betas))[:, 0]
    for row, (s, k) in enumerate(zip(np.asarray(t), np.asarray(x0)[:, 0], strict=True)):
        np.testing.assert_allclose(marginal[row], bars[s][k], atol=1e-14)
        np.testing.assert_allclose(step[row], mats[s][k], atol=1e-14)
        np.testing.assert_allclose(mixed[row], np.asarray(soft[row, 0]) @ bars[s], atol=1e-14)


def test_posterior_is_bayes_rule_and_the_model_is_the_d3pm_mixture(x64):
    betas = cosine_betas(N)
    mats = _transition_matrices(betas, K)
    bars = _products(mats)
    # Every (t, x_t, x0) triple as one example, in one call.
    rows = np.array(list(itertools.product(range(N), range(K), range(K))))
    t, x_t, x0 = jnp.asarray(rows[:, 0]), jnp.asarray(rows[:, 1:2]), jnp.asarray(rows[:, 2:])
    x0_hat = jax.nn.softmax(jax.random.normal(jax.random.key(0), (len(rows), 1, K)), -1)
    post = np.exp(md.log_posterior(md.log_one_hot(x_t, K), md.log_one_hot(x0, K), t, betas))
    model = np.exp(md.log_posterior(md.log_one_hot(x_t, K), jnp.log(x0_hat), t, betas))
    hat = np.asarray(x0_hat)[:, 0]
    for row, (s, i, k) in enumerate(rows):
        if s == 0:
            # The state before step 0 is x0 itself.
            expected = np.eye(K)[k]
            joint = hat[row] * mats[0][:, i]
        else:
            # q(x_{t-1} = j | x_t = i, x0 = k) = Q_t[j, i] Qbar_{t-1}[k, j] / Qbar_t[k, i].
            expected = mats[s][:, i] * bars[s - 1][k] / bars[s][k, i]
            # D3PM: p(x_{t-1} = j | x_t) ∝ sum_k x0_hat_k q(x_t = i | j) q(x_{t-1} = j | k).
            joint = mats[s][:, i] * (hat[row] @ bars[s - 1])
        np.testing.assert_allclose(post[row, 0], expected, atol=1e-13)
        np.testing.assert_allclose(model[row, 0], joint / joint.sum(), atol=1e-13)


def test_kl_prior_and_bound_terms_match_numpy(x64):
    betas = cosine_betas(N)
    mats = _transition_matrices(betas, K)
    bars = _products(mats)
    key = jax.random.key(1)
    x0 = jax.random.randint(key, (6, 2, 3), 0, K)
    log_q = jax.nn.log_softmax(jax.random.normal(jax.random.key(2), (6, 2, 3, K)), -1)
    log_p = jax.nn.log_softmax(jax.random.normal(jax.random.key(3), (6, 2, 3, K)), -1)
    q, p = np.exp(log_q), np.exp(log_p)
    np.testing.assert_allclose(
        md.categorical_kl(log_q, log_p), np.sum(q * np.log(q / p), axis=(1, 2, 3)), rtol=1e-12
    )
    x0n = np.asarray(x0)
    last = bars[-1][x0n]  # (6, 2, 3, K): q(x_{N-1} | x0) per pixel
    # At N = 12 steps q(x_{N-1} | x0) is uniform to 1e-9 (both sides round at 1e-16); the
    # first 3 steps of the schedule leave most of x0.
    np.testing.assert_allclose(
        md.prior_kl(x0, betas, K), np.sum(last * np.log(last * K), axis=(1, 2, 3)), atol=1e-14
    )
    early = bars[2][x0n]
    np.testing.assert_allclose(
        md.prior_kl(x0, betas[:3], K),
        np.sum(early * np.log(early * K), axis=(1, 2, 3)),
        rtol=1e-12,
    )

    weights = jax.random.normal(jax.random.key(4), (K, K))

    def logits_fn(x_t, t):  # an arbitrary deterministic network of (x_t, t)
        return jax.nn.one_hot(x_t, K) @ weights + 0.1 * t[:, None, None, None]

    t = jnp.array([0, 1, 5, 11, 0, 7])
    terms, aux = jax.jit(lambda k: md.vlb_terms(logits_fn, x0, t, k, betas, K))(jax.random.key(5))
    xtn = np.asarray(aux["x_t"])
    hat = np.asarray(jax.nn.softmax(logits_fn(aux["x_t"], t), -1))
    for n in range(6):
        s = int(t[n])
        expected = 0.0
        for idx in np.ndindex(2, 3):
            i, k = xtn[(n, *idx)], x0n[(n, *idx)]
            if s == 0:
                joint = hat[(n, *idx)] * mats[0][:, i]
                expected -= np.log(joint[k] / joint.sum())
            else:
                true = mats[s][:, i] * bars[s - 1][k]
                true /= true.sum()
                model = mats[s][:, i] * (hat[(n, *idx)] @ bars[s - 1])
                model /= model.sum()
                expected += np.sum(true * np.log(true / model))
        np.testing.assert_allclose(terms[n], expected, rtol=1e-10)


def test_prior_kl_of_a_near_uniform_end_is_accurate_in_float32():
    # 20 cosine steps end at abar = 6e-6: the KL is 1.17e-9 nats per 8x8 image (float64
    # numpy), far below float32's rounding of sum_k q_k log(K q_k) (measured -1.9e-6 that way).
    betas = cosine_betas(20)
    w = np.prod(1 - np.asarray(betas, np.float64))
    q = np.array([w + (1 - w) / 2, (1 - w) / 2])
    expected = 64 * np.sum(q * np.log(2 * q))
    got = np.asarray(md.prior_kl(jnp.zeros((3, 8, 8), jnp.int32), betas, 2))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_simulated_forward_chain_matches_the_marginal():
    # 20000 independent chains from x0 = 1, one step of log_transition at a time; at the
    # checked steps the category counts and q_sample's agree with the numpy marginal
    # (chi-square on K - 1 = 2 degrees of freedom, p > 1e-3).
    betas = cosine_betas(N)
    bars = _products(_transition_matrices(betas, K))
    n = 20_000
    x = jnp.ones((n, 1), jnp.int32)
    key = jax.random.key(6)
    p_values = []
    for t in range(N):
        log_q = md.log_transition(md.log_one_hot(x, K), _steps(t, n), betas)
        x = md.sample_categorical(jax.random.fold_in(key, t), log_q)
        if t in (0, 4, 8, N - 1):
            direct = md.q_sample(
                jax.random.fold_in(key, 100 + t),
                jnp.ones((n, 1), jnp.int32),
                _steps(t, n),
                betas,
                K,
            )
            for draws in (x, direct):
                counts = np.bincount(np.asarray(draws).ravel(), minlength=K)
                p_values.append(stats.chisquare(counts, n * bars[t][1]).pvalue)
    assert min(p_values) > 1e-3, p_values


def test_a_network_that_knows_x0_makes_every_term_vanish():
    betas = cosine_betas(20)
    x0 = jax.random.randint(jax.random.key(7), (8, 4, 4), 0, 2)
    oracle = lambda x_t, t: 50.0 * jax.nn.one_hot(x0, 2)  # noqa: E731

    @jax.jit
    def run(key):
        bound, aux = md.vlb(oracle, x0, key, betas, 2)
        x, _ = md.multinomial_sample(oracle, jax.random.fold_in(key, 1), x0.shape, betas, 2)
        return bound, aux["terms"], md.prior_kl(x0, betas, 2), x

    bound, terms, prior, x = run(jax.random.key(8))
    assert np.abs(np.asarray(terms)).max() < 1e-5
    np.testing.assert_allclose(bound, prior, atol=1e-5)
    # Sampled from the same network, ancestral sampling returns x0.
    np.testing.assert_array_equal(x, x0)


# A distribution over the 8 states of 3 binary pixels, far from independent.
STATES = np.array(list(itertools.product([0, 1], repeat=3)))
PROBS = np.array([0.3, 0.05, 0.1, 0.05, 0.02, 0.18, 0.1, 0.2])
ENTROPY = -np.sum(PROBS * np.log(PROBS))  # 1.830 nats


def _enumerating_network(betas, leave_one_out):
    """``x0_hat`` from the exact posterior over the 8 states, given ``x_t`` (by enumeration,
    with ``abar`` from numpy).

    ``leave_one_out`` false: ``E[x0_i | x_t]``. True: ``P(x0_i | x_t) / q(x_ti | x0_i)``
    normalised, i.e. the posterior of ``x0_i`` given the *other* pixels of ``x_t``. As
    ``theta_post(x_t, m)`` is ``L(m) / Z(m)`` with ``L``, ``Z`` linear in ``m`` and
    ``Z(x0) = q(x_t | x0)``, this ``m`` makes ``theta_post`` equal to
    ``E[theta_post(x_t, x0) | x_t] = q(x_{t-1,i} | x_t)``, the exact reverse marginal of each
    pixel; the factorised reverse chain then tends to the true one as the steps shrink.
    ``leave_one_out`` may be traced (one compilation serves both networks).
    """
    abar = jnp.asarray(np.cumprod(1 - np.asarray(betas, np.float64)), jnp.float32)
    states, log_probs = jnp.asarray(STATES), jnp.log(jnp.asarray(PROBS, jnp.float32))

    def fn(x_t, t):
        a = abar[t][:, None, None]
        lik = a * (x_t[:, None, :] == states[None]) + (1 - a) / 2  # (n, 8, 3)
        post = jax.nn.softmax(log_probs + jnp.sum(jnp.log(lik), -1), -1)
        ones = post @ states.astype(post.dtype)  # P(x0_i = 1 | x_t)
        m = jnp.stack([1 - ones, ones], -1)
        own = a * (x_t[..., None] == jnp.arange(2)) + (1 - a) / 2  # q(x_ti | x0_i)
        return jnp.log(jnp.where(leave_one_out, m / own, m))

    return fn


def _stratified_mean(values, repeats):
    """Mean over the data distribution of per-example values laid out state by state, and its
    standard error (stratified: the states carry their exact probabilities)."""
    v = np.asarray(values).reshape(len(PROBS), repeats)
    return np.sum(PROBS * v.mean(1)), np.sqrt(np.sum(PROBS**2 * v.var(1, ddof=1) / repeats))


@pytest.fixture(scope="module")
def toy():
    """100 cosine steps; 400 copies of each state; the exact and one-step bounds of both
    enumerating networks from one compiled function."""
    repeats, betas = 400, cosine_betas(100)
    x0 = jnp.asarray(np.repeat(STATES, repeats, 0), jnp.int32)

    @jax.jit
    def bounds(key, leave_one_out):
        fn = _enumerating_network(betas, leave_one_out)
        exact, aux = md.vlb(fn, x0, key, betas, 2)
        one, _ = md.vlb(fn, x0, jax.random.fold_in(key, 1), betas, 2, estimator="sample")
        return exact, aux["bits_per_dim"], one

    return repeats, betas, bounds


def test_exact_reverse_marginals_give_the_entropy_and_the_data(toy):
    # Measured (seeds below): bound 1.836 +- 0.012 against the entropy 1.830; the one-step
    # estimate 1.85 +- 0.11; chi-square of 10000 samples on 7 degrees of freedom 2.9
    # (p = 0.89). The posterior-mean network of the next test samples with chi-square ~7600.
    repeats, betas, bounds = toy
    exact, bpd, one = bounds(jax.random.key(10), True)
    mean, se = _stratified_mean(exact, repeats)
    assert ENTROPY - 4 * se < mean < ENTROPY + 4 * se + 0.02, (mean, se)
    np.testing.assert_allclose(bpd, exact / (3 * np.log(2)), rtol=1e-6)
    mean_one, se_one = _stratified_mean(one, repeats)
    assert abs(mean_one - mean) < 4 * np.hypot(se, se_one), (mean_one, se_one)

    n = 10_000
    fn = _enumerating_network(betas, True)
    x, _ = jax.jit(lambda k: md.multinomial_sample(fn, k, (n, 3), betas, 2))(jax.random.key(12))
    counts = np.bincount(np.asarray(x) @ np.array([4, 2, 1]), minlength=8)
    chi2 = stats.chisquare(counts, n * PROBS)
    assert chi2.pvalue > 1e-3, (counts, chi2)


def test_the_posterior_mean_network_gives_a_valid_but_loose_bound(toy):
    # Plugging x0_hat = E[x0 | x_t] into theta_post is not the exact reverse (the normaliser
    # q(x_t | x0) differs between the x0 it averages over): its bound stays above the entropy
    # but does not reach it. Measured: 2.650 +- 0.025 against 1.830.
    repeats, _, bounds = toy
    exact, _, _ = bounds(jax.random.key(13), False)
    mean, se = _stratified_mean(exact, repeats)
    assert mean > ENTROPY + 0.3, (mean, se)


def test_bad_inputs_name_the_argument():
    betas = cosine_betas(10)
    x0 = jnp.zeros((2, 3), jnp.int32)
    net = lambda x_t, t: jnp.zeros((*x_t.shape, 2))  # noqa: E731
    with pytest.raises(ValueError, match="x0 must hold integer"):
        md.vlb(net, x0.astype(jnp.float32), jax.random.key(0), betas, 2)
    with pytest.raises(ValueError, match=r"x0 must hold categories in \[0, 2\)"):
        md.vlb(net, x0 + 2, jax.random.key(0), betas, 2)
    with pytest.raises(ValueError, match="num_classes"):
        md.vlb(net, x0, jax.random.key(0), betas, 1)
    with pytest.raises(ValueError, match=r"logits_fn must return logits of shape \(2, 3, 2\)"):
        md.vlb(lambda x_t, t: jnp.zeros((2, 3, 3)), x0, jax.random.key(0), betas, 2)
    with pytest.raises(ValueError, match="estimator"):
        md.vlb(net, x0, jax.random.key(0), betas, 2, estimator="importance")
    with pytest.raises(ValueError, match=r"t must hold steps in \[0, 10\)"):
        md.vlb_terms(net, x0, jnp.array([0, 10]), jax.random.key(0), betas, 2)
    with pytest.raises(ValueError, match="betas must lie in"):
        md.prior_kl(x0, jnp.array([0.1, 1.0]), 2)
    with pytest.raises(ValueError, match="log_x0 must have the shape"):
        md.log_posterior(md.log_one_hot(x0, 2), jnp.zeros((2, 4, 2)), jnp.array([1, 1]), betas)
