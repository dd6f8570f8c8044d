"""The forward SDEs and the discrete schedules against independent ground truth: numerical
integration of the moment ODEs (scipy), quadrature, DDPM's products of betas, scipy's normal."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.stats

from jgen.sdes.schedules import alphas_cumprod, cosine_betas, geometric_sigmas, linear_betas
from jgen.sdes.sde import VESDE, VPSDE, ReverseSDE, SubVPSDE, reverse

SDES = [VPSDE(0.1, 20.0), SubVPSDE(0.1, 20.0), VESDE(0.01, 50.0)]
IDS = ["vp", "subvp", "ve"]
TIMES = np.array([0.01, 0.1, 0.3, 0.5, 0.9, 1.0])


def _drift_coefficient(sde, t: float) -> float:
    """``a(t)`` of the linear drift ``f(x, t) = a(t) x``."""
    return float(sde.drift(jnp.ones((1, 1)), jnp.full((1,), t))[0, 0])


def _g(sde, t: float) -> float:
    return float(sde.diffusion(jnp.full((1,), t))[0])


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_marginal_matches_integrated_moment_odes(sde, x64):
    """For ``dx = a(t) x dt + g(t) dw`` from ``x_0 = 1``: ``d mean/dt = a mean`` and
    ``d var/dt = 2 a var + g^2``. The VE SDE starts at ``var = sigma_min^2`` (the module's
    convention: ``std(t) = sigma(t)`` includes the noise present at ``t = 0``). Tolerance 1e-6,
    far above the integrator's (rtol 1e-11)."""

    def rhs(t, y):
        a = _drift_coefficient(sde, t)
        return [a * y[0], 2 * a * y[1] + _g(sde, t) ** 2]

    var0 = sde.sigma_min**2 if isinstance(sde, VESDE) else 0.0
    sol = scipy.integrate.solve_ivp(
        rhs, (0.0, 1.0), [1.0, var0], t_eval=TIMES, method="DOP853", rtol=1e-11, atol=1e-13
    )
    assert sol.success
    mean, std = sde.marginal(jnp.ones(len(TIMES)), jnp.asarray(TIMES))
    assert mean.dtype == jnp.float64
    np.testing.assert_allclose(mean, sol.y[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(std, np.sqrt(sol.y[1]), rtol=0, atol=1e-6)


def test_ve_diffusion_integrates_to_the_variance(x64):
    """``int_0^t g^2 = sigma(t)^2 - sigma_min^2`` by quadrature, to 1e-8 relative."""
    sde = VESDE(0.01, 50.0)
    for t in TIMES:
        integral, _ = scipy.integrate.quad(
            lambda s: _g(sde, s) ** 2, 0.0, t, epsabs=0, epsrel=1e-12
        )
        expected = float(sde.sigma(jnp.asarray(t))) ** 2 - sde.sigma_min**2
        assert integral == pytest.approx(expected, rel=1e-8)


def test_vp_discretisation_is_ddpm_to_first_order(x64):
    """DDPM with ``beta_i = beta(t_i) / N`` (Ho et al.'s linear 1e-4..0.02 at N = 1000) has
    ``abar_i = m(t)^2`` up to O(1/N): ``log abar_i = -sum beta_i - sum beta_i^2 / 2 + ...`` is a
    Riemann sum of ``-int beta`` plus an O(1/N) term. Checked: error <= 2 / N at N = 100 and 1000,
    and the ratio of the two errors is that of first order (10, accepted in [7, 13])."""
    sde = VPSDE(0.1, 20.0)

    def max_error(n):
        abar = alphas_cumprod(linear_betas(n, sde.beta_min / n, sde.beta_max / n))
        t = jnp.arange(1, n + 1) / n
        m2 = jnp.exp(2 * sde.log_mean_coeff(t))
        return float(jnp.max(jnp.abs(abar - m2)))

    np.testing.assert_allclose(
        linear_betas(1000, 0.1 / 1000, 20.0 / 1000)[jnp.array([0, -1])], [1e-4, 0.02]
    )
    e100, e1000 = max_error(100), max_error(1000)
    assert e100 <= 2 / 100 and e1000 <= 2 / 1000, (e100, e1000)
    assert 7 <= e100 / e1000 <= 13, (e100, e1000)


def test_cosine_betas_reproduce_their_alpha_bar(x64):
    """``prod (1 - beta_i) = f((i + 1) / N) / f(0)``, ``f(t) = cos^2((t + s) / (1 + s) pi / 2)``,
    to 1e-12 except at the last step, whose beta (1 there) is clipped to ``max_beta``."""
    n, s = 100, 0.008
    abar = alphas_cumprod(cosine_betas(n, s=s))
    f = lambda t: np.cos((t + s) / (1 + s) * np.pi / 2) ** 2
    t = np.arange(1, n + 1) / n
    np.testing.assert_allclose(abar[:-1], f(t[:-1]) / f(0.0), rtol=1e-12, atol=0)
    assert float(cosine_betas(n, s=s)[-1]) == pytest.approx(0.999)
    assert np.all(np.diff(np.asarray(cosine_betas(n))) > 0)


def test_geometric_sigmas_have_a_constant_ratio_and_match_ve(x64):
    """Constant ratio ``(s_min / s_max)^(1 / (L - 1))`` and the endpoints, to 1e-12; the VE SDE's
    ``sigma(t)`` on a uniform grid of ``t`` from 1 to 0 gives the same levels."""
    sigmas = np.asarray(geometric_sigmas(50.0, 0.01, 10))
    np.testing.assert_allclose(sigmas[[0, -1]], [50.0, 0.01], rtol=1e-12)
    np.testing.assert_allclose(sigmas[1:] / sigmas[:-1], (0.01 / 50.0) ** (1 / 9), rtol=1e-12)
    ve = VESDE(0.01, 50.0)
    np.testing.assert_allclose(ve.sigma(jnp.linspace(1.0, 0.0, 10)), sigmas, rtol=1e-12)


@pytest.mark.parametrize("sde", SDES, ids=IDS)
@pytest.mark.parametrize("probability_flow", [False, True])
def test_reverse_drift_and_diffusion(sde, probability_flow, x64):
    """``f - c g^2 s`` with ``c = 1`` (reverse SDE, diffusion ``g``) or ``c = 1/2`` (probability
    flow, diffusion 0), for a score that depends on ``x`` and ``t``; exact up to rounding."""
    x = jax.random.normal(jax.random.key(0), (4, 3, 2))
    t = jnp.array([0.1, 0.4, 0.7, 1.0])
    score_fn = lambda x, t: -x * (1.0 + t[:, None, None])
    rsde = reverse(sde, score_fn, probability_flow)
    assert isinstance(rsde, ReverseSDE) and rsde.T == sde.T == 1.0
    g = np.asarray(sde.diffusion(t))
    c = 0.5 if probability_flow else 1.0
    expected = np.asarray(sde.drift(x, t)) - c * g[:, None, None] ** 2 * np.asarray(score_fn(x, t))
    np.testing.assert_allclose(rsde.drift(x, t), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rsde.diffusion(t), 0 * g if probability_flow else g, rtol=1e-12)


def test_sdes_are_pytrees_under_jit_and_vmap():
    """An SDE's parameters are leaves: ``jit`` takes the SDE as an argument (and a new value of a
    parameter does not need a new trace), ``vmap`` maps over a batch of SDEs."""
    traces = []

    @jax.jit
    def std_at(sde, t):
        traces.append(None)
        return sde.marginal(jnp.ones_like(t), t)[1]

    t = jnp.array([0.2, 0.8])
    for beta_max in (20.0, 10.0):
        np.testing.assert_allclose(
            std_at(VPSDE(0.1, beta_max), t), VPSDE(0.1, beta_max).marginal(jnp.ones(2), t)[1]
        )
    assert len(traces) == 1
    assert jax.tree.leaves(VESDE(0.01, 50.0)) == [0.01, 50.0]
    rsde = reverse(VPSDE(0.1, 20.0), lambda x, t: -x)
    assert jax.tree.leaves(rsde) == [0.1, 20.0]  # the score function is static

    beta_max = jnp.array([5.0, 10.0, 20.0])
    batched = jax.vmap(lambda sde: sde.marginal(jnp.ones(2), t)[1])(
        VPSDE(jnp.full(3, 0.1), beta_max)
    )
    looped = [VPSDE(0.1, float(b)).marginal(jnp.ones(2), t)[1] for b in beta_max]
    np.testing.assert_allclose(batched, np.stack(looped), rtol=1e-6)


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_prior_log_prob_matches_scipy(sde, x64):
    """``log N(z; 0, sigma^2 I)`` summed over a (3, 2) event, against scipy to 1e-10; and the
    prior sample has that scale (std within 4 standard errors: n = 6000 values)."""
    z = 3.0 * jax.random.normal(jax.random.key(1), (5, 3, 2))
    scale = sde.sigma_max if isinstance(sde, VESDE) else 1.0
    expected = scipy.stats.norm.logpdf(np.asarray(z), scale=scale).reshape(5, -1).sum(-1)
    np.testing.assert_allclose(sde.prior_log_prob(z), expected, rtol=1e-10)
    draws = np.asarray(sde.prior_sample(jax.random.key(2), (1000, 3, 2)))
    assert draws.shape == (1000, 3, 2)
    # std of a sample std of n normals ~ scale / sqrt(2 n).
    assert abs(draws.std() - scale) < 4 * scale / np.sqrt(2 * draws.size)
