"""The variational autoencoder: a diagonal-Gaussian encoder, optionally refined by an inverse
autoregressive flow, and an MLP decoder over a standard normal prior, trained by the ELBO
(beta-VAE, KL annealing) or the IWAE bound (standard or DReG gradients) through
:func:`jgen.models.latent_variable.make_trainer`.

The IAF posterior (Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling 2016, "Improved
variational inference with inverse autoregressive flow", Algorithm 1 with its numerically stable,
LSTM-like update): the encoder also returns a context ``h``; from ``z_0 = mu + sigma * eps``,
``eps ~ N(0, I)``, ``log q_0 = log N(eps; 0, I) - sum log sigma``, each of ``T`` steps runs a
MADE on ``(z_{t-1}, h)`` (orderings natural, reversed, natural, ...) for ``(m_t, s_t)`` and
applies the gated update

    g_t = sigmoid(s_t + b),   z_t = g_t * z_{t-1} + (1 - g_t) * m_t,
    log q_t = log q_{t-1} - sum log g_t,

whose Jacobian is triangular with diagonal ``g_t`` in the step's ordering. The MADEs' output
layers start at zero and ``b = 1`` (the paper's positive "forget gate bias"), so each step
starts as ``z_t = sigmoid(1) z_{t-1}``: a small, uniform contraction that the encoder's scale
absorbs. With IAF the KL term has no closed form, so the ELBO uses the single-sample Monte Carlo
``log q(z_T | x) - log p(z_T)`` and the IWAE bound the standard gradient (DReG is refused).

The conditional VAE (``num_classes = C > 0``; Sohn, Lee & Yan 2015, "Learning structured output
representation using deep conditional generative models", their simplest CVAE; Kingma, Rezende,
Mohamed & Welling 2014, "Semi-supervised learning with deep generative models", M2 with the label
observed) models ``p(x | y) = ∫ p(z) p(x | z, c) dz`` with ``c = one_hot(y, C)``: the encoder
``q(z | x, c)`` reads ``[x, c]`` and the decoder ``p(x | z, c)`` reads ``[z, c]``, while the
prior ``p(z) = N(0, I)`` does not depend on ``y`` (Sohn et al.'s prior network ``p(z | x)`` is
not used), so the analytic KL, the IWAE bound and its DReG gradient carry over unchanged. With
IAF, ``c`` reaches every step through the context ``h``, which the encoder computes from
``[x, c]``; the MADEs themselves are unchanged. With ``C = 0`` the model, its parameters and its
numbers are exactly those of the unconditional VAE.

The PixelVAE (:class:`PixelVAE`, ``model.decoder = "pixelcnn"``; Gulrajani, Kumar, Ahmed, Taiga,
Visin, Vazquez & Courville 2017, "PixelVAE: a latent variable model for natural images"; Chen,
Kingma, Salimans, Duan, Dhariwal, Schulman, Sutskever & Abbeel 2017, "Variational lossy
autoencoder") replaces the factorised decoder by an autoregressive one: the MLP decoder maps
``[z, c]`` to a spatial conditioning map ``m(z) (H, W, C m)`` (a reshape of its output, ``m``
channels per sub-pixel), and a gated PixelCNN over the image, conditioned on ``m(z)`` by ``1 x 1``
convolutions, gives

    log p(x | z) = sum_i log softmax(f_i(x_<i, m(z)))[x_i]

over the sub-pixels in raster order, a ``K``-way categorical of each level (``K = 2`` for binary
data) evaluated exactly in one pass; ``x ~ p(x | z)`` is drawn one sub-pixel at a time
(:func:`jgen.samplers.autoregressive.sample_sequential`). Everything else (ELBO, IWAE, the
importance-sampled NLL, KL annealing, IAF, the class context) is the VAE's. A PixelCNN with a large
receptive field can model the digits alone and leave ``z`` unused (posterior collapse, ``KL -> 0``;
Chen et al. 2017, section 2.2); a few small-kernel layers keep ``z`` necessary for the global
shape, as in the paper.

Kingma & Welling 2014, "Auto-encoding variational Bayes"; Rezende, Mohamed & Wierstra 2014;
Higgins et al. 2017 (beta-VAE); Burda, Grosse & Salakhutdinov 2016 (IWAE); Tucker et al. 2019
(DReG). The decoders and the data they model are listed in :mod:`jgen.models.latent_variable`.
"""

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.checks import check_choice, check_int
from jgen.gaussian import standard_normal_log_prob
from jgen.losses import autoregressive as ar_losses
from jgen.losses import elbo as bounds
from jgen.models.latent_variable import (
    DECODERS,
    LatentVariableModel,
    Likelihood,
    likelihood_from_config,
    make_trainer,
)
from jgen.nets.masked import MADE, alternating_orderings
from jgen.nets.mlp import MLP
from jgen.nets.pixelcnn import GatedPixelCNN
from jgen.samplers import autoregressive as ar_samplers
from jgen.train.trainer import Trainer
from jgen.types import Array, Params


