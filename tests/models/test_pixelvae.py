"""The PixelVAE (a VAE whose decoder ``p(x | z)`` is a gated PixelCNN conditioned on a spatial map
of ``z``) on tiny images: the decoder is normalised for every ``z`` (enumeration of every image),
equals the PixelCNN's categorical log-likelihood computed by hand, and with a one-dimensional
latent ``log p(x) = log ∫ N(z; 0, 1) p(x | z) dz`` by Gauss–Hermite quadrature checks the
importance-sampled NLL of ``evaluate`` and the distribution of the samples."""

import itertools
import math

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from experiments.configs import vae_digits
from jgen.models import hvae, vae
from jgen.nets.pixelcnn import GatedPixelCNN
from jgen.train.state import TrainState
from tests.models.test_vae import _assert_within_standard_errors, _config
from tests.params import random_params

PIXELCNN = dict(pixelcnn_features=8, pixelcnn_layers=2, pixelcnn_kernel_size=3, pixelcnn_context=4)
CASES = {
    # (event shape, data.num_levels (0: binary, two levels), classes)
    "binary": ((2, 3), 0, 0),
    "3 levels, 2 channels": ((1, 2, 2), 3, 0),
    "conditional": ((2, 3), 0, 2),
}


def _module(event_shape, num_levels=0, num_classes=0, latent_dim=1):
    """The PixelVAE that ``vae.make`` builds from ``_config`` with :data:`PIXELCNN`."""
    return vae.PixelVAE(
        event_shape,
        latent_dim,
        (16,),
        PIXELCNN["pixelcnn_context"],
        num_levels=num_levels or 2,
        pixelcnn_features=PIXELCNN["pixelcnn_features"],
        pixelcnn_layers=PIXELCNN["pixelcnn_layers"],
        pixelcnn_kernel_size=PIXELCNN["pixelcnn_kernel_size"],
        num_classes=num_classes,
    )


def _every_image(event_shape, num_levels):
    """``(K^D, *event)`` levels, every image once, in ``itertools.product`` order."""
    levels = num_levels or 2
    tokens = np.array(list(itertools.product(range(levels), repeat=math.prod(event_shape))))
    return tokens.reshape(-1, *event_shape)


def _grid(tokens, num_levels):
    return jnp.asarray(2.0 * tokens / ((num_levels or 2) - 1) - 1.0)


def _params(module, x, context, seed):
    """Every parameter from ``N(0, 0.5^2)``, with the encoder's output layer shrunk so that
    ``q(z | x)`` is a broad proposal near the prior (as ``test_vae._random_state`` does, for the
    same reason: a narrow random encoder makes the importance weights heavy-tailed)."""
    params = flax.traverse_util.flatten_dict(random_params(module, x, context, seed=seed)["params"])
    params = {k: v * 0.2 if k[:2] == ("encoder", "Dense_1") else v for k, v in params.items()}
    return flax.traverse_util.unflatten_dict(params)


def _class_context(labels, num_classes):
    return None if not num_classes else jax.nn.one_hot(labels, num_classes, dtype=jnp.float64)


def _decoder_log_prob(model, params, x, z, context=None):
    """``log p(x | z[, c]) (k, n)`` for ``z (k, n, d)``: the model's joint less the prior."""
    log_prior = scipy.stats.norm.logpdf(np.asarray(z)).sum(-1)
    return np.asarray(model.log_joint(params, x, z, context)) - log_prior


