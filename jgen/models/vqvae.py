"""VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural discrete representation learning"):
a convolutional encoder to a grid of vectors, each replaced by its nearest code of a codebook
(straight-through gradients), a convolutional decoder, and a prior over the codes.

Loss per image::

    -log p(x | z_q(x)) + |sg(z_e) - e|^2 + beta |z_e - sg(e)|^2 - log p(z(x))

The codebook is learned by its loss term (``model.codebook_update = "loss"``) or, with that term
dropped from the gradient, by exponential moving averages of the encoder outputs assigned to each
code (``"ema"``; the paper's appendix), with codes unused for a while restarted at random encoder
outputs (``model.dead_code_threshold``). The prior is a categorical distribution over codes at
each latent position, trained jointly by maximum likelihood on the codes the encoder emits (its
term has no gradient into the encoder); an autoregressive prior replaces it when the
Autoregressive family lands.

A deterministic one-hot posterior turns the ELBO into ``log p(x) >= log p(x | z_q(x)) +
log p(z(x))``, so ``evaluate``'s ``nll`` is an upper bound on the discrete NLL in nats.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.checks import check_batch, check_choice, check_int, check_positive
from jgen.losses import vq
from jgen.losses.likelihood import bits_per_dim
from jgen.models.latent_variable import data_view, likelihood_from_config
from jgen.train.optim import optimizer_from_config
from jgen.train.state import create_state, eval_params, make_stateful_step
from jgen.train.trainer import Trainer
from jgen.types import Array

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


def make(config, event_shape: tuple[int, ...]) -> Trainer:
    """A Trainer for the VQ-VAE of ``config.model``.

    Reads ``model``: ``channels``, ``code_dim``, ``num_codes``, ``commitment`` (``beta``),
    ``codebook_update`` (:data:`CODEBOOK_UPDATES`), ``ema_decay`` and ``dead_code_threshold``
    (EMA only: a code whose moving-average count per batch falls below it is restarted; 0
    disables), ``decoder`` (``bernoulli`` | ``logistic`` | ``gaussian`` ...); and
    ``data.num_levels``. Images of shape ``(H, W)`` or ``(H, W, C)`` with even ``H`` and ``W``.

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
    for name in ("channels", "code_dim", "num_codes"):
        check_int(f"model.{name}", mc[name])
    check_positive("model.commitment", mc.commitment, allow_zero=True)
    check_positive("model.dead_code_threshold", mc.dead_code_threshold, allow_zero=True)
    likelihood = likelihood_from_config(mc, config.data.num_levels)
    num_dims = math.prod(event_shape)
    view = data_view(mc.decoder, config.data.num_levels, num_dims)
    coder = ConvCoder(event_shape, mc.channels, mc.code_dim, likelihood.outputs_per_dim)
    grid = (event_shape[0] // 2, event_shape[1] // 2)
    use_ema = mc.codebook_update == "ema"

    def codebook_of(params, model_state):
        return model_state["ema"].codebook if use_ema else params["codebook"]

    def prior_nll(params, indices):
        log_p = jax.nn.log_softmax(params["prior"], -1)  # (h, w, K)
        rows, cols = jnp.arange(grid[0])[:, None], jnp.arange(grid[1])[None, :]
        picked = log_p[rows, cols, jax.lax.stop_gradient(indices)]  # (B, h, w)
        return -jnp.sum(picked, axis=(1, 2))

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
        prior = prior_nll(params, indices)
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
            "prior_nll": prior,
            "perplexity": vq.codebook_perplexity(indices, mc.num_codes),
        }
        return jnp.mean(reconstruction + quantization + prior), (metrics, model_state)

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
        params = {"coder": coder_params, "prior": jnp.zeros((*grid, mc.num_codes))}
        model_state = {}
        if use_ema:
            model_state["ema"] = vq.ema_init(codebook)
        else:
            params["codebook"] = codebook
        return create_state(params, optimizer, ema_decay, model_state)

    def sample(state, key, n):
        params = eval_params(state)
        code_key, x_key = jax.random.split(key)
        indices = jax.random.categorical(code_key, params["prior"], shape=(n, *grid))
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