class VAE(nn.Module):
    """MLP encoder ``x -> (mean, log std[, h])`` of ``q(z | x)``, an optional inverse
    autoregressive flow on its samples, and MLP decoder ``z -> outputs``
    ``(B, *event, outputs_per_dim)`` parameterising ``p(x | z)``; with ``num_classes = C > 0``
    the encoder reads ``[x, c]`` and the decoder ``[z, c]`` for a one-hot class ``c`` ``(B, C)``
    (the methods' argument ``c``, None when ``C = 0``).

    Attributes:
      event_shape: shape of one example.
      latent_dim: size of ``z``.
      hidden_sizes: widths of the encoder's hidden layers; the decoder mirrors them.
      outputs_per_dim: decoder outputs per data dimension (1 or 2).
      iaf_steps: ``T``, the IAF steps of the posterior (0: the diagonal Gaussian alone, with
        exactly the parameters of a VAE without IAF).
      iaf_context: size of the encoder's context ``h`` (used when ``iaf_steps > 0``).
      iaf_hidden: hidden widths of each step's MADE (at least ``latent_dim - 1`` each for full
        dependence).
      iaf_gate_bias: ``b`` in ``g = sigmoid(s + b)``.
      num_classes: ``C``, the size of the one-hot class context (0: unconditional, with exactly
        the parameters of the unconditional VAE).
    """

    event_shape: tuple[int, ...]
    latent_dim: int
    hidden_sizes: Sequence[int]
    outputs_per_dim: int
    iaf_steps: int = 0
    iaf_context: int = 64
    iaf_hidden: Sequence[int] = (128, 128)
    iaf_gate_bias: float = 1.0
    num_classes: int = 0

    def setup(self):
        context = self.iaf_context if self.iaf_steps else 0
        self.encoder = MLP(tuple(self.hidden_sizes), 2 * self.latent_dim + context)
        num_outputs = math.prod(self.event_shape) * self.outputs_per_dim
        self.decoder = MLP(tuple(reversed(self.hidden_sizes)), num_outputs)
        self.iaf = [
            MADE(tuple(self.iaf_hidden), num_params_per_dim=2, ordering=o, zero_init_output=True)
            for o in alternating_orderings(self.latent_dim, self.iaf_steps)
        ]

    def with_class(self, a: Array, c: Array | None) -> Array:
        """``[a, c]`` along the last axis for ``a (B, m)`` and ``c (B, C)``; ``a`` itself when
        unconditional.

        Raises:
          ValueError: when ``c`` is missing for ``num_classes > 0``, given for
            ``num_classes = 0``, or not of shape ``(B, num_classes)``.
        """
        if not self.num_classes:
            if c is not None:
                raise ValueError(
                    f"c must be None for an unconditional VAE (num_classes=0); got shape "
                    f"{jnp.shape(c)}"
                )
            return a
        expected = (a.shape[0], self.num_classes)
        if c is None or jnp.shape(c) != expected:
            got = None if c is None else f"shape {jnp.shape(c)}"
            raise ValueError(f"c must be one-hot classes of shape {expected}; got {got}")
        return jnp.concatenate([a, c.astype(a.dtype)], axis=-1)

    def encode_with_context(self, x: Array, c: Array | None = None) -> tuple[Array, Array, Array]:
        """``(x (B, *event)[, c (B, C)]) -> (mean (B, d), log_std (B, d), h (B, iaf_context or
        0))``; ``h`` is the IAF's context (a function of ``x`` and the class ``c``)."""
        out = self.encoder(self.with_class(jnp.reshape(x, (x.shape[0], -1)), c))
        d = self.latent_dim
        return out[:, :d], out[:, d : 2 * d], out[:, 2 * d :]

    def encode(self, x: Array, c: Array | None = None) -> tuple[Array, Array]:
        """``(x (B, *event)[, c (B, C)]) -> (mean, log_std)``, each ``(B, d)``, of
        ``q_0(z | x[, c])``."""
        return self.encode_with_context(x, c)[:2]

    def iaf_step(self, z: Array, h: Array, step: int) -> tuple[Array, Array]:
        """IAF step ``step`` (0-based): ``(z_{t-1} (n, d), h (n, c)) -> (z_t (n, d),
        sum_i log g_t,i (n,))``, the log-determinant of ``dz_t / dz_{t-1}``."""
        out = self.iaf[step](z, h)
        m, s = out[..., 0], out[..., 1] + self.iaf_gate_bias
        g = jax.nn.sigmoid(s)
        # log_sigmoid(s) rather than log(g): finite and exact where the gate saturates at 0.
        return g * z + (1.0 - g) * m, jnp.sum(jax.nn.log_sigmoid(s), axis=-1)

    def posterior(self, x: Array, eps: Array, c: Array | None = None) -> tuple[Array, Array]:
        """``z_T`` and ``log q(z_T | x[, c])`` from standard normal noise (module docstring).

        Args:
          x: ``(B, *event)``.
          eps: ``(k, B, d)`` draws of ``N(0, I)``.
          c: ``(B, C)`` one-hot classes, or None when unconditional.

        Returns:
          ``(z_T (k, B, d), log q(z_T | x) (k, B))``; with ``iaf_steps = 0``, ``z_0`` and the
          diagonal Gaussian's log-density.
        """
        mean, log_std, h = self.encode_with_context(x, c)
        z = mean + jnp.exp(log_std) * eps
        log_q = standard_normal_log_prob(eps, 1) - jnp.sum(log_std, -1)
        if not self.iaf_steps:
            return z, log_q
        k, n, d = eps.shape
        z = z.reshape(k * n, d)
        h = jnp.broadcast_to(h, (k, *h.shape)).reshape(k * n, -1)
        for step in range(self.iaf_steps):
            z, log_det = self.iaf_step(z, h, step)
            log_q = log_q - log_det.reshape(k, n)
        return z.reshape(k, n, d), log_q

    def decode(self, z: Array, c: Array | None = None) -> Array:
        """``(z (B, d)[, c (B, C)]) -> (B, *event, outputs_per_dim)``."""
        out = self.decoder(self.with_class(z, c))
        return jnp.reshape(out, (z.shape[0], *self.event_shape, self.outputs_per_dim))

    def decoder_outputs(self, z: Array, x: Array, c: Array | None = None) -> Array:
        """The outputs that parameterise ``p(x | z[, c])`` at the observed ``x (B, *event)``:
        :meth:`decode`'s, which do not depend on ``x`` (an autoregressive decoder's do)."""
        del x
        return self.decode(z, c)

    def __call__(self, x: Array, c: Array | None = None) -> Array:  # for init: every parameter
        z, _ = self.posterior(x, jnp.zeros((1, x.shape[0], self.latent_dim), x.dtype), c)
        return self.decoder_outputs(z[0], x, c)


