"""What every latent-variable model with an amortised proposal shares: decoder likelihoods, the
data each decoder models, and one Trainer for the VAE family (VAE, hierarchical VAE, ...).

A model ``p(z) p(x | z)`` with an encoder ``q(z | x)`` is given as a :class:`LatentVariableModel`
of pure functions of the parameters. :func:`make_trainer` trains it by its ELBO (beta-VAE, KL
annealing) or by an IWAE bound, and evaluates the ELBO and the importance-sampled log-likelihood
(Burda et al. 2016) in nats on the discrete data.

Class-conditional models (``model.num_classes = C > 0``; Sohn, Lee & Yan 2015, "Learning
structured output representation using deep conditional generative models"; Kingma, Rezende,
Mohamed & Welling 2014, M2 on labelled data) model ``p(x | y)`` with every function taking the
context ``c = one_hot(y, C)``: the batches are ``{"x", "y"}`` (``data.labels = True``; see
:func:`jgen.data.labels.split_batch`), every bound and the importance-sampled NLL are those of
``log p(x | y)``, and samples cycle through the classes, ``y_i = i mod C``.

Decoders (``model.decoder``) and the data they model:

* ``bernoulli``: binary data; exact discrete NLL.
* ``logistic``: discrete data given as cell corners ``k / K`` (``data.num_levels = K``), modelled
  on the grid ``2k / (K - 1) - 1`` of ``[-1, 1]`` by a discretised logistic per dimension
  (Salimans et al. 2017); exact discrete NLL, comparable with a flow's dequantized bound on the
  same data.
* ``gaussian`` (fixed ``model.decoder_std``) and ``gaussian_learned`` (a learned std per
  dimension and latent): a density on uniformly dequantized ``y = (k + u) / K``, reported as the
  bound ``-log p(y) + D log K`` on the discrete NLL; on continuous data (``num_levels = 0``) the
  density itself.
* ``pixelcnn`` (the PixelVAE of :mod:`jgen.models.vae`): binary data (``num_levels = 0``, two
  levels) or ``K`` levels, seen on the grid ``2k / (K - 1) - 1`` as the logistic's; an
  autoregressive categorical over the levels, exact discrete NLL. Its samples are not
  independent per dimension given ``z``, so the model draws them itself
  (:attr:`LatentVariableModel.sample_prior`).
"""

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jgen.bijectors.dequantization import uniform_dequantize
from jgen.checks import check_choice, check_int, check_positive
from jgen.data.labels import class_context, split_batch
from jgen.losses import elbo as bounds
from jgen.losses.likelihood import bits_per_dim, dequantized_nll
from jgen.metrics.importance import importance_log_likelihood
from jgen.train.optim import optimizer_from_config
from jgen.train.state import create_state, eval_params, make_step
from jgen.train.trainer import Trainer
from jgen.types import Array, Params, PRNGKey

DECODERS = ("bernoulli", "gaussian", "gaussian_learned", "logistic")
GRID_DECODERS = ("logistic", "pixelcnn")
"""Decoders that see discrete data on the grid ``2k / (K - 1) - 1`` of ``[-1, 1]``."""
OBJECTIVES = ("elbo", "iwae")
GRADIENTS = ("standard", "dreg")


class Likelihood(NamedTuple):
    """A decoder distribution: ``outputs_per_dim`` network outputs per data dimension,
    ``log_prob(outputs (B, *event, o), x (B, *event)) -> (B,)``, ``sample(key, outputs) -> x``
    and ``mean(outputs) -> E[x]`` (for the discretised logistic, its location clipped to the
    grid's range)."""

    outputs_per_dim: int
    log_prob: Callable[[Array, Array], Array]
    sample: Callable[[PRNGKey, Array], Array]
    mean: Callable[[Array], Array]


def bernoulli_likelihood() -> Likelihood:
    """Independent Bernoullis with logits ``outputs[..., 0]``."""
    return Likelihood(
        1,
        lambda out, x: bounds.bernoulli_log_likelihood(out[..., 0], x),
        lambda key, out: jax.random.bernoulli(key, jax.nn.sigmoid(out[..., 0])).astype(out.dtype),
        lambda out: jax.nn.sigmoid(out[..., 0]),
    )


def gaussian_likelihood(std: float | None) -> Likelihood:
    """``N(mean, std^2)`` per dimension; ``std=None`` learns ``log std`` as a second output."""

    def params(out):
        if std is None:
            return out[..., 0], out[..., 1]
        return out[..., 0], jnp.full_like(out[..., 0], math.log(std))

    def log_prob(out, x):
        return bounds.gaussian_log_likelihood(x, *params(out))

    def sample(key, out):
        mean, log_std = params(out)
        return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)

    return Likelihood(1 if std is not None else 2, log_prob, sample, lambda out: out[..., 0])


