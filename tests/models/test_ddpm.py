"""The DDPM trainer: trained on a known 2-D Gaussian, its ancestral and DDIM samples reproduce
the mean and covariance, and its variational bound lies above the true entropy and close to it;
class-conditional training with guidance separates the classes; config errors name the field."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import ddpm_toy2d
from jgen.models import ddpm
from jgen.models.score_sde import ddpm_as_vp
from jgen.samplers.ode import ode_nll
from tests.models.toy_training import COV, MEAN, gaussian, train


def _config(*options, **model):
    c = ddpm_toy2d.get_config(",".join(("gaussian", *options)))
    c.model.hidden_sizes, c.model.embedding_dim = (64, 64), 32
    c.model.diffusion_steps, c.model.sample_steps = 100, 20
    c.model.update(model)
    c.optim.schedule, c.optim.warmup_steps = "constant", 0
    c.optim.ema_decay = 0.99
    c.train.batch_size = 256
    return c


@pytest.fixture(scope="module")
def gaussian_model():
    config = _config()
    trainer = ddpm.make(config, (2,))
    return config, trainer, train(trainer, gaussian, 1500, 256)


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_samples_reproduce_a_gaussian(gaussian_model, sampler):
    # 1500 steps, 100 diffusion steps. Seeds 0-1 (ancestral): mean within 0.035, covariance
    # entries within 0.035. 4000 samples: sampling error ~0.03. DDIM takes 20 of the 100 steps.
    config, _, state = gaussian_model
    config.model.sampler = sampler
    trainer = ddpm.make(config, (2,))
    x = np.asarray(jax.jit(trainer.sample, static_argnums=2)(state, jax.random.key(3), 4000))
    np.testing.assert_allclose(x.mean(0), MEAN, atol=0.15)
    np.testing.assert_allclose(np.cov(x.T), COV, atol=0.2)


def test_the_bound_is_above_the_entropy_and_close(gaussian_model):
    # The bound of a model whose density is p satisfies E[bound] >= E[-log p] >= H(data); its
    # mean over 2000 test points carries a standard error of ~0.03. Seeds 0-1: 2.61 against the
    # entropy 2.54 (reverse variances beta_t; with beta~_t the bound is ~2.8 nats looser).
    _, trainer, state = gaussian_model
    metrics = jax.jit(trainer.evaluate)(state, gaussian(jax.random.key(5), 2000), jax.random.key(6))
    entropy = 0.5 * math.log(np.linalg.det(2 * math.pi * math.e * COV))
    nll = float(metrics["nll"].mean())
    assert entropy - 0.1 < nll < entropy + 0.4
    assert float(metrics["bits_per_dim"].mean()) == pytest.approx(nll / (2 * math.log(2)), rel=1e-5)


def test_the_same_network_as_a_vp_sde_has_an_ode_nll_just_below_its_bound(gaussian_model):
    # ddpm_as_vp reads the 100-step linear schedule as the VP SDE (beta 0.1 -> 20); its
    # probability-flow ODE is a normalised density, so its mean NLL over 2000 test points estimates
    # a cross-entropy >= the entropy (standard error ~0.026). The bound of the discrete chain
    # should lie above the ODE's NLL on average (Song et al. 2021, Table 2): measured 2.611 vs
    # 2.620, paired difference -0.009 with standard error 0.039; 3 standard errors allowed.
    config, trainer, state = gaussian_model
    x = gaussian(jax.random.key(5), 2000)
    bound = np.asarray(jax.jit(trainer.evaluate)(state, x, jax.random.key(6))["nll"], np.float64)
    sde, score = ddpm_as_vp(config, (2,), state.ema)
    nll, _, info = jax.jit(
        lambda x: ode_nll(sde, score, x, jax.random.key(7), divergence="exact", eps=1e-5)
    )(x)
    nll = np.asarray(nll, np.float64)
    assert bool(np.all(info["success"]))
    entropy = 0.5 * math.log(np.linalg.det(2 * math.pi * math.e * COV))
    se = nll.std() / math.sqrt(len(nll))
    assert entropy - 3 * se < nll.mean() < entropy + 0.3
    gap = bound - nll
    assert gap.mean() > -3 * gap.std() / math.sqrt(len(gap))


def test_ddpm_as_vp_refuses_the_cosine_schedule(gaussian_model):
    config, _, state = gaussian_model
    with pytest.raises(ValueError, match="model.schedule"):
        ddpm_as_vp(_config("cosine"), (2,), state.ema)


def test_guided_class_conditional_samples_follow_their_class():
    means = jnp.array([[2.0, 0.0], [-2.0, 1.0]])

    def data(key, n):
        ky, kx = jax.random.split(key)
        y = jax.random.randint(ky, (n,), 0, 2)
        return {"x": means[y] + 0.5 * jax.random.normal(kx, (n, 2)), "y": y}

    config = _config(num_classes=2, guidance=1.0, sampler="ddim")
    trainer = ddpm.make(config, (2,))
    state = train(trainer, data, 1000, 256)
    x = np.asarray(trainer.sample(state, jax.random.key(2), 1000))
    # Samples cycle through the classes: even rows class 0, odd rows class 1.
    for label in (0, 1):
        rows = x[label::2]
        assert np.mean(np.linalg.norm(rows - np.asarray(means[label]), axis=1) < 1.5) > 0.9


@pytest.mark.parametrize(
    "model, event_shape, match",
    [
        ({"schedule": "quadratic"}, (2,), "model.schedule"),
        ({"sampler": "euler"}, (2,), "model.sampler"),
        ({"variance": "learned"}, (2,), "model.variance"),
        ({"architecture": "unet"}, (2,), "images"),
        ({"sampler": "ddim", "sample_steps": 500}, (2,), "model.sample_steps"),
        ({"label_dropout": 1.0}, (2,), "model.label_dropout"),
        ({"dequantize": True}, (2,), "model.dequantize"),
    ],
)
def test_config_errors_name_the_field(model, event_shape, match):
    with pytest.raises(ValueError, match=match):
        ddpm.make(_config(**model), event_shape)
