"""The fully connected Boltzmann machine against brute-force enumeration written here in numpy:
energies, conditionals, log Z, visible marginals, the learning rule, and single-site Gibbs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from jgen.energies import boltzmann as bm
from jgen.energies.boltzmann import BoltzmannMachine
from jgen.samplers.gibbs import boltzmann_conditional_logit, single_site_gibbs
from tests.samplers.test_gibbs import all_states, chi_square_pvalue, state_index

P_MIN = 1e-3  # the chi-square test's p-value threshold


def make_params(d, seed=0, scale=0.6):
    """Symmetric zero-diagonal couplings built in numpy (not with ``bm.symmetrize``)."""
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.normal(0, scale, (d, d)), 1)
    return BoltzmannMachine(jnp.asarray(upper + upper.T), jnp.asarray(rng.normal(0, 0.5, d)))


def numpy_energy(params, x):
    """``-b.x - 1/2 x^T W x`` for a batch ``(n, d)``."""
    w, b = np.asarray(params.weights), np.asarray(params.bias)
    return -x @ b - 0.5 * np.einsum("ni,ij,nj->n", x, w, x)


def test_energy_and_conditional_logit_match_enumeration(x64):
    d = 8
    params = make_params(d)
    x = all_states(d)
    np.testing.assert_allclose(bm.energy(params, x), numpy_energy(params, x), atol=1e-12)
    log_p = -numpy_energy(params, x)  # unnormalised: Z cancels in the ratios below
    for i in range(d):
        x1, x0 = x.copy(), x.copy()
        x1[:, i], x0[:, i] = 1, 0
        # log p(x_i = 1 | x_-i) / p(x_i = 0 | x_-i) = log p(x with x_i = 1) / p(x with x_i = 0).
        expected = log_p[state_index(x1)] - log_p[state_index(x0)]
        logit = bm.conditional_logit(params, x, i)
        np.testing.assert_allclose(logit, expected, atol=1e-12)
        sampler_logit = boltzmann_conditional_logit(params.weights, params.bias)(x, i)
        np.testing.assert_array_equal(logit, sampler_logit)


def test_log_partition_matches_enumeration(x64):
    params = make_params(10, seed=1)
    log_z = scipy.special.logsumexp(-numpy_energy(params, all_states(10)))
    assert abs(float(bm.log_partition(params)) - log_z) < 1e-10
    # The chunked path (16 chunks of 64 states through lax.map) gives the same sum.
    chunked = bm.logsumexp_over_states(
        lambda x: -bm.energy(params, x), 10, dtype=jnp.float64, chunk_size=64
    )
    assert abs(float(chunked) - log_z) < 1e-10


def test_marginal_visible_log_prob_matches_enumeration(x64):
    d, num_visible = 8, 5
    params = make_params(d, seed=2)
    # all_states puts unit 0 in the most significant bit, so the joint reshapes to p[v, h].
    log_joint = -numpy_energy(params, all_states(d)).reshape(2**num_visible, 2 ** (d - num_visible))
    log_z = scipy.special.logsumexp(log_joint)
    v = all_states(num_visible)
    np.testing.assert_allclose(
        bm.free_energy(params, v, num_visible), -scipy.special.logsumexp(log_joint, 1), atol=1e-12
    )
    log_p = bm.marginal_visible_log_prob(params, v, num_visible)
    np.testing.assert_allclose(log_p, scipy.special.logsumexp(log_joint, 1) - log_z, atol=1e-10)
    # Every unit visible: log p(x) = -E(x) - log Z.
    x = all_states(d)[::7]
    np.testing.assert_allclose(
        bm.marginal_visible_log_prob(params, x, d), -numpy_energy(params, x) - log_z, atol=1e-10
    )


def test_log_likelihood_gradient_is_the_boltzmann_learning_rule(x64):
    # Ackley et al. 1985: d log p(v) / d W_ij = 1/2 (<x_i x_j>_clamped - <x_i x_j>_free) for the
    # energy -1/2 x^T W x (the 1/2 because W_ij and W_ji are separate entries here).
    d, num_visible = 6, 4
    params = make_params(d, seed=3)
    x = all_states(d)
    p = np.exp(-numpy_energy(params, x))
    p /= p.sum()
    data = all_states(num_visible)[[2, 7, 9]]
    clamped = np.zeros((d, d))
    for v in data:
        rows = np.all(x[:, :num_visible] == v, axis=1)
        q = p[rows] / p[rows].sum()  # p(h | v)
        clamped += np.einsum("n,ni,nj->ij", q, x[rows], x[rows]) / len(data)
    free = np.einsum("n,ni,nj->ij", p, x, x)
    grad = jax.jit(
        jax.grad(lambda q: jnp.mean(bm.marginal_visible_log_prob(q, data, num_visible)))
    )(params)
    np.testing.assert_allclose(grad.weights, 0.5 * (clamped - free), atol=1e-12)
    np.testing.assert_allclose(grad.bias, np.diag(clamped) - np.diag(free), atol=1e-12)


def test_single_site_gibbs_with_conditional_logit_keeps_the_enumerated_distribution():
    # The chains start from exact draws of p, so they stay exact after any number of sweeps with
    # the right conditionals; wrong ones drift to another law within a few sweeps at these
    # couplings. 20 000 chains resolve the 64 state probabilities to the chi-square level P_MIN.
    d, n_chains = 6, 20_000
    params = make_params(d, seed=4)
    x = all_states(d)
    probs = np.exp(-numpy_energy(params, x))
    probs /= probs.sum()
    x0 = x[np.random.default_rng(5).choice(len(x), n_chains, p=probs)]
    params32 = jax.tree.map(lambda a: a.astype(jnp.float32), params)
    logit = functools.partial(bm.conditional_logit, params32)
    run = jax.jit(lambda s0, key: single_site_gibbs(logit, s0, key, n_sweeps=10))
    s, info = run(jnp.asarray(x0, jnp.float32), jax.random.key(6))
    assert chi_square_pvalue(state_index(s), probs) > P_MIN
    assert float(info["flip_rate"]) > 0.05  # the chains do move


def test_symmetrize_and_check_weights():
    a = np.random.default_rng(7).normal(size=(5, 5))
    w = np.asarray(bm.symmetrize(jnp.asarray(a)))
    np.testing.assert_allclose(w, w.T)
    np.testing.assert_array_equal(np.diag(w), 0.0)
    off = ~np.eye(5, dtype=bool)
    np.testing.assert_allclose(w[off], ((a + a.T) / 2)[off], rtol=1e-6)
    bm.check_weights(w)
    bm.check_weights(w + 1e-9 * np.triu(np.ones((5, 5)), 1))  # within the tolerance
    with pytest.raises(ValueError, match="must be symmetric: max .* = 0.01"):
        bm.check_weights(w + 0.01 * np.triu(np.ones((5, 5)), 1))
    with pytest.raises(ValueError, match="zero diagonal: max .* = 0.5"):
        bm.check_weights(w + 0.5 * np.eye(5))
    with pytest.raises(ValueError, match=r"square matrix \(d, d\); got shape \(5, 4\)"):
        bm.symmetrize(jnp.zeros((5, 4)))
    with pytest.raises(ValueError, match="symmetric"):
        bm.energy(BoltzmannMachine(jnp.asarray(a), jnp.zeros(5)), np.zeros((1, 5)))


def test_bad_inputs_raise_with_clear_messages():
    big = BoltzmannMachine(jnp.zeros((21, 21)), jnp.zeros(21))
    with pytest.raises(ValueError, match="2\\^21 states: it has 21 units, more than max_units=20"):
        bm.log_partition(big)
    with pytest.raises(ValueError, match="hidden units .* 21 units"):
        bm.free_energy(big, np.zeros((1, 0)), 0)
    params = make_params(6)
    with pytest.raises(ValueError, match="6 units, more than max_units=5"):
        bm.log_partition(params, max_units=5)
    with pytest.raises(ValueError, match="num_visible must be <= d=6"):
        bm.free_energy(params, np.zeros((1, 7)), 7)
    with pytest.raises(ValueError, match=r"v must have shape \(n, 4\); got shape \(2, 3\)"):
        bm.marginal_visible_log_prob(params, np.zeros((2, 3)), 4)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 6\)"):
        bm.conditional_logit(params, np.zeros(6), 0)
    with pytest.raises(ValueError, match=r"bias must have shape \(6,\)"):
        bm.energy(params._replace(bias=jnp.zeros(5)), np.zeros((1, 6)))
    with pytest.raises(ValueError, match="params must be a BoltzmannMachine"):
        bm.energy(tuple(params), np.zeros((1, 6)))
    with pytest.raises(ValueError, match="chunk_size must be a power of two"):
        bm.logsumexp_over_states(lambda x: x.sum(-1), 3, chunk_size=6)
