"""Autoregressive models ``p(x) = prod_i p(x_i | x_<i)`` over discrete data, trained by exact
maximum likelihood: MADE, PixelCNN, gated PixelCNN, a causal transformer, LSTM / GRU language
models and WaveNet, all behind one Trainer.

The pieces, one concept each:

- **Tokens** (:func:`data_coding`): the data as integers ``{0, ..., K-1}``: binary images
  (``K = 2``), images with ``data.num_levels = K`` stored as cell corners ``k / K`` (17-level
  digits, 8-bit MNIST / CIFAR-10 with ``K = 256``), or text already stored as character ids
  (``data.source = 'text'``, ``K`` = the vocabulary size).
- **Network** (:class:`Network`, built from ``model.network`` by :data:`NETWORKS`): tokens ->
  every element's output parameters ``(n, *event, P)``, element ``i`` a function of the elements
  before it in the order only. Images enter as grid values in ``[-1, 1]`` (MADE, PixelCNNs),
  sequences as one-hot vectors (transformer, RNNs, WaveNet; images are flattened in raster
  order). Networks with a cache also decode one position at a time.
- **Output head** (:class:`OutputHead`, ``model.output``): ``categorical`` (``P = K`` logits) or
  ``logistic_mixture`` (``P = 3 M``; PixelCNN++), giving ``log p(x)`` and per-element draws with
  ``model.temperature`` and ``model.top_k``.
- **Sampler**: :func:`jgen.samplers.autoregressive.sample_cached` when the network has a cache
  and ``model.cached_sampling`` is set, else
  :func:`~jgen.samplers.autoregressive.sample_sequential`.

With ``model.num_classes = C > 0`` the batches are ``{"x", "y"}`` (``data.labels = True``) and
every network is conditioned on ``one_hot(y)``; samples cycle through the classes.

MADE may be trained order- and connectivity-agnostically (``model.num_masks > 1``, Germain et al.
2015): each training step draws one of the mask sets; ``evaluate`` reports the ensemble
``log (1/M) sum_m p_m(x)`` over the first ``model.eval_masks`` sets (a mixture of the
autoregressive models, itself normalised) and samples come from mask set 0.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from jgen.checks import check_choice, check_int, check_positive
from jgen.data.labels import class_context, split_batch
from jgen.losses import autoregressive as ar_losses
from jgen.losses.likelihood import bits_per_dim
from jgen.nets.masked import MADE, OrderAgnosticMADE
from jgen.nets.pixelcnn import GatedPixelCNN, PixelCNN
from jgen.nets.recurrent import RecurrentLM
from jgen.nets.transformer import CausalTransformer
from jgen.nets.wavenet import WaveNet
from jgen.samplers import autoregressive as ar_samplers
from jgen.train.optim import optimizer_from_config
from jgen.train.state import create_state, eval_params, make_step
from jgen.train.trainer import Trainer
from jgen.types import Array, PRNGKey

OUTPUTS = ("categorical", "logistic_mixture")


# --------------------------------------------------------------------------------------------
# Data as tokens.


class Coding(NamedTuple):
    """How data become tokens and back.

    Attributes:
      num_levels: ``K``, the number of values of one element.
      to_tokens: data batch ``(n, *event)`` -> int32 tokens.
      from_tokens: tokens -> data on the dataset's scale (binary 0/1, cell centres
        ``(k + 1/2) / K``, or the token ids of text).
    """

    num_levels: int
    to_tokens: Callable[[Array], Array]
    from_tokens: Callable[[Array], Array]


def data_coding(data_config) -> Coding:
    """The :class:`Coding` of ``data_config``: text ids as they are (``K = data.num_levels``, the
    vocabulary size); for data with ``data.num_levels = K`` the level of the cell
    ``[k / K, (k + 1) / K)`` that holds ``x``, ``floor(K x + 10^-3)``, so that the datasets' cell
    corners and the samples' cell centres ``(k + 1/2) / K`` (the VAE's convention) both map to
    ``k`` despite float rounding; ``round(x)`` with ``K = 2`` for binary data."""
    levels = data_config.num_levels
    if data_config.source == "text":
        check_int("data.num_levels (the vocabulary size)", levels, minimum=2)
        return Coding(levels, lambda x: jnp.asarray(x, jnp.int32), lambda t: t)
    if levels:
        check_int("data.num_levels", levels, minimum=2)
        return Coding(
            levels,
            lambda x: jnp.clip(jnp.floor(x * levels + 1e-3), 0, levels - 1).astype(jnp.int32),
            lambda t: (t.astype(jnp.float32) + 0.5) / levels,
        )
    return Coding(2, lambda x: jnp.round(x).astype(jnp.int32), lambda t: t.astype(jnp.float32))


# --------------------------------------------------------------------------------------------
# Output heads.


class OutputHead(NamedTuple):
    """Per-element distributions from network outputs.

    Attributes:
      num_params: ``P``, outputs per element.
      log_prob: ``(params (n, *event, P), tokens (n, *event)) -> (n,)`` exact log-probability.
      sample: ``(key, params (..., P)) -> (...)`` int32 draws (tempered, truncated).
    """

    num_params: int
    log_prob: Callable[[Array, Array], Array]
    sample: Callable[[PRNGKey, Array], Array]


def categorical_head(num_levels: int, temperature: float = 1.0, top_k: int = 0) -> OutputHead:
    """``K`` logits per element (:func:`jgen.losses.autoregressive.categorical_log_likelihood`)."""
    return OutputHead(
        num_levels,
        ar_losses.categorical_log_likelihood,
        lambda key, p: ar_samplers.sample_categorical(key, p, temperature, top_k),
    )


def logistic_mixture_head(
    num_levels: int, num_components: int, temperature: float = 1.0
) -> OutputHead:
    """``3 M`` outputs per element: a mixture of ``M`` discretised logistics on the grid
    ``-1 + 2 k / (K - 1)`` (PixelCNN++)."""
    check_int("model.num_mixtures", num_components)

    def log_prob(params, tokens):
        grid = ar_losses.tokens_to_grid(tokens, num_levels)
        return ar_losses.discretized_logistic_mixture_log_likelihood(
            grid, *ar_losses.split_logistic_mixture(params), num_levels
        )

    def sample(key, params):
        parts = ar_losses.split_logistic_mixture(params)
        return ar_samplers.sample_logistic_mixture(key, *parts, num_levels, temperature)

    return OutputHead(3 * num_components, log_prob, sample)


def head_from_config(model_config, num_levels: int) -> OutputHead:
    """The :class:`OutputHead` that ``model.output`` names."""
    mc = model_config
    check_choice("model.output", mc.output, OUTPUTS)
    check_positive("model.temperature", mc.temperature, allow_zero=True)
    if mc.output == "categorical":
        return categorical_head(num_levels, mc.temperature, mc.top_k)
    if mc.top_k:
        raise ValueError(f"model.top_k applies to categorical outputs only; got {mc.top_k}")
    return logistic_mixture_head(num_levels, mc.num_mixtures, mc.temperature)


# --------------------------------------------------------------------------------------------
# Networks.


class Network(NamedTuple):
    """A Flax module and how tokens enter it.

    Attributes:
      module: the network; ``module(inputs, context)`` returns the outputs.
      encode: tokens ``(n, *event)`` -> the module's input.
      encode_token: tokens ``(n,)`` -> one position's input for ``decode_step`` (cached
        networks), else None.
      cached: whether ``module`` has ``init_cache`` / ``decode_step``.
      num_masks: mask sets of an order-agnostic MADE (1 for every other network); the module
        then takes ``mask_index``.
      orderings: ``(num_masks, D)`` generation order of each mask set over the flattened event.
    """

    module: nn.Module
    encode: Callable[[Array], Array]
    encode_token: Callable[[Array], Array] | None = None
    cached: bool = False
    num_masks: int = 1
    orderings: np.ndarray | None = None


def _grid_flat(num_levels):
    return lambda t: ar_losses.tokens_to_grid(t, num_levels).reshape(t.shape[0], -1)


def _one_hot_sequence(num_levels):
    return lambda t: jax.nn.one_hot(t.reshape(t.shape[0], -1), num_levels)


def made_network(mc, event_shape, num_params, num_levels) -> Network:
    """MADE over the flattened event (Germain et al. 2015), inputs on the ``[-1, 1]`` grid;
    with ``model.num_masks > 1`` order- and connectivity-agnostic (``OrderAgnosticMADE``, mask
    set 0 the natural order with MADE's fixed degrees)."""
    dim = math.prod(event_shape)
    check_int("model.num_masks", mc.num_masks)
    if mc.num_masks == 1:
        module = MADE(tuple(mc.hidden_sizes), num_params_per_dim=num_params)
        return Network(module, _grid_flat(num_levels), orderings=np.arange(dim)[None])
    module = OrderAgnosticMADE(
        tuple(mc.hidden_sizes),
        num_params_per_dim=num_params,
        num_masks=mc.num_masks,
        mask_seed=mc.mask_seed,
    )
    return Network(
        module, _grid_flat(num_levels), num_masks=mc.num_masks, orderings=module.orderings(dim)
    )


def _image_shape(event_shape) -> tuple[int, int, int]:
    """``(H, W, C)`` of image events ``(H, W)`` or ``(H, W, C)``."""
    if len(event_shape) not in (2, 3):
        raise ValueError(
            f"a PixelCNN models images of shape (H, W) or (H, W, C); got event shape {event_shape}"
        )
    return (*event_shape, 1)[:3]


def _pixelcnn_network(module_class):
    def build(mc, event_shape, num_params, num_levels) -> Network:
        height, width, channels = _image_shape(event_shape)
        module = module_class(
            num_params,
            channels,
            features=mc.features,
            num_layers=mc.num_layers,
            kernel_size=mc.kernel_size,
        )

        def encode(tokens):
            return ar_losses.tokens_to_grid(tokens, num_levels).reshape(
                tokens.shape[0], height, width, channels
            )

        return Network(module, encode)

    return build


def _sequence_network(module_factory):
    """Networks over one-hot sequences (images flattened in raster order); cached when the
    module has ``decode_step``."""

    def build(mc, event_shape, num_params, num_levels) -> Network:
        module = module_factory(mc, num_params, math.prod(event_shape))
        return Network(
            module,
            _one_hot_sequence(num_levels),
            encode_token=lambda t: jax.nn.one_hot(t, num_levels),
            cached=hasattr(module, "decode_step"),
        )

    return build


NETWORKS = {
    "made": made_network,
    "pixelcnn": _pixelcnn_network(PixelCNN),
    "gated_pixelcnn": _pixelcnn_network(GatedPixelCNN),
    "transformer": _sequence_network(
        lambda mc, p, length: CausalTransformer(
            p, length, num_layers=mc.num_layers, num_heads=mc.num_heads, model_dim=mc.model_dim
        )
    ),
    "lstm": _sequence_network(
        lambda mc, p, length: RecurrentLM(p, "lstm", mc.hidden_size, mc.num_layers)
    ),
    "gru": _sequence_network(
        lambda mc, p, length: RecurrentLM(p, "gru", mc.hidden_size, mc.num_layers)
    ),
    "wavenet": _sequence_network(
        lambda mc, p, length: WaveNet(
            p, mc.features, tuple(mc.dilations), mc.kernel_size, num_stacks=1
        )
    ),
}
"""``model.network`` -> ``builder(model_config, event_shape, num_params, num_levels)``."""


# --------------------------------------------------------------------------------------------
# The model.


class AutoregressiveModel(NamedTuple):
    """Pure functions of one autoregressive model.

    Attributes:
      init: ``(key, tokens, context) -> params``.
      outputs: ``(params, tokens, context, mask_index=0) -> (n, *event, P)``.
      log_prob: ``(params, tokens, context, mask_index=0) -> (n,)`` exact log-probability.
      ensemble_log_prob: ``(params, tokens, context, num_masks) -> (n,)``: ``log (1/M) sum_m
        p_m(x)`` over the first ``num_masks`` mask sets (``log_prob`` when there is one).
      sample: ``(params, key, n, context) -> (n, *event)`` tokens.
    """

    init: Callable
    outputs: Callable
    log_prob: Callable
    ensemble_log_prob: Callable
    sample: Callable


def autoregressive_model(
    network: Network, head: OutputHead, event_shape, cached_sampling: bool = True
) -> AutoregressiveModel:
    """A :class:`Network` and an :class:`OutputHead` as an :class:`AutoregressiveModel`."""
    event_shape = tuple(event_shape)
    num_elements = math.prod(event_shape)
    module = network.module
    masked = network.num_masks > 1
    extra = (lambda index: {"mask_index": index}) if masked else (lambda index: {})

    def outputs(params, tokens, context=None, mask_index=0):
        out = module.apply({"params": params}, network.encode(tokens), context, **extra(mask_index))
        return out.reshape(tokens.shape[0], *event_shape, head.num_params)

    def log_prob(params, tokens, context=None, mask_index=0):
        return head.log_prob(outputs(params, tokens, context, mask_index), tokens)

    def ensemble_log_prob(params, tokens, context=None, num_masks=1):
        if num_masks == 1:
            return log_prob(params, tokens, context)
        per_mask = jax.lax.map(
            lambda m: log_prob(params, tokens, context, m), jnp.arange(num_masks)
        )
        return logsumexp(per_mask, axis=0) - math.log(num_masks)

    def init(key, tokens, context=None):
        return module.init(key, network.encode(tokens), context, **extra(0))["params"]

    def sample(params, key, n, context=None):
        if network.cached and cached_sampling:
            variables = {"params": params}
            cache = module.apply(variables, n, num_elements, method="init_cache")

            def decode(cache, x_prev):
                return module.apply(variables, cache, x_prev, context, method="decode_step")

            tokens = ar_samplers.sample_cached(
                key, decode, cache, head.sample, network.encode_token, n, num_elements
            )
            return tokens.reshape(n, *event_shape)
        initial = jnp.zeros((n, *event_shape), jnp.int32)
        order = None if network.orderings is None else network.orderings[0]
        return ar_samplers.sample_sequential(
            key, lambda t: outputs(params, t, context), head.sample, initial, order
        )

    return AutoregressiveModel(init, outputs, log_prob, ensemble_log_prob, sample)


def make(config, event_shape: tuple[int, ...]) -> Trainer:
    """A maximum-likelihood Trainer for the autoregressive model of ``config.model``.

    Reads ``model``: ``network`` (a key of :data:`NETWORKS`) and its size fields, ``output``
    (``categorical`` | ``logistic_mixture``), ``num_mixtures``, ``temperature``, ``top_k``,
    ``cached_sampling``, ``num_masks`` / ``eval_masks`` (MADE), ``num_classes``; and ``data``
    (see :func:`data_coding`).

    ``evaluate`` returns the exact per-example ``nll`` in nats of the discrete data and
    ``bits_per_dim`` (bits per character for text). ``sample`` returns data on the dataset's
    scale.
    """
    mc = config.model
    event_shape = tuple(event_shape)
    num_dims = math.prod(event_shape)
    coding = data_coding(config.data)
    head = head_from_config(mc, coding.num_levels)
    check_choice("model.network", mc.network, NETWORKS)
    network = NETWORKS[mc.network](mc, event_shape, head.num_params, coding.num_levels)
    model = autoregressive_model(network, head, event_shape, mc.cached_sampling)
    num_classes = mc.num_classes
    check_int("model.num_classes", num_classes, minimum=0)
    eval_masks = mc.eval_masks if network.num_masks > 1 else 1
    check_int("model.eval_masks", eval_masks)
    if eval_masks > network.num_masks:
        raise ValueError(
            f"model.eval_masks must be <= model.num_masks={network.num_masks}; got {eval_masks}"
        )

    def tokens_and_context(batch):
        floating = config.data.source != "text"
        x, context = split_batch(batch, event_shape, num_classes, floating=floating)
        return coding.to_tokens(x), context

    def loss_fn(params, batch, key):
        tokens, context = tokens_and_context(batch)
        mask_index = jax.random.randint(key, (), 0, network.num_masks)
        log_p = model.log_prob(params, tokens, context, mask_index)
        return -jnp.mean(log_p), {"nll": -log_p}

    optimizer = optimizer_from_config(config)
    ema_decay = config.optim.ema_decay

    def init(key, batch):
        tokens, context = tokens_and_context(batch)
        return create_state(model.init(key, tokens, context), optimizer, ema_decay)

    def sample(state, key, n):
        context = class_context(num_classes, n)
        return coding.from_tokens(model.sample(eval_params(state), key, n, context))

    def evaluate(state, batch, key):
        del key
        tokens, context = tokens_and_context(batch)
        nll = -model.ensemble_log_prob(eval_params(state), tokens, context, eval_masks)
        return {"nll": nll, "bits_per_dim": bits_per_dim(nll, num_dims)}

    step = make_step(loss_fn, optimizer, ema_decay)
    return Trainer(init=init, step=step, sample=sample, evaluate=evaluate)