def _quadrature_log_p(model, params, x, context=None, num_nodes=200):
    """``log Σ_j w_j p(x | z_j[, c])`` over Gauss–Hermite nodes for ``N(0, 1)`` (probabilists')."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(num_nodes)
    z = jnp.broadcast_to(jnp.asarray(nodes)[:, None, None], (num_nodes, x.shape[0], 1))
    log_px_z = _decoder_log_prob(model, params, x, z, context)
    log_w = np.log(weights / math.sqrt(2 * math.pi))
    return scipy.special.logsumexp(log_px_z + log_w[:, None], axis=0)


@pytest.mark.parametrize("event_shape, num_levels", [((2, 3), 0), ((1, 2, 2), 3)])
def test_decoder_sums_to_one_over_every_image_for_fixed_z(x64, event_shape, num_levels):
    """``Σ_x p(x | z) = 1`` over all ``2^6`` binary ``2 x 3`` images, and over all ``3^4`` images
    of ``1 x 2`` pixels with 2 channels of 3 levels: only a decoder whose sub-pixel ``i`` depends
    on the sub-pixels before it (in raster, then channel order) is normalised."""
    module = _module(event_shape, num_levels, latent_dim=2)
    x = _grid(_every_image(event_shape, num_levels), num_levels)
    params = random_params(module, x, seed=1)["params"]
    model = vae.pixel_vae_model(module)
    zs = np.array([[0.0, 0.0], [-1.5, 0.7], [2.0, -2.5]])
    z = jnp.broadcast_to(jnp.asarray(zs)[:, None, :], (3, x.shape[0], 2))
    log_px_z = _decoder_log_prob(model, params, x, z)  # (3 values of z, every image)
    np.testing.assert_allclose(scipy.special.logsumexp(log_px_z, axis=1), 0.0, atol=1e-10)
    # Not vacuous: z changes the distribution (measured: by 0.7 and 1.5 nats on average).
    assert np.abs(log_px_z[1] - log_px_z[2]).mean() > 0.1


def _gelu(a):
    """Flax's ``nn.gelu`` (the tanh approximation), in numpy."""
    return 0.5 * a * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (a + 0.044715 * a**3)))


@pytest.mark.parametrize("num_classes", [0, 3])
def test_decoder_is_the_pixelcnn_categorical_log_likelihood(x64, num_classes):
    """``log p(x | z[, c]) = Σ_i log softmax(f_i)[x_i]`` with ``f`` the gated PixelCNN applied
    to the image and the conditioning map, the map computed in numpy from the decoder MLP's
    weights (``[z, c] -> gelu(W_0 . + b_0) -> W_1 . + b_1``, reshaped to ``(n, H, W, m)`` with
    pixel ``(h, w)`` taking outputs ``(h W + w) m .. (h W + w + 1) m - 1``), the log-softmax by
    scipy."""
    n, (height, width), m = 7, (2, 3), PIXELCNN["pixelcnn_context"]
    module = _module((height, width), num_classes=num_classes, latent_dim=2)
    rng = np.random.default_rng(2)
    tokens = rng.integers(0, 2, (n, height, width))
    x = _grid(tokens, 0)
    z = rng.normal(size=(n, 2))
    context = _class_context(rng.integers(0, 3, n), num_classes)
    params = random_params(module, x, context, seed=3)["params"]
    model = vae.pixel_vae_model(module)
    value = _decoder_log_prob(model, params, x, jnp.asarray(z)[None], context)[0]

    inputs = z if context is None else np.concatenate([z, np.asarray(context)], axis=1)
    mlp = {k: np.asarray(v) for k, v in flax.traverse_util.flatten_dict(params["decoder"]).items()}
    hidden = _gelu(inputs @ mlp[("Dense_0", "kernel")] + mlp[("Dense_0", "bias")])
    outputs = hidden @ mlp[("Dense_1", "kernel")] + mlp[("Dense_1", "bias")]
    conditioning = outputs.reshape(n, height, width, m)
    pixelcnn = GatedPixelCNN(2, 1, features=8, num_layers=2, first_kernel_size=3, kernel_size=3)

    def reference(conditioning):
        logits = pixelcnn.apply({"params": params["pixelcnn"]}, x[..., None], conditioning)
        log_probs = scipy.special.log_softmax(np.asarray(logits)[..., 0, :], axis=-1)
        picked = np.take_along_axis(log_probs, tokens[..., None], axis=-1)
        return picked.reshape(n, -1).sum(1)

    np.testing.assert_allclose(value, reference(jnp.asarray(conditioning)), rtol=1e-12)
    # Not vacuous: the conditioning map moves every log p(x | z) far beyond rounding (measured:
    # agreement to 3e-15; a zero map at least 0.04 nats off, the map flipped in both directions
    # at least 0.004).
    assert np.all(np.abs(value - reference(jnp.zeros_like(conditioning))) > 1e-3)
    shuffled = conditioning[:, ::-1, ::-1]
    assert np.all(np.abs(value - reference(jnp.asarray(shuffled))) > 1e-3)


