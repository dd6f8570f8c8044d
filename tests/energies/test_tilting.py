"""Exponential tilting against closed forms derived here in numpy.

Ground truth: an affine "flow" ``g(z) = mu + L z`` has ``q = N(mu, S)``, ``S = L L^T``; tilting it
by ``E(x) = 1/2 (x - m)^T A (x - m)`` multiplies two Gaussian densities, so

    p(x) ∝ exp(-1/2 (x - mu)^T S^-1 (x - mu) - 1/2 (x - m)^T A (x - m)) = N(x; mu_p, P^-1),
    P = S^-1 + A,        mu_p = P^-1 (S^-1 mu + A m)

(complete the square). A nonlinear invertible flow ``g(z) = a sinh(z) + b`` (elementwise, with
``g^-1`` and ``log |g'|`` in closed form) checks the change of variables with a non-constant
Jacobian.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jgen.energies import tilting

D = 3
N_SIGMA = 5.0  # statistical tolerances: this many standard errors


def affine_setup(seed=0, m=None):
    """Base flow ``mu + L z``, tilt ``(A, m)`` (``m`` random unless given), and the tilted
    Gaussian ``(mu_p, P)``."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, 1, D)
    lower = np.tril(rng.normal(0, 0.4, (D, D)), -1) + np.diag(rng.uniform(0.7, 1.4, D))
    r = rng.normal(0, 1, (D, D))
    a = r @ r.T / D + 0.5 * np.eye(D)
    m = rng.normal(0, 1, D) if m is None else np.asarray(m, float)
    s_inv = np.linalg.inv(lower @ lower.T)
    p = s_inv + a
    mu_p = np.linalg.solve(p, s_inv @ mu + a @ m)
    return dict(mu=mu, L=lower, A=a, m=m, P=p, mu_p=mu_p, S_inv=s_inv)


def decode_affine(c, z):
    return jnp.asarray(c["mu"]) + z @ jnp.asarray(c["L"]).T


def quadratic_energy(a, m, x):
    r = x - m
    return 0.5 * jnp.einsum("ni,ij,nj->n", r, jnp.asarray(a), r)


def affine_fns(c):
    return (
        functools.partial(quadratic_energy, c["A"], jnp.asarray(c["m"])),
        functools.partial(decode_affine, c),
    )


# --------------------------------------------------------------------------------------------------
# (a) the latent energy is the pullback of the tilted density.


def test_latent_energy_is_pullback_of_closed_form_affine(x64):
    c = affine_setup()
    energy, decode = affine_fns(c)
    u = tilting.latent_energy(energy, decode)
    z = np.random.default_rng(1).normal(0, 1.5, (64, D))
    x = c["mu"] + z @ c["L"].T
    log_p = scipy.stats.multivariate_normal(c["mu_p"], np.linalg.inv(c["P"])).logpdf(x)
    # The Jacobian of an affine map is constant: -U(z) = log p(g(z)) + const.
    diff = -np.asarray(u(jnp.asarray(z))) - log_p
    np.testing.assert_allclose(diff - diff[0], 0.0, atol=1e-10)
    # grad U(z) = z + L^T A (g(z) - m), by hand.
    grad = jax.grad(lambda z: u(z).sum())(jnp.asarray(z))
    np.testing.assert_allclose(grad, z + (x - c["m"]) @ c["A"] @ c["L"], atol=1e-12)
    # The tilted log-density of the base N(mu, S) is the same Gaussian up to a constant.
    base = scipy.stats.multivariate_normal(c["mu"], np.linalg.inv(c["S_inv"]))
    log_p_tilted = tilting.tilted_log_prob_unnormalized(
        energy, lambda x: jnp.asarray(base.logpdf(np.asarray(x)))
    )(jnp.asarray(x))
    diff = np.asarray(log_p_tilted) - log_p
    np.testing.assert_allclose(diff - diff[0], 0.0, atol=1e-10)


