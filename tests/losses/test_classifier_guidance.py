"""Classifier guidance against the closed forms of a two-class Gaussian problem.

Data: ``y ~ Uniform{0, 1}``, ``x0 | y ~ N(m_y, s^2 I)`` in 2-D. Noised by DDPM's forward process,
``q(x_t | y) = N(sqrt(abar) m_y, v I)`` with ``v = abar s^2 + 1 - abar``, so (numpy, below):

- the Bayes noisy posterior ``p(y | x_t) = softmax_y(-|x_t - sqrt(abar) m_y|^2 / (2 v))``;
- the conditional noise ``eps*(x_t | y) = -sqrt(1 - abar) grad log q(x_t | y)
  = sqrt(1 - abar) (x_t - sqrt(abar) m_y) / v``;
- the unconditional noise of the mixture ``eps*(x_t) = sum_y p(y | x_t) eps*(x_t | y)``;
- ``grad log p(y | x_t) = grad log q(x_t | y) - grad log q(x_t)`` by hand;
- the conditional entropy ``H(Y | X_t)`` by quadrature along ``m_1 - m_0`` (the posterior depends
  on ``x_t`` through that projection only).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special
import scipy.stats

from jgen.losses.classifier_guidance import (
    classifier_guidance,
    classifier_guided_eps,
    classifier_log_prob_grad,
    noisy_classifier_loss,
)
from jgen.nets.score_mlp import ScoreMLP
from jgen.samplers.ddim import ddim_sample, ddim_timesteps
from jgen.samplers.ddpm import ddpm_sample, q_sample
from tests.params import random_params

MEANS = np.array([[-1.0, 0.5], [1.0, -0.5]])  # m_0, m_1
S = 0.75
D = 2


def key(seed):
    """The "rbg" generator compiles faster than threefry on CPU; the functions take any key."""
    return jax.random.key(seed, impl="rbg")


def linear_betas_np(n):
    """Ho et al.'s schedule rescaled to ``n`` steps (same total noise)."""
    return np.linspace(1e-4 * 1000 / n, 0.02 * 1000 / n, n)


def abar_np(n):
    return np.cumprod(1.0 - linear_betas_np(n))


# --------------------------------------------------------------------------------------------
# Ground truth in numpy: ``x`` (n, D), ``a`` (n,) the abar of each example.


def np_sq_dist(x, a):
    """``|x - sqrt(a) m_y|^2`` for both classes, ``(n, 2)``."""
    centre = np.sqrt(a)[:, None, None] * MEANS[None]  # (n, 2, D)
    return np.sum((x[:, None, :] - centre) ** 2, axis=-1)


def np_posterior(x, a):
    log_q = -np_sq_dist(x, a) / (2 * (a * S**2 + 1 - a))[:, None]  # equal priors
    log_q -= log_q.max(axis=1, keepdims=True)
    p = np.exp(log_q)
    return p / p.sum(axis=1, keepdims=True)


def np_eps_cond(x, a, y):
    v = a * S**2 + 1 - a
    return (np.sqrt(1 - a) / v)[:, None] * (x - np.sqrt(a)[:, None] * MEANS[y])


def np_eps_uncond(x, a):
    p = np_posterior(x, a)
    return p[:, :1] * np_eps_cond(x, a, np.zeros(len(x), int)) + p[:, 1:] * np_eps_cond(
        x, a, np.ones(len(x), int)
    )


def np_grad_log_posterior(x, a, y):
    """``grad log q(x | y) - grad log q(x)``; ``grad log q(x | y) = -(x - sqrt(a) m_y) / v`` and
    the mixture's score is the posterior average of the class scores."""
    v = (a * S**2 + 1 - a)[:, None]
    p = np_posterior(x, a)
    class_score = [-(x - np.sqrt(a)[:, None] * MEANS[c]) / v for c in (0, 1)]
    return np.where(y[:, None] == 0, class_score[0], class_score[1]) - (
        p[:, :1] * class_score[0] + p[:, 1:] * class_score[1]
    )