def _trainer_and_state(name, seed):
    """``(trainer, state, batch on the data's scale, module, x on the grid, context)`` for
    :data:`CASES` ``name``, with every image once per class."""
    event_shape, num_levels, num_classes = CASES[name]
    c = _config("pixelcnn", num_levels=num_levels, **PIXELCNN)
    tokens = _every_image(event_shape, num_levels)
    if num_levels:
        x = jnp.asarray(tokens / num_levels)  # cell corners k / K, as the datasets give them
    else:
        x = jnp.asarray(tokens, jnp.float64)
    batch, labels = x, None
    if num_classes:
        c.model.num_classes, c.data.labels = num_classes, True
        labels = jnp.repeat(jnp.arange(num_classes, dtype=jnp.int32), x.shape[0])
        batch = {"x": jnp.tile(x, (num_classes,) + (1,) * len(event_shape)), "y": labels}
    trainer = vae.make(c, event_shape)
    module = _module(event_shape, num_levels, num_classes)
    grid = _grid(tokens, num_levels)
    if num_classes:
        grid = jnp.tile(grid, (num_classes,) + (1,) * len(event_shape))
    context = None if labels is None else _class_context(labels, num_classes)
    params = _params(module, grid, context, seed)
    state = TrainState(jnp.zeros((), jnp.int32), params, (), None)
    return trainer, state, batch, module, grid, context


@pytest.mark.parametrize("name", ["binary", "3 levels, 2 channels"])
def test_importance_sampled_nll_against_quadrature(x64, name):
    """``evaluate``'s NLL (4000 proposals from the encoder) within 4 reported standard errors of
    ``-log p(x)`` by quadrature for every image (measured: at most 2.3 standard errors, mean
    error 0.008-0.014 nats), the quadrature's ``p(x)`` normalised over the images, and the
    one-sample ELBO below ``log p`` on average (measured gap: 0.27-0.33 nats). The class context
    of the conditional model is checked in the decoder and in the samples; its importance
    sampling is the VAE's (``test_vae``)."""
    trainer, state, batch, module, grid, context = _trainer_and_state(name, seed=4)
    log_p = _quadrature_log_p(vae.pixel_vae_model(module), state.params, grid, context)
    np.testing.assert_allclose(scipy.special.logsumexp(log_p), 0.0, atol=1e-10)
    metrics = jax.jit(trainer.evaluate)(state, batch, jax.random.key(5))
    _assert_within_standard_errors(metrics, log_p)
    assert float(np.mean(np.asarray(metrics["elbo_nll"]) + log_p)) > 0.0
    # The reported KL is the closed form KL(N(mean, std^2) || N(0, 1)) of the encoder's outputs.
    mean, log_std = (
        np.asarray(a)
        for a in module.apply({"params": state.params}, grid, context, method="encode")
    )
    kl = 0.5 * np.sum(mean**2 + np.exp(2 * log_std) - 1.0 - 2 * log_std, axis=-1)
    np.testing.assert_allclose(metrics["kl"], kl, rtol=1e-10)


