"""VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural discrete representation learning"):
a convolutional encoder to a grid of vectors, each replaced by its nearest code of a codebook
(straight-through gradients), a convolutional decoder, and a prior over the codes.

Loss per image::

    -log p(x | z_q(x)) + |sg(z_e) - e|^2 + beta |z_e - sg(e)|^2 - log p(z(x))

The codebook is learned by its loss term (``model.codebook_update = "loss"``) or, with that term
dropped from the gradient, by exponential moving averages of the encoder outputs assigned to each
code (``"ema"``; the paper's appendix), with codes unused for a while restarted at random encoder
outputs (``model.dead_code_threshold``). The prior over the ``(h, w)`` grid of code indices
(``model.prior``, :data:`PRIORS`) is trained jointly by maximum likelihood on the codes the
encoder emits (its term has no gradient into the encoder, ``sg(z(x))``):

- ``categorical``: an independent categorical per latent position, ``p(z) = prod_ij
  softmax(l_ij)[z_ij]`` with logits ``l`` of shape ``(h, w, K)``;
- ``pixelcnn``: the paper's autoregressive prior, ``p(z) = prod_i p(z_i | z_<i)`` in raster
  order, a gated PixelCNN (:class:`jgen.nets.pixelcnn.GatedPixelCNN`; van den Oord et al. 2016,
  "Conditional Image Generation with PixelCNN Decoders") over the code grid with ``K`` logits
  per position, the code index entering as the grid value ``-1 + 2 k / (K - 1)``; sampled
  ancestrally, one position per network pass
  (:func:`jgen.samplers.autoregressive.sample_sequential`).

The paper fits its PixelCNN after the VQ-VAE; fitting it jointly on ``sg(z(x))`` keeps one
training run, and every evaluation reports the bound of the codes the encoder emits then.

A deterministic one-hot posterior turns the ELBO into ``log p(x) >= log p(x | z_q(x)) +
log p(z(x))``, so ``evaluate``'s ``nll`` is an upper bound on the discrete NLL in nats.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.checks import check_batch, check_choice, check_int, check_positive
from jgen.losses import autoregressive as ar_losses
from jgen.losses import vq
from jgen.losses.likelihood import bits_per_dim
from jgen.models import autoregressive
from jgen.models.latent_variable import data_view, likelihood_from_config
from jgen.nets.pixelcnn import GatedPixelCNN
from jgen.train.optim import optimizer_from_config
from jgen.train.state import create_state, eval_params, make_stateful_step
from jgen.train.trainer import Trainer
from jgen.types import Array, Params, PRNGKey

CODEBOOK_UPDATES = ("loss", "ema")


class ConvCoder(nn.Module):
    """Encoder ``(B, H, W[, C]) -> (B, H/2, W/2, code_dim)`` and decoder back to
    ``(B, H, W[, C], outputs_per_dim)``: one stride-2 (transposed) convolution between 3x3
    convolutions."""

    event_shape: tuple[int, ...]
    channels: int
    code_dim: int
    outputs_per_dim: int

    def setup(self):
        c = self.channels
        self.enc = [
            nn.Conv(c, (3, 3)),
            nn.Conv(c, (4, 4), strides=2),
            nn.Conv(self.code_dim, (1, 1)),
        ]
        out_channels = (self.event_shape[2] if len(self.event_shape) == 3 else 1) * (
            self.outputs_per_dim
        )
        self.dec = [
            nn.Conv(c, (3, 3)),
            nn.ConvTranspose(c, (4, 4), strides=(2, 2)),
            nn.Conv(out_channels, (3, 3)),
        ]

    def encode(self, x: Array) -> Array:
        h = x[..., None] if len(self.event_shape) == 2 else x
        h = nn.gelu(self.enc[0](h))
        h = nn.gelu(self.enc[1](h))
        return self.enc[2](h)

    def decode(self, z: Array) -> Array:
        h = nn.gelu(self.dec[0](z))
        h = nn.gelu(self.dec[1](h))
        return jnp.reshape(self.dec[2](h), (z.shape[0], *self.event_shape, self.outputs_per_dim))

    def __call__(self, x: Array) -> Array:
        return self.decode(self.encode(x))


class CodePrior(NamedTuple):
    """A prior ``p(z)`` over ``(h, w)`` grids of code indices in ``{0, ..., K-1}``.

    Attributes:
      init: ``key -> params`` (``params["prior"]`` of the VQ-VAE).
      log_prob: ``(params, indices (B, h, w) int) -> (B,)`` exact ``log p(z)`` in nats.
      sample: ``(params, key, n) -> (n, h, w)`` int32 indices.
    """

    init: Callable[[PRNGKey], Params]
    log_prob: Callable[[Params, Array], Array]
    sample: Callable[[Params, PRNGKey, int], Array]


def categorical_prior(grid: tuple[int, int], num_codes: int) -> CodePrior:
    """Independent positions: ``log p(z) = sum_ij log softmax(l_ij)[z_ij]`` with logits ``l`` of
    shape ``(h, w, K)``, initialised to zero (uniform).

    Args:
      grid: ``(h, w)``, the latent grid.
      num_codes: ``K``.

    Returns:
      The :class:`CodePrior`.
    """

    def init(key):
        del key
        return jnp.zeros((*grid, num_codes))

    def log_prob(params, indices):
        log_p = jax.nn.log_softmax(params, -1)  # (h, w, K)
        rows, cols = jnp.arange(grid[0])[:, None], jnp.arange(grid[1])[None, :]
        return jnp.sum(log_p[rows, cols, indices], axis=(1, 2))

    def sample(params, key, n):
        return jax.random.categorical(key, params, shape=(n, *grid))

    return CodePrior(init, log_prob, sample)


def pixelcnn_prior(
    grid: tuple[int, int], num_codes: int, features: int, num_layers: int
) -> CodePrior:
    """The VQ-VAE paper's autoregressive prior: ``log p(z) = sum_i log softmax(f(z_<i)_i)[z_i]``
    over the grid in raster order, ``f`` a gated PixelCNN (``3 x 3`` kernels, one data channel,
    ``K`` logits per position) fed the indices as grid values ``-1 + 2 k / (K - 1)``; sampled one
    position per network pass. With ``L`` layers every position sees the whole rows above
    within ``L`` columns either side, and every earlier position of its own row.

    van den Oord, Vinyals & Kavukcuoglu 2017, "Neural discrete representation learning";
    van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders".

    Args:
      grid: ``(h, w)``, the latent grid.
      num_codes: ``K >= 2``.
      features: the PixelCNN's width.
      num_layers: its gated layers.

    Returns:
      The :class:`CodePrior`; its params are the PixelCNN's.

    Raises:
      ValueError: naming ``num_codes``, ``features`` or ``num_layers`` when not valid.
    """
    check_int("num_codes", num_codes, minimum=2)
    check_int("features", features)
    check_int("num_layers", num_layers)
    module = GatedPixelCNN(
        num_params=num_codes,
        num_channels=1,
        features=features,
        num_layers=num_layers,
        first_kernel_size=3,
        kernel_size=3,
    )
    # The PixelCNN encoding of jgen.models.autoregressive: index k as a grid value, one channel.
    network = autoregressive.Network(
        module, lambda t: ar_losses.tokens_to_grid(t, num_codes)[..., None]
    )
    model = autoregressive.autoregressive_model(
        network, autoregressive.categorical_head(num_codes), grid
    )

    def init(key):
        return model.init(key, jnp.zeros((1, *grid), jnp.int32))

    return CodePrior(init, model.log_prob, model.sample)


def _pixelcnn_prior_from_config(mc, grid: tuple[int, int]) -> CodePrior:
    check_int("model.prior_features", mc.prior_features)
    check_int("model.prior_layers", mc.prior_layers)
    return pixelcnn_prior(grid, mc.num_codes, mc.prior_features, mc.prior_layers)


PRIORS = {
    "categorical": lambda mc, grid: categorical_prior(grid, mc.num_codes),
    "pixelcnn": _pixelcnn_prior_from_config,
}
"""``model.prior`` -> ``builder(model_config, grid) -> CodePrior``."""


def make(config, event_shape: tuple[int, ...]) -> Trainer:
    """A Trainer for the VQ-VAE of ``config.model``.

    Reads ``model``: ``channels``, ``code_dim``, ``num_codes``, ``commitment`` (``beta``),
    ``codebook_update`` (:data:`CODEBOOK_UPDATES`), ``ema_decay`` and ``dead_code_threshold``
    (EMA only: a code whose moving-average count per batch falls below it is restarted; 0
    disables), ``decoder`` (``bernoulli`` | ``logistic`` | ``gaussian`` ...), ``prior`` (a key of
    :data:`PRIORS`; ``params["prior"]`` holds its parameters) with ``prior_features`` and
    ``prior_layers`` (``pixelcnn`` only); and ``data.num_levels``. Images of shape ``(H, W)`` or
    ``(H, W, C)`` with even ``H`` and ``W``.

    ``evaluate`` returns per-example ``nll`` (the bound above, on the discrete data),
    ``bits_per_dim``, ``reconstruction_nll``, ``squared_error`` (of the decoder's mean, on the
    decoder's scale, per dimension) and the batch's codebook ``perplexity`` and ``usage``.
    """
    mc = config.model
    event_shape = tuple(event_shape)
    if len(event_shape) not in (2, 3) or event_shape[0] % 2 or event_shape[1] % 2:
        raise ValueError(
            f"the VQ-VAE takes images (H, W) or (H, W, C) with even H and W; got {event_shape}"
        )
    check_choice("model.codebook_update", mc.codebook_update, CODEBOOK_UPDATES)
    check_choice("model.prior", mc.prior, PRIORS)
    for name in ("channels", "code_dim", "num_codes"):
        check_int(f"model.{name}", mc[name])
    check_positive("model.commitment", mc.commitment, allow_zero=True)
    check_positive("model.dead_code_threshold", mc.dead_code_threshold, allow_zero=True)
    likelihood = likelihood_from_config(mc, config.data.num_levels)
    num_dims = math.prod(event_shape)
    view = data_view(mc.decoder, config.data.num_levels, num_dims)
    coder = ConvCoder(event_shape, mc.channels, mc.code_dim, likelihood.outputs_per_dim)
    grid = (event_shape[0] // 2, event_shape[1] // 2)
    prior = PRIORS[mc.prior](mc, grid)
    use_ema = mc.codebook_update == "ema"

    def codebook_of(params, model_state):
        return model_state["ema"].codebook if use_ema else params["codebook"]

    def prior_nll(params, indices):
        return -prior.log_prob(params["prior"], jax.lax.stop_gradient(indices))

    def forward(params, model_state, x):
        z_e = coder.apply({"params": params["coder"]}, x, method="encode")
        codebook = codebook_of(params, model_state)
        z_q, indices = vq.quantize(z_e, codebook)
        outputs = coder.apply({"params": params["coder"]}, z_q, method="decode")
        return z_e, codebook, indices, outputs

    def loss_fn(params, model_state, batch, key):
        check_batch("x", batch, event_shape)
        data_key, restart_key = jax.random.split(key)
        x = view.observe(batch, data_key)
        z_e, codebook, indices, outputs = forward(params, model_state, x)
        reconstruction = -likelihood.log_prob(outputs, x)
        quantization, aux = vq.vq_loss(z_e, codebook, commitment=mc.commitment, indices=indices)
        prior_term = prior_nll(params, indices)
        if use_ema:
            ema = vq.ema_update(
                model_state["ema"], jax.lax.stop_gradient(z_e), indices, decay=mc.ema_decay
            )
            if mc.dead_code_threshold > 0:
                ema = vq.restart_dead_codes(
                    restart_key,
                    ema,
                    jax.lax.stop_gradient(z_e),
                    ema.cluster_size,
                    threshold=mc.dead_code_threshold,
                )
            model_state = {**model_state, "ema": ema}
        metrics = {
            "reconstruction_nll": reconstruction,
            "commitment": aux["commitment"],
            "prior_nll": prior_term,
            "perplexity": vq.codebook_perplexity(indices, mc.num_codes),
        }
        return jnp.mean(reconstruction + quantization + prior_term), (metrics, model_state)

    optimizer = optimizer_from_config(config)
    ema_decay = config.optim.ema_decay

    def init(key, batch):
        check_batch("batch", batch, event_shape)
        coder_key, code_key = jax.random.split(key)
        x = view.observe(batch, coder_key)
        coder_params = coder.init(coder_key, x)["params"]
        # Codes start at encoder outputs of the first batch, so none starts dead.
        z_e = coder.apply({"params": coder_params}, x, method="encode").reshape(-1, mc.code_dim)
        picks = jax.random.choice(
            code_key, z_e.shape[0], (mc.num_codes,), z_e.shape[0] < mc.num_codes
        )
        codebook = z_e[picks]
        # A key of its own for the prior, leaving the coder's and the codebook's draws as before.
        prior_params = prior.init(jax.random.fold_in(code_key, 1))
        params = {"coder": coder_params, "prior": prior_params}
        model_state = {}
        if use_ema:
            model_state["ema"] = vq.ema_init(codebook)
        else:
            params["codebook"] = codebook
        return create_state(params, optimizer, ema_decay, model_state)

    def sample(state, key, n):
        params = eval_params(state)
        code_key, x_key = jax.random.split(key)
        indices = prior.sample(params["prior"], code_key, n)
        z_q = codebook_of(params, state.model_state)[indices]
        outputs = coder.apply({"params": params["coder"]}, z_q, method="decode")
        return view.to_data(likelihood.sample(x_key, outputs))

    def evaluate(state, batch, key):
        params = eval_params(state)
        x = view.observe(batch, key)
        _, _, indices, outputs = forward(params, state.model_state, x)
        reconstruction = -likelihood.log_prob(outputs, x)
        nll = view.discrete_nll(reconstruction + prior_nll(params, indices))
        error = (likelihood.mean(outputs) - x) ** 2
        n = batch.shape[0]
        return {
            "nll": nll,
            "bits_per_dim": bits_per_dim(nll, num_dims),
            "reconstruction_nll": reconstruction,
            "squared_error": jnp.mean(error.reshape(n, -1), axis=1),
            "perplexity": jnp.full((n,), vq.codebook_perplexity(indices, mc.num_codes)),
            "usage": jnp.full((n,), vq.codebook_usage(indices, mc.num_codes)),
        }

    step = make_stateful_step(loss_fn, optimizer, ema_decay)
    return Trainer(init=init, step=step, sample=sample, evaluate=evaluate)