def conditional_entropy(a):
    """``H(Y | X_t)`` in nats by a trapezoid rule along ``u = (m_1 - m_0) / |m_1 - m_0|``."""
    v = a * S**2 + 1 - a
    mu = np.sqrt(a) * MEANS @ ((MEANS[1] - MEANS[0]) / np.linalg.norm(MEANS[1] - MEANS[0]))
    z = np.linspace(mu.min() - 12 * np.sqrt(v), mu.max() + 12 * np.sqrt(v), 20_001)
    log_lik = -((z[None] - mu[:, None]) ** 2) / (2 * v)
    log_post = log_lik - np.logaddexp(log_lik[0], log_lik[1])[None]
    dens = scipy.stats.norm.pdf(z[None], mu[:, None], np.sqrt(v))
    return -0.5 * np.sum(np.trapezoid(dens * log_post, z, axis=1))


# --------------------------------------------------------------------------------------------
# The same closed forms as JAX callables with the samplers' signature (x, t int).


def exact_logits_fn(abar):
    """Logits of the Bayes posterior: ``log q(x_t | y)`` up to a class-independent constant."""
    abar = jnp.asarray(abar)
    means = jnp.asarray(MEANS)

    def logits_fn(x, t):
        a = abar[t][:, None, None]
        dist = jnp.sum((x[:, None, :] - jnp.sqrt(a) * means[None]) ** 2, axis=-1)
        return -dist / (2 * (a[:, :, 0] * S**2 + 1 - a[:, :, 0]))

    return logits_fn


def exact_eps_fn(abar):
    """``eps*(x_t) = sum_y p(y | x_t) sqrt(1 - a) (x_t - sqrt(a) m_y) / v``, the mixture's."""
    abar = jnp.asarray(abar)
    means = jnp.asarray(MEANS)
    logits_fn = exact_logits_fn(abar)

    def eps_fn(x, t):
        a = abar[t][:, None]
        p = jax.nn.softmax(logits_fn(x, t), axis=-1)
        centre = jnp.einsum("nc,cd->nd", p, means)
        return jnp.sqrt(1 - a) * (x - jnp.sqrt(a) * centre) / (a * S**2 + 1 - a)

    return eps_fn


