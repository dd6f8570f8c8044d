"""Autoencoder losses against numpy formulas, the corruption's statistics against its stated
level, and the classical result that a linear autoencoder learns the PCA subspace."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg
import scipy.special

from jgen.losses.autoencoder import (
    autoencoder_loss,
    corrupt,
    denoising_autoencoder_loss,
    reconstruction_loss,
)


def test_reconstruction_loss_matches_numpy(x64):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(4, 2, 3))  # grey levels in [0, 1]; errors are summed over (2, 3)
    x_hat = rng.normal(size=(4, 2, 3)) * 3.0
    np.testing.assert_allclose(
        reconstruction_loss(jnp.asarray(x), jnp.asarray(x_hat)),
        ((x - x_hat) ** 2).sum(axis=(1, 2)),
        rtol=1e-12,
    )
    # Binary cross-entropy of logits, written with log sigma(l) and log sigma(-l); logits of
    # +-60 check that nothing overflows (sigma(-60) ~ 1e-26 would round 1 - sigma to 1).
    x_hat[0, 0] = [60.0, -60.0, 0.0]
    bce = -(x * scipy.special.log_expit(x_hat) + (1 - x) * scipy.special.log_expit(-x_hat))
    got = reconstruction_loss(jnp.asarray(x), jnp.asarray(x_hat), kind="bernoulli")
    np.testing.assert_allclose(got, bce.sum(axis=(1, 2)), rtol=1e-12)


def linear_maps(rng, d=5, q=2):
    enc, dec = rng.normal(size=(d, q)), rng.normal(size=(q, d))
    return enc, dec, (lambda x: x @ enc), (lambda z: z @ dec)


def test_autoencoder_loss_matches_numpy(x64):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 5))
    enc, dec, encode, decode = linear_maps(rng)
    loss, aux = autoencoder_loss(jnp.asarray(x), encode, decode)
    np.testing.assert_allclose(loss, ((x - x @ enc @ dec) ** 2).sum(1), rtol=1e-12)
    np.testing.assert_allclose(aux["code_sq_norm"], ((x @ enc) ** 2).sum(1), rtol=1e-12)
    x01 = rng.uniform(size=(6, 5))
    loss, _ = autoencoder_loss(jnp.asarray(x01), encode, decode, kind="bernoulli")
    logits = x01 @ enc @ dec
    bce = -(x01 * scipy.special.log_expit(logits) + (1 - x01) * scipy.special.log_expit(-logits))
    np.testing.assert_allclose(loss, bce.sum(1), rtol=1e-12)


@pytest.mark.parametrize("noise, level", [("gaussian", 0.3), ("masking", 0.25)])
def test_denoising_loss_reconstructs_the_clean_input(x64, noise, level):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 5)) + 2.0  # away from 0, so masked entries are visible
    enc, dec, encode, decode = linear_maps(rng)
    key = jax.random.key(3)
    x_tilde = np.asarray(corrupt(key, jnp.asarray(x), noise=noise, level=level))
    assert not np.allclose(x_tilde, x)
    loss, aux = denoising_autoencoder_loss(
        key, jnp.asarray(x), encode, decode, noise=noise, level=level
    )
    # The target is the clean x, the input the corrupted one.
    np.testing.assert_allclose(loss, ((x - x_tilde @ enc @ dec) ** 2).sum(1), rtol=1e-12)
    np.testing.assert_allclose(aux["code_sq_norm"], ((x_tilde @ enc) ** 2).sum(1), rtol=1e-12)
    np.testing.assert_allclose(aux["corruption_sq_norm"], ((x_tilde - x) ** 2).sum(1), rtol=1e-12)
    # With an identity autoencoder the loss is exactly the corruption.
    identity_loss, _ = denoising_autoencoder_loss(
        key, jnp.asarray(x), lambda v: v, lambda v: v, noise=noise, level=level
    )
    np.testing.assert_allclose(identity_loss, aux["corruption_sq_norm"], rtol=1e-12)


def test_masking_noise_zeroes_the_stated_share():
    x = jnp.ones((200, 50))
    n = x.size
    for level in (0.1, 0.5, 0.9):
        x_tilde = np.asarray(corrupt(jax.random.key(4), x, noise="masking", level=level))
        assert set(np.unique(x_tilde)) <= {0.0, 1.0}  # entries are kept as they are or zeroed
        # The number of zeros is Binomial(n, level): its share has standard error
        # sqrt(level (1 - level) / n) (0.004 for level 0.5, n = 10000).
        share = np.mean(x_tilde == 0.0)
        assert abs(share - level) < 4 * np.sqrt(level * (1 - level) / n), (level, share)
    kept = np.asarray(
        corrupt(jax.random.key(5), jnp.arange(1.0, 9.0)[None], noise="masking", level=0.0)
    )
    np.testing.assert_array_equal(kept, np.arange(1.0, 9.0)[None])


def test_gaussian_noise_has_the_stated_std():
    x = jnp.full((100, 100), 3.0)
    n = x.size
    for level in (0.1, 2.0):
        noise = np.asarray(corrupt(jax.random.key(6), x, noise="gaussian", level=level)) - 3.0
        # Known mean 0: mean(noise^2) estimates level^2 with standard error level^2 sqrt(2 / n),
        # and mean(noise) is 0 within level / sqrt(n).
        assert abs(np.mean(noise**2) - level**2) < 4 * level**2 * np.sqrt(2 / n)
        assert abs(np.mean(noise)) < 4 * level / np.sqrt(n)


def test_jit_with_traced_level_and_gradients():
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=(8, 5)), jnp.float32)
    enc = jnp.asarray(rng.normal(size=(5, 2)), jnp.float32)

    def objective(enc, level):
        loss, _ = denoising_autoencoder_loss(
            jax.random.key(8), x, lambda v: v @ enc, lambda z: z @ enc.T, level=level
        )
        return jnp.mean(loss)

    eager = objective(enc, 0.2)
    np.testing.assert_allclose(jax.jit(objective)(enc, 0.2), eager, rtol=1e-5)
    grad = jax.jit(jax.grad(objective))(enc, 0.2)
    # Central finite difference along a random direction (float32: step 1e-2, loose tolerance).
    direction = jnp.asarray(rng.normal(size=(5, 2)), jnp.float32)
    h = 1e-2
    fd = (objective(enc + h * direction, 0.2) - objective(enc - h * direction, 0.2)) / (2 * h)
    np.testing.assert_allclose(jnp.sum(grad * direction), fd, rtol=1e-2)


def test_linear_autoencoder_learns_the_pca_subspace(x64):
    # Baldi & Hornik 1989: the squared-error optimum of a linear autoencoder with q hidden units
    # has its decoder spanning the top-q principal subspace of the centred data.
    rng = np.random.default_rng(9)
    n, d, q = 400, 6, 2
    basis = np.linalg.qr(rng.normal(size=(d, q)))[0]
    # Principal variances about 9 and 4 over a noise floor of 0.25: a wide eigengap.
    x = rng.normal(size=(n, q)) * [3.0, 2.0] @ basis.T + 0.5 * rng.normal(size=(n, d)) + 1.0
    x = jnp.asarray(x)
    pca_directions = np.linalg.svd(np.asarray(x) - np.asarray(x).mean(0), full_matrices=False)[2]

    def encode(params, v):
        return v @ params["enc"] + params["b_enc"]

    def decode(params, z):
        return z @ params["dec"] + params["b_dec"]

    def objective(params):
        loss, _ = autoencoder_loss(
            x, functools.partial(encode, params), functools.partial(decode, params)
        )
        return jnp.mean(loss)

    params = {
        "enc": 0.1 * jnp.asarray(rng.normal(size=(d, q))),
        "b_enc": jnp.zeros(q),
        "dec": 0.1 * jnp.asarray(rng.normal(size=(q, d))),
        "b_dec": jnp.zeros(d),
    }
    optimizer = optax.adam(0.05)

    def step(carry, _):
        params, opt_state = carry
        grads = jax.grad(objective)(params)
        updates, opt_state = optimizer.update(grads, opt_state)
        return (optax.apply_updates(params, updates), opt_state), None

    (params, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, length=400))(
        (params, optimizer.init(params))
    )
    angles = scipy.linalg.subspace_angles(np.asarray(params["dec"]).T, pca_directions[:q].T)
    # The initial subspace is at angles (1.40, 0.75); after 400 steps they measure (4e-6, 2e-7)
    # (after 100 steps still 2e-2). The optimum's mean squared error is the sum of the discarded
    # eigenvalues of the 1/n covariance (1.042 here; measured relative gap 4e-9).
    assert np.max(angles) < 1e-4, angles
    discarded = np.sum(np.linalg.eigvalsh(np.cov(np.asarray(x).T, bias=True))[: d - q])
    np.testing.assert_allclose(objective(params), discarded, rtol=1e-6)


def test_bad_arguments():
    x = jnp.zeros((4, 3))
    identity = lambda v: v  # noqa: E731
    with pytest.raises(ValueError, match=r"kind must be one of \('squared', 'bernoulli'\)"):
        reconstruction_loss(x, x, kind="l1")
    with pytest.raises(ValueError, match=r"x_hat must have the shape of x \(4, 3\); got shape"):
        reconstruction_loss(x, jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"x must be a batch of shape \(B, \*event\); got shape"):
        autoencoder_loss(jnp.zeros(4), identity, identity)
    with pytest.raises(ValueError, match="x must have a floating-point dtype; got dtype int32"):
        autoencoder_loss(jnp.zeros((4, 3), jnp.int32), identity, identity)
    with pytest.raises(ValueError, match=r"encode must return a batch of codes \(B=4"):
        autoencoder_loss(x, lambda v: v[0], identity)
    with pytest.raises(ValueError, match=r"noise must be one of \('gaussian', 'masking'\)"):
        corrupt(jax.random.key(0), x, noise="salt", level=0.1)
    with pytest.raises(ValueError, match="level must be finite and >= 0; got -0.1"):
        denoising_autoencoder_loss(jax.random.key(0), x, identity, identity, level=-0.1)
    with pytest.raises(ValueError, match=r"level must be a probability in \[0, 1\].*got 1.5"):
        corrupt(jax.random.key(0), x, noise="masking", level=1.5)
