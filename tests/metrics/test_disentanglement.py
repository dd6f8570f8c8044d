"""The beta-VAE metric, the FactorVAE metric and MIG on the shapes dataset, with representations
whose answer is known: the factors themselves, rotations of them, and noise."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import sklearn.metrics

from jgen.data import shapes
from jgen.metrics.clustering import mutual_information
from jgen.metrics.disentanglement import (
    beta_vae_score,
    discretize,
    disentanglement_scores,
    encode_dataset,
    factor_vae_score,
    mig,
)

# Small protocol sizes for speed; the points are still enough for the tolerances below.
NUM_TRAIN, NUM_EVAL = 2000, 2000
NUM_FACTORS = len(shapes.FACTOR_SIZES)


@pytest.fixture(scope="module")
def data():
    return shapes.load()


@pytest.fixture(scope="module")
def standardised(data):
    factors = data[1].astype(np.float64)
    return (factors - factors.mean(0)) / factors.std(0)


def both_accuracies(codes, factors, seed):
    return (
        beta_vae_score(
            jax.random.key(seed), codes, factors, num_train=NUM_TRAIN, num_eval=NUM_EVAL
        ),
        factor_vae_score(
            jax.random.key(seed + 1), codes, factors, num_train=NUM_TRAIN, num_eval=NUM_EVAL
        ),
    )


def test_ground_truth_representation_scores_one(data):
    _, factors = data
    exact = factors.astype(np.float64)
    # Each latent is its factor's index: 20 equal bins over [0, size - 1] put every value in its
    # own bin, so I(z_k; v_k) = H(v_k), and on the full grid z_j is independent of v_k (j != k):
    # every gap is exactly 1.
    score, gaps = mig(exact, factors)
    np.testing.assert_allclose(gaps, 1.0, atol=1e-12)
    assert score == pytest.approx(1.0, abs=1e-12)

    noisy = exact + 1e-3 * np.random.default_rng(0).normal(size=exact.shape)
    beta, factor = both_accuracies(noisy, factors, seed=0)
    assert beta >= 0.99 and factor >= 0.99, (beta, factor)
    # The noise (1e-3 against bins 0.1 wide and more) moves no value across a bin edge but the
    # middle shape, which sits on one: that latent gains a random bit, whose empirical
    # information with 8-valued factors over 6144 points is ~1e-3 nats, so the gaps stay > 0.99.
    score, gaps = mig(noisy, factors)
    assert gaps.min() > 0.99, gaps


def test_pairwise_rotation_loses_the_rotated_factors(data, standardised):
    _, factors = data
    # Turn (shape, scale) and (pos_x, pos_y) by 45 degrees; keep orientation. Reflecting the
    # second factor of a pair (its standardised values are symmetric about 0) swaps the pair's
    # two latents, so both carry the same information about either factor: those four gaps are 0
    # and the orientation gap is 1, hence MIG = 1/5.
    c = math.sqrt(0.5)
    rotation = np.eye(NUM_FACTORS)
    rotation[np.ix_([0, 1], [0, 1])] = [[c, c], [c, -c]]
    rotation[np.ix_([3, 4], [3, 4])] = [[c, c], [c, -c]]
    score, gaps = mig(standardised @ rotation.T, factors)
    np.testing.assert_allclose(gaps, [0, 0, 1, 0, 0], atol=1e-9)
    assert score == pytest.approx(0.2, abs=1e-9)


def test_random_rotation_is_entangled(data, standardised):
    _, factors = data
    rotation, _ = np.linalg.qr(np.random.default_rng(103).normal(size=(NUM_FACTORS,) * 2))
    codes = standardised @ rotation.T
    score, _ = mig(codes, factors)
    assert score < 0.3, score
    # With unit-variance independent factors, Var(z_d | v_k fixed) / Var(z_d) = 1 - R_dk^2: in the
    # population each factor votes for its dominant latent argmax_d R_dk^2. In this rotation two
    # factors share one, so the majority-vote classifier is right on at most 4 of 5 factors:
    # accuracy 0.8, up to the sampling of the evaluation votes (4 binomial standard errors) and
    # the few votes that batches of 64 move to a runner-up latent.
    dominant = np.argmax(rotation**2, axis=0)
    assert len(set(dominant)) == 4
    factor = factor_vae_score(
        jax.random.key(5), codes, factors, num_train=NUM_TRAIN, num_eval=NUM_EVAL
    )
    assert factor <= 0.8 + 4 * math.sqrt(0.8 * 0.2 / NUM_EVAL), factor


def test_noise_scores_chance(data):
    _, factors = data
    codes = np.random.default_rng(1).normal(size=(len(factors), 8))
    # Codes independent of the factors: the features (or votes) have the same law for every label
    # and labels are uniform, so any classifier is right with probability 1/K on each evaluation
    # point; the accuracy is binomial(NUM_EVAL, 1/K) / NUM_EVAL. 4 standard errors.
    chance = 1 / NUM_FACTORS
    tolerance = 4 * math.sqrt(chance * (1 - chance) / NUM_EVAL)
    for accuracy in both_accuracies(codes, factors, seed=2):
        assert abs(accuracy - chance) < tolerance, accuracy
    # Under independence 2 n I is asymptotically chi-square with (bins - 1)(values - 1) degrees of
    # freedom (the G-test); each gap is at most the top information, bounded here by the
    # 1 - 1e-6 quantile of the largest of 8 latents, divided by the entropy.
    n = len(factors)
    _, gaps = mig(codes, factors)
    for gap, size in zip(gaps, shapes.FACTOR_SIZES, strict=True):
        dof = 19 * (size - 1)
        bound = scipy.stats.chi2.ppf(1 - 1e-6 / 8, dof) / (2 * n) / math.log(size)
        assert 0 <= gap < bound, (gap, bound)


def test_mutual_information_matches_sklearn_and_closed_form():
    # x = (0, 0, 1, 1), y = (0, 1, 1, 1): p(0,0) = p(0,1) = 1/4, p(1,1) = 1/2, p(x) = (1/2, 1/2),
    # p(y) = (1/4, 3/4).
    x, y = np.array([[0], [0], [1], [1]]), np.array([[0], [1], [1], [1]])
    closed = 0.25 * math.log(2) + 0.25 * math.log(2 / 3) + 0.5 * math.log(4 / 3)
    assert mutual_information(x, y)[0, 0] == pytest.approx(closed, rel=1e-14)

    rng = np.random.default_rng(3)
    a = rng.integers(0, 6, size=(500, 3))
    b = np.stack([a[:, 0] * 3 - 7, rng.integers(-2, 2, 500), (a[:, 1] + rng.integers(0, 2, 500))])
    b = b.T.astype(np.float64)  # any numbers are symbols
    got = mutual_information(a, b)
    for i in range(3):
        for j in range(3):
            expected = sklearn.metrics.mutual_info_score(a[:, i], b[:, j])
            assert got[i, j] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # b_0 is a relabelling of a_0: I = H(a_0), which is also I(a_0; a_0).
    assert got[0, 0] == pytest.approx(mutual_information(a, a)[0, 0], rel=1e-12)


def test_discretize_uses_equal_width_bins_over_the_range():
    codes = np.random.default_rng(4).normal(size=(1000, 3)) * [1.0, 10.0, 0.1]
    low, high = codes.min(0), codes.max(0)
    expected = np.minimum(np.floor((codes - low) / (high - low) * 20), 19)
    np.testing.assert_array_equal(discretize(codes, 20), expected)
    constant = discretize(np.ones((5, 1)), 20)
    assert np.all(constant == constant[0]) and 0 <= constant[0, 0] < 20


def test_mig_is_invariant_to_rescaling_and_permuting_latents(data, standardised):
    _, factors = data
    rotation, _ = np.linalg.qr(np.random.default_rng(7).normal(size=(NUM_FACTORS,) * 2))
    codes = standardised @ rotation.T
    score, gaps = mig(codes, factors)
    order = [3, 0, 4, 1, 2]
    moved = codes[:, order] * np.array([2.0, 0.5, 4.0, 1.0, 8.0]) + 3.0
    moved_score, moved_gaps = mig(moved, factors)
    np.testing.assert_allclose(moved_gaps, gaps, atol=1e-12)
    assert moved_score == pytest.approx(score, abs=1e-12)


def test_pruned_latents_do_not_vote(data):
    _, factors = data
    tiny = 0.01 * factors.astype(np.float64)  # every latent's std is below 0.05
    kwargs = dict(num_train=200, num_eval=200)
    assert factor_vae_score(jax.random.key(0), tiny, factors, **kwargs) == 0.0
    assert factor_vae_score(jax.random.key(0), tiny, factors, prune_threshold=0.0, **kwargs) == 1.0
    # A collapsed latent (std 1e-3 < 0.05) added to the factors is ignored; unpruned it would be
    # normalised to unit variance like the others.
    collapsed = np.random.default_rng(5).normal(scale=1e-3, size=(len(factors), 1))
    codes = np.concatenate([factors.astype(np.float64), collapsed], axis=1)
    assert factor_vae_score(jax.random.key(0), codes, factors, **kwargs) == 1.0


def test_jitted_encoder_and_keys(data):
    images, factors = data
    traces = []

    @jax.jit
    def encode(x):
        traces.append(x.shape)  # runs once per compilation
        mass = x.sum((1, 2))
        grid = jnp.arange(x.shape[-1]) + 0.5
        centroid_x = (x.sum(1) * grid).sum(1) / mass
        centroid_y = (x.sum(2) * grid).sum(1) / mass
        return jnp.stack([centroid_x, centroid_y, jnp.sqrt(mass)], axis=1)

    codes = encode_dataset(encode, jnp.asarray(images), batch_size=1000)  # 7 batches, last padded
    assert traces == [(1000, *shapes.IMAGE_SHAPE)]
    pixels = np.arange(shapes.IMAGE_SHAPE[0]) + 0.5
    mass = images.sum((1, 2), dtype=np.float64)
    reference = np.stack(
        [
            (images.sum(1) * pixels).sum(1) / mass,
            (images.sum(2) * pixels).sum(1) / mass,
            np.sqrt(mass),
        ],
        axis=1,
    )
    assert codes.shape == (len(images), 3)
    np.testing.assert_allclose(codes, reference, rtol=1e-6)

    sizes = dict(num_train=NUM_TRAIN, num_eval=NUM_EVAL)
    scores = disentanglement_scores(jax.random.key(9), codes, factors, **sizes)
    again = disentanglement_scores(jax.random.key(9), reference, factors, **sizes)
    assert scores.keys() == {"beta_vae", "factor_vae", "mig"}
    for name, value in scores.items():  # float32 rounding of the codes barely matters
        assert value == pytest.approx(again[name], abs=0.01), name
    # Centroids identify the positions (beyond chance 0.2), not shape or orientation.
    assert 0.4 < scores["beta_vae"] < 1.0 and 0.4 < scores["factor_vae"] < 1.0

    # The same JAX key, or numpy Generators seeded alike, give the same score.
    first = beta_vae_score(jax.random.key(4), codes, factors, num_train=300, num_eval=300)
    assert first == beta_vae_score(jax.random.key(4), codes, factors, num_train=300, num_eval=300)
    rng_scores = [
        factor_vae_score(np.random.default_rng(6), codes, factors, num_train=300, num_eval=300)
        for _ in range(2)
    ]
    assert rng_scores[0] == rng_scores[1]


def test_bad_input_raises(data):
    _, factors = data
    codes = np.zeros((len(factors), 2))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"codes must have shape \(n, num_latents\).*\(6144,\)"):
        mig(codes[:, 0], factors)
    with pytest.raises(ValueError, match="factors must have one row per code: expected 6143"):
        mig(codes[1:], factors)
    with pytest.raises(ValueError, match=r"factors\[:, 1\] is constant"):
        mig(codes, np.stack([factors[:, 0], np.zeros(len(factors))], axis=1))
    with pytest.raises(ValueError, match="at least 2 latents"):
        mig(codes[:, :1], factors)
    with pytest.raises(ValueError, match="codes contains 1 non-finite"):
        bad = codes.copy()
        bad[5, 1] = np.nan
        beta_vae_score(key, bad, factors)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2; got 1"):
        factor_vae_score(key, codes, factors, batch_size=1)
    with pytest.raises(ValueError, match="num_bins must be an integer >= 1; got 0"):
        mig(codes, factors, num_bins=0)
    with pytest.raises(ValueError, match="key must be a JAX PRNG key or a numpy Generator"):
        beta_vae_score("seed", codes, factors)
    with pytest.raises(ValueError, match=r"encode must map a batch of 4 images to shape \(4, "):
        encode_dataset(lambda x: x, np.zeros((6, 2, 2), np.float32), batch_size=4)
