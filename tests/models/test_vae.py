"""The VAE's evaluation against quadrature: with a one-dimensional latent, ``log p(x) =
log ∫ N(z; 0, 1) p(x | z) dz`` is computed to machine precision by Gauss–Hermite quadrature, which
checks the decoder's normalisation, the ELBO's bound and the importance-sampled estimate; for the
conditional VAE, ``log p(x | y)`` likewise for every class."""

import itertools
import math

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from experiments.configs import vae_digits
from jgen.models import hvae, latent_variable, vae
from tests.params import add_noise, float64


def _config(decoder, num_levels=0, **model):
    c = vae_digits.get_config("binary")
    c.model.update(dict(dict(decoder=decoder, latent_dim=1, hidden_sizes=(16,)), **model))
    c.model.eval_samples, c.model.eval_chunk = 4000, 500
    c.data.num_levels = num_levels
    return c


def _random_state(trainer, batch, key, encoder_heads=(("encoder", "Dense_1"),)):
    """Random parameters whose encoder output layers (``encoder_heads``, paths into the
    params) are shrunk, so ``q(z | x)`` is a broad proposal near the prior: the
    importance-sampled NLL is then accurate to a few hundredths with 4000 samples (a random
    narrow encoder makes the weights heavy-tailed, and the estimate would tell more about the
    proposal than about the plumbing under test)."""
    state = trainer.init(key, batch)
    params = add_noise(state.params, jax.random.fold_in(key, 1), 0.3)
    for path in encoder_heads:
        params = flax.traverse_util.flatten_dict(params)
        params = {k: v * 0.2 if k[: len(path)] == path else v for k, v in params.items()}
        params = flax.traverse_util.unflatten_dict(params)
    return float64(state._replace(params=params, ema_params=None))


