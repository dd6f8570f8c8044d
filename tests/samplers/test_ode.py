"""ODE solvers and probability-flow likelihoods, checked against closed forms.

Ground truths: ``scipy.linalg.expm`` for a linear ODE, and Gaussian data, whose perturbed
marginals ``p_t = N(m(t) mu, m(t)^2 Sigma + std(t)^2 I)`` are known, so the exact score, the
probability-flow map and ``log p_t`` all have closed forms (``scipy.stats``).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from jgen.samplers.ode import (
    ode_log_likelihood,
    ode_nll,
    odeint,
    odeint_dopri5,
    odeint_fixed,
    sample_probability_flow,
)
from jgen.sdes.sde import VESDE, VPSDE, SubVPSDE

# ---------------------------------------------------------------------------------------------
# A non-autonomous linear ODE dx/dt = a(t) A x (rotation + decay), solved by x(t) = expm(A Phi(t))
# x(0) with Phi(t) = int_0^t a. The time dependence makes a wrong stage time c_i visible.

A = np.array([[-0.5, -2.0], [2.0, -0.5]])
X0 = np.array([[1.0, 0.0], [0.3, -2.0], [0.0, 0.5]])


def rate(t):
    return 1 + 0.5 * jnp.sin(3 * t)


def linear_field(x, t):
    return rate(t)[:, None] * x @ jnp.asarray(A).T


def linear_solution(t):
    phi = t + 0.5 * (1 - math.cos(3 * t)) / 3
    return X0 @ scipy.linalg.expm(A * phi).T


@pytest.mark.parametrize("method, order", [("euler", 1), ("heun", 2), ("rk4", 4)])
def test_fixed_step_order_of_convergence(x64, method, order):
    """log(max error) against log(h) has slope = the order, within 0.3 (measured: 1.06, 2.03,
    3.99 with steps 16..128)."""
    steps = np.array([16, 32, 64, 128])
    errors = [
        np.abs(
            odeint_fixed(linear_field, jnp.asarray(X0), 0.0, 1.0, int(n), method)[0]
            - linear_solution(1.0)
        ).max()
        for n in steps
    ]
    slope = np.polyfit(np.log(1.0 / steps), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.3, (slope, errors)


def test_dopri5_meets_tolerance_and_spends_more_as_it_tightens(x64):
    """rtol=1e-8, atol=1e-10: max relative error <= 1e-7 (measured 7e-9); nfe rises strictly as
    rtol goes 1e-4 -> 1e-6 -> 1e-8 (measured 50, 110, 230) and equals 2 + 6 * attempts."""
    solve = jax.jit(
        lambda rtol: odeint_dopri5(
            linear_field, jnp.asarray(X0), 0.0, 1.0, rtol=rtol, atol=rtol / 100
        )
    )
    nfes = []
    for rtol in (1e-4, 1e-6, 1e-8):
        x1, info = solve(jnp.asarray(rtol))
        relative = np.abs((x1 - linear_solution(1.0)) / linear_solution(1.0)).max()
        assert relative < 10 * rtol, (rtol, relative)
        assert bool(info["success"])
        attempts = int(info["n_accepted"]) + int(info["n_rejected"])
        assert int(info["nfe"]) == 2 + 6 * attempts
        nfes.append(int(info["nfe"]))
    assert nfes[0] < nfes[1] < nfes[2], nfes


def test_backward_integration_and_trajectory(x64):
    """From x(1) at t=1 back to t=0 recovers x(0): RK4 with 100 steps within 1e-6 (measured
    3e-8), dopri5 at rtol 1e-8 within 1e-7 (measured 6e-9). The thinned trajectory holds x(t)
    at t = 0.75, 0.5, 0.25, 0."""
    x1 = jnp.asarray(linear_solution(1.0))
    x0, info = odeint_fixed(linear_field, x1, 1.0, 0.0, 100, "rk4", record_every=25)
    trajectory = info["trajectory"]
    np.testing.assert_allclose(x0, X0, atol=1e-6)
    assert int(info["nfe"]) == 400
    assert trajectory.shape == (4, *X0.shape)
    for row, t in zip(trajectory, (0.75, 0.5, 0.25, 0.0), strict=True):
        np.testing.assert_allclose(row, linear_solution(t), atol=1e-6)
    x0, info = odeint_dopri5(linear_field, x1, 1.0, 0.0, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(x0, X0, atol=1e-7)
    assert bool(info["success"])


def test_dopri5_shares_one_step_size_across_the_batch(x64):
    """Examples decaying at rates 1 and 8 (dx/dt = -k x): the batch takes at least as many
    evaluations as its hardest example alone (measured: 230 = the rate-8 example alone, vs 44 for
    rate 1), and every example meets the tolerance (relative error <= 1e-5 at rtol 1e-6;
    measured 4e-12 and 1.5e-6)."""
    k = jnp.array([1.0, 8.0])
    field = lambda x, t: -k * x
    x0 = jnp.ones((2,))
    exact = np.exp(-np.asarray(k))
    x1, info = odeint_dopri5(field, x0, 0.0, 1.0, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(x1, exact, rtol=1e-5)
    solve_alone = jax.jit(
        lambda k: odeint_dopri5(
            lambda x, t: -k * x, jnp.ones((1,)), 0.0, 1.0, rtol=1e-6, atol=1e-12
        )
    )
    alone = [solve_alone(jnp.array([k_i])) for k_i in (1.0, 8.0)]
    assert int(info["nfe"]) >= max(int(a[1]["nfe"]) for a in alone)
    assert int(alone[0][1]["nfe"]) < int(alone[1][1]["nfe"])


def test_dopri5_max_steps_guard():
    """With max_steps=3 the loop stops after 3 attempts and reports that it did not reach t1."""
    _, info = odeint_dopri5(linear_field, jnp.asarray(X0, jnp.float32), 0.0, 10.0, max_steps=3)
    assert not bool(info["success"])
    assert int(info["n_accepted"]) + int(info["n_rejected"]) == 3


# ---------------------------------------------------------------------------------------------
# Gaussian data x0 ~ N(mu, Sigma) under an SDE: p_t = N(m mu, m^2 Sigma + std^2 I), m and std
# from sde.marginal (VE: m = 1 and std(0) = sigma_min).

MU = np.array([0.5, -1.0])
S = np.array([0.6, 1.3])  # diagonal standard deviations


def mean_coeff_and_std(sde, t):
    """``m(t)``, ``std(t)`` as floats, read off ``sde.marginal``."""
    mean, std = sde.marginal(jnp.ones((1, 1)), jnp.full((1,), t))
    return float(mean[0, 0]), float(std[0])


def gaussian_score(sde, mu, cov):
    """The exact score of ``p_t`` for data ``N(mu, cov)``."""
    lam, q = np.linalg.eigh(cov)

    def score(x, t):
        mean, std = sde.marginal(jnp.ones_like(x), t)  # mean = m(t)
        m = mean[:, :1]
        var = m**2 * lam + std[:, None] ** 2  # (n, d) eigenvalues of the covariance of p_t
        centred = (x - m * mu) @ q
        return -(centred / var) @ q.T

    return score


def marginal_log_prob(sde, x, t, mu=MU, s=S):
    """``log p_t(x)`` for diagonal Gaussian data, by scipy."""
    m, std = mean_coeff_and_std(sde, t)
    return scipy.stats.norm.logpdf(np.asarray(x), m * mu, np.sqrt(m**2 * s**2 + std**2)).sum(-1)


SDES = {"vp": VPSDE(), "subvp": SubVPSDE(), "ve": VESDE()}


@pytest.mark.parametrize("name", ["vp", "subvp", "ve"])
@pytest.mark.parametrize(
    "method, options", [("dopri5", {"rtol": 1e-9, "atol": 1e-9}), ("rk4", {"n_steps": 300})]
)
def test_likelihood_of_gaussian_data_matches_closed_form(x64, name, method, options):
    """``log p_eps(x)`` from the ODE equals the analytic one within 1e-3 nats per example.

    What is compared: the ODE carries ``p_eps`` to ``p_T`` exactly, so ``log p_eps(x) =
    log p_T(z) + delta``. The returned ``log_prob`` uses the SDE's prior for ``p_T``, which is not
    exactly ``p_T`` (VP: mean ``m(1) mu ~ 0.007 mu``; VE: variance ``sigma_max^2`` without the
    data's ``s^2``, and its mean ``mu``, not 0): that mismatch, up to ~1e-2 nats here, is a
    property of the SDE, not of the solver, so it is swapped for the exact ``log p_T(z)``. The
    density at ``eps`` is the analytic ``p_eps``: for VP and sub-VP at ``eps = 1e-5`` it is the
    data density up to ~1e-6 nats, but VE's marginal std at ``t = 0`` is ``sigma_min = 0.01``, so
    its ``p_0`` is the data convolved with ``N(0, sigma_min^2)`` (~1e-4 nats from the data
    density here), and that convolved density is what the ODE recovers.
    Measured max error (VP, sub-VP, VE): dopri5 7e-10, 6e-10, 5e-9 nats; RK4 (300 steps) 1e-9,
    2e-9, 2e-7 nats.
    """
    sde, eps = SDES[name], 1e-5
    x = jnp.asarray(MU + S * np.random.default_rng(0).standard_normal((16, 2)) * 1.5)
    score = gaussian_score(sde, jnp.asarray(MU), np.diag(S**2))
    log_prob, info = ode_log_likelihood(
        sde, score, x, jax.random.key(0), method=method, eps=eps, **options
    )
    assert log_prob.dtype == jnp.float64
    exact_prior = marginal_log_prob(sde, info["z"], sde.T)
    recovered = np.asarray(log_prob) - np.asarray(info["prior_log_prob"]) + exact_prior
    error = np.abs(recovered - marginal_log_prob(sde, x, eps)).max()
    assert error < 1e-3, error
    assert bool(info["success"])


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_likelihood_is_unbiased(x64, probe):
    """Mean over 2000 examples (one probe each) of hutchinson - exact log-likelihood is 0 within
    4 standard errors. The data covariance is not diagonal, so that Rademacher probes have
    non-zero variance too (for a diagonal Jacobian they would be exact). Measured: Rademacher
    0.024 +- 0.017 (1.4 SE), Gaussian 0.015 +- 0.018 (0.9 SE); per-example std ~0.8 nats."""
    sde = VPSDE()
    cov = np.array([[1.0, 0.8], [0.8, 1.5]])
    score = gaussian_score(sde, jnp.asarray(MU), cov)
    x = jnp.asarray(np.random.default_rng(1).multivariate_normal(MU, cov, size=2000))
    run = lambda divergence: ode_log_likelihood(
        sde, score, x, jax.random.key(2), divergence=divergence, probe=probe, n_steps=20
    )[0]
    diff = np.asarray(run("hutchinson") - run("exact"))
    se = diff.std(ddof=1) / math.sqrt(len(diff))
    assert diff.std() > 0.1, diff.std()  # the estimate is genuinely noisy
    assert abs(diff.mean()) < 4 * se, (diff.mean(), se)


def flow_map(sde, z, eps):
    """The probability-flow map ``x_eps = m_eps mu + sqrt(v_eps / v_T) (z - m_T mu)`` per
    dimension: for Gaussian ``p_t`` the flow keeps standardized coordinates fixed."""
    (m0, std0), (m1, std1) = mean_coeff_and_std(sde, eps), mean_coeff_and_std(sde, sde.T)
    v0, v1 = m0**2 * S**2 + std0**2, m1**2 * S**2 + std1**2
    return m0 * MU + np.sqrt(v0 / v1) * (np.asarray(z) - m1 * MU), np.sqrt(v0 / v1)


@pytest.mark.parametrize("name", ["vp", "ve"])
def test_probability_flow_samples_gaussian(x64, name):
    """Sampling from N(mu, diag s^2) with the exact score.

    Deterministic: each sample is the closed-form flow of its prior draw ``z`` within 1e-5 (RK4,
    200 steps; measured VP 1e-9, VE 4e-7) and 1e-4 (dopri5 at 1e-6; measured 5e-7, 1e-6).
    Statistical (4000 samples): mean, variances and the covariance within 4 standard errors of
    the distribution the sampler targets: the flow of the SDE's prior, which is ``p_eps`` up to
    the prior mismatch (VP: ``m(1) mu``, VE: the prior's mean 0 vs ``mu``; up to 0.4 and 1.3 SE
    of the mean here). Measured: mean -1.4 and -1.3 SE, variances -0.8 and 1.0 SE, covariance
    -0.1 SE (the same for VP and VE: both flows are affine in the same standardized draws).
    """
    sde, eps, n = SDES[name], 1e-3, 4000
    score = gaussian_score(sde, jnp.asarray(MU), np.diag(S**2))
    key = jax.random.key(3)
    x, info = sample_probability_flow(sde, score, key, (n, 2), method="rk4", n_steps=200, eps=eps)
    z = sde.prior_sample(key, (n, 2))
    expected, gain = flow_map(sde, z, eps)
    np.testing.assert_allclose(x, expected, atol=1e-5)
    assert int(info["nfe"]) == 800
    x_dp, info = sample_probability_flow(
        sde, score, key, (64, 2), method="dopri5", rtol=1e-6, atol=1e-6, eps=eps
    )
    np.testing.assert_allclose(
        x_dp, flow_map(sde, sde.prior_sample(key, (64, 2)), eps)[0], atol=1e-4
    )

    x = np.asarray(x)
    prior_std = sde.sigma_max if name == "ve" else 1.0
    mean = flow_map(sde, np.zeros(2), eps)[0]
    std = gain * prior_std
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 4 * std / math.sqrt(n))
    np.testing.assert_array_less(
        np.abs(x.var(0, ddof=1) - std**2), 4 * std**2 * math.sqrt(2 / (n - 1))
    )
    cross = np.cov(x.T)[0, 1]
    assert abs(cross) < 4 * std[0] * std[1] / math.sqrt(n), cross


# ---------------------------------------------------------------------------------------------
# Transformations, dtypes, conversions and argument checks.


def test_jit_and_vmap():
    """vmapped over two chunks of a batch, the jitted likelihood equals each chunk's jitted
    likelihood (rtol 1e-5), for RK4 and for dopri5 (whose step size is then per chunk), and the
    jitted RK4 one equals the eager one."""
    sde = VPSDE()
    score = gaussian_score(sde, jnp.asarray(MU), np.diag(S**2))
    x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 8, 2)), jnp.float32)
    keys = jnp.stack([jax.random.key(5), jax.random.key(6)])
    for method in ("rk4", "dopri5"):
        fn = lambda x, key, m=method: ode_log_likelihood(
            sde, score, x, key, divergence="hutchinson", method=m, n_steps=20, rtol=1e-4, atol=1e-4
        )[0]
        mapped = jax.jit(jax.vmap(fn))(x, keys)
        assert mapped.dtype == jnp.float32
        jitted = [jax.jit(fn)(x[i], keys[i]) for i in range(2)]
        np.testing.assert_allclose(mapped, jnp.stack(jitted), rtol=1e-5)
        if method == "rk4":
            np.testing.assert_allclose(fn(x[0], keys[0]), jitted[0], rtol=1e-5)


def test_x64_dtypes(x64):
    """Float64 in, float64 out (states, times and the likelihood), and float32 stays float32,
    even though ``linear_field`` promotes float32 states to float64."""
    sde = VESDE()
    score = gaussian_score(sde, jnp.asarray(MU), np.diag(S**2))
    for dtype in (jnp.float32, jnp.float64):
        x = jnp.ones((3, 2), dtype)
        assert odeint(linear_field, x, 0.0, 1.0, method="dopri5")[0].dtype == dtype
        log_prob, info = ode_log_likelihood(sde, score, x, None, method="heun", n_steps=1)
        assert log_prob.dtype == info["z"].dtype == dtype


def test_nll_in_nats_and_bits_per_dim():
    """nll = -log p - D log(scale) + D log K and bpd = nll / (D ln 2), from ode_log_likelihood."""
    sde = VPSDE()
    score = gaussian_score(sde, jnp.asarray(MU), np.diag(S**2))
    x = jnp.asarray(np.random.default_rng(7).normal(size=(4, 2)), jnp.float32)
    options = {"method": "euler", "n_steps": 2}
    log_prob, _ = ode_log_likelihood(sde, score, x, jax.random.key(0), **options)
    nll, bpd, _ = ode_nll(sde, score, x, jax.random.key(0), **options)
    np.testing.assert_allclose(nll, -log_prob, rtol=1e-6)
    np.testing.assert_allclose(bpd, -log_prob / (2 * math.log(2)), rtol=1e-6)
    nll, bpd, _ = ode_nll(
        sde, score, x, jax.random.key(0), num_levels=256, data_scale=2.0, **options
    )
    expected = -log_prob - 2 * math.log(2.0) + 2 * math.log(256)
    np.testing.assert_allclose(nll, expected, rtol=1e-6)
    np.testing.assert_allclose(bpd, expected / (2 * math.log(2)), rtol=1e-6)


def test_bad_arguments_raise_clearly():
    sde = VPSDE()
    score = gaussian_score(sde, jnp.asarray(MU), np.diag(S**2))
    x, key = jnp.zeros((2, 2)), jax.random.key(0)
    cases = [
        (lambda: odeint_fixed(linear_field, x, 0.0, 1.0, 10, method="rk45"), "method"),
        (lambda: odeint_fixed(linear_field, x, 0.0, 1.0, 0), "n_steps"),
        (lambda: odeint_fixed(linear_field, x, 0.0, 1.0, 2.5), "n_steps"),
        (lambda: odeint_dopri5(linear_field, x, 0.0, 1.0, rtol=-1e-3), "rtol"),
        (lambda: odeint_dopri5(linear_field, x, 0.0, 1.0, rtol=0.0), "rtol"),
        (lambda: odeint_dopri5(linear_field, x, 0.0, 1.0, atol=float("nan")), "atol"),
        (lambda: odeint_dopri5(linear_field, x, 0.0, 1.0, max_steps=0), "max_steps"),
        (lambda: odeint(linear_field, x, 0.0, 1.0, method="Euler"), "method"),
        (lambda: sample_probability_flow(sde, score, key, (2, 2), method="dopri"), "method"),
        (lambda: sample_probability_flow(sde, score, key, (2, 2), n_steps=-1), "n_steps"),
        (lambda: sample_probability_flow(sde, score, key, (2, 2), eps=1.5), "eps"),
        (lambda: ode_log_likelihood(sde, score, x, key, divergence="trace"), "divergence"),
        (lambda: ode_log_likelihood(sde, score, x, key, probe="normal"), "probe"),
        (lambda: ode_log_likelihood(sde, score, x, key, rtol="tight"), "rtol"),
        (lambda: ode_log_likelihood(sde, score, jnp.zeros((2, 2), int), key), "x"),
        (lambda: ode_nll(sde, score, x, key, num_levels=1), "num_levels"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError, match=name):
            call()