@pytest.mark.parametrize("name", list(CASES))
def test_samples_follow_the_model(x64, name):
    """4000 samples from ``sample``: of the event's shape, on the data's scale (0 / 1, or cell
    centres ``(k + 1/2) / K``), and distributed as the quadrature's ``p(x[ | y])`` over every
    image: a chi-square goodness-of-fit p-value above 1e-3 per class (images with fewer than 5
    expected samples pooled, so the chi-square approximation holds; a correct sampler fails with
    probability 1e-3 per class at this fixed seed)."""
    trainer, state, _, module, grid, context = _trainer_and_state(name, seed=6)
    event_shape, num_levels, num_classes = CASES[name]
    log_p = _quadrature_log_p(vae.pixel_vae_model(module), state.params, grid, context)
    log_p = log_p.reshape(max(num_classes, 1), -1)
    n = 4000 * max(num_classes, 1)
    samples = np.asarray(jax.jit(trainer.sample, static_argnums=2)(state, jax.random.key(7), n))
    assert samples.shape == (n, *event_shape)
    levels = num_levels or 2
    if num_levels:
        tokens = np.round(samples * num_levels - 0.5)
        np.testing.assert_allclose(samples, (tokens + 0.5) / num_levels, atol=1e-6)
    else:
        tokens = samples
        assert set(np.unique(samples)) <= {0.0, 1.0}
    index = tokens.reshape(n, -1).astype(int) @ levels ** np.arange(tokens[0].size)[::-1]
    for y in range(max(num_classes, 1)):
        # Sample i comes from class i mod C.
        counts = np.bincount(index[y :: max(num_classes, 1)], minlength=log_p.shape[1])
        expected = np.exp(log_p[y]) * counts.sum()
        rare = expected < 5
        observed = np.append(counts[~rare], counts[rare].sum())
        expected = np.append(expected[~rare], expected[rare].sum())
        assert scipy.stats.chisquare(observed, expected).pvalue > 1e-3


def test_bad_configs_name_the_field():
    event = (2, 3)
    for field, value, message in [
        ("pixelcnn_layers", 0, r"model.pixelcnn_layers must be an integer >= 1; got 0"),
        ("pixelcnn_kernel_size", 2, r"model.pixelcnn_kernel_size must be odd; got 2"),
        ("pixelcnn_context", 0, r"model.pixelcnn_context must be an integer >= 1; got 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            vae.make(_config("pixelcnn", **{**PIXELCNN, field: value}), event)
    with pytest.raises(ValueError, match=r"model.pixelcnn_features must be an integer >= 3"):
        vae.make(_config("pixelcnn", **{**PIXELCNN, "pixelcnn_features": 2}), (2, 2, 3))
    with pytest.raises(ValueError, match=r"model.decoder='pixelcnn' models images .* \(6,\)"):
        vae.make(_config("pixelcnn", **PIXELCNN), (6,))
    with pytest.raises(ValueError, match=r"data.num_levels must be an integer >= 2; got 1"):
        vae.make(_config("pixelcnn", num_levels=1, **PIXELCNN), event)
    with pytest.raises(ValueError, match=r"model.decoder must be one of .*'pixelcnn'.*'pixelcnx'"):
        vae.make(_config("pixelcnx"), event)
    # The Ladder VAE's decoders are factorised: it names the field rather than ignoring it.
    with pytest.raises(ValueError, match=r"model.decoder must be one of .*; got 'pixelcnn'"):
        hvae.make(_config("pixelcnn", name="hvae", latent_dims=(1, 1)), event)
    with pytest.raises(ValueError, match="'pixelvae' .* does not combine with 'ladder'"):
        vae_digits.get_config("ladder,pixelvae")
    c = vae_digits.get_config("binary,pixelvae")
    assert (c.model.decoder, c.data.num_levels) == ("pixelcnn", 0)
    c = vae_digits.get_config("continuous,pixelvae")
    assert (c.model.decoder, c.data.num_levels) == ("pixelcnn", 17)
    assert vae_digits.get_config("binary").model.decoder == "bernoulli"
