"""RBM energies against brute force: every state of small layers enumerated with the energies
written here in numpy, Gaussian layers integrated by scipy quadrature, scikit-learn's
pseudo-likelihood, and block Gibbs chains whose exact law is propagated with dense kernels.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.special
from sklearn.neural_network import BernoulliRBM as SklearnRBM

from jgen.energies import rbm
from jgen.energies.rbm import BernoulliRBM, GaussianBernoulliRBM, SpinGaussianRBM
from jgen.samplers.gibbs import block_gibbs
from tests.samplers.test_gibbs import all_states, chi_square_pvalue, state_index

P_MIN = 1e-3  # the chi-square tests' p-value threshold


def spin_states(d):
    return 2 * all_states(d) - 1


# ------------------------------------------------------------ numpy energies (the ground truth)


def bernoulli_energy(p, v, h):
    """``-a.v - b.h - v^T W h`` on the grid ``(len(v), len(h))``."""
    w, a, b = (np.asarray(x) for x in p)
    return -(v @ a)[:, None] - (h @ b)[None, :] - v @ w @ h.T


def gaussian_bernoulli_energy(p, v, h):
    """``1/2 |(v - mu) / sigma|^2 - (v / sigma^2)^T W h - b.h`` on the grid."""
    w, mu, b, log_sigma = (np.asarray(x) for x in p)
    sigma2 = np.exp(2 * log_sigma)
    quad = 0.5 * np.sum((v - mu) ** 2 / sigma2, axis=1)
    return quad[:, None] - (v / sigma2) @ w @ h.T - (h @ b)[None, :]


def spin_energy(p, s, lam):
    """``|lambda|^2 / 2 - field.s - s^T W lambda`` on the grid ``(len(s), len(lam))``."""
    w, field = (np.asarray(x) for x in p)
    return 0.5 * np.sum(lam**2, axis=1)[None, :] - (s @ field)[:, None] - s @ w @ lam.T


def numpy_params(p):
    """The same parameters as numpy arrays: quadrature calls the energies thousands of times, and
    converting JAX arrays at every call would dominate."""
    return type(p)(*(np.asarray(x) for x in p))


def normalized(neg_energy, axis=None):
    return np.exp(neg_energy - scipy.special.logsumexp(neg_energy, axis=axis, keepdims=True))


def make_bernoulli(d_v, d_h, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return BernoulliRBM(
        jnp.asarray(rng.normal(0, scale, (d_v, d_h))),
        jnp.asarray(rng.normal(0, 0.5, d_v)),
        jnp.asarray(rng.normal(0, 0.5, d_h)),
    )


def make_gaussian_bernoulli(d_v, d_h, seed=0):
    rng = np.random.default_rng(seed)
    return GaussianBernoulliRBM(
        jnp.asarray(rng.normal(0, 0.8, (d_v, d_h))),
        jnp.asarray(rng.normal(0, 0.5, d_v)),
        jnp.asarray(rng.normal(0, 0.5, d_h)),
        jnp.asarray(rng.normal(-0.2, 0.3, d_v)),
    )


def make_spin(n, p, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    return SpinGaussianRBM(
        jnp.asarray(rng.normal(0, scale, (n, p))), jnp.asarray(rng.normal(0, 0.3, n))
    )


# ------------------------------------------------------------------ Bernoulli RBM, enumeration


def test_bernoulli_energy_free_energy_and_conditionals_match_enumeration(x64):
    params = make_bernoulli(5, 4)
    v, h = all_states(5), all_states(4)
    e = bernoulli_energy(params, v, h)  # (32, 16)
    vv, hh = np.repeat(v, len(h), 0), np.tile(h, (len(v), 1))
    np.testing.assert_allclose(rbm.energy(params, vv, hh), e.ravel(), atol=1e-12)
    np.testing.assert_allclose(
        rbm.free_energy(params, v), -scipy.special.logsumexp(-e, axis=1), atol=1e-12
    )
    # p(h_j = 1 | v) = sum_h p(h | v) h_j with p(h | v) the normalised rows of exp(-E).
    np.testing.assert_allclose(rbm.hidden_probs(params, v), normalized(-e, 1) @ h, atol=1e-12)
    np.testing.assert_allclose(rbm.visible_probs(params, h), normalized(-e, 0).T @ v, atol=1e-12)
    np.testing.assert_array_equal(rbm.hidden_mean(params, v), rbm.hidden_probs(params, v))
    np.testing.assert_array_equal(rbm.visible_mean(params, h), rbm.visible_probs(params, h))


@pytest.mark.parametrize("d_v, d_h", [(3, 6), (6, 3), (4, 4)])
def test_bernoulli_log_partition_enumerates_the_smaller_layer(x64, d_v, d_h):
    params = make_bernoulli(d_v, d_h, seed=d_v)
    v = all_states(d_v)
    e = bernoulli_energy(params, v, all_states(d_h))
    log_z = scipy.special.logsumexp(-e)  # both layers enumerated
    assert abs(float(rbm.log_partition(params)) - log_z) < 1e-10
    log_p = rbm.log_likelihood(params, v)
    np.testing.assert_allclose(log_p, scipy.special.logsumexp(-e, axis=1) - log_z, atol=1e-10)


def test_exact_log_likelihood_gradient_is_data_minus_model_statistics(x64):
    # d/dW mean_v log p(v) = <v p(h|v)^T>_data - <v h^T>_model (Hinton 2002), by enumeration.
    params = make_bernoulli(4, 3, seed=3)
    data = all_states(4)[[1, 5, 6, 11, 15]]
    v, h = all_states(4), all_states(3)
    e = bernoulli_energy(params, v, h)
    e_data = bernoulli_energy(params, data, h)
    positive = data.T @ (normalized(-e_data, 1) @ h) / len(data)
    joint = normalized(-e)
    negative = np.einsum("vh,vi,hj->ij", joint, v, h)
    grad = jax.jit(jax.grad(lambda p: jnp.mean(rbm.log_likelihood(p, data))))(params)
    np.testing.assert_allclose(grad.weights, positive - negative, atol=1e-12)
    np.testing.assert_allclose(grad.visible_bias, data.mean(0) - joint.sum(1) @ v, atol=1e-12)


# ------------------------------------------------------- Gaussian-Bernoulli RBM, quadrature


def test_gaussian_bernoulli_free_energy_and_hidden_probs_match_enumeration(x64):
    params = make_gaussian_bernoulli(3, 4)
    v = np.random.default_rng(1).normal(0, 1.5, (10, 3))
    h = all_states(4)
    e = gaussian_bernoulli_energy(params, v, h)
    np.testing.assert_allclose(
        rbm.free_energy(params, v), -scipy.special.logsumexp(-e, axis=1), atol=1e-12
    )
    np.testing.assert_allclose(rbm.hidden_probs(params, v), normalized(-e, 1) @ h, atol=1e-12)
    vv, hh = np.repeat(v, len(h), 0), np.tile(h, (len(v), 1))
    np.testing.assert_allclose(rbm.energy(params, vv, hh), e.ravel(), atol=1e-12)


def test_gaussian_bernoulli_log_partition_matches_quadrature(x64):
    # d_v = 1: Z = int sum_h exp(-E(v, h)) dv on the real line.
    params = make_gaussian_bernoulli(1, 3, seed=2)
    p_np = numpy_params(params)
    h = all_states(3)
    z, _ = scipy.integrate.quad(
        lambda x: np.exp(-gaussian_bernoulli_energy(p_np, np.array([[x]]), h)).sum(),
        -np.inf,
        np.inf,
        epsabs=0,
        epsrel=1e-12,
    )
    assert abs(float(rbm.log_partition(params)) - np.log(z)) < 1e-9

    # d_v = 2: a 2-D integral over a box 12 standard deviations around every conditional mean
    # (the mass outside is below exp(-72)).
    params = make_gaussian_bernoulli(2, 2, seed=3)
    w, mu, b, log_sigma = numpy_params(params)
    h = all_states(2)
    means, sigma = mu + h @ w.T, np.exp(log_sigma)
    lo, hi = means.min(0) - 12 * sigma, means.max(0) + 12 * sigma
    # E(v, h) at v = (x, y) in Python floats (dblquad evaluates it ~50 000 times):
    # 1/2 sum_i (v_i - mu_i)^2 / sigma_i^2 - sum_i v_i (W h)_i / sigma_i^2 - b.h for each h.
    (m0, m1), (s0, s1) = mu.tolist(), (sigma**2).tolist()
    couplings = [(wh[0] / s0, wh[1] / s1, bh) for wh, bh in zip(h @ w.T, h @ b, strict=True)]

    def integrand(y, x):
        quadratic = 0.5 * ((x - m0) ** 2 / s0 + (y - m1) ** 2 / s1)
        return sum(math.exp(-quadratic + x * c0 + y * c1 + bh) for c0, c1, bh in couplings)

    z, _ = scipy.integrate.dblquad(integrand, lo[0], hi[0], lo[1], hi[1], epsabs=0, epsrel=1e-10)
    assert abs(float(rbm.log_partition(params)) - np.log(z)) < 1e-8


def test_gaussian_bernoulli_visible_given_hidden_is_the_stated_gaussian(x64):
    # v | h has mean mu + W h and variance sigma^2: moments of exp(-E(., h)) by quadrature.
    params = make_gaussian_bernoulli(1, 3, seed=4)
    p_np = numpy_params(params)
    h = all_states(3)
    mean, var = rbm.visible_mean(params, h)[:, 0], float(np.exp(2 * params.log_sigma[0]))
    for k in range(len(h)):

        def moment(order, k=k):
            def f(x):
                return x**order * np.exp(
                    -gaussian_bernoulli_energy(p_np, np.array([[x]]), h[k : k + 1])[0, 0]
                )

            return scipy.integrate.quad(f, -np.inf, np.inf, epsabs=0, epsrel=1e-12)[0]

        m0, m1, m2 = moment(0), moment(1), moment(2)
        assert abs(m1 / m0 - float(mean[k])) < 1e-9
        assert abs(m2 / m0 - (m1 / m0) ** 2 - var) < 1e-9


# ------------------------------------------------------------- spin RBM (Hopfield), quadrature


def spin_free_energy_by_quadrature(params, s):
    """``-log int exp(-H(s, lambda)) d lambda`` for one spin state, P = 1 (quad) or 2 (dblquad
    over a box 12 standard deviations beyond every mean ``W^T s``)."""
    s, p_np = s[None], numpy_params(params)
    n_hidden = params.weights.shape[1]
    if n_hidden == 1:

        def f(x):
            return np.exp(-spin_energy(p_np, s, np.array([[x]]))[0, 0])

        return -np.log(scipy.integrate.quad(f, -np.inf, np.inf, epsabs=0, epsrel=1e-12)[0])
    assert n_hidden == 2
    # H(s, lambda) = |lambda|^2 / 2 - field.s - lambda.(W^T s) at lambda = (x, y), in Python floats
    # (dblquad evaluates it ~50 000 times).
    field_term = float(s[0] @ p_np.field)
    u0, u1 = (s[0] @ p_np.weights).tolist()
    bound = max(abs(u0), abs(u1)) + 12

    def g(y, x):
        return math.exp(-(0.5 * (x * x + y * y) - field_term - u0 * x - u1 * y))

    z = scipy.integrate.dblquad(g, -bound, bound, -bound, bound, epsabs=0, epsrel=1e-10)[0]
    return -np.log(z)


@pytest.mark.parametrize("n_spins, n_hidden, seed", [(3, 1, 5), (2, 2, 6)])
def test_spin_free_energy_is_the_hopfield_energy_with_lambda_integrated(
    x64, n_spins, n_hidden, seed
):
    params = make_spin(n_spins, n_hidden, seed=seed, scale=0.7)
    s = spin_states(n_spins)
    free = np.array([spin_free_energy_by_quadrature(params, row) for row in s])
    np.testing.assert_allclose(rbm.free_energy(params, s), free, atol=1e-8)
    # log Z: the same integrals summed over the spin states.
    assert abs(float(rbm.log_partition(params)) - scipy.special.logsumexp(-free)) < 1e-8


def test_spin_conditionals_match_enumerated_ratios(x64):
    params = make_spin(4, 2, seed=7, scale=0.8)
    p_np = numpy_params(params)
    s = spin_states(4)
    lam = np.random.default_rng(8).normal(0, 1.5, (6, 2))
    # p(s | lambda) over the 16 spin states; p(s_i = +1 | lambda) = sum_s p(s | lambda) [s_i = 1].
    p_s = normalized(-spin_energy(p_np, s, lam), 0)  # (16, 6)
    np.testing.assert_allclose(rbm.visible_probs(params, lam), p_s.T @ (s > 0), atol=1e-12)
    np.testing.assert_allclose(rbm.visible_mean(params, lam), p_s.T @ s, atol=1e-12)

    # lambda | s for P = 1 by quadrature: mean (W^T s) and unit variance.
    params = make_spin(3, 1, seed=9, scale=0.8)
    p_np = numpy_params(params)
    s = spin_states(3)
    means = rbm.hidden_mean(params, s)[:, 0]
    for k in range(len(s)):
        moments = [
            scipy.integrate.quad(
                lambda x, k=k, r=r: (
                    x**r * np.exp(-spin_energy(p_np, s[k : k + 1], np.array([[x]]))[0, 0])
                ),
                -np.inf,
                np.inf,
                epsabs=0,
                epsrel=1e-12,
            )[0]
            for r in range(3)
        ]
        mean = moments[1] / moments[0]
        assert abs(mean - float(means[k])) < 1e-9
        assert abs(moments[2] / moments[0] - mean**2 - 1.0) < 1e-9


# ---------------------------------------------------------------------- log Z refusals


@pytest.mark.parametrize(
    "params, message",
    [
        (BernoulliRBM(jnp.zeros((21, 22)), jnp.zeros(21), jnp.zeros(22)), "21 units"),
        (
            GaussianBernoulliRBM(jnp.zeros((2, 21)), jnp.zeros(2), jnp.zeros(21), jnp.zeros(2)),
            "hidden layer.*21 units",
        ),
        (SpinGaussianRBM(jnp.zeros((23, 2)), jnp.zeros(23)), "spin layer.*23 units"),
    ],
)
def test_log_partition_refuses_large_layers(params, message):
    with pytest.raises(ValueError, match=message):
        rbm.log_partition(params)


def test_log_partition_limits_and_large_other_layer(x64):
    params = make_bernoulli(5, 6)
    with pytest.raises(ValueError, match="visible layer.*5 units.*max_units=4"):
        rbm.log_partition(params, max_units=4)
    with pytest.raises(ValueError, match="max_units must be <= 30"):
        rbm.log_partition(params, max_units=31)
    # 40 visible units are summed analytically; only the 3 hidden units are enumerated.
    big = make_bernoulli(40, 3, seed=1, scale=0.3)
    e_h = -(all_states(3) @ np.asarray(big.hidden_bias)) - np.logaddexp(
        0, all_states(3) @ np.asarray(big.weights).T + np.asarray(big.visible_bias)
    ).sum(1)
    assert abs(float(rbm.log_partition(big)) - scipy.special.logsumexp(-e_h)) < 1e-10


# ------------------------------------------------------------------------------ samplers


def check_mean(samples, expected, n):
    """Each column mean within 4 binomial standard errors of ``expected``; ``samples`` is
    ``(..., n, d)`` and ``expected`` ``(..., d)``."""
    se = np.sqrt(expected * (1 - expected) / n)
    mean = np.asarray(samples).mean(-2)
    assert np.all(np.abs(mean - expected) < 4 * se + 1e-12), (mean, expected)


def test_samplers_match_conditional_probabilities():
    # Expected values from numpy formulas (themselves checked against enumeration above); every
    # draw in one jitted call, as compiling each random op eagerly costs more than sampling.
    n = 5000
    f32 = lambda p: jax.tree.map(lambda x: x.astype(jnp.float32), p)  # noqa: E731
    bern, spin = f32(make_bernoulli(4, 3, seed=10)), f32(make_spin(4, 2, seed=11, scale=0.8))
    gb = f32(make_gaussian_bernoulli(3, 2, seed=12))
    bern_v, bern_h = all_states(4)[[0, 7, 12]], all_states(3)[[1, 4, 6]]  # 3 states each
    lam, s = np.array([0.5, -1.0]), np.array([1.0, -1.0, -1.0, 1.0])
    gb_h, gb_v = np.array([1.0, 0.0]), np.array([0.3, -1.2, 2.0])

    @jax.jit
    def draw(key):
        k = jax.random.split(key, 6)
        return (
            rbm.sample_hidden(bern, k[0], np.repeat(bern_v, n, 0)).reshape(3, n, 3),
            rbm.sample_visible(bern, k[1], np.repeat(bern_h, n, 0)).reshape(3, n, 4),
            rbm.sample_visible(spin, k[2], np.tile(lam, (n, 1))),
            rbm.sample_hidden(spin, k[3], np.tile(s, (n, 1))),
            rbm.sample_visible(gb, k[4], np.tile(gb_h, (n, 1))),
            rbm.sample_hidden(gb, k[5], np.tile(gb_v, (n, 1))),
        )

    bern_hs, bern_vs, spin_s, spin_lam, gb_vs, gb_hs = map(np.asarray, draw(jax.random.key(0)))
    w, a, b = (np.asarray(x) for x in bern)
    check_mean(bern_hs, scipy.special.expit(bern_v @ w + b), n)
    check_mean(bern_vs, scipy.special.expit(bern_h @ w.T + a), n)
    assert set(np.unique(bern_vs)) == {0.0, 1.0} and bern_hs.dtype == np.float32

    # Spins: p(s_i = +1 | lambda) = sigmoid(2 x_i), lambda | s ~ N(W^T s, I).
    w, field = (np.asarray(x) for x in spin)
    assert set(np.unique(spin_s)) == {-1.0, 1.0}
    check_mean(spin_s > 0, scipy.special.expit(2 * (field + w @ lam)), n)
    assert np.all(np.abs(spin_lam.mean(0) - s @ w) < 4 / np.sqrt(n))
    assert np.all(np.abs(spin_lam.var(0) - 1.0) < 4 * np.sqrt(2 / n))  # SE of a variance

    # Gaussian visibles: v | h ~ N(mu + W h, sigma^2); h_j | v ~ Bernoulli(sigmoid(b + (v /
    # sigma^2) W)).
    w, mu, b, log_sigma = (np.asarray(x) for x in gb)
    sigma = np.exp(log_sigma)
    assert np.all(np.abs(gb_vs.mean(0) - (mu + w @ gb_h)) < 4 * sigma / np.sqrt(n))
    assert np.all(np.abs(gb_vs.var(0) - sigma**2) < 4 * sigma**2 * np.sqrt(2 / n))
    check_mean(gb_hs, scipy.special.expit(b + (gb_v / sigma**2) @ w), n)


def chain_law(h_given_v, v_given_h, p_v0, n_steps):
    """Exact law of ``(v_t, h_t)`` after ``n_steps`` block steps from ``p_v0``."""
    p_v = p_v0
    for _ in range(n_steps):
        p_h = p_v @ h_given_v
        p_v = p_h @ v_given_h
    return (p_h[:, None] * v_given_h).T


def test_block_gibbs_with_bernoulli_conditionals_reproduces_enumerated_joint():
    n_chains, n_steps, d_v, d_h = 20_000, 30, 4, 3
    params = make_bernoulli(d_v, d_h, seed=13)
    joint = normalized(-bernoulli_energy(params, all_states(d_v), all_states(d_h)))  # (16, 8)
    p_v0 = np.eye(2**d_v)[0]
    law = chain_law(joint / joint.sum(1, keepdims=True), (joint / joint.sum(0)).T, p_v0, n_steps)
    assert 0.5 * np.abs(law - joint).sum() < 1e-6  # burn-in bias far below the tolerance below

    params32 = jax.tree.map(lambda x: x.astype(jnp.float32), params)
    sample_h, sample_v = rbm.conditionals(params32)
    run = jax.jit(lambda v0, key: block_gibbs(sample_h, sample_v, v0, key, n_steps=n_steps))
    state, _ = run(jnp.zeros((n_chains, d_v)), jax.random.key(14))
    index = state_index(state.v) * 2**d_h + state_index(state.h)
    empirical = np.bincount(index, minlength=joint.size) / n_chains
    # Total variation of n draws: E[TV] <= 1/2 sum_k sqrt(p_k / n) <= 1/2 sqrt(K / n) (Cauchy-
    # Schwarz), and TV moves by at most 1/n per draw, so McDiarmid adds sqrt(log(1/delta) / 2n)
    # at confidence 1 - delta = 1 - 1e-6: 0.040 + 0.019.
    tolerance = 0.5 * np.sqrt(joint.size / n_chains) + np.sqrt(np.log(1e6) / (2 * n_chains))
    tv = 0.5 * np.abs(empirical - joint.ravel()).sum()
    assert tv < tolerance, (tv, tolerance)
    assert chi_square_pvalue(index, joint.ravel()) > P_MIN


def test_block_gibbs_with_gaussian_bernoulli_conditionals_matches_marginals(x64):
    # d_v = 1: the hidden chain h -> v -> h' has kernel K(h, h') = int p(v | h) p(h' | v) dv, with
    # both conditionals normalised from exp(-E) by quadrature, and p(h) from the same integrals.
    n_chains, n_steps = 20_000, 15
    params = make_gaussian_bernoulli(1, 3, seed=15)
    p_np = numpy_params(params)
    h = all_states(3)

    def neg_energy(x):  # -E(x, h) for every h, (8,)
        return -gaussian_bernoulli_energy(p_np, np.array([[x]]), h)[0]

    def integrands(x):  # exp(-E(x, h_j)) and exp(-E(x, h_j)) p(h_k | x), in logs (underflow)
        e = neg_energy(x)
        return np.exp(e), np.exp(e[:, None] + e[None, :] - scipy.special.logsumexp(e)).ravel()

    z_h = scipy.integrate.quad_vec(lambda x: integrands(x)[0], -np.inf, np.inf, epsrel=1e-10)[0]
    p_h = z_h / z_h.sum()
    kernel = scipy.integrate.quad_vec(lambda x: integrands(x)[1], -np.inf, np.inf, epsrel=1e-10)[0]
    kernel = kernel.reshape(8, 8) / z_h[:, None]
    np.testing.assert_allclose(kernel.sum(1), 1.0, atol=1e-8)
    law = normalized(-gaussian_bernoulli_energy(p_np, np.zeros((1, 1)), h))[0]  # h_1 | v_0 = 0
    for _ in range(n_steps - 1):
        law = law @ kernel
    assert 0.5 * np.abs(law - p_h).sum() < 1e-6

    sample_h, sample_v = rbm.conditionals(jax.tree.map(lambda x: x.astype(jnp.float32), params))
    run = jax.jit(lambda v0, key: block_gibbs(sample_h, sample_v, v0, key, n_steps=n_steps))
    state, _ = run(jnp.zeros((n_chains, 1)), jax.random.key(16))
    assert chi_square_pvalue(state_index(state.h), p_h) > P_MIN
    # v_t | h_t ~ p(v | h), so v_t has the marginal p(v): E[v^r] by quadrature, the sample means
    # within 4 standard errors sqrt((E[v^2r] - E[v^r]^2) / n).
    moments = (
        scipy.integrate.quad_vec(
            lambda x: x ** np.arange(5) * np.exp(neg_energy(x)).sum(), -np.inf, np.inf, epsrel=1e-10
        )[0]
        / z_h.sum()
    )
    v = np.asarray(state.v[:, 0], np.float64)
    for r in (1, 2):
        se = np.sqrt((moments[2 * r] - moments[r] ** 2) / n_chains)
        assert abs(np.mean(v**r) - moments[r]) < 4 * se, (r, np.mean(v**r), moments[r], se)


def test_block_gibbs_with_spin_conditionals_keeps_the_hopfield_marginal():
    # The chains start from exact draws of p(s) ∝ exp(-F(s)) with F the Hopfield energy (checked
    # against quadrature above), so they stay exact after any number of correct steps; wrong
    # conditionals drift to another law within a few steps at these couplings.
    n_chains, n_steps = 20_000, 10
    params = make_spin(4, 2, seed=17, scale=0.6)
    s = spin_states(4)
    w, field = (np.asarray(x) for x in params)
    p_s = normalized(s @ field + 0.5 * np.sum((s @ w) ** 2, axis=1))
    rng = np.random.default_rng(18)
    s0 = s[rng.choice(len(s), n_chains, p=p_s)]
    sample_h, sample_v = rbm.conditionals(jax.tree.map(lambda x: x.astype(jnp.float32), params))
    run = jax.jit(lambda v0, key: block_gibbs(sample_h, sample_v, v0, key, n_steps=n_steps))
    state, info = run(jnp.asarray(s0, jnp.float32), jax.random.key(19))
    assert chi_square_pvalue(state_index(state.v > 0), p_s) > P_MIN
    assert float(info["visible_change_rate"]) > 0.1  # the chains do move


# ---------------------------------------------------------------------------- monitoring


def test_pseudo_log_likelihood_matches_scikit_learn_and_enumeration(x64):
    d_v, d_h, n = 6, 4, 64
    params = make_bernoulli(d_v, d_h, seed=20)
    v = (np.random.default_rng(21).random((n, d_v)) < 0.5).astype(np.float64)
    sk = SklearnRBM(n_components=d_h, random_state=22)
    sk.components_ = np.asarray(params.weights).T
    sk.intercept_visible_ = np.asarray(params.visible_bias)
    sk.intercept_hidden_ = np.asarray(params.hidden_bias)
    sk.n_features_in_ = d_v
    index = np.random.RandomState(22).randint(0, d_v, n)  # the flips score_samples draws
    ours = rbm.pseudo_log_likelihood(params, None, v, index=index)
    np.testing.assert_allclose(ours, sk.score_samples(v), atol=1e-12)

    # With a key: each value is D log p(v_i | v_-i) for some i, p from the enumerated marginal.
    log_p = scipy.special.logsumexp(-bernoulli_energy(params, all_states(d_v), all_states(d_h)), 1)
    flipped = np.abs(v[:, None, :] - np.eye(d_v)[None])  # (n, D, D): v with unit i flipped
    lp, lp_flip = (
        log_p[state_index(v)],
        log_p[state_index(flipped.reshape(-1, d_v))].reshape(n, d_v),
    )
    candidates = d_v * (lp[:, None] - np.logaddexp(lp[:, None], lp_flip))
    ours = np.asarray(rbm.pseudo_log_likelihood(params, jax.random.key(23), v))
    chosen = np.argmin(np.abs(candidates - ours[:, None]), axis=1)
    np.testing.assert_allclose(ours, candidates[np.arange(n), chosen], atol=1e-10)
    assert len(np.unique(chosen)) > 1

    # Spins: the flip is s_i -> -s_i, p(s) ∝ exp(-F(s)) from the Hopfield energy.
    spin = make_spin(4, 2, seed=24)
    s = spin_states(4)
    w, field = (np.asarray(x) for x in spin)
    log_p = s @ field + 0.5 * np.sum((s @ w) ** 2, axis=1)
    index = np.arange(16) % 4
    s_flip = s.copy()
    s_flip[np.arange(16), index] *= -1
    lp, lp_flip = log_p, log_p[state_index(s_flip > 0)]
    np.testing.assert_allclose(
        rbm.pseudo_log_likelihood(spin, None, s, index=index),
        4 * (lp - np.logaddexp(lp, lp_flip)),
        atol=1e-12,
    )


def test_reconstruction_error_mean_field_and_sampled(x64):
    params = make_bernoulli(5, 3, seed=25)
    w, a, b = (np.asarray(x) for x in params)
    v = all_states(5)
    mean_h = scipy.special.expit(v @ w + b)
    expected = np.sum((v - scipy.special.expit(mean_h @ w.T + a)) ** 2, axis=1)
    np.testing.assert_allclose(rbm.reconstruction_error(params, None, v), expected, atol=1e-12)

    # Sampled h: the mean over n draws is within 4 standard errors of sum_h p(h|v) err(h).
    n, row = 4000, v[[13]]
    h = all_states(3)
    err_h = np.sum((row - scipy.special.expit(h @ w.T + a)) ** 2, axis=1)
    p_h = normalized(-bernoulli_energy(params, row, h))[0]
    mean, sd = p_h @ err_h, np.sqrt(p_h @ err_h**2 - (p_h @ err_h) ** 2)
    errs = rbm.reconstruction_error(params, jax.random.key(26), np.tile(row, (n, 1)))
    assert abs(float(errs.mean()) - mean) < 4 * sd / np.sqrt(n)


def test_init_params_follows_the_practical_guide():
    d_v, d_h = 60, 50
    p = np.linspace(0.0, 1.0, d_v)
    params = rbm.init_params(jax.random.key(27), d_v, d_h, scale=0.01, visible_mean=p)
    assert params.weights.shape == (d_v, d_h) and params.hidden_bias.shape == (d_h,)
    np.testing.assert_array_equal(params.hidden_bias, 0.0)
    clipped = np.clip(p, 1e-4, 1 - 1e-4)
    # float32: 1 - 1e-4 is rounded, so the largest logit is good to about 1e-4 only.
    np.testing.assert_allclose(params.visible_bias, np.log(clipped / (1 - clipped)), atol=1e-3)
    # The sample standard deviation of 3000 N(0, 0.01^2) draws: relative SE 1/sqrt(2 * 3000).
    assert abs(float(np.std(params.weights)) / 0.01 - 1) < 4 / np.sqrt(2 * d_v * d_h)
    np.testing.assert_array_equal(rbm.init_params(jax.random.key(0), 3, 2).visible_bias, 0.0)
    with pytest.raises(ValueError, match=r"visible_mean must have shape \(3,\)"):
        rbm.init_params(jax.random.key(0), 3, 2, visible_mean=np.ones(4) / 2)
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        rbm.init_params(jax.random.key(0), 3, 2, scale=0.0)


def test_bad_inputs_raise_with_clear_messages():
    params = make_bernoulli(4, 3)
    with pytest.raises(ValueError, match=r"v must have shape \(n, 4\); got shape \(2, 5\)"):
        rbm.free_energy(params, np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"h must have shape \(n, 3\)"):
        rbm.sample_visible(params, jax.random.key(0), np.zeros(3))
    with pytest.raises(ValueError, match="same batch size"):
        rbm.energy(params, np.zeros((2, 4)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"BernoulliRBM.hidden_bias must have shape \(3,\)"):
        rbm.free_energy(params._replace(hidden_bias=jnp.zeros(4)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="params must be one of BernoulliRBM"):
        rbm.free_energy((params.weights, params.visible_bias), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="hidden units are Gaussian"):
        rbm.hidden_probs(make_spin(3, 2), np.ones((1, 3)))
    with pytest.raises(ValueError, match="visible units are Gaussian"):
        rbm.visible_probs(make_gaussian_bernoulli(2, 2), np.ones((1, 2)))
    with pytest.raises(ValueError, match="continuous"):
        rbm.pseudo_log_likelihood(make_gaussian_bernoulli(2, 2), jax.random.key(0), np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"index must hold integers in \[0, 4\)"):
        rbm.pseudo_log_likelihood(params, None, np.zeros((2, 4)), index=np.array([0, 4]))
    with pytest.raises(ValueError, match="needs a key or an explicit index"):
        rbm.pseudo_log_likelihood(params, None, np.zeros((2, 4)))