def logistic_likelihood(num_levels: int) -> Likelihood:
    """Discretised logistic (mean ``outputs[..., 0]``, log scale ``outputs[..., 1]``) on the
    ``num_levels`` grid of ``[-1, 1]``; samples are grid points."""
    bin_width = 2.0 / (num_levels - 1)

    def log_prob(out, x):
        return bounds.discretized_logistic_log_likelihood(x, out[..., 0], out[..., 1], num_levels)

    def sample(key, out):
        mean, log_scale = out[..., 0], out[..., 1]
        u = jax.random.uniform(key, mean.shape, mean.dtype, 1e-6, 1.0 - 1e-6)
        y = mean + jnp.exp(log_scale) * (jnp.log(u) - jnp.log1p(-u))
        levels = jnp.clip(jnp.round((y + 1.0) / bin_width), 0, num_levels - 1)
        return bin_width * levels - 1.0

    return Likelihood(2, log_prob, sample, lambda out: jnp.clip(out[..., 0], -1.0, 1.0))


def likelihood_from_config(model_config, num_levels: int) -> Likelihood:
    """The decoder likelihood that ``model.decoder`` names, checked against the data."""
    check_choice("model.decoder", model_config.decoder, DECODERS)
    if model_config.decoder == "bernoulli":
        return bernoulli_likelihood()
    if model_config.decoder == "logistic":
        if not num_levels:
            raise ValueError(
                "model.decoder='logistic' models discrete data: data.num_levels must be > 0; "
                f"got {num_levels}"
            )
        return logistic_likelihood(num_levels)
    if model_config.decoder == "gaussian":
        check_positive("model.decoder_std", model_config.decoder_std)
        return gaussian_likelihood(model_config.decoder_std)
    return gaussian_likelihood(None)


class DataView(NamedTuple):
    """How a decoder sees the data and how its numbers go back to the data.

    Attributes:
      observe: ``(batch, key) -> x`` as the decoder models it: the ``[-1, 1]`` grid for the
        discretised logistic, uniformly dequantized values for a Gaussian decoder of discrete
        data, the batch itself otherwise.
      discrete_nll: the decoder's NLL in nats -> the NLL of the discrete data (``+ D log K``
        after dequantization, the identity otherwise).
      to_data: decoder samples -> the data's scale (cell centres ``(k + 1/2) / K`` for the grid).
    """

    observe: Callable[[Array, PRNGKey], Array]
    discrete_nll: Callable[[Array], Array]
    to_data: Callable[[Array], Array]


def data_view(decoder: str, num_levels: int, num_dims: int) -> DataView:
    """The :class:`DataView` of ``decoder`` on data with ``num_levels`` levels (0: continuous or
    binary) and ``num_dims`` dimensions per example.

    A decoder in :data:`GRID_DECODERS` sees level ``k`` of cell corners ``k / K`` as
    ``2k / (K - 1) - 1`` and gives its samples back as cell centres ``(k + 1/2) / K``; binary
    data (``num_levels = 0``) are two levels ``k = x`` given back as ``0`` and ``1``.
    """
    on_grid = decoder in GRID_DECODERS
    dequantize = bool(num_levels) and not on_grid and decoder != "bernoulli"
    grid_levels = num_levels or 2

    def observe(batch, key):
        if on_grid:
            level = jnp.round(batch * num_levels) if num_levels else jnp.round(batch)
            return 2.0 * level / (grid_levels - 1) - 1.0
        if dequantize:
            return uniform_dequantize(key, batch, num_levels)
        return batch

    def discrete_nll(nll):
        return dequantized_nll(nll, num_dims, num_levels) if dequantize else nll

    def to_data(x):
        if on_grid:
            level = jnp.round((x + 1.0) * (grid_levels - 1) / 2.0)
            return (level + 0.5) / num_levels if num_levels else level
        return x

    return DataView(observe, discrete_nll, to_data)