def _quadrature_log_p(trainer, state, x, likelihood, num_nodes=200, num_classes=0, label=None):
    """``log Σ_j w_j p(x | z_j[, y = label])`` over Gauss–Hermite nodes for ``N(0, 1)``
    (probabilists'), the decoder given ``one_hot(label)`` when ``num_classes > 0``."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(num_nodes)
    weights = weights / math.sqrt(2 * math.pi)
    module = vae.VAE((x.shape[1],), 1, (16,), likelihood.outputs_per_dim, num_classes=num_classes)
    c = None
    if num_classes:
        c = jax.nn.one_hot(jnp.full((num_nodes,), label), num_classes, dtype=x.dtype)
    outputs = module.apply(
        {"params": state.params}, jnp.asarray(nodes)[:, None], c, method="decode"
    )
    log_px_z = jax.vmap(
        lambda out: likelihood.log_prob(jnp.broadcast_to(out, (x.shape[0], *out.shape[1:])), x)
    )(outputs[:, None])  # (nodes, n)
    return jax.scipy.special.logsumexp(log_px_z + jnp.log(weights)[:, None], axis=0)


def _assert_within_standard_errors(metrics, log_p):
    """Every importance-sampled NLL within 4 of its reported standard errors of the quadrature
    value (64 examples: a 4-SE miss has probability ~4e-3 under normality), and on average
    within a few hundredths of a nat."""
    error = np.abs(np.asarray(metrics["nll"]) + np.asarray(log_p))
    assert np.all(error <= 4 * np.asarray(metrics["nll_standard_error"]) + 1e-6), error
    assert error.mean() < 0.05


def test_binary_decoder_sums_to_one_and_the_estimates_bracket_the_truth(x64):
    d = 6
    x = jnp.asarray(list(itertools.product([0.0, 1.0], repeat=d)))
    trainer = vae.make(_config("bernoulli"), (d,))
    state = _random_state(trainer, x, jax.random.key(0))
    log_p = _quadrature_log_p(trainer, state, x, latent_variable.bernoulli_likelihood())
    assert float(jnp.sum(jnp.exp(log_p))) == pytest.approx(1.0, abs=1e-10)
    metrics = trainer.evaluate(state, x, jax.random.key(1))
    # ELBO <= log p for every x (one sample each, so per example only on average: the mean
    # gap is the expected KL(q || posterior) > 0); the importance-sampled NLL is within a few
    # hundredths of a nat of the truth with 4000 proposals, within its standard error.
    assert float(jnp.mean(metrics["elbo_nll"] + log_p)) > 0.0
    _assert_within_standard_errors(metrics, log_p)


def test_logistic_decoder_is_a_distribution_on_the_grid(x64):
    k, d = 5, 2
    levels = jnp.arange(k) / k  # cell corners, as the dataset gives them
    x = jnp.asarray(list(itertools.product(levels, repeat=d)))
    trainer = vae.make(_config("logistic", num_levels=k), (d,))
    state = _random_state(trainer, x, jax.random.key(2))
    grid = 2.0 * jnp.round(x * k) / (k - 1) - 1.0
    log_p = _quadrature_log_p(trainer, state, grid, latent_variable.logistic_likelihood(k))
    assert float(jnp.sum(jnp.exp(log_p))) == pytest.approx(1.0, abs=1e-8)
    metrics = trainer.evaluate(state, x, jax.random.key(3))
    _assert_within_standard_errors(metrics, log_p)


def test_samples_are_on_the_data_scale():
    k = 17
    trainer = vae.make(_config("logistic", num_levels=k), (64,))
    state = trainer.init(jax.random.key(0), jnp.zeros((2, 64)))
    x = np.asarray(trainer.sample(state, jax.random.key(1), 50))
    np.testing.assert_allclose(x * k - 0.5, np.round(x * k - 0.5), atol=1e-4)  # cell centres
    assert x.min() > 0 and x.max() < 1
    trainer = vae.make(_config("bernoulli"), (64,))
    state = trainer.init(jax.random.key(0), jnp.zeros((2, 64)))
    assert set(np.unique(trainer.sample(state, jax.random.key(1), 50))) <= {0.0, 1.0}


def test_bad_configs_name_the_field():
    with pytest.raises(ValueError, match="model.decoder"):
        vae.make(_config("poisson"), (4,))
    with pytest.raises(ValueError, match="data.num_levels must be > 0"):
        vae.make(_config("logistic"), (4,))
    with pytest.raises(ValueError, match="model.gradient='dreg' needs model.objective='iwae'"):
        vae.make(_config("bernoulli", gradient="dreg"), (4,))


def test_ladder_vae_against_nested_quadrature(x64):
    """Two 1-D latent layers: ``p(x) = ∫ N(z2) ∫ p(z1 | z2) p(x | z1) dz1 dz2``, the inner
    integral by Gauss–Hermite nodes moved to ``p(z1 | z2)``'s mean and scaled by its std."""
    d = 5
    x = jnp.asarray(list(itertools.product([0.0, 1.0], repeat=d)))
    c = _config("bernoulli", name="hvae", latent_dims=(1, 1))
    trainer = hvae.make(c, (d,))
    heads = (("up_heads_0",), ("up_heads_1",), ("priors_0", "Dense_1"))  # p(z1 | z2) tame too
    state = _random_state(trainer, x, jax.random.key(4), heads)
    module = hvae.LadderVAE((d,), (1, 1), (16,), 1)
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    log_w = jnp.log(weights / math.sqrt(2 * math.pi))
    variables = {"params": state.params}
    z2 = jnp.asarray(nodes)[:, None]
    mean, log_std = module.apply(variables, z2, 0, method="prior")  # (80, 1) each
    z1 = (mean + jnp.exp(log_std) * jnp.asarray(nodes)[None, :]).reshape(-1, 1)  # (80 * 80, 1)
    outputs = module.apply(variables, z1, method="decode")
    likelihood = latent_variable.bernoulli_likelihood()
    log_px_z = jax.vmap(
        lambda out: likelihood.log_prob(jnp.broadcast_to(out, (x.shape[0], d, 1)), x)
    )(outputs[:, None])  # (6400, n)
    log_node_weight = (log_w[:, None] + log_w[None, :]).reshape(-1, 1)
    log_p = jax.scipy.special.logsumexp(log_px_z + log_node_weight, axis=0)
    assert float(jnp.sum(jnp.exp(log_p))) == pytest.approx(1.0, abs=1e-8)
    metrics = trainer.evaluate(state, x, jax.random.key(5))
    assert float(jnp.mean(metrics["elbo_nll"] + log_p)) > 0.0
    _assert_within_standard_errors(metrics, log_p)
    _, aux = hvae.latent_variable_model(module, likelihood).elbo(
        state.params, jax.random.key(6), x, 1.0
    )
    np.testing.assert_allclose(aux["kl"], aux["kl_1"] + aux["kl_2"], rtol=1e-12)