def test_latent_energy_change_of_variables_nonlinear_flow(x64):
    """``exp(-U(z)) = p_x(g(z)) |det g'(z)|`` up to a constant, for ``g = a sinh(z) + b``, with
    ``log q`` from the closed-form inverse and ``det g'`` from an autodiff Jacobian."""
    a, b = jnp.array([0.8, 1.5]), jnp.array([0.3, -1.0])

    def decode(z):
        return a * jnp.sinh(z) + b

    def base_log_prob(x):
        z = jnp.arcsinh((x - b) / a)
        log_det = jnp.sum(jnp.log(a * jnp.cosh(z)), axis=1)
        return jax.scipy.stats.norm.logpdf(z).sum(axis=1) - log_det

    def energy(x):
        return jnp.sum(jnp.log(jnp.cosh(x - 0.5)), axis=1) + 0.3 * x[:, 0] * x[:, 1]

    u = tilting.latent_energy(energy, decode)
    log_p = tilting.tilted_log_prob_unnormalized(energy, base_log_prob)
    z = jnp.asarray(np.random.default_rng(2).normal(0, 1.2, (50, 2)))
    jac = jax.vmap(jax.jacfwd(lambda zi: decode(zi[None])[0]))(z)
    log_det = np.linalg.slogdet(np.asarray(jac))[1]
    diff = -np.asarray(u(z)) - (np.asarray(log_p(decode(z))) + log_det)
    np.testing.assert_allclose(diff - diff[0], 0.0, atol=1e-10)


