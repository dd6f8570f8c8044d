"""Gibbs samplers against brute-force enumeration of every state of 10-unit binary models.

Ground truth never comes from the code under test: exact distributions are enumerated from the
energies written here, and the exact distribution of the chains after the burn-in used is
propagated with dense transition kernels, so a failing chi-square test means wrong sampling, not
too short a chain.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from jgen.samplers.gibbs import (
    BlockGibbsState,
    block_gibbs,
    boltzmann_conditional_logit,
    single_site_gibbs,
)

N_VISIBLE, N_HIDDEN, N_UNITS = 6, 4, 10
N_CHAINS = 20_000
P_MIN = 1e-3  # the chi-square tests' p-value threshold


def all_states(d):
    """Every state of ``d`` binary units, ``(2^d, d)``; row ``k`` is ``k`` in binary."""
    return ((np.arange(2**d)[:, None] >> np.arange(d)[::-1]) & 1).astype(np.float64)


def state_index(s):
    d = s.shape[-1]
    return np.asarray(s).astype(np.int64) @ (1 << np.arange(d)[::-1])


def chi_square_pvalue(observed_index, probs):
    """Chi-square goodness of fit of the integer states to ``probs``, pooling every state with an
    expected count below 5 into one bin (the usual validity condition of the test)."""
    n = len(observed_index)
    counts = np.bincount(observed_index, minlength=len(probs)).astype(np.float64)
    expected = n * probs
    small = expected < 5
    f_obs, f_exp = counts[~small], expected[~small]
    if small.any():
        f_obs, f_exp = (
            np.append(f_obs, counts[small].sum()),
            np.append(f_exp, expected[small].sum()),
        )
    return scipy.stats.chisquare(f_obs, f_exp).pvalue


# ---------------------------------------------------------------- Bernoulli RBM, 6 + 4 units


def rbm_params():
    rng = np.random.default_rng(0)
    return (
        rng.normal(0, 1.0, (N_VISIBLE, N_HIDDEN)),
        rng.normal(0, 0.5, N_VISIBLE),
        rng.normal(0, 0.5, N_HIDDEN),
    )


def rbm_joint(w, b, c):
    """``p(v, h) ∝ exp(v.b + h.c + v^T W h)`` over all ``2^6 x 2^4`` states, ``(64, 16)``."""
    v, h = all_states(N_VISIBLE), all_states(N_HIDDEN)
    logits = (v @ b)[:, None] + (h @ c)[None, :] + v @ w @ h.T
    return np.exp(logits - scipy.special.logsumexp(logits))


def rbm_conditionals(w, b, c):
    """The samplers' conditionals: ``h ~ Bern(sigmoid(v W + c))``, ``v ~ Bern(sigmoid(h W^T + b))``
    (also returns the probabilities, checked against the enumerated joint)."""

    def h_prob(v):
        return jax.nn.sigmoid(v @ w.astype(v.dtype) + c.astype(v.dtype))

    def v_prob(h):
        return jax.nn.sigmoid(h @ w.T.astype(h.dtype) + b.astype(h.dtype))

    def sample_h(key, v):
        return jax.random.bernoulli(key, h_prob(v)).astype(v.dtype)

    def sample_v(key, h):
        return jax.random.bernoulli(key, v_prob(h)).astype(h.dtype)

    return sample_h, sample_v, h_prob, v_prob


def test_rbm_conditionals_match_enumerated_joint(x64):
    w, b, c = rbm_params()
    joint = rbm_joint(w, b, c)
    v, h = all_states(N_VISIBLE), all_states(N_HIDDEN)
    _, _, h_prob, v_prob = rbm_conditionals(w, b, c)
    # p(h_j = 1 | v) = sum_h p(v, h) h_j / p(v), and likewise for v given h.
    exact_h = joint @ h / joint.sum(1, keepdims=True)
    exact_v = joint.T @ v / joint.sum(0)[:, None]
    np.testing.assert_allclose(h_prob(jnp.asarray(v)), exact_h, rtol=1e-10)
    np.testing.assert_allclose(v_prob(jnp.asarray(h)), exact_v, rtol=1e-10)


def rbm_chain_distribution(joint, n_steps):
    """Exact law of ``(v_t, h_t)`` after ``n_steps`` block steps from ``v_0 = 0``, ``(64, 16)``."""
    h_given_v = joint / joint.sum(1, keepdims=True)
    v_given_h = (joint / joint.sum(0)).T
    p_v = np.eye(2**N_VISIBLE)[0]
    for _ in range(n_steps):
        p_h = p_v @ h_given_v
        p_v = p_h @ v_given_h
    return (p_h[:, None] * v_given_h).T


def test_block_gibbs_rbm_matches_enumerated_joint():
    w, b, c = rbm_params()
    joint = rbm_joint(w, b, c)
    n_steps = 30
    # The chains' exact law after n_steps differs from p(v, h) by less than 1e-6 in total
    # variation: far below what 20 000 draws can resolve (~1/sqrt(20 000) ~ 1e-2).
    tv = 0.5 * np.abs(rbm_chain_distribution(joint, n_steps) - joint).sum()
    assert tv < 1e-6, tv

    sample_h, sample_v, _, _ = rbm_conditionals(*(jnp.asarray(a, jnp.float32) for a in (w, b, c)))
    run = jax.jit(lambda v0, key: block_gibbs(sample_h, sample_v, v0, key, n_steps=n_steps))
    state, info = run(jnp.zeros((N_CHAINS, N_VISIBLE)), jax.random.key(1))
    assert isinstance(state, BlockGibbsState)
    assert state.v.shape == (N_CHAINS, N_VISIBLE) and state.h.shape == (N_CHAINS, N_HIDDEN)
    joint_index = state_index(state.v) * 2**N_HIDDEN + state_index(state.h)
    p_joint = chi_square_pvalue(joint_index, joint.ravel())
    p_visible = chi_square_pvalue(state_index(state.v), joint.sum(1))
    assert p_joint > P_MIN and p_visible > P_MIN, (p_joint, p_visible)
    # The exact expected fraction of visible units that change per step, averaged over the 30
    # steps from v_0 = 0 like info's running mean. Each chain's average lies in [0, 1], so its
    # standard deviation is at most 1/2 and the standard error over the chains at most
    # 0.5 / sqrt(20 000) = 0.0035; allow 4 of them.
    v = all_states(N_VISIBLE)
    v_to_v = (joint / joint.sum(1, keepdims=True)) @ (joint / joint.sum(0)).T
    expected_change = (v_to_v * np.abs(v[:, None, :] - v[None, :, :]).mean(-1)).sum(1)
    p_v, rates = np.eye(2**N_VISIBLE)[0], []
    for _ in range(n_steps):
        rates.append(p_v @ expected_change)
        p_v = p_v @ v_to_v
    rate = float(info["visible_change_rate"])
    assert rate == pytest.approx(np.mean(rates), abs=4 * 0.5 / np.sqrt(N_CHAINS))


# ------------------------------------------------- fully connected Boltzmann machine, 10 units


def boltzmann_params():
    rng = np.random.default_rng(2)
    a = rng.normal(0, 0.5, (N_UNITS, N_UNITS))
    w = np.triu(a, 1) + np.triu(a, 1).T  # symmetric, zero diagonal
    return w, rng.normal(0, 0.5, N_UNITS)


def energy(s, w, b):
    """``E(s) = -s.b - 1/2 s^T W s`` for a batch ``(n, d)``."""
    return -s @ b - 0.5 * np.einsum("ni,ij,nj->n", s, w, s)


def boltzmann_probs(w, b):
    logits = -energy(all_states(N_UNITS), w, b)
    return np.exp(logits - scipy.special.logsumexp(logits))


def test_boltzmann_conditional_logit_matches_energy_differences(x64):
    # A general W (asymmetric, non-zero diagonal): the helper must still give the exact log-odds
    # E(s with s_i = 0) - E(s with s_i = 1) of the energy above.
    rng = np.random.default_rng(3)
    w, b = rng.normal(0, 1.0, (N_UNITS, N_UNITS)), rng.normal(0, 1.0, N_UNITS)
    s = all_states(N_UNITS)
    logit = boltzmann_conditional_logit(jnp.asarray(w), jnp.asarray(b))
    for i in range(N_UNITS):
        s0, s1 = s.copy(), s.copy()
        s0[:, i], s1[:, i] = 0, 1
        expected = energy(s0, w, b) - energy(s1, w, b)
        np.testing.assert_allclose(logit(jnp.asarray(s), jnp.int32(i)), expected, atol=1e-12)
    # For symmetric W with zero diagonal it is b_i + (W s)_i.
    w_sym, b_sym = boltzmann_params()
    logit = boltzmann_conditional_logit(jnp.asarray(w_sym), jnp.asarray(b_sym))
    for i in range(N_UNITS):
        np.testing.assert_allclose(
            logit(jnp.asarray(s), jnp.int32(i)), b_sym[i] + s @ w_sym[i], atol=1e-12
        )


def sweep_distribution(w, b, order, n_sweeps):
    """Exact law of the sequential-scan chain after ``n_sweeps`` from ``s = 0``, ``(2^d,)``."""
    s = all_states(N_UNITS)
    p = np.eye(2**N_UNITS)[0]
    for _ in range(n_sweeps):
        for i in order:
            bit = 1 << (N_UNITS - 1 - i)
            idx0 = np.nonzero((np.arange(2**N_UNITS) & bit) == 0)[0]
            idx1 = idx0 | bit
            prob1 = scipy.special.expit(energy(s[idx0], w, b) - energy(s[idx1], w, b))
            mass = p[idx0] + p[idx1]
            p = p.copy()
            p[idx0], p[idx1] = mass * (1 - prob1), mass * prob1
    return p


def test_single_site_gibbs_matches_enumerated_distribution():
    w, b = boltzmann_params()
    probs = boltzmann_probs(w, b)
    order = np.random.default_rng(4).permutation(N_UNITS)
    n_sweeps = 20
    tv = 0.5 * np.abs(sweep_distribution(w, b, order, n_sweeps) - probs).sum()
    assert tv < 1e-6, tv  # burn-in bias far below the ~1e-2 resolution of 20 000 draws

    logit = boltzmann_conditional_logit(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32))
    run = jax.jit(lambda s0, key: single_site_gibbs(logit, s0, key, n_sweeps=n_sweeps, order=order))
    s, info = run(jnp.zeros((N_CHAINS, N_UNITS)), jax.random.key(5))
    assert s.shape == (N_CHAINS, N_UNITS) and s.dtype == jnp.float32
    p_value = chi_square_pvalue(state_index(s), probs)
    assert p_value > P_MIN, p_value
    assert 0.0 < float(info["flip_rate"]) < 1.0


def test_float64_chains_keep_dtype_and_match_exact_marginals(x64):
    n = 4000
    w, b = boltzmann_params()
    probs = boltzmann_probs(w, b)
    logit = boltzmann_conditional_logit(jnp.asarray(w), jnp.asarray(b))
    s, _ = jax.jit(lambda key: single_site_gibbs(logit, jnp.zeros((n, N_UNITS)), key, n_sweeps=20))(
        jax.random.key(6)
    )
    assert s.dtype == jnp.float64
    marginal = probs @ all_states(N_UNITS)
    se = np.sqrt(marginal * (1 - marginal) / n)  # binomial standard error of each unit's mean
    assert np.all(np.abs(np.mean(s, 0) - marginal) < 4 * se)

    rw, rb, rc = rbm_params()
    joint = rbm_joint(rw, rb, rc)
    sample_h, sample_v, _, _ = rbm_conditionals(*(jnp.asarray(a) for a in (rw, rb, rc)))
    state, _ = jax.jit(
        lambda key: block_gibbs(sample_h, sample_v, jnp.zeros((n, N_VISIBLE)), key, n_steps=30)
    )(jax.random.key(7))
    assert state.v.dtype == jnp.float64 and state.h.dtype == jnp.float64
    for sample, exact in (
        (state.v, joint.sum(1) @ all_states(N_VISIBLE)),
        (state.h, joint.sum(0) @ all_states(N_HIDDEN)),
    ):
        se = np.sqrt(exact * (1 - exact) / n)
        assert np.all(np.abs(np.mean(sample, 0) - exact) < 4 * se)


def test_vmap_over_keys_matches_separate_runs():
    w, b = boltzmann_params()
    logit = boltzmann_conditional_logit(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32))
    s0 = jnp.zeros((8, N_UNITS))
    keys = jax.random.split(jax.random.key(8), 3)

    @jax.jit
    def run_bm(key):
        return single_site_gibbs(logit, s0, key, n_sweeps=3)[0]

    np.testing.assert_array_equal(jax.vmap(run_bm)(keys), jnp.stack([run_bm(k) for k in keys]))

    sample_h, sample_v, _, _ = rbm_conditionals(
        *(jnp.asarray(a, jnp.float32) for a in rbm_params())
    )

    @jax.jit
    def run_rbm(key):
        return block_gibbs(sample_h, sample_v, s0[:, :N_VISIBLE], key, n_steps=3)[0].v

    np.testing.assert_array_equal(jax.vmap(run_rbm)(keys), jnp.stack([run_rbm(k) for k in keys]))


def test_trajectory_is_thinned_and_ends_at_the_final_state():
    w, b = boltzmann_params()
    logit = boltzmann_conditional_logit(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32))
    s0, key = jnp.zeros((5, N_UNITS)), jax.random.key(9)
    s, info = single_site_gibbs(logit, s0, key, n_sweeps=6, record_every=2)
    assert info["trajectory"].shape == (3, 5, N_UNITS)
    np.testing.assert_array_equal(info["trajectory"][-1], s)
    # Recording does not change the chain, nor does storing the states as int8.
    np.testing.assert_array_equal(single_site_gibbs(logit, s0, key, n_sweeps=6)[0], s)
    s_int, _ = single_site_gibbs(logit, s0.astype(jnp.int8), key, n_sweeps=6)
    assert s_int.dtype == jnp.int8
    np.testing.assert_array_equal(s_int, s)

    sample_h, sample_v, _, _ = rbm_conditionals(
        *(jnp.asarray(a, jnp.float32) for a in rbm_params())
    )
    state, info = block_gibbs(sample_h, sample_v, s0[:, :N_VISIBLE], key, n_steps=4, record_every=4)
    assert info["trajectory"].v.shape == (1, 5, N_VISIBLE)
    assert info["trajectory"].h.shape == (1, 5, N_HIDDEN)
    np.testing.assert_array_equal(info["trajectory"].h[0], state.h)


def test_bad_arguments():
    w, b = boltzmann_params()
    logit = boltzmann_conditional_logit(jnp.asarray(w), jnp.asarray(b))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"s0 must have shape \(n, d\); got shape \(10,\)"):
        single_site_gibbs(logit, jnp.zeros(N_UNITS), key, n_sweeps=1)
    with pytest.raises(ValueError, match=r"order must be a permutation of 0..9"):
        single_site_gibbs(logit, jnp.zeros((2, N_UNITS)), key, n_sweeps=1, order=[0, 1, 1])
    with pytest.raises(ValueError, match="n_steps must be >= 1; got 0"):
        single_site_gibbs(logit, jnp.zeros((2, N_UNITS)), key, n_sweeps=0)
    with pytest.raises(ValueError, match=r"weights must be a square matrix \(d, d\)"):
        boltzmann_conditional_logit(jnp.zeros((3, 4)), jnp.zeros(3))
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\) to match weights; got \(4,"):
        boltzmann_conditional_logit(jnp.zeros((3, 3)), jnp.zeros(4))
    sample_h, sample_v, _, _ = rbm_conditionals(*(jnp.asarray(a) for a in rbm_params()))
    with pytest.raises(ValueError, match=r"v0 must be a batch of shape \(n, \*event\)"):
        block_gibbs(sample_h, sample_v, jnp.float32(0.0), key, n_steps=1)
    with pytest.raises(ValueError, match="record_every must be 0 or a divisor of n_steps=3"):
        block_gibbs(sample_h, sample_v, jnp.zeros((2, N_VISIBLE)), key, n_steps=3, record_every=2)