def _iaf_module_and_params(x, latent_dim, seed):
    """A VAE with two IAF steps and every parameter drawn from ``N(0, 0.5^2)`` in float64 (the
    MADEs' zero-initialised output layers included, so the flow is far from the identity).
    Drawn with numpy from the shapes alone: compiling Flax's initialisers costs seconds."""
    module = vae.VAE((5,), latent_dim, (16,), 1, iaf_steps=2, iaf_context=4, iaf_hidden=(8, 8))
    shapes = jax.eval_shape(module.init, jax.random.key(0), x)
    rng = np.random.default_rng(seed)
    return module, jax.tree.map(lambda s: jnp.asarray(rng.normal(0.0, 0.5, s.shape)), shapes)


def test_iaf_log_q_is_the_change_of_variables_density(x64):
    """``log q(z_T | x) = log N(eps; 0, I) - log|det dz_T / deps|``, the Jacobian by autodiff
    per example."""
    n, d = 4, 3
    x = jax.random.bernoulli(jax.random.key(0), 0.5, (n, 5)).astype(jnp.float64)
    eps = jax.random.normal(jax.random.key(1), (1, n, d), jnp.float64)
    module, params = _iaf_module_and_params(x, d, seed=2)

    @jax.jit
    def check(x, eps):
        _, log_q = module.apply(params, x, eps, method="posterior")

        def z_of_eps(x_b, eps_b):
            return module.apply(params, x_b[None], eps_b[None, None], method="posterior")[0][0, 0]

        jac = jax.vmap(jax.jacfwd(z_of_eps, argnums=1))(x, eps[0])  # (n, d, d)
        _, log_det = jnp.linalg.slogdet(jac)
        _, log_std = module.apply(params, x, method="encode")
        return log_q[0], log_det, jac, jnp.sum(log_std, -1)

    log_q, log_det, jac, sum_log_std = check(x, eps)
    log_n = scipy.stats.norm.logpdf(np.asarray(eps[0])).sum(-1)
    np.testing.assert_allclose(log_q, log_n - log_det, rtol=0, atol=1e-10)
    # Not vacuous: the two steps' orderings are reversed, so dz_T / deps is a full matrix, and
    # the flow changes log q by more than rounding (the Gaussian alone gives log N - sum log std).
    assert np.all(np.abs(np.asarray(jac)) > 1e-6)
    assert np.all(np.abs(log_q - (log_n - sum_log_std)) > 0.1)


def test_each_iaf_step_is_triangular_in_its_ordering_with_the_gates_on_the_diagonal(x64):
    n, d = 3, 4
    module, params = _iaf_module_and_params(jnp.zeros((n, 5)), d, seed=3)
    z = jax.random.normal(jax.random.key(2), (n, d), jnp.float64)
    h = jax.random.normal(jax.random.key(3), (n, 4), jnp.float64)

    @jax.jit
    def jacobians(z, h):
        out = []
        for step in range(2):

            def single(z_b, h_b, step=step):
                return module.apply(params, z_b[None], h_b[None], step, method="iaf_step")[0][0]

            log_det = module.apply(params, z, h, step, method="iaf_step")[1]
            out.append((jax.vmap(jax.jacfwd(single))(z, h), log_det))
        return out

    strictly_upper = np.triu(np.ones((d, d), bool), 1)
    for step, (jac, log_det) in enumerate(jacobians(z, h)):
        order = list(range(d)) if step == 0 else list(range(d))[::-1]  # natural, then reversed
        jac = np.asarray(jac)[:, order][..., order]
        np.testing.assert_array_equal(jac[:, strictly_upper], 0.0)
        assert np.all(jac[:, strictly_upper.T] != 0.0)
        diagonal = np.diagonal(jac, axis1=1, axis2=2)
        assert np.all((diagonal > 0) & (diagonal < 1))  # the gates g = sigmoid(s + b)
        np.testing.assert_allclose(np.log(diagonal).sum(-1), log_det, rtol=0, atol=1e-12)