class LatentVariableModel(NamedTuple):
    """A model ``p(z) p(x | z)`` with an amortised proposal ``q(z | x)``, as pure functions.

    A class-conditional model (``num_classes = C > 0``) is ``p(z) p(x | z, c)`` with the proposal
    ``q(z | x, c)``: every function then takes the context ``c = one_hot(y, C)`` ``(B, C)`` as its
    last argument ``context`` (``(n, C)`` for ``decode_prior``), and its values are those of
    ``p(x | c)``. Unconditional models (``num_classes = 0``) are called without it.

    Attributes:
      init: ``(key, x[, context]) -> params``.
      elbo: ``(params, key, x, beta[, context]) -> (value (B,), aux)``: the single-sample ELBO
        with ``beta`` weighting its KL terms (analytic where the model has them); ``aux`` holds
        ``[B]`` arrays.
      iwae: ``(params, key, x, k, gradient[, context]) -> (value (B,), aux)``, the IWAE bound
        with ``k`` samples and ``gradient`` in :data:`GRADIENTS`; or None if the model has none.
      sample_and_log_q: ``(params, key, x, k[, context]) -> (z (k, B, *latent),
        log q(z | x) (k, B))``.
      log_joint: ``(params, x, z (k, B, *latent)[, context]) -> log p(x, z) (k, B)``.
      decode_prior: ``(params, key, n[, context]) -> decoder outputs (n, *event, o)`` for
        ``z ~ p(z)``.
      num_classes: ``C``, the size of the one-hot context the functions take (0: none).
      sample_prior: ``(params, key, n[, context]) -> x (n, *event)``, draws ``z ~ p(z)``,
        ``x ~ p(x | z)`` as the decoder sees the data, for decoders whose dimensions are not
        independent given ``decode_prior``'s outputs (an autoregressive decoder); None:
        ``likelihood.sample(key, decode_prior(...))``.
    """

    init: Callable
    elbo: Callable
    iwae: Callable | None
    sample_and_log_q: Callable
    log_joint: Callable
    decode_prior: Callable
    num_classes: int = 0
    sample_prior: Callable | None = None


def with_context(fn: Callable, context: Array | None) -> Callable:
    """``fn`` with its ``context`` argument bound, or ``fn`` itself when ``context`` is None (an
    unconditional model's functions take no context at all)."""
    return fn if context is None else functools.partial(fn, context=context)


def iwae_from_weights(
    model: LatentVariableModel, params: Params, key, x, k, context: Array | None = None
) -> tuple:
    """``log (1/k) Σ_j p(x, z_j) / q(z_j | x)`` from a model's proposal and joint (standard
    reparameterised gradient), for models without a dedicated IWAE; conditional on ``context``
    ``(B, C)`` when given."""
    z, log_q = with_context(model.sample_and_log_q, context)(params, key, x, k)
    log_w = with_context(model.log_joint, context)(params, x, z) - log_q
    value = jax.nn.logsumexp(log_w, axis=0) - math.log(k)
    weights = jax.nn.softmax(log_w, axis=0)
    return value, {"ess": 1.0 / jnp.sum(weights**2, axis=0)}


