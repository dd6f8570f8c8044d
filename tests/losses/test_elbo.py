"""Variational bounds against closed forms: decoder log-likelihoods against scipy, distrax and
logistic CDF differences in numpy; KLs against distrax and quadrature; the ELBO and IWAE bounds on
probabilistic PCA, whose log p(x) and posterior are Gaussian in closed form; DReG against the
standard IWAE gradient."""

import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats

from jgen.losses.elbo import (
    bernoulli_log_likelihood,
    discretized_logistic_log_likelihood,
    elbo,
    gaussian_kl,
    gaussian_kl_between,
    gaussian_log_likelihood,
    iwae_bound,
    kl_annealing,
    monte_carlo_kl,
)


def many_keys(seed, n):
    """``n`` keys for the statistical tests. The "rbg" generator compiles about 4x faster than the
    default threefry on CPU (most of these tests' time is compilation); the losses accept any
    typed key."""
    return jax.random.split(jax.random.key(seed, impl="rbg"), n)


# --------------------------------------------------------------------------------------------
# Decoder log-likelihoods.


def test_bernoulli_matches_distrax_and_scipy(x64):
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(4, 3, 5))
    x = (rng.uniform(size=logits.shape) < 0.4).astype(np.float64)
    got = bernoulli_log_likelihood(jnp.asarray(logits), jnp.asarray(x))
    assert got.shape == (4,)
    expected = scipy.stats.bernoulli.logpmf(x, scipy.special.expit(logits)).sum(axis=(1, 2))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    d = distrax.Bernoulli(logits=jnp.asarray(logits))
    np.testing.assert_allclose(got, d.log_prob(jnp.asarray(x)).sum(axis=(1, 2)), rtol=1e-12)


def test_bernoulli_is_finite_for_saturated_logits_in_float32():
    # sigmoid(-200) underflows in float32, so log(sigmoid(l)) would be -inf; the exact values are
    # log s(-200) = -200 - log(1 + e^-200) = -200 and log s(200) = -e^-200 ~ 0.
    logits = jnp.array([[200.0, -200.0, -200.0, 200.0]], jnp.float32)
    x = jnp.array([[1.0, 0.0, 1.0, 0.0]], jnp.float32)
    np.testing.assert_allclose(bernoulli_log_likelihood(logits, x), [-400.0], rtol=1e-6)
    grad = jax.grad(lambda logit: bernoulli_log_likelihood(logit, x).sum())(logits)
    np.testing.assert_allclose(grad, [[0.0, 0.0, 1.0, -1.0]], atol=1e-6)  # x - sigmoid(l)


@pytest.mark.parametrize("log_std_shape", [(), (1, 3, 4), (6, 1, 1), (6, 3, 4)])
def test_gaussian_matches_scipy_and_distrax(x64, log_std_shape):
    rng = np.random.default_rng(1)
    x, mean = rng.normal(size=(6, 3, 4)), rng.normal(size=(6, 3, 4))
    log_std = rng.normal(scale=0.5, size=log_std_shape)
    got = gaussian_log_likelihood(jnp.asarray(x), jnp.asarray(mean), jnp.asarray(log_std))
    assert got.shape == (6,)
    expected = scipy.stats.norm.logpdf(x, mean, np.exp(log_std)).sum(axis=(1, 2))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    d = distrax.Normal(jnp.asarray(mean), jnp.exp(jnp.asarray(log_std)))
    np.testing.assert_allclose(got, d.log_prob(jnp.asarray(x)).sum(axis=(1, 2)), rtol=1e-12)


def logistic_masses(x, mean, scale, num_levels):
    """Bin masses of the discretised logistic as differences of scipy's logistic CDF, the edge
    bins extended to -inf / +inf (Salimans et al. 2017, Eq. 2)."""
    h = 1.0 / (num_levels - 1)
    cdf = scipy.stats.logistic(mean, scale).cdf
    return np.where(
        x < -1 + h, cdf(x + h), np.where(x > 1 - h, 1 - cdf(x - h), cdf(x + h) - cdf(x - h))
    )