def test_iaf_posterior_against_two_dimensional_quadrature(x64):
    """``log p(x) = ∫ N(z; 0, I) p(x | z) dz`` for a 2-D latent on a 60 x 60 Gauss–Hermite
    product grid; the importance-sampled NLL uses the IAF proposal and its log q."""
    d, steps = 5, 2
    x = jnp.asarray(list(itertools.product([0.0, 1.0], repeat=d)))
    c = _config("bernoulli", latent_dim=2, iaf_steps=steps, iaf_context=4, iaf_hidden=(8,))
    trainer = vae.make(c, (d,))
    # The MADEs' output layers are tamed with the encoder's: random gates saturate in the tails
    # of z (s grows linearly there), where q(z_T | x) then gets thinner than the prior and the
    # weights heavy-tailed (measured: errors of 10 standard errors with 20000 proposals).
    made_heads = tuple(
        (f"iaf_{t}", layer) for t in range(steps) for layer in ("MaskedDense_1", "context_1")
    )
    state = _random_state(trainer, x, jax.random.key(7), (("encoder", "Dense_1"), *made_heads))
    # The gates start at sigmoid(s + 1) with s near 0, shrinking z_0 by ~sigmoid(1) per step;
    # q_0's log std is widened by that factor so q(z_T | x) stays broad.
    flat = flax.traverse_util.flatten_dict(state.params)
    bias = flat[("encoder", "Dense_1", "bias")]
    flat[("encoder", "Dense_1", "bias")] = bias.at[2:4].add(-steps * jax.nn.log_sigmoid(1.0))
    state = state._replace(params=flax.traverse_util.unflatten_dict(flat))

    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    z = jnp.asarray(np.stack(np.meshgrid(nodes, nodes, indexing="ij"), -1).reshape(-1, 2))
    log_w = np.log(weights / math.sqrt(2 * math.pi))
    log_node_weight = jnp.asarray((log_w[:, None] + log_w[None, :]).reshape(-1, 1))
    module = vae.VAE((d,), 2, (16,), 1, iaf_steps=steps, iaf_context=4, iaf_hidden=(8,))
    outputs = module.apply({"params": state.params}, z, method="decode")  # (3600, d, 1)
    likelihood = latent_variable.bernoulli_likelihood()
    log_px_z = jax.vmap(
        lambda out: likelihood.log_prob(jnp.broadcast_to(out, (x.shape[0], d, 1)), x)
    )(outputs[:, None])  # (3600, n)
    log_p = jax.scipy.special.logsumexp(log_px_z + log_node_weight, axis=0)
    assert float(jnp.sum(jnp.exp(log_p))) == pytest.approx(1.0, abs=1e-10)
    metrics = trainer.evaluate(state, x, jax.random.key(8))
    assert float(jnp.mean(metrics["elbo_nll"] + log_p)) > 0.0
    _assert_within_standard_errors(metrics, log_p)


def test_bad_iaf_configs_name_the_field():
    with pytest.raises(ValueError, match=r"model.iaf_steps must be an integer >= 0; got -1"):
        vae.make(_config("bernoulli", iaf_steps=-1), (4,))
    with pytest.raises(ValueError, match=r"model.iaf_hidden\[1\] must be an integer >= 1"):
        vae.make(_config("bernoulli", iaf_steps=1, iaf_hidden=(8, 0)), (4,))
    # No closed-form q(z | x) for the doubly reparameterised estimator's stopped density.
    with pytest.raises(ValueError, match="model.gradient='dreg' is not available"):
        vae.make(_config("bernoulli", iaf_steps=1, objective="iwae", gradient="dreg"), (4,))
    with pytest.raises(ValueError, match="does not combine with 'ladder'"):
        vae_digits.get_config("ladder,iaf")
    assert vae_digits.get_config("binary,iaf").model.iaf_steps == 2
    assert vae_digits.get_config("binary").model.iaf_steps == 0


# --------------------------------------------------------------------------------------------
# The conditional VAE p(x | y).


def _conditional_config(num_classes, **model):
    c = _config("bernoulli", num_classes=num_classes, **model)
    c.data.labels = True
    return c


