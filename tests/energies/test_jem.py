"""JEM's energies against scipy (logsumexp, log_softmax), numpy indexing, the identity
``p(y | x) = exp(-E(x, y) + E(x))`` and the closed-form input gradient of a linear classifier."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from jgen.energies import jem

N, C = 7, 5


def random_logits(seed=0, scale=3.0):
    return np.random.default_rng(seed).normal(0.0, scale, (N, C))


def test_energy_matches_scipy_logsumexp(x64):
    logits = random_logits()
    got = jem.energy(jnp.asarray(logits))
    assert got.shape == (N,)
    np.testing.assert_allclose(got, -scipy.special.logsumexp(logits, axis=1), rtol=1e-13)


def test_energy_is_stable_for_large_logits(x64):
    # exp(1000) overflows: a naive log(sum(exp)) would give inf.
    logits = random_logits(1) + 1000.0
    got = np.asarray(jem.energy(jnp.asarray(logits)))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, -scipy.special.logsumexp(logits, axis=1), rtol=1e-13)


def test_class_log_probs_match_scipy_log_softmax(x64):
    logits = random_logits(2)
    got = jem.class_log_probs(jnp.asarray(logits))
    assert got.shape == (N, C)
    np.testing.assert_allclose(got, scipy.special.log_softmax(logits, axis=1), atol=1e-13)


def test_joint_energy_is_minus_the_indexed_logit(x64):
    logits = random_logits(3)
    y = np.random.default_rng(3).integers(0, C, N)
    got = jem.joint_energy(jnp.asarray(logits), jnp.asarray(y))
    expected = -np.array([logits[i, y[i]] for i in range(N)])
    np.testing.assert_array_equal(got, expected)


def test_conditional_is_exp_of_energy_difference(x64):
    """``p(y | x) = exp(-E(x, y) + E(x))`` for every class, and it sums to one over ``y``."""
    logits = jnp.asarray(random_logits(4))
    e_x = jem.energy(logits)
    p = np.stack(
        [np.exp(-jem.joint_energy(logits, jnp.full((N,), c, jnp.int32)) + e_x) for c in range(C)],
        axis=1,
    )
    np.testing.assert_allclose(p, scipy.special.softmax(np.asarray(logits), axis=1), rtol=1e-12)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-13)
    np.testing.assert_allclose(np.log(p), jem.class_log_probs(logits), atol=1e-12)


def test_joint_energy_under_jit(x64):
    logits = jnp.asarray(random_logits(5))
    y = jnp.asarray(np.random.default_rng(5).integers(0, C, N))
    np.testing.assert_array_equal(jax.jit(jem.joint_energy)(logits, y), jem.joint_energy(logits, y))


def test_energy_fn_of_linear_classifier_and_its_gradient(x64):
    """For ``f(x) = x W + b``: ``E(x) = -logsumexp(f(x))``, ``grad_x E = -W softmax(f(x))``."""
    rng = np.random.default_rng(6)
    d = 4
    params = {"w": rng.normal(size=(d, C)), "b": rng.normal(size=C)}
    x = rng.normal(size=(N, d))
    apply = lambda p, x: x @ p["w"] + p["b"]
    fn = jem.energy_fn(apply, jax.tree.map(jnp.asarray, params))
    logits = x @ params["w"] + params["b"]
    np.testing.assert_allclose(fn(jnp.asarray(x)), -scipy.special.logsumexp(logits, 1), rtol=1e-13)
    grad = jax.grad(lambda x: jnp.sum(fn(x)))(jnp.asarray(x))
    expected = -scipy.special.softmax(logits, axis=1) @ params["w"].T
    np.testing.assert_allclose(grad, expected, atol=1e-13)


@pytest.mark.parametrize(
    "logits, match",
    [
        (np.zeros(C), r"logits must have shape \(n, C\).*got shape \(5,\)"),
        (np.zeros((2, 3, C)), r"logits must have shape \(n, C\).*got shape \(2, 3, 5\)"),
        (np.zeros((N, 0)), r"C >= 1; got shape \(7, 0\)"),
        (np.zeros((N, C), np.int32), "logits must have a floating-point dtype; got dtype int32"),
    ],
)
def test_bad_logits_raise(logits, match):
    for fn in (jem.energy, jem.class_log_probs, lambda z: jem.joint_energy(z, np.zeros(N, int))):
        with pytest.raises(ValueError, match=match):
            fn(jnp.asarray(logits))


@pytest.mark.parametrize(
    "y, match",
    [
        (np.zeros(N - 1, np.int32), r"y must be integer labels of shape \(7,\); got shape \(6,\)"),
        (np.zeros((N, 1), np.int32), r"shape \(7,\); got shape \(7, 1\)"),
        (np.zeros(N, np.float32), "y must have an integer dtype; got dtype float32"),
        (np.full(N, C, np.int32), r"labels in \[0, 5\).*got values in \[5, 5\]"),
        (np.full(N, -1, np.int32), r"labels in \[0, 5\).*got values in \[-1, -1\]"),
    ],
)
def test_bad_labels_raise(y, match):
    with pytest.raises(ValueError, match=match):
        jem.joint_energy(jnp.zeros((N, C)), jnp.asarray(y))


def test_energy_fn_rejects_non_logit_output():
    fn = jem.energy_fn(lambda p, x: (x, x), None)
    with pytest.raises(ValueError, match="must return the logits array .*got a tuple"):
        fn(jnp.zeros((3, 2)))
    fn = jem.energy_fn(lambda p, x: x[:2], None)
    with pytest.raises(ValueError, match=r"got shape \(2, 4\)"):
        fn(jnp.zeros((3, 4)))
