"""Annealed Langevin dynamics (NCSN) with exact scores of Gaussian mixtures and Gaussians.

Ground truth: the closed-form score of a noise-perturbed Gaussian mixture (``mixtures.py``, itself
checked against autodiff here), exact mixture samples for an MMD two-sample comparison, and the
closed-form stationary variance of the unadjusted Langevin algorithm on a Gaussian.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.metrics.mmd import gaussian_kernel, median_heuristic, mmd2_unbiased
from jgen.samplers.annealed_langevin import annealed_langevin
from jgen.sdes.schedules import geometric_sigmas
from tests.samplers.mixtures import GaussianMixture

MIXTURE = GaussianMixture(
    weights=np.array([0.5, 0.3, 0.2]),
    means=np.array([[-2.5, 0.0], [2.5, 0.0], [0.0, 3.0]]),
    stds=np.array([0.3, 0.4, 0.5]),
)


def test_mixture_score_is_the_gradient_of_its_log_density(x64):
    x = jax.random.normal(jax.random.key(0), (50, 2), jnp.float64) * 3
    sigma = jnp.linspace(0.01, 5.0, 50)
    autodiff = jax.jit(jax.grad(lambda x: MIXTURE.log_prob(x, sigma).sum()))(x)
    closed_form = jax.jit(MIXTURE.score)(x, sigma)
    np.testing.assert_allclose(closed_form, autodiff, rtol=1e-10, atol=1e-12)


def test_samples_match_the_mixture():
    n = 2000
    # NCSN's recipe (Song & Ermon 2020): sigma_1 about the largest distance between data points,
    # geometric levels, a step at least several times smaller than the last level's variance.
    # Between-mode mixing stops once the modes separate, so finite annealing tilts the weights
    # toward the broader components; with 40 levels x 50 steps that tilt is below 1% (measured on
    # 20 000 chains), under the 1.1% standard error of n = 2000 samples.
    sigmas = geometric_sigmas(6.0, 0.05, 40)
    x0 = jax.random.uniform(jax.random.key(1), (n, 2), minval=-6.0, maxval=6.0)
    run = jax.jit(
        lambda x0, key: annealed_langevin(
            MIXTURE.score, x0, key, sigmas=sigmas, n_steps_each=50, step_lr=5e-4
        )
    )
    x, info = run(x0, jax.random.key(2))
    assert x.shape == (n, 2) and x.dtype == jnp.float32
    assert set(info) == {"scaled_score_norm", "step_norm"}

    # Two-sample test: the sampler's MMD^2 to an exact sample must not exceed the 99th percentile
    # of the MMD^2 between 20 pairs of independent exact samples of the same size.
    reference = MIXTURE.sample(jax.random.key(3), n)
    kernel = gaussian_kernel(median_heuristic(reference))
    mmd2 = jax.jit(lambda a, b: mmd2_unbiased(a, b, kernel))
    null = [
        float(
            mmd2(
                MIXTURE.sample(jax.random.key(100 + 2 * i), n),
                MIXTURE.sample(jax.random.key(101 + 2 * i), n),
            )
        )
        for i in range(20)
    ]
    threshold = np.percentile(null, 99)
    assert float(mmd2(x, reference)) <= threshold, (float(mmd2(x, reference)), threshold)

    # Component weights: E_p[r_k(x)] = w_k exactly, and r_k in [0, 1] has variance at most
    # w_k (1 - w_k), so the mean responsibility is within 4 standard errors of w_k.
    weights = np.asarray(MIXTURE.responsibilities(x)).mean(0)
    se = np.sqrt(MIXTURE.weights * (1 - MIXTURE.weights) / n)
    assert np.all(np.abs(weights - MIXTURE.weights) < 4 * se), (weights, se)


def test_level_schedule_and_tweedie_denoising_on_a_gaussian(x64):
    # Data N(mu, s^2 I): the sigma-perturbed score is -(x - mu) / v with v = s^2 + sigma^2. On it
    # the unadjusted Langevin step x <- x - alpha / (2 v) (x - mu) + sqrt(alpha) z is an AR(1)
    # whose stationary variance is v / (1 - alpha / (4 v)) (solve var = (1 - c)^2 var + alpha,
    # c = alpha / (2 v)). With alpha_i = step_lr sigma_i^2 / sigma_L^2 this checks the step size
    # of every level, through the state recorded at each level's end.
    n, d, s, step_lr = 4000, 2, 1.0, 0.25
    mu = jnp.array([1.0, -2.0])
    sigmas = geometric_sigmas(4.0, 0.5, 4)

    def score(x, sigma):
        return -(x - mu) / (s**2 + sigma[:, None] ** 2)

    x0 = jax.random.normal(jax.random.key(4), (n, d), jnp.float64) * 4.0
    key = jax.random.key(5)
    kwargs = dict(sigmas=sigmas, n_steps_each=100, step_lr=step_lr)
    x, info = jax.jit(lambda x0: annealed_langevin(score, x0, key, record_every=100, **kwargs))(x0)
    assert x.dtype == jnp.float64
    levels = np.asarray(info["trajectory"])
    assert levels.shape == (4, n, d)
    v = s**2 + np.asarray(sigmas) ** 2
    alpha = step_lr * np.asarray(sigmas) ** 2 / float(sigmas[-1]) ** 2
    # 100 steps contract the start's error by (1 - alpha / (2 v))^100 <= 0.9^100 ~ 3e-5.
    expected_var = v / (1 - alpha / (4 * v))  # inflated by 31%, 24%, 12% and 5% over v
    var = ((levels - np.asarray(mu)) ** 2).mean(axis=(1, 2))  # about the known mean
    se = expected_var * np.sqrt(2 / (n * d))  # standard error of a Gaussian variance estimate
    assert np.all(np.abs(var - expected_var) < 4 * se), (var, expected_var, se)

    # Tweedie: x + sigma_L^2 score(x, sigma_L) = E[clean | x] = mu + s^2 / v_L (x - mu), the
    # Gaussian posterior mean, applied to the last level's state.
    posterior_mean = mu + s**2 / v[-1] * (levels[-1] - mu)
    np.testing.assert_allclose(x, posterior_mean, rtol=1e-12, atol=1e-12)
    raw, _ = annealed_langevin(score, x0, key, denoise=False, **kwargs)
    np.testing.assert_allclose(raw, levels[-1], rtol=1e-12)
    # The denoised samples keep the error of the posterior mean only: their spread about mu
    # shrinks by s^2 / v_L (variance s^4 / v_L^2 times that of the raw samples).
    np.testing.assert_allclose(
        np.var(np.asarray(x) - np.asarray(mu)), (s**2 / v[-1]) ** 2 * np.var(raw - mu), rtol=1e-9
    )


def test_vmap_over_keys_matches_separate_runs():
    sigmas = geometric_sigmas(3.0, 0.1, 3)
    x0 = jax.random.normal(jax.random.key(6), (16, 2))
    kwargs = dict(sigmas=sigmas, n_steps_each=5, step_lr=1e-3)

    def run(key):
        return annealed_langevin(MIXTURE.score, x0, key, **kwargs)[0]

    keys = jax.random.split(jax.random.key(7), 3)
    jitted = jax.jit(run)
    stacked = jnp.stack([jitted(k) for k in keys])
    np.testing.assert_allclose(jax.vmap(run)(keys), stacked, rtol=1e-5, atol=1e-5)


def test_bad_arguments():
    x0, key = jnp.zeros((4, 2)), jax.random.key(0)
    ok = dict(sigmas=jnp.array([1.0, 0.5]), n_steps_each=2, step_lr=0.1)

    def call(x0=x0, **changes):
        return annealed_langevin(MIXTURE.score, x0, key, **{**ok, **changes})

    with pytest.raises(ValueError, match=r"sigmas must be strictly decreasing .*got \[0.5, 1.0\]"):
        call(sigmas=jnp.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="sigmas must be strictly decreasing"):
        call(sigmas=jnp.array([1.0, 1.0]))
    with pytest.raises(ValueError, match=r"sigmas must be positive and finite; got \[1.0, 0.0\]"):
        call(sigmas=jnp.array([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"sigmas must be a 1-D array .* got shape \(2, 1\)"):
        call(sigmas=jnp.ones((2, 1)))
    with pytest.raises(ValueError, match="n_steps_each must be an integer >= 1; got 0"):
        call(n_steps_each=0)
    with pytest.raises(ValueError, match="step_lr must be finite and > 0; got -0.1"):
        call(step_lr=-0.1)
    with pytest.raises(ValueError, match="x0 must have a floating-point dtype; got dtype int32"):
        call(x0=jnp.zeros((4, 2), jnp.int32))
    with pytest.raises(ValueError, match=r"x0 must be a batch of shape \(n, \*event\)"):
        call(x0=jnp.float32(0.0))
    with pytest.raises(ValueError, match="record_every must be 0 or a divisor of n_steps=4"):
        call(record_every=3)