class PixelVAE(VAE):
    """The VAE with a gated PixelCNN decoder (module docstring): the MLP decoder's outputs
    ``(B, *event, outputs_per_dim)`` are the conditioning map, ``outputs_per_dim`` channels per
    sub-pixel, and :meth:`decoder_outputs` the PixelCNN's ``num_levels`` logits per sub-pixel.

    Attributes (besides the VAE's):
      num_levels: ``K >= 2``, the values of a sub-pixel, given to the PixelCNN on the grid
        ``2k / (K - 1) - 1``.
      pixelcnn_features: width of both stacks of the gated PixelCNN.
      pixelcnn_layers: its gated layers.
      pixelcnn_kernel_size: odd kernel ``k`` of every gated layer (the first included): after
        ``L`` layers a pixel sees the ``L (k // 2) + 1`` rows above it, ``L (k // 2)`` columns
        either side, and ``L (k // 2)`` pixels to its left (a local window; ``z`` carries the
        rest).
    """

    num_levels: int = 2
    pixelcnn_features: int = 32
    pixelcnn_layers: int = 3
    pixelcnn_kernel_size: int = 3

    def setup(self):
        super().setup()
        self.pixelcnn = GatedPixelCNN(
            self.num_levels,
            self.image_shape[2],
            features=self.pixelcnn_features,
            num_layers=self.pixelcnn_layers,
            first_kernel_size=self.pixelcnn_kernel_size,
            kernel_size=self.pixelcnn_kernel_size,
        )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of events ``(H, W)`` (``C = 1``) or ``(H, W, C)``."""
        return (*self.event_shape, 1)[:3]

    def conditioning(self, z: Array, c: Array | None = None) -> Array:
        """``(z (B, d)[, c (B, C)]) -> m(z) (B, H, W, C outputs_per_dim)``: the MLP decoder's
        outputs of sub-pixel ``(h, w, c)`` as channels ``c m .. c m + m - 1`` of pixel
        ``(h, w)``."""
        height, width, _ = self.image_shape
        return self.decode(z, c).reshape(z.shape[0], height, width, -1)

    def pixel_logits(self, x: Array, conditioning: Array) -> Array:
        """``(x (B, *event) on the grid, m (B, H, W, c)) -> (B, *event, K)``: the logits of
        ``p(x_i | x_<i, z)`` for every sub-pixel ``i``, each a function of the sub-pixels before
        it only (and of all of ``m``)."""
        image = x.reshape(x.shape[0], *self.image_shape)
        return self.pixelcnn(image, conditioning).reshape(*x.shape, self.num_levels)

    def decoder_outputs(self, z: Array, x: Array, c: Array | None = None) -> Array:
        """``(z (B, d), x (B, *event) on the grid[, c (B, C)]) -> (B, *event, K)``: the logits
        of ``p(x_i | x_<i, z[, c])`` at the observed ``x`` (teacher forcing)."""
        return self.pixel_logits(x, self.conditioning(z, c))


def _tile_rows(c: Array | None, rows: int) -> Array | None:
    """``c (B, C)`` repeated to ``rows = k B`` rows sample-major (row ``s B + b`` is example
    ``b``), the order in which the bounds and :func:`latent_variable_model`'s joint tile ``x``."""
    if c is None or rows == c.shape[0]:
        return c
    return jnp.broadcast_to(c, (rows // c.shape[0], *c.shape)).reshape(rows, c.shape[-1])


def latent_variable_model(module: VAE, likelihood: Likelihood) -> LatentVariableModel:
    """The VAE's pure functions: proposal and joint; without IAF the analytic-KL ELBO and the
    IWAE bound (standard or DReG), with IAF the Monte Carlo-KL ELBO and no dedicated IWAE
    (:func:`jgen.models.latent_variable.iwae_from_weights`, standard gradient). Every function
    takes the one-hot ``context`` ``(B, C)`` last, None (the default) for an unconditional
    ``module``; the model's ``num_classes`` is the module's. ``log p(x | z)`` is
    ``likelihood.log_prob(module.decoder_outputs(z, x, c), x)``."""

    def apply(params, *args, method):
        return module.apply({"params": params}, *args, method=method)

    def encoder(params: Params, context):
        return lambda x: apply(params, x, context, method="encode")

    def log_likelihood(params: Params, context):
        def fn(x, z):
            # The bounds call the decoder on k B rows of tiled x; the classes follow.
            c = _tile_rows(context, z.shape[0])
            return likelihood.log_prob(apply(params, z, x, c, method="decoder_outputs"), x)

        return fn

    def analytic_elbo(params, key, x, beta, context=None):
        value, aux = bounds.elbo(
            key, x, encoder(params, context), log_likelihood(params, context), beta=beta
        )
        return value, {"reconstruction": aux["reconstruction"], "kl": aux["kl"]}

    def monte_carlo_elbo(params, key, x, beta, context=None):
        # log q(z_T | x) has no closed-form KL to N(0, I): both terms at the one sample z_T.
        z, log_q = sample_and_log_q(params, key, x, 1, context)
        reconstruction = log_likelihood(params, context)(x, z[0])
        kl = log_q[0] - standard_normal_log_prob(z[0], 1)
        return reconstruction - beta * kl, {"reconstruction": reconstruction, "kl": kl}

    def iwae(params, key, x, k, gradient, context=None):
        value, aux = bounds.iwae_bound(
            key, x, encoder(params, context), log_likelihood(params, context), k, gradient=gradient
        )
        return value, {"ess": aux["ess"]}

    def sample_and_log_q(params, key, x, k, context=None):
        # The dtype of the encoder's outputs, as the ELBO and IWAE bounds draw their noise.
        dtype = jnp.result_type(x, *jax.tree.leaves(params))
        eps = jax.random.normal(key, (k, x.shape[0], module.latent_dim), dtype)
        return apply(params, x, eps, context, method="posterior")

    def log_joint(params, x, z, context=None):
        k, n = z.shape[:2]
        flat_x = jnp.broadcast_to(x, (k, *x.shape)).reshape(k * n, *x.shape[1:])
        log_px = log_likelihood(params, context)(flat_x, z.reshape(k * n, -1)).reshape(k, n)
        return log_px + standard_normal_log_prob(z, 1)

    def decode_prior(params, key, n, context=None):
        z = jax.random.normal(key, (n, module.latent_dim))
        return apply(params, z, context, method="decode")

    def init(key, x, context=None):
        return module.init(key, x, context)["params"]

    functions = (init, analytic_elbo, iwae, sample_and_log_q, log_joint, decode_prior)
    if module.iaf_steps:
        functions = (init, monte_carlo_elbo, None, sample_and_log_q, log_joint, decode_prior)
    return LatentVariableModel(*functions, num_classes=module.num_classes)


def categorical_grid_likelihood(num_levels: int) -> Likelihood:
    """``K`` logits per dimension of data on the grid ``x = 2k / (K - 1) - 1``:
    ``log p(x) = sum_i log softmax(outputs_i)[k_i]``
    (:func:`jgen.losses.autoregressive.categorical_log_likelihood`); ``sample`` draws each
    dimension from its own logits (for an autoregressive decoder's teacher-forced logits, one
    step of ancestral sampling, not a joint draw) and ``mean`` is ``E[x]`` per dimension.

    Raises:
      ValueError: naming ``num_levels`` when it is not an integer ``>= 2``.
    """
    check_int("num_levels", num_levels, minimum=2)
    levels = jnp.arange(num_levels)

    def tokens(x):
        return jnp.round((x + 1.0) * (num_levels - 1) / 2.0).astype(jnp.int32)

    return Likelihood(
        num_levels,
        lambda out, x: ar_losses.categorical_log_likelihood(out, tokens(x)),
        lambda key, out: ar_losses.tokens_to_grid(
            ar_samplers.sample_categorical(key, out), num_levels
        ),
        lambda out: jax.nn.softmax(out, axis=-1) @ ar_losses.tokens_to_grid(levels, num_levels),
    )


def pixel_vae_model(module: PixelVAE) -> LatentVariableModel:
    """The PixelVAE's pure functions: the VAE's (:func:`latent_variable_model` with
    :func:`categorical_grid_likelihood`), and ``sample_prior``: ``z ~ N(0, I)``, then ancestral
    sampling of ``p(x | z[, c])`` one sub-pixel per pass in raster order
    (:func:`jgen.samplers.autoregressive.sample_sequential`), on the grid."""
    num_levels = module.num_levels

    def grid(tokens):
        return ar_losses.tokens_to_grid(tokens, num_levels)

    def sample_prior(params, key, n, context=None):
        z_key, x_key = jax.random.split(key)
        z = jax.random.normal(z_key, (n, module.latent_dim))
        variables = {"params": params}
        conditioning = module.apply(variables, z, context, method="conditioning")

        def logits(tokens):
            return module.apply(variables, grid(tokens), conditioning, method="pixel_logits")

        initial = jnp.zeros((n, *module.event_shape), jnp.int32)
        return grid(
            ar_samplers.sample_sequential(x_key, logits, ar_samplers.sample_categorical, initial)
        )

    model = latent_variable_model(module, categorical_grid_likelihood(num_levels))
    return model._replace(sample_prior=sample_prior)


def _pixel_vae(mc, event_shape: tuple[int, ...], num_levels: int, **fields) -> PixelVAE:
    """The :class:`PixelVAE` of ``model`` (``pixelcnn_*`` fields) on binary data
    (``num_levels = 0``) or ``num_levels`` levels, checked."""
    if len(event_shape) not in (2, 3):
        raise ValueError(
            f"model.decoder='pixelcnn' models images of shape (H, W) or (H, W, C); got event "
            f"shape {tuple(event_shape)}"
        )
    if num_levels:
        check_int("data.num_levels", num_levels, minimum=2)
    channels = (*event_shape, 1)[2]
    check_int("model.pixelcnn_features", mc.pixelcnn_features, minimum=channels)
    check_int("model.pixelcnn_layers", mc.pixelcnn_layers)
    check_int("model.pixelcnn_context", mc.pixelcnn_context)
    kernel = mc.pixelcnn_kernel_size
    check_int("model.pixelcnn_kernel_size", kernel)
    if kernel % 2 == 0:  # a masked kernel needs a centre
        raise ValueError(f"model.pixelcnn_kernel_size must be odd; got {kernel}")
    return PixelVAE(
        tuple(event_shape),
        mc.latent_dim,
        tuple(mc.hidden_sizes),
        mc.pixelcnn_context,
        num_levels=num_levels or 2,
        pixelcnn_features=mc.pixelcnn_features,
        pixelcnn_layers=mc.pixelcnn_layers,
        pixelcnn_kernel_size=kernel,
        **fields,
    )


def make(config, event_shape: tuple[int, ...]) -> Trainer:
    """A Trainer for the VAE of ``config.model`` (``latent_dim``, ``hidden_sizes``, ``decoder``,
    the IAF posterior's ``iaf_steps`` (0: none), ``iaf_context`` and ``iaf_hidden``,
    ``num_classes`` (``C > 0``: the conditional VAE ``p(x | y)`` on labelled batches
    ``{"x", "y"}``, ``data.labels = True``; 0 or absent: unconditional), and the training fields
    of :func:`jgen.models.latent_variable.make_trainer`). With ``decoder = "pixelcnn"`` the
    PixelVAE on images ``(H, W[, C])`` of binary data or ``data.num_levels`` levels, its gated
    PixelCNN ``pixelcnn_features`` wide, ``pixelcnn_layers`` deep with odd kernels
    ``pixelcnn_kernel_size``, conditioned on ``pixelcnn_context`` channels per sub-pixel.

    Raises:
      ValueError: naming the field when ``latent_dim``, ``iaf_steps``, ``iaf_context``, a width
        of ``iaf_hidden``, ``num_classes`` or a ``pixelcnn_*`` field is not an integer in range,
        ``decoder`` is unknown, or ``decoder = "pixelcnn"`` meets an event that is not an image
        (and as ``make_trainer`` and ``likelihood_from_config`` do; with ``num_classes > 0`` an
        unlabelled batch names ``model.num_classes`` and ``data.labels``).
    """
    mc = config.model
    check_int("model.latent_dim", mc.latent_dim)
    num_classes = mc.get("num_classes", 0)
    check_int("model.num_classes", num_classes, minimum=0)
    check_int("model.iaf_steps", mc.iaf_steps, minimum=0)
    if mc.iaf_steps:
        check_int("model.iaf_context", mc.iaf_context)
        for i, width in enumerate(mc.iaf_hidden):
            check_int(f"model.iaf_hidden[{i}]", width)
    check_choice("model.decoder", mc.decoder, (*DECODERS, "pixelcnn"))
    fields = dict(
        iaf_steps=mc.iaf_steps,
        iaf_context=mc.iaf_context,
        iaf_hidden=tuple(mc.iaf_hidden),
        num_classes=num_classes,
    )
    if mc.decoder == "pixelcnn":
        module = _pixel_vae(mc, tuple(event_shape), config.data.num_levels, **fields)
        likelihood = categorical_grid_likelihood(module.num_levels)
        return make_trainer(config, event_shape, pixel_vae_model(module), likelihood)
    likelihood = likelihood_from_config(mc, config.data.num_levels)
    module = VAE(
        tuple(event_shape),
        mc.latent_dim,
        tuple(mc.hidden_sizes),
        likelihood.outputs_per_dim,
        **fields,
    )
    return make_trainer(config, event_shape, latent_variable_model(module, likelihood), likelihood)
