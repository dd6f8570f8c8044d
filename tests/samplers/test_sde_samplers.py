"""Reverse-SDE samplers against an exact 2D Gaussian mixture: with the exact noise-perturbed score,
every predictor (and predictor–corrector pair) under VP and VE must produce samples whose MMD² to
exact samples is no larger than what two exact sample sets give."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jgen.samplers.sde import (
    discretize,
    euler_maruyama_predictor,
    langevin_corrector,
    reverse_diffusion_predictor,
    sample_sde,
)
from jgen.sdes.sde import VESDE, VPSDE, SubVPSDE
from tests.sdes import gmm

N = 2000  # samples per set: MMD² null values are ~1e-4..1e-3 at the bandwidth of gmm.bandwidth


@pytest.fixture(scope="module")
def threshold():
    """The 99th percentile of MMD² over 20 pairs of independent exact sets of size N."""
    return gmm.null_threshold(N)


def test_helper_score_is_the_gradient_of_the_perturbed_mixture_density(x64):
    """Ground truth for everything below: the closed-form score equals central differences
    (step 1e-5, error O(1e-10)) of scipy's log-density of ``sum_k w_k N(m mu_k, m^2 S_k + s^2 I)``;
    tolerance 1e-6."""
    mix = gmm.MIXTURE
    x = np.array([[0.3, -0.2], [-2.5, 1.0], [1.0, 3.0]])
    m = np.array([1.0, 0.6, 0.05])
    s = np.array([0.01, 0.8, 1.0])

    def log_p(point, i):
        covs = m[i] ** 2 * mix.covs + s[i] ** 2 * np.eye(2)
        dens = [
            w * scipy.stats.multivariate_normal(m[i] * mu, c).pdf(point)
            for w, mu, c in zip(mix.weights, mix.means, covs, strict=True)
        ]
        return np.log(np.sum(dens))

    h = 1e-5
    numeric = np.array(
        [
            [(log_p(x[i] + h * e, i) - log_p(x[i] - h * e, i)) / (2 * h) for e in np.eye(2)]
            for i in range(3)
        ]
    )
    exact = gmm.perturbed_score(mix, jnp.asarray(x), jnp.asarray(m), jnp.asarray(s))
    np.testing.assert_allclose(exact, numeric, rtol=1e-6, atol=1e-6)


# (sde, predictor, corrector, n_steps): 200 predictor steps, or 100 with one Langevin step each.
# Measured MMD² / threshold over 5 seeds at these settings: at most 0.47 (VP) and 0.68 (VE).
CASES = [
    (VPSDE(), "euler_maruyama", None, 200),
    (VPSDE(), "reverse_diffusion", None, 200),
    (VPSDE(), "reverse_diffusion", "langevin", 100),
    (VESDE(), "euler_maruyama", None, 200),
    (VESDE(), "reverse_diffusion", None, 200),
    (VESDE(), "reverse_diffusion", "langevin", 100),
]


@pytest.mark.parametrize(
    "sde, predictor, corrector, n_steps",
    CASES,
    ids=["vp-em", "vp-rd", "vp-pc", "ve-em", "ve-rd", "ve-pc"],
)
def test_samples_match_the_mixture(sde, predictor, corrector, n_steps, threshold):
    score_fn = gmm.sde_score_fn(gmm.MIXTURE, sde)
    sample = jax.jit(
        lambda key: sample_sde(
            sde, score_fn, key, (N, 2), n_steps=n_steps, predictor=predictor, corrector=corrector
        )[0]
    )
    gmm.assert_matches_mixture(sample(jax.random.key(0)), threshold, N)


@pytest.mark.parametrize("sde", [VPSDE(), VESDE()], ids=["vp", "ve"])
def test_the_mmd_check_rejects_too_coarse_a_discretisation(sde, threshold):
    """The test above has power: 10 Euler–Maruyama steps leave MMD² far above the threshold
    (measured: ~25x under VP, ~18x under VE; asserted > 2x)."""
    score_fn = gmm.sde_score_fn(gmm.MIXTURE, sde)
    x = jax.jit(lambda key: sample_sde(sde, score_fn, key, (N, 2), n_steps=10)[0])(
        jax.random.key(0)
    )
    assert gmm.mmd2_to_exact(np.asarray(x)) > 2 * threshold


def test_discretisations(x64):
    """VP: DDPM's step with ``beta_i = beta(t) dt``; VE: ``G^2 = sigma(t)^2 - sigma(t - dt)^2``,
    whose sum over the grid telescopes to ``sigma(T)^2 - sigma(eps)^2``; sub-VP: the Euler
    fallback."""
    x = jax.random.normal(jax.random.key(0), (3, 2))
    t = jnp.array([0.2, 0.5, 1.0])
    dt = 0.01
    vp = VPSDE()
    f, g = discretize(vp, x, t, dt)
    beta = np.asarray(vp.beta_min + t * (vp.beta_max - vp.beta_min)) * dt
    np.testing.assert_allclose(f, (np.sqrt(1 - beta)[:, None] - 1) * np.asarray(x), rtol=1e-12)
    np.testing.assert_allclose(g, np.sqrt(beta), rtol=1e-12)

    ve = VESDE()
    grid = jnp.linspace(1.0, 1e-3, 101)[:-1]  # t_i of sample_sde with n_steps = 100
    step = (1.0 - 1e-3) / 100
    f, g = discretize(ve, jnp.zeros((100, 2)), grid, step)
    assert not np.any(np.asarray(f))
    expected = float(ve.sigma(jnp.asarray(1.0)) ** 2 - ve.sigma(jnp.asarray(1e-3)) ** 2)
    assert float(jnp.sum(g**2)) == pytest.approx(expected, rel=1e-10)

    sub = SubVPSDE()
    f, g = discretize(sub, x, t, dt)
    np.testing.assert_allclose(f, sub.drift(x, t) * dt, rtol=1e-12)
    np.testing.assert_allclose(g, sub.diffusion(t) * np.sqrt(dt), rtol=1e-12)


def test_predictor_updates(x64):
    """One step of each predictor, noise recovered from ``x - x_mean``: EM's mean is
    ``x - (f - g^2 s) dt`` with noise scale ``g sqrt(dt)``; reverse diffusion's is
    ``x - f_i + G_i^2 s`` with scale ``G_i``. The recovered noise is the same N(0, I) draw for
    both (same key), so only the scales differ; exact up to rounding."""
    sde = VPSDE()
    score_fn = lambda x, t: -x * (1 + t[:, None])
    x = jax.random.normal(jax.random.key(0), (4, 2))
    t = jnp.full((4,), 0.7)
    dt, key = 0.02, jax.random.key(3)
    s = np.asarray(score_fn(x, t))
    g = np.asarray(sde.diffusion(t))[:, None]

    x_em, mean_em = euler_maruyama_predictor(sde, score_fn, x, t, dt, key)
    np.testing.assert_allclose(
        mean_em, x - (np.asarray(sde.drift(x, t)) - g**2 * s) * dt, rtol=1e-12
    )
    z_em = (np.asarray(x_em) - np.asarray(mean_em)) / (g * np.sqrt(dt))

    x_rd, mean_rd = reverse_diffusion_predictor(sde, score_fn, x, t, dt, key)
    f, big_g = (np.asarray(v) for v in discretize(sde, x, t, dt))
    np.testing.assert_allclose(mean_rd, np.asarray(x) - f + big_g[:, None] ** 2 * s, rtol=1e-12)
    z_rd = (np.asarray(x_rd) - np.asarray(mean_rd)) / big_g[:, None]
    np.testing.assert_allclose(z_em, z_rd, rtol=1e-10)


@pytest.mark.parametrize("sde", [VPSDE(), VESDE()], ids=["vp", "ve"])
def test_langevin_corrector_step_rule(sde, x64):
    """``x_mean = x + e s``, ``x = x_mean + sqrt(2 e) z`` with ``e = 2 alpha (snr |z| / |s|)^2``
    (batch means of per-example norms), ``alpha = 1 - beta(t) dt`` for VP and 1 for VE: ``e`` and
    ``z`` are recovered from the outputs and the rule is checked to 1e-10."""
    score_fn = lambda x, t: -x / (1 + t[:, None])
    x = jax.random.normal(jax.random.key(0), (16, 2))
    t = jnp.full((16,), 0.5)
    dt, snr = 0.01, 0.2
    x_new, x_mean = langevin_corrector(sde, score_fn, x, t, dt, jax.random.key(1), snr=snr)
    s = np.asarray(score_fn(x, t))
    e = (np.asarray(x_mean) - np.asarray(x)) / s
    assert np.allclose(e, e[0, 0], rtol=1e-10)  # one step size for the whole batch
    e = e[0, 0]
    z = (np.asarray(x_new) - np.asarray(x_mean)) / np.sqrt(2 * e)
    alpha = 1 - float(sde.beta(jnp.asarray(0.5))) * dt if isinstance(sde, VPSDE) else 1.0
    norm = lambda v: np.linalg.norm(v, axis=-1).mean()
    assert e == pytest.approx(2 * alpha * (snr * norm(z) / norm(s)) ** 2, rel=1e-10)


def test_denoise_drops_exactly_the_last_noise():
    """With the same key, ``denoise=False`` adds the last step's noise ``g(t) sqrt(dt) z`` to the
    denoised output; its empirical std over 2 x 2000 values is within 4 standard errors
    (``std / sqrt(2 m)``, m = 4000) of ``g(eps + dt) sqrt(dt)``."""
    sde = VPSDE()
    score_fn = gmm.sde_score_fn(gmm.MIXTURE, sde)
    run = jax.jit(
        lambda key, denoise: sample_sde(sde, score_fn, key, (N, 2), n_steps=20, denoise=denoise)[0],
        static_argnums=1,
    )
    key = jax.random.key(5)
    diff = np.asarray(run(key, False)) - np.asarray(run(key, True))
    dt = (1.0 - 1e-3) / 20
    expected = float(sde.diffusion(jnp.asarray(1e-3 + dt))) * np.sqrt(dt)
    assert abs(diff.std() - expected) < 4 * expected / np.sqrt(2 * diff.size)
    assert abs(diff.mean()) < 4 * expected / np.sqrt(diff.size)


def test_jit_vmap_and_trajectory():
    """Jitted with the SDE as a traced argument, the result equals the eager one; vmapped over
    keys, it equals separate calls (to float32 rounding); the thinned trajectory ends at the
    final state."""
    kwargs = dict(
        n_steps=20,
        predictor="reverse_diffusion",
        corrector="langevin",
        denoise=False,
        record_every=5,
    )
    run = lambda sde, key: sample_sde(
        sde, gmm.sde_score_fn(gmm.MIXTURE, sde), key, (64, 2), **kwargs
    )
    keys = jax.random.split(jax.random.key(0), 3)
    x, info = run(VPSDE(), keys[0])
    assert info["trajectory"].shape == (4, 64, 2)
    np.testing.assert_array_equal(info["trajectory"][-1], x)
    assert info["step_norm"].shape == () and float(info["step_norm"]) > 0

    jitted = jax.jit(lambda sde, key: run(sde, key)[0])
    single = [jitted(VPSDE(), key) for key in keys]
    np.testing.assert_allclose(single[0], x, rtol=1e-4, atol=1e-4)
    batched = jax.jit(jax.vmap(lambda key: run(VPSDE(), key)[0]))(keys)
    np.testing.assert_allclose(batched, np.stack(single), rtol=1e-4, atol=1e-4)


def test_x64(x64):
    """Under float64 the state, the times given to the score and the info stay float64."""
    seen = []

    def score_fn(x, t):
        seen.append((x.dtype, t.dtype))
        return gmm.sde_score_fn(gmm.MIXTURE, VPSDE())(x, t)

    x, info = sample_sde(
        VPSDE(), score_fn, jax.random.key(0), (32, 2), n_steps=10, corrector="langevin"
    )
    assert x.dtype == jnp.float64 and info["step_norm"].dtype == jnp.float64
    assert set(seen) == {(np.dtype("float64"), np.dtype("float64"))}
    assert np.isfinite(np.asarray(x)).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(predictor="heun"),
            r"predictor must be one of \('euler_maruyama', 'reverse_diffusion'\); got 'heun'",
        ),
        (dict(corrector="hmc"), r"corrector must be one of \(None, 'langevin'\); got 'hmc'"),
        (
            dict(shape=(8,)),
            r"shape must be \(n, \*event\) with rank >= 2 and positive sizes; got \(8,\)",
        ),
        (dict(n_steps=0), "n_steps must be an integer >= 1; got 0"),
        (dict(n_steps=10.0), "n_steps must be an integer >= 1; got 10.0"),
        (dict(n_corrector_steps=0), "n_corrector_steps must be an integer >= 1; got 0"),
        (dict(snr=0.0), "snr must be finite and > 0; got 0.0"),
        (dict(eps=0.0), r"eps must be in \(0, T=1.0\); got 0.0"),
        (dict(eps=1.0), r"eps must be in \(0, T=1.0\); got 1.0"),
        (dict(record_every=3), "record_every must be 0 or a divisor of n_steps=10; got 3"),
    ],
)
def test_bad_arguments(kwargs, message):
    args = dict(shape=(8, 2), n_steps=10) | kwargs
    shape = args.pop("shape")
    with pytest.raises(ValueError, match=message):
        sample_sde(VPSDE(), lambda x, t: -x, jax.random.key(0), shape, **args)
