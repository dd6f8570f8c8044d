"""Vector quantisation against brute-force numpy: nearest codes, the straight-through gradient,
the codebook and commitment terms and their gradients, EMA updates (one step by the formula, many
steps to the k-means fixed point), dead-code restarts and the usage statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jgen.losses.vq import (
    EMAState,
    codebook_perplexity,
    codebook_usage,
    ema_init,
    ema_update,
    nearest_codes,
    quantize,
    restart_dead_codes,
    vq_loss,
)


def brute_force_nearest(z, codebook):
    """argmin_k |z - e_k|^2 by explicit differences, no expansion of the square."""
    diff = z[..., None, :] - codebook  # (B, ..., K, d)
    return np.argmin(np.sum(diff**2, axis=-1), axis=-1)


def random_problem(seed, spatial=(5,), k=11, d=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(4, *spatial, d)), rng.normal(size=(k, d))


@pytest.mark.parametrize("spatial", [(), (5,), (3, 4)])
def test_nearest_codes_match_brute_force(x64, spatial):
    z, codebook = random_problem(0, spatial)
    got = jax.jit(nearest_codes)(jnp.asarray(z), jnp.asarray(codebook))
    assert got.shape == z.shape[:-1] and got.dtype == jnp.int32
    np.testing.assert_array_equal(got, brute_force_nearest(z, codebook))


def test_quantize_is_the_nearest_code_with_an_identity_gradient(x64):
    z, codebook = random_problem(1, (3, 2))
    w = np.random.default_rng(2).normal(size=z.shape)
    expected_codes = codebook[brute_force_nearest(z, codebook)]

    def f(z_q):
        return jnp.sum(jnp.sin(z_q) * w)

    z_q, indices = quantize(jnp.asarray(z), jnp.asarray(codebook))
    np.testing.assert_array_equal(indices, brute_force_nearest(z, codebook))
    np.testing.assert_allclose(z_q, expected_codes, rtol=0, atol=1e-15)
    # Straight through: d f(z_q) / d z_e is f's gradient at the code, cos(e_k) w.
    grad_z = jax.jit(jax.grad(lambda z_e: f(quantize(z_e, jnp.asarray(codebook))[0])))(
        jnp.asarray(z)
    )
    np.testing.assert_allclose(grad_z, np.cos(expected_codes) * w, rtol=1e-13)
    grad_e = jax.jit(jax.grad(lambda e: f(quantize(jnp.asarray(z), e)[0])))(jnp.asarray(codebook))
    np.testing.assert_array_equal(grad_e, np.zeros_like(codebook))


@pytest.mark.parametrize("spatial", [(), (3, 2)])
def test_vq_loss_value_and_gradients_match_the_definition(x64, spatial):
    z, codebook = random_problem(3, spatial, k=5)
    beta = 0.3
    idx = brute_force_nearest(z, codebook)
    e = codebook[idx]
    axes = tuple(range(1, z.ndim))
    sq = np.sum((z - e) ** 2, axis=axes)  # the paper's squared norm, summed per example

    loss, aux = vq_loss(jnp.asarray(z), jnp.asarray(codebook), commitment=beta)
    np.testing.assert_allclose(loss, (1 + beta) * sq, rtol=1e-13)
    np.testing.assert_allclose(aux["codebook"], sq, rtol=1e-13)
    np.testing.assert_allclose(aux["commitment"], sq, rtol=1e-13)
    np.testing.assert_array_equal(aux["indices"], idx)

    def total(z_e, cb):
        return jnp.sum(vq_loss(z_e, cb, commitment=beta)[0])

    grad_z, grad_e = jax.jit(jax.grad(total, argnums=(0, 1)))(jnp.asarray(z), jnp.asarray(codebook))
    # Only the commitment term reaches the encoder ...
    np.testing.assert_allclose(grad_z, 2 * beta * (z - e), rtol=1e-13)
    # ... and only the codebook term the codes, summed over the positions assigned to each.
    expected = np.zeros_like(codebook)
    np.add.at(expected, idx.ravel(), 2 * (e - z).reshape(-1, codebook.shape[1]))
    np.testing.assert_allclose(grad_e, expected, rtol=1e-13, atol=1e-15)
    assert np.count_nonzero(np.abs(expected).sum(1)) >= 2  # several codes are exercised

    # Indices from quantize give the same loss without a second search.
    _, given = quantize(jnp.asarray(z), jnp.asarray(codebook))
    again, _ = vq_loss(jnp.asarray(z), jnp.asarray(codebook), commitment=beta, indices=given)
    np.testing.assert_array_equal(again, loss)


@pytest.mark.parametrize("decay", [0.0, 0.7])
def test_one_ema_update_matches_the_formula(x64, decay):
    rng = np.random.default_rng(4)
    k, d, eps = 7, 3, 0.1  # a large eps, so that the smoothing is visible in the result
    z = rng.normal(size=(6, 4, d))
    codebook = rng.normal(size=(k, d))
    codebook[5:] = 1e3  # two codes no vector is near: unused
    state = EMAState(
        cluster_size=rng.uniform(0.5, 3.0, size=k),
        embed_sum=rng.normal(size=(k, d)),
        codebook=codebook,
    )
    idx = brute_force_nearest(z, codebook)

    new = ema_update(
        jax.tree.map(jnp.asarray, state), jnp.asarray(z), jnp.asarray(idx), decay=decay, epsilon=eps
    )

    counts = np.bincount(idx.ravel(), minlength=k).astype(float)
    sums = np.zeros((k, d))
    np.add.at(sums, idx.ravel(), z.reshape(-1, d))
    n_k = decay * state.cluster_size + (1 - decay) * counts
    m_k = decay * state.embed_sum + (1 - decay) * sums
    total = n_k.sum()
    smoothed = (n_k + eps) / (total + k * eps) * total
    used = counts > 0
    assert used[:5].sum() >= 4 and not used[5:].any()
    np.testing.assert_allclose(new.cluster_size, n_k, rtol=1e-14)
    np.testing.assert_allclose(new.embed_sum, m_k, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(new.codebook[used], (m_k / smoothed[:, None])[used], rtol=1e-13)
    np.testing.assert_array_equal(new.codebook[~used], codebook[~used])  # unused: kept
    if decay == 0.0:
        # One step of k-means up to the smoothing factor (N + K eps) N_k / ((N_k + eps) N); the
        # smoothing moves the codes by more than the tolerance above, so it is really applied.
        means = sums[used] / counts[used, None]
        factor = (total + k * eps) * counts[used] / ((counts[used] + eps) * total)
        np.testing.assert_allclose(new.codebook[used], means * factor[:, None], rtol=1e-13)
        assert np.max(np.abs(new.codebook[used] - means)) > 1e-3


def test_ema_converges_to_the_k_means_fixed_point(x64):
    rng = np.random.default_rng(5)
    centres = np.array([[-4.0, -4.0], [-4.0, 4.0], [4.0, -4.0], [4.0, 4.0]])
    x = np.concatenate([c + 0.7 * rng.normal(size=(30, 2)) for c in centres])
    # Four codes started from data points (so assignments change during the first steps) and one
    # far away that is never used.
    init = np.concatenate([x[rng.choice(len(x), 4, replace=False)], [[50.0, 50.0]]])
    eps = 1e-5

    def run(state, batch, steps):
        def step(state, _):
            idx = nearest_codes(batch, state.codebook)
            return ema_update(state, batch, idx, decay=0.99, epsilon=eps), None

        return jax.lax.scan(step, state, None, length=steps)[0]

    run = jax.jit(run, static_argnums=2)
    # First the statistics of another batch (shifted by 3), established over 500 steps, that the
    # averages must then forget: after t steps on x their weight is 0.99^t, 0.90 after 10 steps
    # and 2e-9 after 2000.
    state = run(ema_init(jnp.asarray(init)), jnp.asarray(x + 3.0), 500)

    def distance_to_means(codes):
        idx = brute_force_nearest(x, codes)
        used = np.unique(idx)
        means = np.stack([x[idx == j].mean(0) for j in used])
        return np.max(np.abs(codes[used] - means)), used

    early, _ = distance_to_means(np.asarray(run(state, jnp.asarray(x), 10).codebook))
    final = np.asarray(run(state, jnp.asarray(x), 2000).codebook)
    err, used = distance_to_means(final)
    assert early > 2.0, early  # an EMA, not a jump to the means: about 0.9 * 3 away
    # The fixed point is the mean times (N + K eps) n_k / ((n_k + eps) N) = 1 + O(eps): with
    # n_k ~ 30 and |mean| ~ 4 that is ~1e-6 away from the mean; the forgotten batch
    # adds 3 * 0.99^2000 = 6e-9.
    assert err < 1e-5, err
    np.testing.assert_array_equal(used, np.arange(4))
    np.testing.assert_array_equal(final[4], init[4])


def test_restart_replaces_dead_codes_by_batch_vectors():
    rng = np.random.default_rng(6)
    z = jnp.asarray(rng.normal(size=(4, 3, 2)), jnp.float32)
    flat = np.asarray(z).reshape(-1, 2)
    codes = jnp.asarray(rng.normal(size=(6, 2)) + 100.0, jnp.float32)
    usage = jnp.array([5.0, 0.0, 2.0, 0.5, 3.0, 0.0])
    dead = np.array([False, True, False, True, False, True])

    restart = jax.jit(restart_dead_codes)
    new = restart(jax.random.key(0), codes, z, usage, threshold=1.0)
    np.testing.assert_array_equal(new[~dead], np.asarray(codes)[~dead])
    rows = [int(np.flatnonzero((flat == c).all(1))[0]) for c in np.asarray(new)[dead]]
    assert len(set(rows)) == 3  # three different batch vectors (12 positions >= 6 codes)

    # The draw is random: over keys, the first dead code takes many different vectors.
    picks = {
        tuple(np.asarray(restart(jax.random.key(s), codes, z, usage, threshold=1.0))[1])
        for s in range(20)
    }
    assert len(picks) > 5

    # Fewer positions (2) than codes (6): drawn with replacement, still batch vectors.
    small = z[:1, :2]
    all_dead = restart_dead_codes(jax.random.key(1), codes, small, jnp.zeros(6), threshold=1.0)
    small_rows = np.asarray(small).reshape(-1, 2)
    assert all((small_rows == c).all(1).any() for c in np.asarray(all_dead))


def test_restart_resets_ema_statistics_consistently():
    rng = np.random.default_rng(7)
    z = jnp.asarray(rng.normal(size=(5, 2, 3)), jnp.float32)
    codes = rng.normal(size=(4, 3)).astype(np.float32)
    sizes = np.array([0.2, 4.0, 0.0, 2.5], np.float32)
    state = EMAState(jnp.asarray(sizes), jnp.asarray(sizes[:, None] * codes), jnp.asarray(codes))
    threshold = 1.5
    dead = sizes < threshold

    new = jax.jit(restart_dead_codes)(
        jax.random.key(2), state, z, state.cluster_size, threshold=threshold
    )
    assert isinstance(new, EMAState)
    flat = np.asarray(z).reshape(-1, 3)
    assert all((flat == c).all(1).any() for c in np.asarray(new.codebook)[dead])
    for field in EMAState._fields:
        np.testing.assert_array_equal(getattr(new, field)[~dead], getattr(state, field)[~dead])
    np.testing.assert_array_equal(new.cluster_size[dead], threshold)
    np.testing.assert_allclose(new.embed_sum[dead], threshold * new.codebook[dead], rtol=1e-7)


def test_perplexity_and_usage():
    k = 8
    # Jitted, and every case of shape (6, 8), so that each function compiles once.
    perplexity = jax.jit(codebook_perplexity, static_argnums=1)
    usage = jax.jit(codebook_usage, static_argnums=1)
    uniform = jnp.tile(jnp.arange(k), 6).reshape(6, 8)  # each code 6 times
    np.testing.assert_allclose(perplexity(uniform, k), k, rtol=1e-6)
    np.testing.assert_allclose(usage(uniform, k), 1.0)
    single = jnp.full((6, 8), 5)
    np.testing.assert_allclose(perplexity(single, k), 1.0, rtol=1e-6)
    np.testing.assert_allclose(usage(single, k), 1 / k)
    skewed = np.random.default_rng(8).choice(5, size=(6, 8), p=[0.5, 0.2, 0.1, 0.1, 0.1])
    counts = np.bincount(skewed.ravel(), minlength=k)
    np.testing.assert_allclose(
        perplexity(jnp.asarray(skewed), k), np.exp(scipy.stats.entropy(counts)), rtol=1e-6
    )
    np.testing.assert_allclose(usage(jnp.asarray(skewed), k), np.mean(counts > 0))


def test_bad_arguments():
    z, codebook = jnp.zeros((4, 5, 3)), jnp.ones((6, 3))
    state = ema_init(codebook)
    idx = jnp.zeros((4, 5), jnp.int32)
    with pytest.raises(ValueError, match=r"z_e must have shape \(B, ..., d\) with d = 3.*\(4, 2\)"):
        nearest_codes(jnp.zeros((4, 2)), codebook)
    with pytest.raises(ValueError, match=r"K >= 1 and d >= 1; got \(0, 3\)"):
        quantize(z, jnp.zeros((0, 3)))
    with pytest.raises(ValueError, match="commitment must be finite and >= 0; got -0.1"):
        vq_loss(z, codebook, commitment=-0.1)
    with pytest.raises(ValueError, match=r"indices must have shape \(4, 5\).*got shape \(4,\)"):
        vq_loss(z, codebook, indices=jnp.zeros(4, jnp.int32))
    with pytest.raises(ValueError, match=r"decay must be a scalar in \[0, 1\); got 1.0"):
        ema_update(state, z, idx, decay=1.0)
    with pytest.raises(ValueError, match=r"decay must be a scalar in \[0, 1\); got -0.5"):
        ema_update(state, z, idx, decay=-0.5)
    with pytest.raises(ValueError, match="epsilon must be finite and > 0; got 0.0"):
        ema_update(state, z, idx, epsilon=0.0)
    with pytest.raises(ValueError, match="indices must have an integer dtype"):
        ema_update(state, z, idx.astype(jnp.float32))
    with pytest.raises(ValueError, match=r"state.embed_sum must have shape \(6, 3\)"):
        ema_update(state._replace(embed_sum=jnp.zeros((6, 2))), z, idx)
    with pytest.raises(ValueError, match=r"usage must have shape \(6,\)"):
        restart_dead_codes(jax.random.key(0), codebook, z, jnp.zeros(5), threshold=1.0)
    with pytest.raises(ValueError, match="threshold must be finite and > 0; got 0"):
        restart_dead_codes(jax.random.key(0), state, z, state.cluster_size, threshold=0)
    with pytest.raises(ValueError, match="num_codes must be an integer >= 1; got 0"):
        codebook_perplexity(idx, 0)