def test_discretized_logistic_matches_cdf_differences(x64):
    rng = np.random.default_rng(2)
    k = 256
    x = rng.integers(0, k, size=(5, 4, 4, 3)) * 2 / (k - 1) - 1  # 8-bit pixels mapped to [-1, 1]
    x[:, 0, 0, :] = [-1.0, 1.0, 0.0]  # both edge bins appear in every example
    mean = np.clip(x + rng.normal(scale=0.1, size=x.shape), -1.2, 1.2)
    log_scale = rng.uniform(-4.0, 0.0, size=x.shape)
    got = discretized_logistic_log_likelihood(*map(jnp.asarray, (x, mean, log_scale)), k)
    expected = np.log(logistic_masses(x, mean, np.exp(log_scale), k)).sum(axis=(1, 2, 3))
    assert got.shape == (5,)
    # Differences of CDFs in [0, 1] lose ~1e-16 absolutely; every mass here is above 1e-6, so the
    # reference's log is good to ~1e-10 per pixel, 48 pixels per example.
    assert logistic_masses(x, mean, np.exp(log_scale), k).min() > 1e-6
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-8)


def test_discretized_logistic_is_exact_in_the_tails(x64):
    # Bins 150 to 10^6 scales away from the mean, where F(x + h) - F(x - h) rounds to 0 (or to a
    # difference of two numbers next to 1). The reference works with the survival function (right
    # tail) or the CDF (left tail) in log space: log(S(b) - S(a)) = log S(b) + log1p(-S(a)/S(b)).
    k, h = 256, 1 / 255
    x = np.array([[0.5 + 2 * h, -0.5, 0.0, 2 * h]])
    mean = np.array([[-1.0, 1.0, 0.0, 0.0]])
    scale = np.array([[0.01, 0.01, 1e-6, 1e-6]])
    got = discretized_logistic_log_likelihood(
        *map(jnp.asarray, (x[:, :, None], mean[:, :, None], np.log(scale)[:, :, None])), k
    )
    a, b = (x + h - mean) / scale, (x - h - mean) / scale
    logistic = scipy.stats.logistic
    with np.errstate(divide="ignore"):  # np.where evaluates the branches that are not taken
        right = logistic.logsf(b) + np.log1p(-np.exp(logistic.logsf(a) - logistic.logsf(b)))
        left = logistic.logcdf(a) + np.log1p(-np.exp(logistic.logcdf(b) - logistic.logcdf(a)))
        centre = np.log(logistic.cdf(a) - logistic.cdf(b))
    expected = np.where(b > 0, right, np.where(a < 0, left, centre))
    assert np.all(expected[0, :2] < -100) and expected[0, 3] < -1000  # deep tails
    np.testing.assert_allclose(got, expected.sum(axis=1), rtol=1e-10)
    grad = jax.grad(
        lambda m: discretized_logistic_log_likelihood(
            jnp.asarray(x[:, :, None]), m, jnp.log(jnp.asarray(scale[:, :, None])), k
        ).sum()
    )(jnp.asarray(mean[:, :, None]))
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("num_levels", [2, 17, 256])
def test_discretized_logistic_sums_to_one_over_the_levels(x64, num_levels):
    rng = np.random.default_rng(3)
    pixels = 40
    mean = rng.uniform(-1.5, 1.5, size=pixels)
    log_scale = rng.uniform(-7.0, 2.0, size=pixels)  # from far below a bin's width to far above
    levels = np.linspace(-1.0, 1.0, num_levels)
    # One example per (level, pixel) with a single-pixel event, so every mass comes back.
    x = np.repeat(levels, pixels)[:, None]
    log_p = discretized_logistic_log_likelihood(
        jnp.asarray(x),
        jnp.asarray(np.tile(mean, num_levels)[:, None]),
        jnp.asarray(np.tile(log_scale, num_levels)[:, None]),
        num_levels,
    ).reshape(num_levels, pixels)
    np.testing.assert_allclose(scipy.special.logsumexp(log_p, axis=0), 0.0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# KL divergences.


def mvn_diag(mean, log_std):
    return distrax.MultivariateNormalDiag(jnp.asarray(mean), jnp.exp(jnp.asarray(log_std)))


def test_gaussian_kls_match_distrax(x64):
    rng = np.random.default_rng(4)
    mq, lq, mp, lp = (rng.normal(scale=0.7, size=(5, 3)) for _ in range(4))
    q = mvn_diag(mq, lq)
    got = gaussian_kl(jnp.asarray(mq), jnp.asarray(lq))
    np.testing.assert_allclose(got, q.kl_divergence(mvn_diag(0 * mq, 0 * lq)), rtol=1e-12)
    got = gaussian_kl_between(*map(jnp.asarray, (mq, lq, mp, lp)))
    np.testing.assert_allclose(got, q.kl_divergence(mvn_diag(mp, lp)), rtol=1e-12)
    # A prior shared by the batch, (1, d), broadcasts; image-shaped latents sum over all axes.
    got = gaussian_kl_between(*map(jnp.asarray, (mq, lq, mp[:1], lp[:1])))
    np.testing.assert_allclose(got, q.kl_divergence(mvn_diag(mp[:1], lp[:1])), rtol=1e-12)
    got = gaussian_kl(jnp.asarray(mq.reshape(5, 1, 3)), jnp.asarray(lq.reshape(5, 1, 3)))
    np.testing.assert_allclose(got, gaussian_kl(jnp.asarray(mq), jnp.asarray(lq)), rtol=1e-15)


def test_gaussian_kl_is_accurate_for_nearly_equal_scales(x64):
    # KL(N(0, e^{2d}) || N(0, 1)) = (e^{2d} - 1 - 2d) / 2 = d^2 + 2 d^3 / 3 + O(d^4); at d = 1e-7
    # the naive s^2 - 1 - 2 log s cancels down to ~1e-16 / 1e-14 = 1% relative error.
    d = 1e-7
    got = gaussian_kl(jnp.zeros((1, 1)), jnp.full((1, 1), d))
    np.testing.assert_allclose(got, [d**2 + 2 * d**3 / 3], rtol=1e-8)


def test_monte_carlo_kl_matches_the_analytic_kl(x64):
    rng = np.random.default_rng(5)
    mq, lq, mp, lp = (rng.normal(scale=0.5, size=(4, 3)) for _ in range(4))
    q, p = mvn_diag(mq, lq), mvn_diag(mp, lp)
    exact = np.asarray(gaussian_kl_between(*map(jnp.asarray, (mq, lq, mp, lp))))
    reps = 4000
    singles = jax.jit(jax.vmap(lambda key: monte_carlo_kl(key, q, p)))(many_keys(0, reps))
    # One-sample estimates are i.i.d. with mean KL: the SE of their mean is std / sqrt(reps)
    # (measured 0.016 to 0.25 nats against KLs of 1.2 to 10.6; the means land within 1.1 SE).
    se = np.asarray(singles).std(axis=0, ddof=1) / math.sqrt(reps)
    assert np.all(np.abs(np.asarray(singles).mean(axis=0) - exact) < 4 * se), (singles, exact)
    # num_samples = reps averages as many draws: the same standard error applies.
    pooled = monte_carlo_kl(jax.random.key(1), q, p, num_samples=reps)
    assert pooled.shape == (4,)
    assert np.all(np.abs(np.asarray(pooled) - exact) < 4 * se), (pooled, exact)


def test_monte_carlo_kl_for_non_gaussian_pairs_matches_quadrature(x64):
    loc, scale = np.array([[0.3, -1.0], [1.2, 0.0]]), np.array([[0.5, 1.5], [0.8, 1.0]])
    q = distrax.Independent(distrax.Logistic(jnp.asarray(loc), jnp.asarray(scale)), 1)
    p = distrax.Independent(distrax.Laplace(jnp.zeros((2, 2)), jnp.ones((2, 2))), 1)
    exact = np.zeros(2)
    for i, j in np.ndindex(2, 2):
        dq, dp = scipy.stats.logistic(loc[i, j], scale[i, j]), scipy.stats.laplace()
        exact[i] += scipy.integrate.quad(
            lambda t, dq=dq, dp=dp: dq.pdf(t) * (dq.logpdf(t) - dp.logpdf(t)),
            -60,
            60,
            points=[0.0],
            limit=200,
        )[0]
    s = 20000
    z, log_q = q.sample_and_log_prob(seed=jax.random.key(2), sample_shape=(s,))
    se = np.asarray(log_q - p.log_prob(z)).std(axis=0, ddof=1) / math.sqrt(s)  # ~0.008 (KLs ~0.6)
    got = monte_carlo_kl(jax.random.key(2), q, p, num_samples=s)
    assert np.all(np.abs(np.asarray(got) - exact) < 4 * se), (got, exact, se)


# --------------------------------------------------------------------------------------------
# Probabilistic PCA (Tipping & Bishop 1999): z ~ N(0, I_2), x | z ~ N(W z + b, s^2 I_5), so
#   log p(x) = log N(x; b, W W^T + s^2 I),
#   p(z | x) = N(M^{-1} W^T (x - b), s^2 M^{-1}),  M = W^T W + s^2 I.
# W has orthogonal columns, so M and the posterior covariance are diagonal and the exact posterior
# is a diagonal-Gaussian encoder: mean = A x + c with A = M^{-1} W^T, c = -A b, log_std fixed.

DX, DZ, BATCH = 5, 2, 6


def ppca_problem():
    rng = np.random.default_rng(6)
    w = np.linalg.qr(rng.normal(size=(DX, DZ)))[0] * np.array([2.0, 0.7])
    b, s = rng.normal(size=DX), 0.5
    cov = w @ w.T + s**2 * np.eye(DX)
    x = rng.multivariate_normal(b, cov, size=BATCH)
    m = w.T @ w + s**2 * np.eye(DZ)
    assert np.allclose(m, np.diag(np.diag(m)))
    a = np.linalg.solve(m, w.T)
    posterior = {"A": a, "c": -a @ b, "log_std": 0.5 * np.log(s**2 / np.diag(m))}
    decoder = {"W": w, "b": b, "log_s": np.log(s)}
    log_px = scipy.stats.multivariate_normal(b, cov).logpdf(x)
    as_jax = lambda d: {k: jnp.asarray(v) for k, v in d.items()}  # noqa: E731
    return jnp.asarray(x), as_jax(posterior), as_jax(decoder), log_px


def wrong(posterior, shift=0.4):
    """The posterior with its mean shifted by ``shift`` in each latent: the importance weights
    p(x, z) / q(z | x) are then log-normal, with all moments finite (a q narrower than the
    posterior gives heavy-tailed weights, whose sample standard errors cannot be trusted)."""
    return {**posterior, "c": posterior["c"] + shift}


def encoder(params):
    return lambda x: (
        x @ params["A"].T + params["c"],
        jnp.broadcast_to(params["log_std"], (x.shape[0], DZ)),
    )


def decoder(params, seen=None):
    """log N(x; W z + b, s^2 I) written out; ``seen`` collects the latents it is called on."""

    def log_likelihood(x, z):
        if seen is not None:
            seen.append(np.asarray(z))
        r = x - z @ params["W"].T - params["b"]
        return (
            -0.5 * jnp.sum(r**2, axis=-1) * jnp.exp(-2 * params["log_s"])
            - DX * params["log_s"]
            - 0.5 * DX * math.log(2 * math.pi)
        )

    return log_likelihood


def log_q(z, enc, x):
    """log q(z | x) with scipy, for latents z (..., B, 2)."""
    mean, log_std = (np.asarray(a) for a in encoder(enc)(x))
    return scipy.stats.norm.logpdf(z, mean, np.exp(log_std)).sum(axis=-1)


def log_prior(z):
    return scipy.stats.norm.logpdf(z).sum(axis=-1)


@jax.jit
def exact_posterior_bounds(key, x, post, dec):
    iwae = [iwae_bound(key, x, encoder(post), decoder(dec), k) for k in (1, 7)]
    return iwae, elbo(key, x, encoder(post), decoder(dec))


def test_exact_posterior_makes_the_bounds_tight(x64):
    x, post, dec, log_px = ppca_problem()
    post_mean, post_log_std = (np.asarray(a) for a in encoder(post)(x))
    post_cov = np.diag(np.exp(2 * post_log_std[0]))
    kl = 0.5 * (np.trace(post_cov) + (post_mean**2).sum(-1) - DZ - np.log(np.linalg.det(post_cov)))
    for key in many_keys(0, 3):
        iwae, (value, aux) = exact_posterior_bounds(key, x, post, dec)
        # Every importance weight p(x, z) / p(z | x) is p(x): the bound is log p(x) sample by
        # sample, for every k, and all weights are equal (ESS = k).
        for k, (iwae_value, iwae_aux) in zip((1, 7), iwae, strict=True):
            np.testing.assert_allclose(iwae_value, log_px, rtol=0, atol=1e-10)
            np.testing.assert_allclose(iwae_aux["ess"], k, rtol=1e-10)
        # The ELBO with the analytic KL: log p(x | z) - KL = log p(x) + log q(z|x) - log p(z) - KL
        # by Bayes' rule, exact for each sample (z from the documented eps = normal(key, (B, 2)));
        # it equals log p(x) in expectation only.
        z = post_mean + np.exp(post_log_std) * np.asarray(jax.random.normal(key, (BATCH, DZ)))
        np.testing.assert_allclose(aux["kl"], kl, rtol=1e-12)
        expected = log_px + log_q(z, post, x) - log_prior(z) - kl
        np.testing.assert_allclose(value, expected, rtol=0, atol=1e-10)


def batch_means(bound, x, enc, dec, reps, seed):
    """The batch-mean ``bound(key, x, encoder, log_likelihood)[0]`` for ``reps`` keys."""
    fn = lambda key: bound(key, x, encoder(enc), decoder(dec))[0].mean()  # noqa: E731
    return np.asarray(jax.jit(jax.vmap(fn))(many_keys(seed, reps)))


def iwae_k(k):
    return lambda key, x, enc, dec: iwae_bound(key, x, enc, dec, k)


def test_wrong_encoder_bounds_are_strict_and_iwae_rises_with_k_towards_log_px(x64):
    x, post, dec, log_px = ppca_problem()
    enc, target, reps = wrong(post), log_px.mean(), 300
    elbos = batch_means(elbo, x, enc, dec, reps, seed=1)
    # The ELBO's gap is KL(q || p(z | x)) > 0 (measured 1.61 nats; SE = std / sqrt(reps) ~ 0.05).
    se = elbos.std(ddof=1) / math.sqrt(reps)
    assert elbos.mean() < target - 4 * se, (elbos.mean(), target, se)
    means, ses = [], []
    for k in (1, 5, 50, 500):
        # k = 1 shares the ELBO's keys: the same latents (see the next test), so the paired
        # difference, analytic minus one-sample KL, has mean 0 (4 SE of the difference, ~0.03).
        values = batch_means(iwae_k(k), x, enc, dec, reps, seed=1 if k == 1 else k)
        if k == 1:
            diff = values - elbos
            assert abs(diff.mean()) < 4 * diff.std(ddof=1) / math.sqrt(reps), diff.mean()
        means.append(values.mean())
        ses.append(values.std(ddof=1) / math.sqrt(reps))
    # Measured gaps to log p(x): 1.63, 0.59, 0.13, 0.020 nats. Each step up is more than 4 SE of
    # the difference of two independent means (the smallest margin, 50 -> 500, is ~9 SE).
    for i in range(3):
        assert means[i + 1] - means[i] > 4 * math.hypot(ses[i], ses[i + 1]), (means, ses)
    assert means[-1] < target + 4 * ses[-1]
    # k = 5000: the remaining bias is ~ Var(w / p(x)) / (2k), extrapolated from k = 500 as
    # 0.020 * 500 / 5000 = 0.002 nats; the tolerance adds 4 SE of the mean over 60 keys (SE
    # ~0.004; measured gap 0.0012, 3 SE above the k = 500 mean).
    values = batch_means(iwae_k(5000), x, enc, dec, 60, seed=5000)
    se = values.std(ddof=1) / math.sqrt(len(values))
    assert abs(values.mean() - target) < 4 * se + 0.003, (values.mean(), target, se)
    assert values.mean() > means[-1]


def test_iwae_with_one_sample_is_the_elbo_with_a_sampled_kl(x64):
    # The same key gives the same latent, so IWAE_1 = reconstruction + log p(z) - log q(z | x):
    # the ELBO with its analytic KL replaced by the one-sample estimate.
    x, post, dec, _ = ppca_problem()
    enc, key = wrong(post), jax.random.key(8)
    seen_elbo, seen_iwae = [], []
    _, aux = elbo(key, x, encoder(enc), decoder(dec, seen_elbo))
    value, _ = iwae_bound(key, x, encoder(enc), decoder(dec, seen_iwae), 1)
    np.testing.assert_array_equal(seen_elbo[0], seen_iwae[0])
    # DReG changes gradients only: value = sg(L_k) + (S - sg(S)) is L_k to the last bit (eagerly;
    # under jit XLA may fuse the two programs differently, see the DReG test below).
    dreg, _ = iwae_bound(key, x, encoder(enc), decoder(dec), 1, gradient="dreg")
    np.testing.assert_array_equal(dreg, value)
    z = seen_elbo[0]
    expected = np.asarray(aux["reconstruction"]) + log_prior(z) - log_q(z, enc, x)
    np.testing.assert_allclose(value, expected, rtol=1e-12)


def test_iwae_tiles_sample_major_and_runs_under_jit(x64):
    # Image-shaped data (B, 2, 2) with latents (B, 2): the encoder's mean is the first row of x,
    # unit scale; the decoder is N(x; [z, z], I). The decoder must see row s * B + b = example b
    # with its s-th latent, and the weights must match scipy's densities.
    rng = np.random.default_rng(9)
    x = jnp.asarray(rng.normal(size=(3, 2, 2)))
    enc = lambda x: (x[:, 0, :], jnp.zeros((x.shape[0], 2)))  # noqa: E731
    seen = []

    def dec(x, z):
        return gaussian_log_likelihood(x, jnp.stack([z, z], axis=1), jnp.zeros(()))

    def recording_dec(x, z):
        seen.append((np.asarray(x), np.asarray(z)))
        return dec(x, z)

    iwae_bound(jax.random.key(0), x, enc, recording_dec, 4)
    value, aux = jax.jit(lambda key: iwae_bound(key, x, enc, dec, 4))(jax.random.key(0))
    seen_x, seen_z = seen[0]
    np.testing.assert_array_equal(seen_x.reshape(4, 3, 2, 2), np.broadcast_to(x, (4, 3, 2, 2)))
    eps = np.asarray(jax.random.normal(jax.random.key(0), (4, 3, 2)))  # the documented draw
    z = np.asarray(x)[None, :, 0, :] + eps
    np.testing.assert_allclose(seen_z.reshape(4, 3, 2), z, rtol=1e-15)
    expected_w = (
        scipy.stats.norm.logpdf(np.asarray(x)[None], z[:, :, None, :]).sum(axis=(2, 3))
        + log_prior(z)
        - scipy.stats.norm.logpdf(z, np.asarray(x)[None, :, 0, :]).sum(-1)
    )
    assert value.shape == (3,) and aux["ess"].shape == (3,)
    np.testing.assert_allclose(aux["log_weights"], expected_w, rtol=1e-12)
    expected = scipy.special.logsumexp(expected_w, axis=0) - math.log(4)
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    w = np.exp(expected_w)
    np.testing.assert_allclose(aux["ess"], w.sum(0) ** 2 / (w**2).sum(0), rtol=1e-10)


# --------------------------------------------------------------------------------------------
# Doubly reparameterised gradient (Tucker et al. 2019).


def iwae_objective(gradient, k):
    """``(enc, dec, key, x) ->`` the bound summed over the batch."""

    def objective(enc, dec, key, x):
        return iwae_bound(key, x, encoder(enc), decoder(dec), k, gradient=gradient)[0].sum()

    return objective


def value_and_grads(gradient, k):
    """Per key: the summed bound and its gradients w.r.t. the encoder and decoder parameters."""
    fn = jax.value_and_grad(iwae_objective(gradient, k), argnums=(0, 1))
    return jax.jit(jax.vmap(fn, in_axes=(None, None, 0, None)))


def test_gradients_match_the_estimators_written_out(x64):
    # On PPCA every derivative is explicit. With r = x - W z - b, for one draw of eps (k, B, 2),
    # z = A x + c + sigma eps and normalised weights w~ (k, B):
    #   d [log p(x | z) + log p(z)] / dz = W^T r / s^2 - z,  d log q(z) / dz = -(z - mu) / sigma^2,
    #   dz/dc = I, dz/dA_ij = x_j e_i, dz/dlog_std = sigma eps; and along the reparameterised path
    #   -log q = eps^2 / 2 + log sigma + const, whose total derivative is 1 for log_std, 0 else.
    # standard: encoder sum w~ [(W^T r / s^2 - z) dz/dphi + (1 for log_std)];
    # dreg: encoder sum w~^2 (W^T r / s^2 - z + (z - mu) / sigma^2) dz/dphi (Tucker et al., Eq. 7);
    # both: decoder sum w~ grad_theta log p(x | z) (dW = r z^T / s^2, db = r / s^2,
    # dlog_s = |r|^2 / s^2 - D).
    x, post, dec, _ = ppca_problem()
    enc, k, key = wrong(post), 7, many_keys(13, 1)[0]
    xn, w, b, s = (
        np.asarray(x),
        np.asarray(dec["W"]),
        np.asarray(dec["b"]),
        float(np.exp(dec["log_s"])),
    )
    mu, log_std = (np.asarray(a) for a in encoder(enc)(x))
    sigma, eps = np.exp(log_std), np.asarray(jax.random.normal(key, (k, BATCH, DZ)))
    z = mu + sigma * eps
    r = xn - z @ w.T - b
    log_w = (
        scipy.stats.norm.logpdf(xn, z @ w.T + b, s).sum(-1)
        + log_prior(z)
        - scipy.stats.norm.logpdf(z, mu, sigma).sum(-1)
    )
    wt = scipy.special.softmax(log_w, axis=0)[..., None]
    g_joint = r @ w / s**2 - z

    def encoder_grad(coef, score):
        return {
            "A": np.einsum("kbi,bj->ij", coef, xn),
            "c": coef.sum((0, 1)),
            "log_std": (coef * sigma * eps).sum((0, 1)) + score,
        }

    expected_enc = {
        "standard": encoder_grad(wt * g_joint, wt.sum() * np.ones(DZ)),
        "dreg": encoder_grad(wt**2 * (g_joint + (z - mu) / sigma**2), 0.0),
    }
    expected_dec = {
        "W": np.einsum("kb,kbi,kbj->ij", wt[..., 0], r, z) / s**2,
        "b": np.einsum("kb,kbi->i", wt[..., 0], r) / s**2,
        "log_s": (wt[..., 0] * ((r**2).sum(-1) / s**2 - DX)).sum(),
    }
    for name in ("standard", "dreg"):
        grads = jax.jit(jax.grad(iwae_objective(name, k), argnums=(0, 1)))(enc, dec, key, x)
        for group, expected in zip(grads, (expected_enc[name], expected_dec), strict=True):
            for param in expected:
                np.testing.assert_allclose(group[param], expected[param], rtol=1e-9, atol=1e-12)


def test_dreg_matches_the_iwae_value_and_decoder_gradient_and_reduces_encoder_variance(x64):
    x, post, dec, _ = ppca_problem()
    enc, k, reps = wrong(post), 50, 1000
    keys = many_keys(11, reps)
    values, enc_grads, dec_grads = {}, {}, {}
    for name in ("standard", "dreg"):
        values[name], (g_enc, dec_grads[name]) = value_and_grads(name, k)(enc, dec, keys, x)
        enc_grads[name] = np.concatenate(
            [np.asarray(g_enc[n]).reshape(reps, -1) for n in sorted(g_enc)], 1
        )
    # The value is the IWAE bound (to rounding: the two programs fuse differently under jit) and the
    # decoder gradient the IWAE decoder gradient, key by key.
    np.testing.assert_allclose(values["dreg"], values["standard"], rtol=1e-14)
    for name in dec:
        np.testing.assert_allclose(dec_grads["dreg"][name], dec_grads["standard"][name], rtol=1e-10)
    # Both encoder gradients estimate grad_phi L_k on the same keys: the paired difference has
    # mean 0 in every coordinate (within 4 SE of the difference over 1000 keys; measured: 1.4 SE).
    diff = enc_grads["dreg"] - enc_grads["standard"]
    se = diff.std(axis=0, ddof=1) / math.sqrt(reps)
    assert np.all(np.abs(diff.mean(axis=0)) < 4 * se), (diff.mean(axis=0), se)
    # The summed variance over coordinates (measured 36 against 280 for k = 50).
    var_dreg, var_std = (enc_grads[n].var(axis=0, ddof=1).sum() for n in ("dreg", "standard"))
    assert var_dreg < 0.5 * var_std, (var_dreg, var_std)


# --------------------------------------------------------------------------------------------
# KL annealing.


def cyclical_reference(t, warmup, beta_max, cycles):
    """Fu et al. 2019 with R = 0.5: cycle length T = 2 warmup, tau = (t mod T) / T, beta =
    beta_max min(tau / R, 1) in the first ``cycles - 1`` cycles, then a ramp that stays at max."""
    period = 2 * warmup
    if t >= (cycles - 1) * period:
        return beta_max * min((t - (cycles - 1) * period) / warmup, 1.0)
    return beta_max * min(((t % period) / period) / 0.5, 1.0)


def test_kl_annealing():
    linear = kl_annealing(jnp.array([-5, 0, 25, 100, 1000]), warmup_steps=100)
    np.testing.assert_allclose(linear, [0.0, 0.0, 0.25, 1.0, 1.0])
    assert float(kl_annealing(50, warmup_steps=100, beta_max=4.0)) == 2.0  # a Python int step
    cyclic = jax.jit(lambda s: kl_annealing(s, warmup_steps=10, beta_max=2.0, cycles=3))
    np.testing.assert_allclose(
        cyclic(jnp.array([5, 15, 20, 45, 60, 99])), [1.0, 2.0, 0.0, 1.0, 2.0, 2.0]
    )
    steps = np.arange(-3, 120)
    expected = [cyclical_reference(max(int(t), 0), 10, 2.0, 3) for t in steps]
    np.testing.assert_allclose(cyclic(jnp.asarray(steps)), expected, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Bad input.


def test_bad_arguments():
    z2, z3 = jnp.zeros((4, 2)), jnp.zeros((4, 3))
    key = jax.random.key(0)
    dec = lambda x, z: jnp.zeros(x.shape[0])  # noqa: E731
    with pytest.raises(
        ValueError, match=r"log_std must have the shape of mean, \(4, 2\); got shape \(4, 3\)"
    ):
        gaussian_kl(z2, z3)
    with pytest.raises(ValueError, match=r"mean_p must broadcast to the shape of mean_q"):
        gaussian_kl_between(z2, z2, z3, z2)
    with pytest.raises(
        ValueError, match=r"logits must have the shape of x, \(4, 3\); got shape \(4, 2\)"
    ):
        bernoulli_log_likelihood(z2, z3)
    with pytest.raises(
        ValueError, match=r"log_std must broadcast to the shape of x, \(4, 3\); got shape \(2,\)"
    ):
        gaussian_log_likelihood(z3, z3, jnp.zeros(2))
    with pytest.raises(ValueError, match="num_levels must be an integer >= 2; got 1"):
        discretized_logistic_log_likelihood(z3, z3, z3, 1)
    with pytest.raises(
        ValueError, match=r"encoder must return a batch of 4 .*got mean of shape \(3, 2\)"
    ):
        elbo(key, z3, lambda x: (jnp.zeros((3, 2)),) * 2, dec)
    with pytest.raises(ValueError, match=r"log_std must have the shape of mean"):
        elbo(key, z3, lambda x: (z2, z3), dec)
    with pytest.raises(ValueError, match=r"log_likelihood must return shape \(8,\)"):
        iwae_bound(key, z3, lambda x: (z2, z2), lambda x, z: jnp.zeros((x.shape[0], 1)), 2)
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1; got 0"):
        iwae_bound(key, z3, lambda x: (z2, z2), dec, 0)
    with pytest.raises(
        ValueError, match=r"gradient must be one of \('standard', 'dreg'\); got 'drg'"
    ):
        iwae_bound(key, z3, lambda x: (z2, z2), dec, 2, gradient="drg")
    with pytest.raises(ValueError, match="beta must be finite and >= 0"):
        elbo(key, z3, lambda x: (z2, z2), dec, beta=-1.0)
    q = mvn_diag(z2, z2)
    with pytest.raises(ValueError, match=r"p must have the batch_shape of q, \(4,\); got \(3,\)"):
        monte_carlo_kl(key, q, mvn_diag(z2[:3], z2[:3]))
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1; got 0"):
        monte_carlo_kl(key, q, q, 0)
    with pytest.raises(ValueError, match="warmup_steps must be an integer >= 1; got 0"):
        kl_annealing(3, warmup_steps=0)