def _every_binary_x_for_every_class(d, num_classes):
    """``{"x": (C 2^d, d), "y": (C 2^d,)}``: every binary vector once per class."""
    x = jnp.asarray(list(itertools.product([0.0, 1.0], repeat=d)))
    y = jnp.repeat(jnp.arange(num_classes, dtype=jnp.int32), x.shape[0])
    return {"x": jnp.tile(x, (num_classes, 1)), "y": y}


def test_conditional_vae_against_quadrature_for_every_class(x64):
    """``log p(x | y) = ∫ N(z; 0, 1) p(x | z, y) dz`` by Gauss–Hermite quadrature for each of 3
    classes and all 32 binary x: each class's decoder is normalised, the importance-sampled
    ``-log p(x | y)`` of ``evaluate`` and the IWAE bound with the class context tiled over its
    k samples both match it, and the classes give different likelihoods."""
    d, num_classes = 5, 3
    batch = _every_binary_x_for_every_class(d, num_classes)
    trainer = vae.make(_conditional_config(num_classes), (d,))
    state = _random_state(trainer, batch, jax.random.key(9))
    likelihood = latent_variable.bernoulli_likelihood()
    x = batch["x"][: 2**d]
    log_p = jnp.stack(
        [
            _quadrature_log_p(trainer, state, x, likelihood, num_classes=num_classes, label=y)
            for y in range(num_classes)
        ]
    )  # (C, 2^d)
    np.testing.assert_allclose(jnp.sum(jnp.exp(log_p), axis=1), 1.0, rtol=0, atol=1e-10)
    metrics = trainer.evaluate(state, batch, jax.random.key(10))
    _assert_within_standard_errors(metrics, log_p.reshape(-1))
    assert float(jnp.mean(metrics["elbo_nll"] + log_p.reshape(-1))) > 0.0
    # The conditioning is used: every pair of classes differs by far more than the estimate's
    # error (measured: mean |difference| 0.45-0.61 nats, largest error 0.06; evaluating with the
    # labels shifted by one class misses the quadrature by up to 0.94 nats).
    error = np.abs(np.asarray(metrics["nll"]) + np.asarray(log_p.reshape(-1))).max()
    for a, b in itertools.combinations(range(num_classes), 2):
        assert float(jnp.mean(jnp.abs(log_p[a] - log_p[b]))) > 5 * error

    # The IWAE bound (training objective) sees the decoder on k B rows; a class context tiled in
    # another order than x would pair examples with the wrong class. Its delta-method standard
    # error follows from the effective sample size: se^2 = (k / ess - 1) / (k - 1).
    k = 1000
    module = vae.VAE((d,), 1, (16,), 1, num_classes=num_classes)
    model = vae.latent_variable_model(module, likelihood)
    context = jax.nn.one_hot(batch["y"], num_classes, dtype=jnp.float64)
    value, aux = jax.jit(model.iwae, static_argnums=(3, 4))(
        state.params, jax.random.key(11), batch["x"], k, "standard", context
    )
    se = np.sqrt((k / np.asarray(aux["ess"]) - 1.0) / (k - 1))
    # (Measured: largest miss 2.5 standard errors; with the classes tiled example-major instead,
    # misses of up to 0.91 nats, far outside.)
    assert np.all(np.abs(np.asarray(value) - np.asarray(log_p.reshape(-1))) <= 4 * se + 1e-6)


def _parameter_shapes(trainer, batch):
    params = jax.eval_shape(trainer.init, jax.random.key(0), batch).params
    return flax.traverse_util.flatten_dict(jax.tree.map(lambda a: a.shape, params), sep="/")


