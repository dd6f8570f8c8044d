"""Contrastive divergence against the exact log-likelihood gradient of small RBMs.

Ground truth: ``jax.grad`` of the mean exact log-likelihood (:func:`jgen.energies.rbm.
log_likelihood`, enumeration of the smaller binary layer), and per-chain free-energy gradients
by autodiff for the Monte Carlo standard errors. CD-k from the data is PCD-1 iterated ``k``
times at fixed parameters with the chains started at the data, so one compiled step serves
every ``k``.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jgen.energies import rbm
from jgen.losses.contrastive_divergence import cd_loss


def _flat(tree):
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


def _exact_grad(params, data):
    return _flat(jax.grad(lambda p: -jnp.mean(rbm.log_likelihood(p, data)))(params))


def _per_example_free_energy_grads(params, v):
    """``dF(v_m)`` for every row, ``(m, n_params)``, by autodiff of the free energy."""
    grad_f = jax.grad(lambda p, x: rbm.free_energy(p, x[None])[0])
    return jax.vmap(lambda x: _flat(grad_f(params, x)))(v)


@functools.partial(jax.jit, static_argnames="k")
def _cd_grad(params, data, key, chains, k=1):
    (_, aux), grads = jax.value_and_grad(cd_loss, has_aux=True)(params, data, key, k, chains)
    return _flat(grads), aux


def _z_scores(params, data, chains, g_cd):
    """``(g_cd - g_exact) / se`` per parameter, with ``se`` the Monte Carlo standard error of the
    model phase ``mean_m dF(v~_m)`` (the data phase is exact)."""
    per_chain = _per_example_free_energy_grads(params, chains)
    se = np.std(np.asarray(per_chain), axis=0, ddof=1) / np.sqrt(chains.shape[0])
    # A component that no chain varies (a saturated unit after one step) has no spread: any
    # deviation of it then counts as significant.
    se = np.maximum(se, 1e-9)
    return (np.asarray(g_cd) - np.asarray(_exact_grad(params, data))) / se


def _cosine(a, b):
    return float(a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b)))


def _bernoulli_problem(scale=1.0):
    rng = np.random.default_rng(0)
    d_v, d_h = 10, 6
    params = rbm.BernoulliRBM(
        jnp.asarray(scale * rng.normal(size=(d_v, d_h))),
        jnp.asarray(0.5 * rng.normal(size=d_v)),
        jnp.asarray(0.5 * rng.normal(size=d_h)),
    )
    # A fixed data set from another distribution (independent Bernoullis), not the model's.
    data = jnp.asarray((rng.random((100, d_v)) < rng.random(d_v)).astype(np.float64))
    return params, data


def test_cd_k_approaches_the_exact_gradient_as_k_grows_and_pcd_from_noise_matches_it(x64):
    """10 visible / 6 hidden, W ~ N(0, 1), 100 data points each started 40 times (4000 chains).

    Measured cosines to the exact gradient: k=1 0.986, k=10 0.99993, k=100 0.99996 (the Monte
    Carlo floor of 4000 chains); largest |z| 37 at k=1, 1.7 at k=100.
    Asserted: cos(1) < 0.99 < cos(10),
    cos > 0.999 from k = 10 on, and at k = 100 every one of the 76 gradient components within 4.5
    Monte Carlo standard errors of the exact one (CD-1 is off by tens of standard errors, so
    the check has power). PCD: 4000 persistent chains started at uniform noise, 100 steps at
    fixed parameters, same criteria.
    """
    params, data = _bernoulli_problem()
    g_exact = _exact_grad(params, data)
    key = jax.random.key(0)
    noise = jax.random.bernoulli(jax.random.key(1), 0.5, (4000, 10)).astype(jnp.float64)
    cosines, z = {}, {}
    for start, chains in (("data", jnp.tile(data, (40, 1))), ("noise", noise)):
        for step in range(1, 101):
            key, sub = jax.random.split(key)
            g, aux = _cd_grad(params, data, sub, chains)
            chains = aux["chains"]
            if step in (1, 10, 100):
                cosines[start, step] = _cosine(g, g_exact)
            if step in (1, 100):
                z[start, step] = np.abs(_z_scores(params, data, chains, g)).max()
    assert cosines["data", 1] < 0.99 < cosines["data", 10], cosines
    assert min(cosines["data", k] for k in (10, 100)) > 0.999, cosines
    assert z["data", 1] > 10 and z["data", 100] < 4.5, z
    assert z["noise", 1] > 10 and z["noise", 100] < 4.5, z
    assert cosines["noise", 100] > 0.999, cosines


@pytest.mark.parametrize("kind", ["gaussian_bernoulli", "spin"])
def test_long_chains_give_the_exact_gradient_for_the_other_rbms(x64, kind):
    """Gaussian-Bernoulli (3 visible, 4 hidden, learned sigma) and spin-Gaussian (8 spins, 2
    Gaussian hiddens): PCD-100 with 2000 chains from the data; every gradient component within
    4.5 Monte Carlo standard errors of the exact one, cosine > 0.98; and the gradient equals
    ``mean dF(data) - mean dF(samples)`` by autodiff to 1e-12."""
    rng = np.random.default_rng(2)
    if kind == "gaussian_bernoulli":
        params = rbm.GaussianBernoulliRBM(
            jnp.asarray(0.7 * rng.normal(size=(3, 4))),
            jnp.asarray(rng.normal(size=3)),
            jnp.asarray(0.5 * rng.normal(size=4)),
            jnp.asarray(0.3 * rng.normal(size=3)),
        )
        data = jnp.asarray(rng.normal(size=(50, 3)))
    else:
        params = rbm.SpinGaussianRBM(
            jnp.asarray(0.3 * rng.normal(size=(8, 2))), jnp.asarray(0.3 * rng.normal(size=8))
        )
        data = jnp.asarray(rng.choice([-1.0, 1.0], size=(50, 8)))
    chains = jnp.tile(data, (40, 1))
    g, aux = _cd_grad(params, data, jax.random.key(3), chains, k=100)
    # The cosine is limited by Monte Carlo noise here (small gradients): measured 0.990 (spin).
    assert _cosine(g, _exact_grad(params, data)) > 0.98
    assert np.abs(_z_scores(params, data, aux["chains"], g)).max() < 4.5

    # The gradient is the data phase minus the sample phase with the samples held fixed, even
    # where the visible draw mu + W h + sigma eps is differentiable in the parameters: no path
    # runs through the sampler.
    grad_f = functools.partial(_per_example_free_energy_grads, params)
    expected = jnp.mean(grad_f(data), 0) - jnp.mean(grad_f(aux["chains"]), 0)
    np.testing.assert_allclose(g, expected, atol=1e-12)
    f_data = rbm.free_energy(params, data).mean()
    f_model = rbm.free_energy(params, aux["chains"]).mean()
    np.testing.assert_allclose(aux["free_energy_data"], f_data, rtol=1e-12)
    np.testing.assert_allclose(aux["free_energy_model"], f_model, rtol=1e-12)
    recon = rbm.reconstruction_error(params, None, data).mean()
    np.testing.assert_allclose(aux["reconstruction_error"], recon, rtol=1e-12)
    assert 0 < aux["visible_change_rate"] <= 1


def test_pcd_training_tracks_exact_maximum_likelihood():
    """6 visible / 4 hidden Bernoulli RBM, 300 SGD steps (lr 0.1, momentum 0.5, weight decay
    1e-4) on 64 fixed binary vectors: PCD-1 with 256 persistent chains against the same
    optimiser on the exact gradient. Measured exact mean log-likelihood: start -4.16, exact
    training -3.40, PCD -3.41. Asserted: both gain > 0.5 nats and end within 0.05 nats."""
    rng = np.random.default_rng(6)
    # Data with structure: two prototypes with 10% bit noise.
    protos = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], np.float32)
    data = protos[rng.integers(0, 2, 64)]
    data = jnp.asarray(np.abs(data - (rng.random(data.shape) < 0.1)))
    params = rbm.init_params(jax.random.key(7), 6, 4, scale=0.1)
    opt = optax.chain(optax.add_decayed_weights(1e-4), optax.sgd(0.1, momentum=0.5))

    def mean_ll(p):
        return jnp.mean(rbm.log_likelihood(p, data))

    def train(params, exact):
        def step(carry, key):
            p, opt_state, chains = carry
            if exact:
                grads = jax.grad(lambda q: -mean_ll(q))(p)
            else:
                grads, aux = jax.grad(cd_loss, has_aux=True)(p, data, key, 1, chains)
                chains = aux["chains"]
            updates, opt_state = opt.update(grads, opt_state, p)
            return (optax.apply_updates(p, updates), opt_state, chains), None

        chains = jax.random.bernoulli(jax.random.key(8), 0.5, (256, 6)).astype(jnp.float32)
        keys = jax.random.split(jax.random.key(9), 300)
        (p, _, _), _ = jax.lax.scan(step, (params, opt.init(params), chains), keys)
        return p

    train = jax.jit(train, static_argnums=1)
    start, exact, pcd = mean_ll(params), mean_ll(train(params, True)), mean_ll(train(params, False))
    assert exact - start > 0.5 and pcd - start > 0.5, (start, exact, pcd)
    assert abs(pcd - exact) < 0.05, (start, exact, pcd)


def test_shapes_and_bad_input():
    params = rbm.init_params(jax.random.key(0), 5, 3)
    key = jax.random.key(1)
    data = jnp.zeros((4, 5), jnp.int32)  # integer data are cast
    loss, aux = cd_loss(params, data, key)
    assert loss.shape == () and aux["chains"].shape == (4, 5)
    assert aux["chains"].dtype == params.weights.dtype

    with pytest.raises(ValueError, match="k must be an integer >= 1; got 0"):
        cd_loss(params, data, key, k=0)
    with pytest.raises(ValueError, match=r"v_data must have shape \(n, 5\); got shape \(4, 6\)"):
        cd_loss(params, jnp.zeros((4, 6)), key)
    with pytest.raises(ValueError, match=r"chains must have shape \(n, 5\); got shape \(5,\)"):
        cd_loss(params, data, key, chains=jnp.zeros(5))
    with pytest.raises(ValueError, match="v_data must hold at least one example"):
        cd_loss(params, jnp.zeros((0, 5)), key)
    with pytest.raises(ValueError, match="params must be one of"):
        cd_loss({"weights": params.weights}, data, key)
    with pytest.raises(ValueError, match="hidden_bias must have shape"):
        cd_loss(params._replace(hidden_bias=jnp.zeros(2)), data, key)
