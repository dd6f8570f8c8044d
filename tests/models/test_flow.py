"""RealNVP: a normalised density (grid quadrature), an exact log-det (autodiff Jacobian),
sampling that inverts the density's map, and clear errors on bad input."""

import functools
import math

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import default
from jgen.bijectors.coupling import CouplingConditioner, parity_mask
from jgen.data import toy2d
from jgen.models import flow
from jgen.models.glow import Glow
from tests.params import add_noise, float64


def flow_config(family="realnvp", **model):
    c = default.get_config()
    c.model.flow, c.model.num_layers, c.model.hidden_sizes = family, 2, (8,)
    c.model.ode_steps = 32
    for name, value in model.items():
        c.model[name] = value
    return c


def random_flow(family, x, key, scale=0.3, **model):
    """A flow of ``family`` with initial parameters plus noise (a fresh flow is the identity),
    in float64; returns the module and its variables."""
    module = flow.module_from_config(flow_config(family, **model).model, x.shape[1:])
    variables = module.init(key, x, method="log_prob")
    params = add_noise(variables["params"], jax.random.fold_in(key, 1), scale)
    return module, float64({**variables, "params": params})


def test_density_of_a_flow_trained_on_moons_integrates_to_one_on_a_grid():
    c = flow_config()
    c.model.num_layers, c.model.hidden_sizes = 4, (32, 32)
    c.optim.learning_rate = 3e-3
    trainer = flow.make(c, (2,))
    data = toy2d.sample("moons", jax.random.key(0), 4096)
    state = trainer.init(jax.random.key(1), data[:256])
    step = jax.jit(trainer.step)
    for i in range(300):
        state, _ = step(state, data[(i * 256) % 4096 :][:256], jax.random.key(i))
    h = 0.02
    axis = jnp.arange(-6.0, 6.0, h) + h / 2
    grid = jnp.stack(jnp.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    log_p = -jax.jit(trainer.evaluate)(state, grid, jax.random.key(0))["nll"]
    total = float(jnp.sum(jnp.exp(log_p)) * h * h)
    assert abs(total - 1.0) < 1e-2, total
    # The flow has learnt something: far better than the standard normal it starts as.
    base_nll = float(jnp.mean(0.5 * jnp.sum(data**2, -1) + math.log(2 * math.pi)))
    nll = float(jnp.mean(trainer.evaluate(state, data, None)["nll"]))
    assert nll < base_nll - 0.5, (nll, base_nll)


@pytest.mark.parametrize("family", flow.FAMILIES)
def test_log_det_is_the_autodiff_jacobian_and_sample_inverts_it(x64, family):
    """For every family on 3-D events: ``log|det dz/dx|`` of ``to_latent`` equals the slogdet of
    its autodiff Jacobian, ``log_prob = log N(z) + log|det|``, and ``to_latent`` maps samples
    back to the normal draws they came from. FFJORD's log-det integrates the divergence along
    the RK4 path, so it matches the Jacobian of the discrete map only to the solver's error."""
    atol = 1e-4 if family == "ffjord" else 1e-8
    x = jax.random.normal(jax.random.key(1), (4, 3))
    module, variables = random_flow(family, x, jax.random.key(2))

    def to_latent(v):
        return module.apply(variables, v[None], method="to_latent")[0][0].reshape(-1)

    z, log_det = module.apply(variables, x, method="to_latent")
    _, logabsdet = jnp.linalg.slogdet(jax.jit(jax.vmap(jax.jacfwd(to_latent)))(x))
    np.testing.assert_allclose(log_det, logabsdet, atol=atol)
    log_p = module.apply(variables, x, method="log_prob")
    expected = -0.5 * jnp.sum(z**2, -1) - 1.5 * math.log(2 * math.pi) + log_det
    np.testing.assert_allclose(log_p, expected, atol=1e-10)

    key = jax.random.key(3)
    samples = module.apply(variables, key, 5, (3,), method="sample")
    z_back, _ = module.apply(variables, samples, method="to_latent")
    np.testing.assert_allclose(z_back, jax.random.normal(key, (5, 3)), atol=max(atol, 1e-7))


@pytest.mark.parametrize("family", flow.FAMILIES)
def test_every_2d_flow_density_integrates_to_one(x64, family):
    """Random (non-identity) parameters; the midpoint rule on the box [-7, 7]^2 (h = 0.05) gives
    the mass of the box, which must equal the share of 20,000 samples inside it (standard error
    <= 0.0035; most flows put all their mass there, Glow's random LU layers about 90%)."""
    x = jax.random.normal(jax.random.key(8), (64, 2))  # for ActNorm's data-dependent init
    # Unbounded spline parameters at noise 0.3 give bins narrower than the grid step.
    scale = 0.1 if family.startswith("spline") else 0.3
    module, variables = random_flow(family, x, jax.random.key(4), scale)
    h = 0.05
    axis = jnp.arange(-7.0, 7.0, h) + h / 2
    grid = jnp.stack(jnp.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    log_p = jax.jit(lambda v: module.apply(variables, v, method="log_prob"))(grid)
    mass = float(jnp.sum(jnp.exp(log_p)) * h * h)
    samples = module.apply(variables, jax.random.key(9), 20_000, (2,), method="sample")
    inside = float(jnp.mean(jnp.all(jnp.abs(samples) < 7.0, axis=-1)))
    assert inside > 0.85, inside
    assert abs(mass - inside) < 1e-2, (mass, inside)


def test_glow_is_one_bijection_onto_a_standard_normal(x64):
    """The multi-scale Glow on (4, 4) images: ``from_latent`` inverts ``to_latent``, whose log-det
    (steps, logit squash and the whitening of each factored-out half by its learned prior) is
    the slogdet of its autodiff Jacobian; samples are ``from_latent`` of normal draws."""
    x = jax.random.uniform(jax.random.key(5), (3, 4, 4), minval=0.05, maxval=0.95)
    module, variables = random_flow("glow", x, jax.random.key(6), num_scales=2, logit_alpha=0.05)
    assert isinstance(module, Glow)
    eps, log_det = module.apply(variables, x, method="to_latent")
    back = module.apply(variables, eps, (4, 4), method="from_latent")
    np.testing.assert_allclose(back, x, atol=1e-10)

    def to_latent(v):
        return module.apply(variables, v.reshape(1, 4, 4), method="to_latent")[0][0]

    _, logabsdet = jnp.linalg.slogdet(jax.jit(jax.vmap(jax.jacfwd(to_latent)))(x.reshape(3, -1)))
    np.testing.assert_allclose(log_det, logabsdet, atol=1e-9)
    key = jax.random.key(7)
    samples = module.apply(variables, key, 2, (4, 4), method="sample")
    expected = module.apply(
        variables, jax.random.normal(key, (2, 16)), (4, 4), method="from_latent"
    )
    np.testing.assert_allclose(samples, expected, atol=1e-12)


def test_glow_rejects_images_it_cannot_squeeze():
    module = flow.module_from_config(flow_config("glow", num_scales=2).model, (6, 6))
    with pytest.raises(ValueError, match=r"divisible by 2\^num_scales = 4; got shape \(1, 6, 6\)"):
        module.init(jax.random.key(0), jnp.zeros((1, 6, 6)), method="log_prob")


def test_unknown_family_is_named():
    with pytest.raises(ValueError, match="model.flow must be one of"):
        flow.make(flow_config("glo"), (2,))


def test_trainer_rejects_batches_of_the_wrong_shape_or_dtype():
    trainer = flow.make(flow_config(), (2,))
    state = trainer.init(jax.random.key(0), jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"batch must have shape \(n, 2\); got shape \(4, 3\)"):
        trainer.init(jax.random.key(0), jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\); got shape \(4, 2, 1\)"):
        trainer.step(state, jnp.zeros((4, 2, 1)), jax.random.key(1))
    with pytest.raises(ValueError, match="x must have a floating-point dtype; got dtype int32"):
        trainer.evaluate(state, jnp.zeros((4, 2), jnp.int32), jax.random.key(1))


def test_training_lowers_the_nll_of_a_correlated_gaussian():
    """A few hundred steps on N(0, [[1, .9], [.9, 1]]) approach its entropy log(2 pi e) + log|S|/2,
    a closed form that the untrained (standard normal) flow misses by ~0.8 nats."""
    cov = np.array([[1.0, 0.9], [0.9, 1.0]])
    data = np.random.default_rng(0).multivariate_normal([0, 0], cov, 4096).astype(np.float32)
    entropy = math.log(2 * math.pi * math.e) + 0.5 * math.log(np.linalg.det(cov))
    c = flow_config()
    c.model.hidden_sizes = (32, 32)
    c.optim.learning_rate = 3e-3
    c.train.num_steps = 400
    trainer = flow.make(c, (2,))
    state = trainer.init(jax.random.key(0), data[:256])
    step = jax.jit(trainer.step)
    for i in range(c.train.num_steps):
        batch = data[np.random.default_rng(i).choice(len(data), 256)]
        state, _ = step(state, batch, jax.random.key(i))
    nll = float(jnp.mean(trainer.evaluate(state, data, jax.random.key(0))["nll"]))
    assert nll - entropy < 0.05, (nll, entropy)


def test_realnvp_equals_the_equivalent_distrax_chain(x64):
    """For the same parameters, RealNVP's log_prob equals a distrax flow assembled from
    distrax.MaskedCoupling + ScalarAffine with the same conditioners, a distrax.Chain, a
    Sigmoid/ScalarAffine logit squash and distrax.Transformed over MultivariateNormalDiag."""
    alpha, dim = 0.05, 3
    x = jax.random.uniform(jax.random.key(5), (6, dim), minval=0.05, maxval=0.95)
    module, variables = random_flow(
        "realnvp", x, jax.random.key(6), num_layers=4, logit_alpha=alpha
    )
    ours = module.apply(variables, x, method="log_prob")

    conditioners = [  # steps are listed latent side first: coupling i has parity i % 2
        functools.partial(
            CouplingConditioner((8,)).bind(
                {"params": variables["params"][f"steps_{i}"]["conditioner"]}
            ),
            mask=parity_mask((dim,), i % 2),
        )
        for i in range(4)
    ]

    def inner(shift_and_log_scale):
        shift, log_scale = shift_and_log_scale
        return distrax.ScalarAffine(shift=shift, log_scale=log_scale)

    couplings = [
        distrax.MaskedCoupling(parity_mask((dim,), i % 2).astype(bool), c, inner)
        for i, c in enumerate(conditioners)
    ]
    squash = [
        distrax.Block(distrax.ScalarAffine(-alpha / (1 - 2 * alpha), 1 / (1 - 2 * alpha)), 1),
        distrax.Block(distrax.Sigmoid(), 1),
    ]
    base = distrax.MultivariateNormalDiag(jnp.zeros(dim), jnp.ones(dim))
    theirs = distrax.Transformed(base, distrax.Chain(squash + couplings[::-1])).log_prob(x)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)


def test_training_advances_spectral_vectors_and_keeps_constants_fixed():
    """Non-trained collections live in model_state: the residual blocks' power-iteration vectors
    move with each training step (towards the new top singular vectors), and the 1x1
    convolution's permutation and signs never change."""
    data = jax.random.normal(jax.random.key(0), (64, 2))
    for family, collection in (("residual", "spectral"), ("glow", "constants")):
        trainer = flow.make(flow_config(family), (2,))
        state = trainer.init(jax.random.key(1), data)
        assert collection in state.model_state and collection not in state.params["flow"]
        before = state.model_state
        state, _ = jax.jit(trainer.step)(state, data, jax.random.key(2))
        moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), before, state.model_state)
        assert all(jax.tree.leaves(moved)) == (collection == "spectral"), moved


def test_step_bijector_rejects_modules_that_are_not_flow_layers():
    from jgen.models.chain_flow import step_bijector

    with pytest.raises(ValueError, match="step must be a layer of jgen.bijectors; got Dense"):
        step_bijector(nn.Dense(2), jnp.zeros((1, 2)), None)