def make_trainer(config, event_shape: tuple[int, ...], model: LatentVariableModel, likelihood):
    """A Trainer for a latent-variable model with the decoder ``likelihood``.

    Reads ``model``: ``objective`` (``elbo`` | ``iwae``), ``num_samples`` (IWAE's ``k``),
    ``gradient`` (``standard`` | ``dreg``, IWAE only), ``beta`` and ``kl_warmup_steps`` (linear
    annealing of ``beta`` from 0, Bowman et al. 2016; 0 disables), ``eval_samples`` and
    ``eval_chunk`` (importance samples per test example and per scan step), ``decoder``,
    ``num_classes`` (absent: 0); and ``data.num_levels``.

    ``evaluate`` returns per-example ``elbo_nll`` (``-ELBO``, one sample) and ``nll``
    (importance sampled with ``eval_samples`` proposals from the encoder; a stochastic upper
    bound whose gap shrinks as ``eval_samples`` grows), both in nats on the discrete data, the
    delta-method ``nll_standard_error`` of the estimate, ``bits_per_dim`` of ``nll``, and the
    ELBO's ``kl`` term in nats (how much the latent is used: near 0 when the posterior has
    collapsed onto the prior).
    ``sample`` draws ``z ~ p(z)``, ``x ~ p(x | z)``, on the data's scale (cell centres
    ``(k + 1/2) / K`` for discrete data).

    With ``model.num_classes = C > 0`` (a model built with ``C`` classes) the batches are
    ``{"x", "y"}`` (:func:`jgen.data.labels.split_batch`), every metric is that of ``p(x | y)``
    (``nll`` estimates ``-log p(x | y)``), and sample ``i`` is drawn from ``p(x | y = i mod C)``.

    Raises:
      ValueError: naming the field for a bad objective, gradient, sample count or ``beta``; when
        ``model.num_classes`` differs from the classes the model was built for (a model that is
        not conditional, such as the Ladder VAE, takes none); and, from ``init``, ``step`` and
        ``evaluate``, as :func:`jgen.data.labels.split_batch` does.
    """
    mc = config.model
    event_shape = tuple(event_shape)
    num_dims = math.prod(event_shape)
    num_levels = config.data.num_levels
    check_choice("model.objective", mc.objective, OBJECTIVES)
    check_choice("model.gradient", mc.gradient, GRADIENTS)
    for name in ("num_samples", "eval_samples", "eval_chunk"):
        check_int(f"model.{name}", mc[name])
    check_positive("model.beta", mc.beta)
    # Configs written before conditioning existed (a run's config.json) have no num_classes.
    num_classes = mc.get("num_classes", 0)
    check_int("model.num_classes", num_classes, minimum=0)
    if num_classes != model.num_classes:
        if not model.num_classes:
            raise ValueError(
                f"model.name={mc.get('name')!r} is not class-conditional: model.num_classes "
                f"must be 0; got {num_classes}"
            )
        raise ValueError(
            f"model.num_classes must be {model.num_classes} (the classes the model was built "
            f"for); got {num_classes}"
        )
    if mc.gradient == "dreg" and mc.objective != "iwae":
        raise ValueError(
            f"model.gradient='dreg' needs model.objective='iwae'; got {mc.objective!r}"
        )
    if mc.objective == "iwae" and model.iwae is None and mc.gradient == "dreg":
        raise ValueError("model.gradient='dreg' is not available for this model; use 'standard'")
    observe, discrete_nll, to_data = data_view(mc.decoder, num_levels, num_dims)

    def loss_fn(params, batch, key, beta):
        batch, context = split_batch(batch, event_shape, num_classes)
        data_key, bound_key = jax.random.split(key)
        x = observe(batch, data_key)
        if mc.objective == "elbo":
            value, aux = with_context(model.elbo, context)(params, bound_key, x, beta)
        elif model.iwae is not None:
            iwae = with_context(model.iwae, context)
            value, aux = iwae(params, bound_key, x, mc.num_samples, mc.gradient)
        else:
            value, aux = iwae_from_weights(model, params, bound_key, x, mc.num_samples, context)
        return -jnp.mean(value), {**aux, "beta": beta}

    optimizer = optimizer_from_config(config)
    ema_decay = config.optim.ema_decay

    def init(key, batch):
        x, context = split_batch(batch, event_shape, num_classes)
        return create_state(with_context(model.init, context)(key, x), optimizer, ema_decay)

    def step(state, batch, key):
        beta = mc.beta
        if mc.kl_warmup_steps > 0:
            beta = bounds.kl_annealing(state.step, warmup_steps=mc.kl_warmup_steps, beta_max=beta)
        loss = lambda params, batch, key: loss_fn(params, batch, key, beta)  # noqa: E731
        return make_step(loss, optimizer, ema_decay)(state, batch, key)

    def sample(state, key, n):
        context = class_context(num_classes, n)
        if model.sample_prior is not None:
            return to_data(with_context(model.sample_prior, context)(eval_params(state), key, n))
        prior_key, x_key = jax.random.split(key)
        decode_prior = with_context(model.decode_prior, context)
        return to_data(likelihood.sample(x_key, decode_prior(eval_params(state), prior_key, n)))

    def evaluate(state, batch, key):
        params = eval_params(state)
        batch, context = split_batch(batch, event_shape, num_classes)
        data_key, elbo_key, is_key = jax.random.split(key, 3)
        x = observe(batch, data_key)
        elbo, aux = with_context(model.elbo, context)(params, elbo_key, x, 1.0)
        sample_and_log_q = with_context(model.sample_and_log_q, context)
        log_joint = with_context(model.log_joint, context)
        estimate = importance_log_likelihood(
            is_key,
            x,
            lambda key, x, k: sample_and_log_q(params, key, x, k),
            lambda x, z: log_joint(params, x, z),
            num_samples=mc.eval_samples,
            chunk_size=min(mc.eval_chunk, mc.eval_samples),
        )
        nll = discrete_nll(-estimate.log_mean)
        return {
            "elbo_nll": discrete_nll(-elbo),
            "kl": aux["kl"],
            "nll": nll,
            "nll_standard_error": estimate.standard_error,
            "bits_per_dim": bits_per_dim(nll, num_dims),
        }

    return Trainer(init=init, step=step, sample=sample, evaluate=evaluate)