def test_latent_energy_custom_prior(x64):
    c = affine_setup()
    energy, decode = affine_fns(c)
    z = jnp.asarray(np.random.default_rng(3).normal(0, 1, (7, D)))
    u = tilting.latent_energy(energy, decode, prior_energy=lambda z: jnp.sum(jnp.abs(z), axis=1))
    expected = np.abs(np.asarray(z)).sum(1) + np.asarray(energy(decode(z)))
    np.testing.assert_allclose(u(z), expected, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# (b) latent MCMC samples the tilted closed form.


def moment_errors(x, mean, cov):
    """Sample mean and covariance minus the targets, in units of their standard errors.

    For ``n`` draws of ``N(mean, cov)``: ``se(mean_i) = sqrt(cov_ii / n)`` and
    ``se(cov_ij) = sqrt((cov_ii cov_jj + cov_ij^2) / n)`` (the Wishart variance).
    """
    n = x.shape[0]
    var = np.diag(cov)
    se_mean = np.sqrt(var / n)
    se_cov = np.sqrt((np.outer(var, var) + cov**2) / n)
    return (x.mean(0) - mean) / se_mean, (np.cov(x.T) - cov) / se_cov


def run_sampler(c, method, step_size, n_steps, n_chains, seed):
    energy, decode = affine_fns(c)
    z0 = jax.random.normal(jax.random.key(seed), (n_chains, D), jnp.float64)
    run = jax.jit(
        lambda z0, key: tilting.sample_latent(
            energy, decode, z0, key, step_size=step_size, n_steps=n_steps, method=method
        )
    )
    x, z, info = run(z0, jax.random.key(seed + 1))
    np.testing.assert_allclose(x, decode(z), atol=1e-12)
    return np.asarray(x), info


def test_latent_langevin_reproduces_tilted_gaussian(x64):
    """Unadjusted Langevin in ``z``; tolerance 5 standard errors around the closed form plus the
    exactly known ULA bias. For the Gaussian latent target with precision ``P_z = I + L^T A L``
    the chain ``z' = (I - h P_z / 2) z + c + sqrt(h) eps`` has the exact mean and the stationary
    covariance ``C = h (I - (I - h P_z / 2)^2)^-1 = (P_z (I - h P_z / 4))^-1``, so the bias in ``x``
    is ``L (C - P_z^-1) L^T``."""
    c = affine_setup()
    h, n = 0.05, 4000
    x, info = run_sampler(c, "langevin", h, 400, n, seed=10)
    p_z = np.eye(D) + c["L"].T @ c["A"] @ c["L"]
    c_ula = np.linalg.inv(p_z @ (np.eye(D) - h * p_z / 4))
    bias = c["L"] @ (c_ula - np.linalg.inv(p_z)) @ c["L"].T
    cov = np.linalg.inv(c["P"])
    err_mean, err_cov = moment_errors(x, c["mu_p"], cov + bias)
    print("langevin |err|/se: mean", np.abs(err_mean).max(), "cov", np.abs(err_cov).max())
    print("bias / cov", np.abs(bias).max() / np.abs(cov).max())
    assert np.abs(err_mean).max() < N_SIGMA
    assert np.abs(err_cov).max() < N_SIGMA
    assert np.isfinite(info["energy"])


def test_latent_mala_reproduces_tilted_gaussian_exactly(x64):
    """MALA in ``z`` is exact for any step: 5 standard errors around the closed form itself."""
    c = affine_setup()
    x, info = run_sampler(c, "mala", 0.4, 200, 4000, seed=20)
    err_mean, err_cov = moment_errors(x, c["mu_p"], np.linalg.inv(c["P"]))
    print("mala |err|/se: mean", np.abs(err_mean).max(), "cov", np.abs(err_cov).max())
    print("acceptance", info["acceptance_rate"])
    assert np.abs(err_mean).max() < N_SIGMA
    assert np.abs(err_cov).max() < N_SIGMA
    assert info["acceptance_rate"] > 0.5


# --------------------------------------------------------------------------------------------------
# The surrogate loss.


def test_tilting_loss_gradient_is_difference_of_mean_energy_gradients(x64):
    """``E = 1/2 |B (x - m)|^2``: ``dE/dm = -B^T B (x - m)``, ``dE/dB = B (x - m)(x - m)^T``;
    ``dL = mean_data[(1 + 2 lam E) dE] + mean_model[(-1 + 2 lam E) dE]``."""
    rng = np.random.default_rng(4)
    params = {"m": rng.normal(0, 1, D), "B": rng.normal(0, 1, (D, D))}
    x_data, x_model = rng.normal(0, 1, (11, D)), rng.normal(1, 2, (7, D))
    lam = 0.1

    def energy(params, x):
        return 0.5 * jnp.sum(jnp.square((x - params["m"]) @ params["B"].T), axis=1)

    def loss(params, x_data, x_model):
        return tilting.tilting_loss(
            functools.partial(energy, params), x_data, x_model, l2_weight=lam
        )

    (value, aux), (g_params, g_data, g_model) = jax.value_and_grad(
        loss, argnums=(0, 1, 2), has_aux=True
    )(params, jnp.asarray(x_data), jnp.asarray(x_model))

    def pieces(x):
        r = x - params["m"]
        e = 0.5 * np.sum((r @ params["B"].T) ** 2, axis=1)
        de_dm = -r @ params["B"].T @ params["B"]
        de_db = np.einsum("ij,nj,nk->nik", params["B"], r, r)
        return e, de_dm, de_db

    e_d, dm_d, db_d = pieces(x_data)
    e_m, dm_m, db_m = pieces(x_model)
    w_d, w_m = 1 + 2 * lam * e_d, -1 + 2 * lam * e_m
    expected_m = (w_d[:, None] * dm_d).mean(0) + (w_m[:, None] * dm_m).mean(0)
    expected_b = (w_d[:, None, None] * db_d).mean(0) + (w_m[:, None, None] * db_m).mean(0)
    np.testing.assert_allclose(g_params["m"], expected_m, atol=1e-12)
    np.testing.assert_allclose(g_params["B"], expected_b, atol=1e-12)
    # No gradient flows into the negatives; the data get (1 + 2 lam E) dE/dx / n.
    np.testing.assert_array_equal(g_model, 0.0)
    np.testing.assert_allclose(g_data, -w_d[:, None] * dm_d / len(x_data), atol=1e-12)
    np.testing.assert_allclose(aux["energy_data"], e_d.mean(), atol=1e-12)
    np.testing.assert_allclose(aux["energy_model"], e_m.mean(), atol=1e-12)
    np.testing.assert_allclose(aux["energy_gap"], e_d.mean() - e_m.mean(), atol=1e-12)
    np.testing.assert_allclose(aux["energy_l2"], (e_d**2).mean() + (e_m**2).mean(), atol=1e-12)
    expected = e_d.mean() - e_m.mean() + lam * ((e_d**2).mean() + (e_m**2).mean())
    np.testing.assert_allclose(value, expected, atol=1e-12)


def test_tilting_training_recovers_energy_offset(x64):
    """(c) Learn ``m`` in ``E_m(x) = 1/2 (x - m)^T A (x - m)`` over the frozen affine flow from
    data drawn from the tilted closed form with ``m*``, by gradient descent on
    :func:`tilting.tilting_loss` with persistent latent-Langevin negatives.

    The loss gradient is ``A (mean_model - mean_data)``; the model mean is
    ``mu_p(m) = P^-1 (S^-1 mu + A m)`` (ULA keeps a Gaussian's mean exact), so the fixed point is
    ``m_inf = A^-1 (P xbar - S^-1 mu)``, which differs from ``m*`` by the data's sampling error
    ``A^-1 P (xbar - mu_p(m*))``, of covariance ``A^-1 P A^-1 / n_data``. The iterate fluctuates
    with the negatives' mean, whose error maps to ``m`` with covariance ``A^-1 P A^-1 / n_chains``
    per step; averaging the last 100 iterates only shrinks that. Tolerance: 5 of each standard
    error (around ``m_inf``: the chains' only; around ``m*``: both added)."""
    c = affine_setup(m=[1.5, -1.0, 0.8])
    rng = np.random.default_rng(5)
    n_data, n_chains, n_iter, n_avg = 4000, 1000, 200, 100
    x_data = rng.multivariate_normal(c["mu_p"], np.linalg.inv(c["P"]), n_data)
    decode = functools.partial(decode_affine, c)

    def step(carry, key):
        m, z = carry
        energy = functools.partial(quadratic_energy, c["A"], m)
        x_model, z, _ = tilting.sample_latent(energy, decode, z, key, step_size=0.1, n_steps=5)
        grad = jax.grad(
            lambda m: tilting.tilting_loss(
                functools.partial(quadratic_energy, c["A"], m), x_data, x_model
            )[0]
        )(m)
        m = m - 0.9 * grad
        return (m, z), m

    z0 = jax.random.normal(jax.random.key(6), (n_chains, D), jnp.float64)
    keys = jax.random.split(jax.random.key(7), n_iter)
    _, ms = jax.jit(lambda m, z: jax.lax.scan(step, (m, z), keys))(jnp.zeros(D), z0)
    m_hat = np.asarray(ms[-n_avg:]).mean(0)
    a_inv = np.linalg.inv(c["A"])
    m_inf = a_inv @ (c["P"] @ x_data.mean(0) - c["S_inv"] @ c["mu"])
    sd = np.sqrt(np.diag(a_inv @ c["P"] @ a_inv))
    err_inf = np.abs(m_hat - m_inf) / (sd / np.sqrt(n_chains))
    se_true = sd / np.sqrt(n_chains) + sd / np.sqrt(n_data)
    err_true = np.abs(m_hat - c["m"]) / se_true
    print("m_hat", m_hat, "m*", c["m"], "m_inf", m_inf)
    print("|m_hat - m_inf| / se", err_inf, " |m_hat - m*| / se", err_true)
    assert np.all(err_inf < N_SIGMA)
    assert np.all(err_true < N_SIGMA)
    # Not trivially satisfied: the start m = 0 is far outside the tolerance, and so is the answer
    # of negatives that ignore the base (p ∝ exp(-E) alone has mean m, fixed point m = xbar).
    assert np.all(np.abs(c["m"]) / se_true > N_SIGMA)
    assert np.any(np.abs(x_data.mean(0) - c["m"]) / se_true > N_SIGMA)


# --------------------------------------------------------------------------------------------------
# Argument checks.


def _energy(x):
    return 0.5 * jnp.sum(x**2, axis=1)


def _decode(z):
    return 2.0 * z


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: tilting.latent_energy(_energy, _decode)(jnp.ones(3)), "z must be a batch"),
        (lambda: tilting.latent_energy(_energy, lambda z: z[:1])(jnp.ones((3, 2))), "decode_fn"),
        (
            lambda: tilting.latent_energy(lambda x: x, _decode)(jnp.ones((3, 2))),
            r"energy_fn must map x .* shape \(n,\); got shape \(3, 2\)",
        ),
        (
            lambda: tilting.latent_energy(_energy, _decode, prior_energy=lambda z: z)(
                jnp.ones((3, 2))
            ),
            "prior_energy",
        ),
        (
            lambda: tilting.tilted_log_prob_unnormalized(_energy, lambda x: x[:, 0:1])(
                jnp.ones((3, 2))
            ),
            "base_log_prob",
        ),
        (
            lambda: tilting.tilting_loss(_energy, jnp.ones((3, 2)), jnp.ones((4, 5))),
            "event shape",
        ),
        (lambda: tilting.tilting_loss(_energy, jnp.ones(3), jnp.ones((4, 3))), "x_data"),
        (
            lambda: tilting.tilting_loss(
                _energy, jnp.ones((3, 2)), jnp.ones((4, 2)), l2_weight=-1.0
            ),
            "l2_weight",
        ),
        (
            lambda: tilting.sample_latent(
                _energy,
                _decode,
                jnp.ones((3, 2)),
                jax.random.key(0),
                step_size=0.1,
                n_steps=1,
                method="hmc",
            ),
            "method",
        ),
        (
            lambda: tilting.sample_latent(
                _energy,
                _decode,
                jnp.ones((3, 2)),
                jax.random.key(0),
                step_size=0.1,
                n_steps=1,
                method="mala",
                noise_scale=0.5,
            ),
            "apply to method=.langevin. only",
        ),
        (
            lambda: tilting.sample_latent(
                _energy,
                _decode,
                jnp.ones((3, 2), jnp.int32),
                jax.random.key(0),
                step_size=0.1,
                n_steps=1,
            ),
            "floating",
        ),
        (
            lambda: tilting.sample_latent(
                _energy, _decode, jnp.ones((3, 2)), jax.random.key(0), step_size=-0.1, n_steps=1
            ),
            "step_size",
        ),
    ],
)
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