def test_the_class_enters_the_first_layers_only_and_unconditional_parameters_are_unchanged():
    d, num_classes, h = 5, 3, 16
    mlp = lambda prefix, n_in, n_out: {  # noqa: E731
        f"{prefix}/Dense_0/kernel": (n_in, h),
        f"{prefix}/Dense_0/bias": (h,),
        f"{prefix}/Dense_1/kernel": (h, n_out),
        f"{prefix}/Dense_1/bias": (n_out,),
    }
    x = jnp.zeros((4, d))
    # The unconditional VAE's parameters as they were before conditioning existed.
    assert _parameter_shapes(vae.make(_config("bernoulli"), (d,)), x) == {
        **mlp("encoder", d, 2),
        **mlp("decoder", 1, d),
    }
    labelled = {"x": x, "y": jnp.arange(4, dtype=jnp.int32) % num_classes}
    conditional = vae.make(_conditional_config(num_classes), (d,))
    assert _parameter_shapes(conditional, labelled) == {
        **mlp("encoder", d + num_classes, 2),
        **mlp("decoder", 1 + num_classes, d),
    }
    # With IAF the class reaches the flow through h only: its MADEs are unchanged.
    iaf = dict(iaf_steps=1, iaf_context=4, iaf_hidden=(8,))
    plain = _parameter_shapes(vae.make(_config("bernoulli", **iaf), (d,)), x)
    shapes = _parameter_shapes(vae.make(_conditional_config(num_classes, **iaf), (d,)), labelled)
    assert {k: v for k, v in shapes.items() if k.startswith("iaf")} == {
        k: v for k, v in plain.items() if k.startswith("iaf")
    }
    assert shapes["encoder/Dense_0/kernel"] == (d + num_classes, h)
    assert shapes["encoder/Dense_1/kernel"] == (h, 2 + 4)  # mean, log std, h


def test_conditional_samples_cycle_through_the_classes():
    """A decoder that sees only the class, with saturated logits: sample ``i`` is then the
    deterministic image of class ``i mod C``, and the classes' images differ."""
    d, num_classes = 16, 4
    labelled = {"x": jnp.zeros((2, d)), "y": jnp.zeros((2,), jnp.int32)}
    trainer = vae.make(_conditional_config(num_classes), (d,))
    state = trainer.init(jax.random.key(0), labelled)
    params = flax.traverse_util.flatten_dict(state.params)
    kernel = params[("decoder", "Dense_0", "kernel")]
    params[("decoder", "Dense_0", "kernel")] = kernel.at[0].set(0.0)  # row 0: z; rows 1..C: c
    params[("decoder", "Dense_1", "kernel")] *= 1e3
    state = state._replace(params=flax.traverse_util.unflatten_dict(params), ema_params=None)
    samples = np.asarray(trainer.sample(state, jax.random.key(1), 3 * num_classes))
    np.testing.assert_array_equal(samples, np.tile(samples[:num_classes], (3, 1)))
    assert len({tuple(row) for row in samples[:num_classes]}) == num_classes


def test_conditioning_needs_labels_and_a_conditional_model():
    d = 4
    trainer = vae.make(_conditional_config(3), (d,))
    needs_labels = r"model.num_classes=3 needs labelled batches \{'x', 'y'\} \(data.labels=True\)"
    with pytest.raises(ValueError, match=needs_labels + "; got an unlabelled array"):
        trainer.init(jax.random.key(0), jnp.zeros((2, d)))
    with pytest.raises(ValueError, match=needs_labels + r"; got keys \['x'\]"):
        trainer.init(jax.random.key(0), {"x": jnp.zeros((2, d))})
    with pytest.raises(ValueError, match=r"y must hold labels in \[0, 3\).*got labels from 0 to 3"):
        trainer.init(jax.random.key(0), {"x": jnp.zeros((2, d)), "y": jnp.array([0, 3])})
    with pytest.raises(ValueError, match=r"y must be integer labels of shape \(2,\)"):
        trainer.init(jax.random.key(0), {"x": jnp.zeros((2, d)), "y": jnp.zeros((2,))})
    with pytest.raises(ValueError, match="model.num_classes must be an integer >= 0; got -1"):
        vae.make(_conditional_config(-1), (d,))
    with pytest.raises(ValueError, match="model.name='hvae' is not class-conditional"):
        hvae.make(_conditional_config(3, name="hvae", latent_dims=(1, 1)), (d,))
    with pytest.raises(ValueError, match="'conditional' .* does not combine with 'ladder'"):
        vae_digits.get_config("ladder,conditional")
    c = vae_digits.get_config("binary,conditional")
    assert (c.model.num_classes, c.data.labels) == (10, True)
    c = vae_digits.get_config("binary")
    assert (c.model.num_classes, c.data.labels) == (0, False)
    # An unconditional VAE ignores the labels of a labelled batch.
    trainer = vae.make(_config("bernoulli"), (d,))
    trainer.init(jax.random.key(0), {"x": jnp.zeros((2, d)), "y": jnp.zeros((2,), jnp.int32)})