def sample_pairs(seed, n):
    """``(x0, y)`` from the two-class model."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    return MEANS[y] + S * rng.normal(size=(n, D)), y


# --------------------------------------------------------------------------------------------
# (a) Guidance with the exact posterior is the exact conditional model.


def test_guided_eps_with_the_exact_posterior_is_the_conditional_eps(x64):
    # 1000-step schedule, abar from 0.9999 down to 4e-5; x_t drawn around both classes.
    abar = abar_np(1000)
    rng = np.random.default_rng(0)
    for t in (0, 10, 100, 500, 999):
        a = np.full(64, abar[t])
        x = rng.normal(size=(64, D)) * 1.5
        y = rng.integers(0, 2, size=64)
        eps = np_eps_uncond(x, a)
        for scale in (1.0, 0.0, 3.0):
            out = classifier_guided_eps(eps, np_grad_log_posterior(x, a, y), a, scale)
            # With ``scale`` s the scores add: eps + s (eps(x | y) - eps(x)).
            expected = eps + scale * (np_eps_cond(x, a, y) - eps)
            np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    # A scalar abar and per-example scales broadcast per example.
    scales = rng.uniform(0, 2, size=64)
    out = classifier_guided_eps(eps, np_grad_log_posterior(x, a, y), abar[999], scales)
    expected = eps + scales[:, None] * (np_eps_cond(x, a, y) - eps)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


def test_composed_guidance_and_autodiff_gradient_match_the_closed_forms(x64):
    # One batch mixing steps 0 .. 999 and both labels: guided_eps_fn(x, t) against eps*(x | y),
    # and the classifier's autodiff gradient against the hand-written one.
    abar = abar_np(1000)
    rng = np.random.default_rng(1)
    n = 200
    t = rng.integers(0, 1000, size=n)
    t[:5] = [0, 1, 10, 500, 999]
    x = jnp.asarray(rng.normal(size=(n, D)) * 1.5)
    y = rng.integers(0, 2, size=n)
    a = abar[t]
    logits_fn = exact_logits_fn(abar)
    guided = classifier_guidance(exact_eps_fn(abar), logits_fn, jnp.asarray(y), abar, 1.0)

    @jax.jit  # one compile instead of many eager ops
    def evaluate(x, t):
        grad = classifier_log_prob_grad(logits_fn, x, t, jnp.asarray(y))
        return grad, exact_eps_fn(abar)(x, t), guided(x, t)

    grad, eps, out = evaluate(x, jnp.asarray(t, jnp.int32))
    np.testing.assert_allclose(grad, np_grad_log_posterior(np.asarray(x), a, y), atol=1e-12)
    np.testing.assert_allclose(eps, np_eps_uncond(np.asarray(x), a), atol=1e-12)
    err = np.abs(np.asarray(out) - np_eps_cond(np.asarray(x), a, y)).max()
    assert err < 1e-10, err  # measured ~1e-16


# --------------------------------------------------------------------------------------------
# (b) The classifier loss at the Bayes posterior is the conditional entropy.


def test_loss_at_the_bayes_posterior_is_the_conditional_entropy(x64):
    # 100 steps; E[loss] = mean_t H(Y | X_t) (quadrature: 0.5425 nats). 20000 examples give a
    # standard error of 0.0028 (measured mean 0.5416); 4 standard errors allowed. Perturbed
    # classifiers (tempered logits, a wrong prior) pay the expected KL to the posterior: larger
    # on the same draws (measured +0.021 and +0.046, 18 and 21 standard errors).
    abar = abar_np(100)
    x0, y = sample_pairs(2, 20_000)
    x0, y = jnp.asarray(x0), jnp.asarray(y, jnp.int32)
    logits_fn = exact_logits_fn(abar)

    worse_fns = (
        lambda x, t: 0.5 * logits_fn(x, t),  # over-smoothed
        lambda x, t: logits_fn(x, t) + jnp.array([0.7, 0.0]),  # a wrong prior
    )

    @jax.jit  # the three losses on the same draws, in one compile
    def losses():
        return [
            noisy_classifier_loss(fn, x0, y, key(3), jnp.asarray(abar))
            for fn in (logits_fn, *worse_fns)
        ]

    best, *worse = (np.asarray(v) for v in losses())
    expected = np.mean([conditional_entropy(a) for a in abar])
    se = best.std(ddof=1) / math.sqrt(len(best))
    assert abs(best.mean() - expected) < 4 * se, (best.mean(), expected, se)
    for w in worse:
        diff = w - best
        assert diff.mean() > 4 * diff.std(ddof=1) / math.sqrt(len(diff))


# --------------------------------------------------------------------------------------------
# (c) Sampling with guidance draws from the class.


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_guided_sampling_reproduces_each_class(x64, sampler):
    # The mixture's exact eps guided by the exact posterior at scale 1 is eps*(x | y): samples of
    # N(m_y, s^2 I), both classes in one batch. 2000 samples per class: the standard error of a
    # mean is s / sqrt(2000) = 0.017, of a standard deviation s / sqrt(4000) = 0.012; 4 standard
    # errors plus a discretisation allowance (DDIM: 200 of 1000 steps, eta 0; DDPM: 1000
    # ancestral steps). With 20000 samples per class the DDIM standard deviations came out
    # 0.010 +- 0.004 too small (0.003 with all 1000 steps), the means unbiased within 0.005; so
    # 0.01 is allowed on means, 0.02 on standard deviations. Without guidance each class would
    # get the mixture's mean, ~1 away from m_y.
    betas = linear_betas_np(1000)
    abar = np.cumprod(1 - betas)
    n = 2000
    labels = jnp.asarray(np.repeat([0, 1], n), jnp.int32)
    guided = classifier_guidance(exact_eps_fn(abar), exact_logits_fn(abar), labels, abar, 1.0)
    shape = (2 * n, D)
    if sampler == "ddim":
        run = lambda k: ddim_sample(guided, k, shape, abar, ddim_timesteps(1000, 200))  # noqa: E731
    else:
        run = lambda k: ddpm_sample(guided, k, shape, betas)  # noqa: E731
    x = np.asarray(jax.jit(run)(key(4))[0])
    for c in (0, 1):
        xc = x[c * n : (c + 1) * n]
        np.testing.assert_allclose(xc.mean(0), MEANS[c], atol=4 * S / math.sqrt(n) + 0.01)
        np.testing.assert_allclose(xc.std(0, ddof=1), S, atol=4 * S / math.sqrt(2 * n) + 0.02)


# --------------------------------------------------------------------------------------------
# (d) Training a noisy classifier.


def test_trained_noisy_classifier_reaches_the_bayes_accuracy():
    # ScoreMLP(num_outputs=2), 300 Adam steps on batches of 256 over a 100-step schedule. On 4000
    # fresh noised test points the Bayes classifier is right with probability
    # Phi(sqrt(abar) |m_1 - m_0| / (2 sqrt(v))) (0.932 at t = 0, 0.61 at t = 50); the trained
    # classifier must be within 0.02 of the Bayes classifier on the same points (measured gaps
    # 0.002 at both steps) and its cross-entropy within 0.03 nats of the Bayes posterior's
    # (measured 0.011 at t = 0, 0.0002 at t = 50).
    abar = jnp.asarray(abar_np(100), jnp.float32)
    model = ScoreMLP(hidden_sizes=(32, 32), embedding_dim=16, num_outputs=2)
    means = jnp.asarray(MEANS, jnp.float32)
    optimizer = optax.adam(1e-2)
    # Parameters drawn by numpy from the shapes: Flax's initialisers inside the jit double the
    # compile time, which is most of this test's time.
    init = random_params(model, jnp.zeros((1, D)), jnp.zeros(1, jnp.int32), scale=0.3)
    init = jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), init)

    def loss(params, k):
        ky, kx, k_loss = jax.random.split(k, 3)
        y = jax.random.bernoulli(ky, 0.5, (256,)).astype(jnp.int32)
        x0 = means[y] + S * jax.random.normal(kx, (256, D))
        logits_fn = functools.partial(model.apply, params)
        return jnp.mean(noisy_classifier_loss(logits_fn, x0, y, k_loss, abar))

    def step(carry, k):
        params, opt_state = carry
        updates, opt_state = optimizer.update(jax.grad(loss)(params, k), opt_state)
        return (optax.apply_updates(params, updates), opt_state), None

    @jax.jit
    def train(params, k):
        carry = (params, optimizer.init(params))
        return jax.lax.scan(step, carry, jax.random.split(k, 300))[0][0]

    @jax.jit
    def noised_logits(params, x0, noise, t):
        steps = jnp.full(x0.shape[:1], t, jnp.int32)
        x_t = q_sample(x0, steps, noise, abar)
        return x_t, model.apply(params, x_t, steps)

    params = train(init, key(5))
    x0, y = sample_pairs(6, 4000)
    x0, noise = jnp.asarray(x0, jnp.float32), jax.random.normal(key(7), x0.shape)
    for t in (0, 50):
        x_t, logits = (np.asarray(v, np.float64) for v in noised_logits(params, x0, noise, t))
        a = np.full(len(y), float(abar_np(100)[t]))
        bayes = np_posterior(x_t, a)
        acc, bayes_acc = np.mean(logits.argmax(1) == y), np.mean(bayes.argmax(1) == y)
        d = np.linalg.norm(MEANS[1] - MEANS[0])
        analytic = scipy.stats.norm.cdf(np.sqrt(a[0]) * d / (2 * np.sqrt(a[0] * S**2 + 1 - a[0])))
        assert abs(bayes_acc - analytic) < 4 * math.sqrt(analytic * (1 - analytic) / len(y))
        assert acc > bayes_acc - 0.02, (t, acc, bayes_acc)
        ce = -np.mean(scipy.special.log_softmax(logits, axis=1)[np.arange(len(y)), y])
        bayes_ce = -np.mean(np.log(bayes[np.arange(len(y)), y]))
        assert ce < bayes_ce + 0.03, (t, ce, bayes_ce)


# --------------------------------------------------------------------------------------------
# (e) Bad inputs.


def test_bad_inputs_raise_named_errors():
    abar = abar_np(100)
    logits_fn = exact_logits_fn(abar)
    eps_fn = exact_eps_fn(abar)
    x = jnp.zeros((4, D))
    y = jnp.zeros(4, jnp.int32)
    t = jnp.zeros(4, jnp.int32)
    k = key(0)
    with pytest.raises(ValueError, match=r"x0 must be a batch"):
        noisy_classifier_loss(logits_fn, jnp.zeros(4), y, k, abar)
    with pytest.raises(ValueError, match=r"labels must be integers of shape \(4,\)"):
        noisy_classifier_loss(logits_fn, x, y[:3], k, abar)
    with pytest.raises(ValueError, match=r"labels must be integers"):
        noisy_classifier_loss(logits_fn, x, jnp.zeros(4), k, abar)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\).*\[0, 2\]"):
        noisy_classifier_loss(logits_fn, x, jnp.array([0, 1, 2, 0]), k, abar)
    with pytest.raises(ValueError, match=r"logits_fn must return logits of shape \(4, C\)"):
        noisy_classifier_loss(lambda x, t: x[:, 0], x, y, k, abar)
    with pytest.raises(ValueError, match=r"logits_fn must return C >= 2"):
        noisy_classifier_loss(lambda x, t: x[:, :1], x, y, k, abar)
    with pytest.raises(ValueError, match=r"alphas_cumprod must lie in \(0, 1\)"):
        noisy_classifier_loss(logits_fn, x, y, k, np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match=r"t must be integer steps of shape \(4,\)"):
        classifier_log_prob_grad(logits_fn, x, jnp.zeros(4), y)
    with pytest.raises(ValueError, match=r"t must be integer steps"):
        classifier_log_prob_grad(logits_fn, x, t[:2], y)
    with pytest.raises(ValueError, match=r"x must be a batch"):
        classifier_log_prob_grad(logits_fn, jnp.zeros(4), t, y)
    with pytest.raises(ValueError, match=r"grad_log_prob must have the shape of eps \(4, 2\)"):
        classifier_guided_eps(x, x[:, :1], 0.5, 1.0)
    with pytest.raises(ValueError, match=r"abar_t must be a scalar or of shape \(4,\)"):
        classifier_guided_eps(x, x, jnp.zeros(3), 1.0)
    with pytest.raises(ValueError, match=r"scale must be a scalar or of shape \(4,\)"):
        classifier_guided_eps(x, x, 0.5, jnp.ones((4, 2)))
    with pytest.raises(ValueError, match=r"alphas_cumprod must be a non-empty 1-D"):
        classifier_guidance(eps_fn, logits_fn, y, np.zeros((2, 2)), 1.0)
    guided = classifier_guidance(eps_fn, logits_fn, jnp.zeros(3, jnp.int32), abar, 1.0)
    with pytest.raises(ValueError, match=r"labels must be integers of shape \(4,\)"):
        guided(x, t)  # labels for 3 samples, a batch of 4
