"""Restricted Boltzmann machines trained by contrastive divergence, as one
:class:`~jgen.train.trainer.Trainer`, and the AIS estimate of their test log-likelihood.

The model is an RBM of :mod:`jgen.energies.rbm` on the flattened event (``(8, 8)`` digits are
64 visible units): ``model.rbm = "bernoulli"`` for binary data (``p(v) = exp(-F(v)) / Z``,
``F(v) = -a^T v - sum_j softplus(b_j + (v^T W)_j)``), ``"gaussian_bernoulli"`` for continuous
data (Gaussian visibles with learned ``sigma``; Cho, Ilin & Raiko 2011). One ``step`` is one
update of Hinton's practical guide (2010, "A practical guide to training restricted Boltzmann
machines")::

    g = d/dtheta [ mean_i F(v_i) - mean_m F(v~_m) ]          (jgen.losses.contrastive_divergence)
    u <- mu_t u - lr_t (g + lambda W)                         (decay on the weights only)
    theta <- theta + u

with ``v~`` the states after ``model.cd_k`` block Gibbs steps started at the batch (CD-k,
Hinton 2002) or at ``model.num_chains`` persistent chains kept in the state (PCD, Tieleman 2008,
``model.persistent``). The momentum ``mu_t`` is ``model.initial_momentum`` (0.5) for the first
``model.momentum_switch_step`` updates and ``model.momentum`` (0.9) afterwards (guide, section
9); the learning rate ``lr_t`` is ``optim.learning_rate`` under ``optim.schedule`` and
``optim.name`` must be ``"sgd"``; ``lambda = model.weight_decay`` (guide, section 10).

Config fields of ``config.model`` (``experiments/configs/rbm_digits.py``): ``name = "rbm"``,
``rbm``, ``num_hidden``, ``cd_k``, ``persistent``, ``num_chains``, ``weight_decay``,
``momentum``, ``initial_momentum``, ``momentum_switch_step``, ``init_scale`` (std of the initial
weights, 0.01), ``sample_steps`` (block Gibbs steps of ``sample``), ``sample_probabilities``
(``sample`` returns ``E[v | h]`` instead of binary states) and ``max_enumerate`` (the largest
layer enumerated for the exact likelihood, 20).

Metrics. ``step``: ``loss`` (the free-energy gap ``mean F(data) - mean F(negatives)``, not a
likelihood), ``reconstruction_error`` (mean-field ``||v - E[v | E[h | v]]||^2``), and for binary
data ``pseudo_log_likelihood`` (:func:`jgen.energies.rbm.pseudo_log_likelihood`, before the
update). ``evaluate`` per example: ``reconstruction_error``, ``pseudo_log_likelihood`` (binary
data), and, when the smaller layer has at most ``model.max_enumerate`` units, the exact ``nll =
-log p(v) = F(v) + log Z`` in nats (a density for Gaussian visibles) and, for binary data,
``bits_per_dim = nll / (D ln 2)``. Larger RBMs get their likelihood from
:func:`ais_log_likelihood` (Salakhutdinov & Murray 2008).

The pieces that :mod:`jgen.models.dbn` reuses for each of its layers: :func:`optimizer`,
:func:`init_layer`, :func:`init_chains`, :func:`cd_update`, :func:`visible_batch` and
:func:`check_config`.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jgen.checks import check_choice, check_int, check_positive
from jgen.energies import rbm
from jgen.losses.contrastive_divergence import cd_loss
from jgen.losses.likelihood import bits_per_dim
from jgen.metrics.ais import linear_schedule
from jgen.metrics.rbm_ais import base_visible_bias, rbm_ais, rbm_reverse_ais
from jgen.samplers.gibbs import block_gibbs
from jgen.train.optim import make_schedule
from jgen.train.trainer import Trainer
from jgen.types import Array, PRNGKey

KINDS = ("bernoulli", "gaussian_bernoulli")


class RBMState(NamedTuple):
    """The training state of an RBM.

    Attributes:
      step: updates done (int32 scalar).
      params: the :class:`~jgen.energies.rbm.BernoulliRBM` or
        :class:`~jgen.energies.rbm.GaussianBernoulliRBM`.
      opt_state: the optimiser state of :func:`optimizer`.
      chains: the persistent negative chains ``(num_chains, d_v)`` (PCD), or None (CD).
    """

    step: Array
    params: rbm.BernoulliRBM | rbm.GaussianBernoulliRBM
    opt_state: optax.OptState
    chains: Array | None


# --------------------------------------------------------------------------------------------
# Pieces shared with the deep belief net.


def check_config(config) -> None:
    """Checks the training fields that every RBM layer reads (``cd_k`` .. ``max_enumerate``
    of ``config.model`` and ``config.optim``); raises ``ValueError`` naming the field."""
    mc, o = config.model, config.optim
    check_int("model.cd_k", mc.cd_k)
    check_int("model.num_chains", mc.num_chains)
    check_int("model.sample_steps", mc.sample_steps)
    check_int("model.max_enumerate", mc.max_enumerate)
    check_int("model.momentum_switch_step", mc.momentum_switch_step, minimum=0)
    check_positive("model.weight_decay", mc.weight_decay, allow_zero=True)
    check_positive("model.init_scale", mc.init_scale)
    check_positive("optim.learning_rate", o.learning_rate)
    for name in ("momentum", "initial_momentum"):
        value = mc[name]
        if not 0.0 <= value < 1.0:
            raise ValueError(f"model.{name} must be in [0, 1); got {value!r}")
    check_choice("optim.name", o.name, ("sgd",))
    if o.weight_decay:
        raise ValueError(
            f"optim.weight_decay must be 0 for an RBM (its L2 decay of the weights is "
            f"model.weight_decay); got {o.weight_decay!r}"
        )


def momentum_schedule(initial: float, final: float, switch_step: int) -> optax.Schedule:
    """``mu_t = initial`` for ``t < switch_step``, else ``final`` (Hinton 2010, section 9: 0.5
    while the parameters move fast at the start, then 0.9)."""
    return lambda count: jnp.where(count < switch_step, initial, final)


def _weights_only(params):
    """The decay mask: True on ``weights``, False on the biases (and ``log_sigma``), which the
    guide does not decay."""
    return type(params)(*(name == "weights" for name in params._fields))


def optimizer(config, num_steps: int | None = None) -> optax.GradientTransformation:
    """SGD with L2 weight decay and a momentum switch, as in Hinton's practical guide::

        u <- mu_t u - lr_t (g + weight_decay * W),   theta <- theta + u,

    built as ``add_decayed_weights(model.weight_decay, mask=weights)`` then
    ``inject_hyperparams(sgd)(lr_t, mu_t)`` (after ``clip_by_global_norm(optim.grad_clip)``
    when that is > 0), ``lr_t`` from ``optim.learning_rate`` / ``schedule`` / ``warmup_steps``
    over ``num_steps`` (default ``train.num_steps``), ``mu_t`` by :func:`momentum_schedule`.

    Args:
      config: the experiment config (``model`` and ``optim`` blocks).
      num_steps: the horizon of the learning-rate schedule (the steps this RBM is updated).

    Returns:
      The optax transformation; its counters advance only when this RBM is updated.
    """
    mc, o = config.model, config.optim
    horizon = config.train.num_steps if num_steps is None else num_steps
    lr = make_schedule(o.learning_rate, o.schedule, o.warmup_steps, horizon)
    mu = momentum_schedule(mc.initial_momentum, mc.momentum, mc.momentum_switch_step)
    parts = [
        optax.add_decayed_weights(mc.weight_decay, mask=_weights_only),
        optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=mu),
    ]
    if o.grad_clip > 0:
        parts.insert(0, optax.clip_by_global_norm(o.grad_clip))
    return optax.chain(*parts)


def visible_batch(batch, event_shape: tuple[int, ...]) -> Array:
    """A batch ``(n, *event_shape)`` flattened to visible vectors ``(n, prod(event_shape))``.

    Raises:
      ValueError: for a labelled batch (a dict: RBMs here are unconditional) or a wrong shape.
    """
    if isinstance(batch, dict):
        raise ValueError(
            f"an RBM models unlabelled data: set data.labels=False; got a batch with keys "
            f"{sorted(batch)}"
        )
    shape = tuple(np.shape(batch))
    if shape[1:] != tuple(event_shape) or len(shape) != len(event_shape) + 1:
        raise ValueError(f"batch must have shape (n, *{tuple(event_shape)}); got shape {shape}")
    return jnp.reshape(batch, (shape[0], math.prod(event_shape)))


def init_layer(
    key: PRNGKey, kind: str, d_v: int, d_h: int, scale: float, v: Array | None = None
) -> rbm.BernoulliRBM | rbm.GaussianBernoulliRBM:
    """Initial parameters of one RBM (Hinton 2010, section 8): ``W ~ N(0, scale^2)``, zero
    hidden biases, and visible biases from the data ``v`` when given.

    Bernoulli: ``a_i = logit(mean_n v_ni)`` (:func:`jgen.energies.rbm.init_params`).
    Gaussian-Bernoulli: ``mu = mean_n v_n`` and ``log sigma = log std_n v_n`` (floored at 1e-3),
    so the untrained model is the data's diagonal Gaussian.

    Args:
      key: PRNG key of the weights.
      kind: ``"bernoulli"`` or ``"gaussian_bernoulli"``.
      d_v, d_h: layer sizes.
      scale: standard deviation of the weights.
      v: optional data ``(n, d_v)`` for the visible biases.
    """
    check_choice("model.rbm", kind, KINDS)
    mean = None if v is None else jnp.mean(v, axis=0)
    if kind == "bernoulli":
        return rbm.init_params(key, d_v, d_h, scale, mean)
    w, _, b = rbm.init_params(key, d_v, d_h, scale)
    if v is None:
        return rbm.GaussianBernoulliRBM(w, jnp.zeros(d_v, w.dtype), b, jnp.zeros(d_v, w.dtype))
    log_sigma = jnp.log(jnp.maximum(jnp.std(v, axis=0), 1e-3))
    return rbm.GaussianBernoulliRBM(w, mean.astype(w.dtype), b, log_sigma.astype(w.dtype))


def random_visible(params, key: PRNGKey, n: int) -> Array:
    """``n`` visible states drawn independently per unit from the RBM without its weights:
    ``Bernoulli(sigmoid(a))`` (Bernoulli) or ``N(mu, sigma^2)`` (Gaussian-Bernoulli), the
    starting points of PCD chains and of ``sample``."""
    d_v = params.weights.shape[0]
    dtype = params.weights.dtype
    if isinstance(params, rbm.GaussianBernoulliRBM):
        noise = jax.random.normal(key, (n, d_v), dtype)
        return params.visible_bias + jnp.exp(params.log_sigma) * noise
    u = jax.random.uniform(key, (n, d_v), dtype)
    return (u < jax.nn.sigmoid(params.visible_bias)).astype(dtype)


def init_chains(params, key: PRNGKey, num_chains: int, persistent: bool) -> Array | None:
    """The PCD chains ``(num_chains, d_v)`` (:func:`random_visible`), or None for CD."""
    return random_visible(params, key, num_chains) if persistent else None


def cd_update(
    params,
    opt_state: optax.OptState,
    chains: Array | None,
    v: Array,
    key: PRNGKey,
    *,
    tx: optax.GradientTransformation,
    k: int,
):
    """One CD-k (``chains = None``) or PCD-k update of one RBM on the batch ``v``.

    ``grads = d/dtheta cd_loss(theta, v, key, k, chains)`` (the gradient of ``mean F(v) - mean
    F(v~)``, :func:`jgen.losses.contrastive_divergence.cd_loss` with ``key`` passed unchanged),
    then ``tx``'s update.

    Args:
      params: the RBM.
      opt_state: ``tx``'s state.
      chains: the persistent chains ``(m, d_v)``, or None.
      v: the data ``(n, d_v)``.
      key: the key of the Gibbs chains.
      tx: the optimiser (:func:`optimizer`).
      k: Gibbs steps.

    Returns:
      ``(params, opt_state, chains, metrics)``: the new chains are the negative samples (None
      for CD); ``metrics`` holds the scalars ``loss``, ``reconstruction_error``,
      ``free_energy_data``, ``free_energy_model`` and ``visible_change_rate``.
    """
    grad_fn = jax.value_and_grad(cd_loss, has_aux=True)
    (loss, aux), grads = grad_fn(params, v, key, k=k, chains=chains)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    metrics = {name: value for name, value in aux.items() if name != "chains"}
    metrics["loss"] = loss
    return params, opt_state, None if chains is None else aux["chains"], metrics


def exact_enumerable(kind: str, d_v: int, d_h: int, max_units: int) -> bool:
    """Whether :func:`jgen.energies.rbm.log_partition` can enumerate an RBM of this kind and
    size: its smaller binary layer (the hidden layer of a Gaussian-Bernoulli RBM) has
    ``<= max_units`` units."""
    return (d_h if kind == "gaussian_bernoulli" else min(d_v, d_h)) <= max_units


def evaluate_rbm(params, v: Array, key: PRNGKey, *, max_units: int) -> dict:
    """Per-example metrics of one RBM on data ``v`` ``(n, d_v)``.

    Always ``reconstruction_error`` (mean field, :func:`jgen.energies.rbm.reconstruction_error`);
    for binary visibles ``pseudo_log_likelihood`` (one random unit flipped per example, scaled by
    ``D``); when :func:`exact_enumerable`, ``nll = F(v) + log Z`` (exact, nats) and for binary
    visibles ``bits_per_dim = nll / (D ln 2)``.

    Args:
      params: the RBM.
      v: data ``(n, d_v)``.
      key: PRNG key of the pseudo-likelihood's flipped units.
      max_units: the largest binary layer enumerated.

    Returns:
      A dict of ``(n,)`` arrays.
    """
    d_v, d_h = params.weights.shape
    binary = isinstance(params, rbm.BernoulliRBM)
    kind = "bernoulli" if binary else "gaussian_bernoulli"
    v = v.astype(params.weights.dtype)
    metrics = {"reconstruction_error": rbm.reconstruction_error(params, None, v)}
    if binary:
        metrics["pseudo_log_likelihood"] = rbm.pseudo_log_likelihood(params, key, v)
    if exact_enumerable(kind, d_v, d_h, max_units):
        nll = -rbm.log_likelihood(params, v, max_units=max_units)
        metrics["nll"] = nll
        if binary:
            metrics["bits_per_dim"] = bits_per_dim(nll, d_v)
    return metrics


# --------------------------------------------------------------------------------------------
# The Trainer.


def make(config, event_shape: tuple[int, ...]) -> Trainer:
    """A Trainer for the RBM of ``config.model`` (every field in the module docstring).

    Raises:
      ValueError: naming the field for an unknown ``model.rbm``, a non-positive size or step
        count, a momentum outside ``[0, 1)``, a negative decay, ``optim.name`` other than
        ``sgd`` or a nonzero ``optim.weight_decay``.
    """
    mc = config.model
    check_choice("model.rbm", mc.rbm, KINDS)
    check_int("model.num_hidden", mc.num_hidden)
    check_config(config)
    event_shape = tuple(event_shape)
    d_v, d_h = math.prod(event_shape), mc.num_hidden
    binary = mc.rbm == "bernoulli"
    tx = optimizer(config)

    def init(key: PRNGKey, batch) -> RBMState:
        v = visible_batch(batch, event_shape)
        key_w, key_c = jax.random.split(key)
        params = init_layer(key_w, mc.rbm, d_v, d_h, mc.init_scale, v)
        chains = init_chains(params, key_c, mc.num_chains, mc.persistent)
        return RBMState(jnp.zeros((), jnp.int32), params, tx.init(params), chains)

    def step(state: RBMState, batch, key: PRNGKey):
        v = visible_batch(batch, event_shape).astype(state.params.weights.dtype)
        params, opt_state, chains, metrics = cd_update(
            state.params, state.opt_state, state.chains, v, key, tx=tx, k=mc.cd_k
        )
        if binary:
            pll = rbm.pseudo_log_likelihood(state.params, jax.random.fold_in(key, 1), v)
            metrics["pseudo_log_likelihood"] = jnp.mean(pll)
        return RBMState(state.step + 1, params, opt_state, chains), metrics

    def sample(state: RBMState, key: PRNGKey, n: int) -> Array:
        key_0, key_g = jax.random.split(key)
        v0 = random_visible(state.params, key_0, n)
        sample_h, sample_v = rbm.conditionals(state.params)
        chain, _ = block_gibbs(sample_h, sample_v, v0, key_g, n_steps=mc.sample_steps)
        v = rbm.visible_mean(state.params, chain.h) if mc.sample_probabilities else chain.v
        return v.reshape((n, *event_shape))

    def evaluate(state: RBMState, batch, key: PRNGKey) -> dict:
        v = visible_batch(batch, event_shape)
        return evaluate_rbm(state.params, v, key, max_units=mc.max_enumerate)

    return Trainer(init, step, sample, evaluate)


# --------------------------------------------------------------------------------------------
# The likelihood of large RBMs by annealed importance sampling.


class AISLikelihood(NamedTuple):
    """The AIS estimate of an RBM's mean log-likelihood (:func:`ais_log_likelihood`).

    Attributes:
      log_likelihood: ``mean_i [-F(v_i)] - log Z_AIS`` in nats per example.
      standard_error: ``sqrt(var_i F(v_i) / n + se(log Z)^2)``: the data's sampling error and
        the AIS error, independent, added in quadrature.
      log_partition: ``log Z_AIS`` of forward AIS (a stochastic lower bound on ``log Z``, so
        ``log_likelihood`` tends to be optimistic).
      log_partition_stderr: its delta-method standard error.
      log_partition_upper: reverse AIS from approximate model samples (Gibbs chains): a
        stochastic upper bound on ``log Z`` when the chains have mixed.
      log_likelihood_lower: ``mean_i [-F(v_i)] - log_partition_upper``, the conservative
        counterpart of ``log_likelihood``.
    """

    log_likelihood: Array
    standard_error: Array
    log_partition: Array
    log_partition_stderr: Array
    log_partition_upper: Array
    log_likelihood_lower: Array


def ais_log_likelihood(
    params: rbm.BernoulliRBM,
    v: Array,
    key: PRNGKey,
    *,
    num_betas: int = 10_000,
    num_chains: int = 100,
    base_bias: Array | None = None,
    gibbs_steps: int = 1_000,
) -> AISLikelihood:
    """Mean test log-likelihood of a Bernoulli RBM through an AIS estimate of ``log Z``
    (Salakhutdinov & Murray 2008, "On the quantitative analysis of deep belief networks")::

        log p(v_i) = -F(v_i) - log Z,     log Z ~= logmeanexp_m log w_m   (rbm_ais),

    sandwiched by reverse AIS (Grosse, Ghahramani & Adams 2015) started from the states of
    ``gibbs_steps`` block Gibbs steps run on from the forward chains' final states. Those are
    approximate model samples, so the upper bound holds only as far as the chains mixed; the gap
    between ``log_partition`` and ``log_partition_upper`` is the diagnostic to report.

    Args:
      params: the :class:`~jgen.energies.rbm.BernoulliRBM`.
      v: data ``(n, d_v)`` (binary), ``n >= 2``.
      key: PRNG key.
      num_betas: ``T``, the number of annealing transitions (linear schedule, ``T + 1`` betas).
      num_chains: AIS chains.
      base_bias: the base RBM's visible biases ``(d_v,)``; default the logits of the mean of
        ``v`` (:func:`jgen.metrics.rbm_ais.base_visible_bias`; any base gives an unbiased
        ``Z``, one close to the data a lower-variance one). Pass the training data's for a test
        number that does not look at the test set's statistics.
      gibbs_steps: block Gibbs steps before the reverse chains.

    Returns:
      :class:`AISLikelihood` of scalars.

    Raises:
      ValueError: for params other than a Bernoulli RBM, ``v`` not of shape ``(n >= 2, d_v)``,
        or non-positive counts.
    """
    if not isinstance(params, rbm.BernoulliRBM):
        raise ValueError(f"params must be a BernoulliRBM; got {type(params).__name__}")
    check_int("num_betas", num_betas)
    check_int("num_chains", num_chains, minimum=2)
    check_int("gibbs_steps", gibbs_steps)
    d_v = params.weights.shape[0]
    if len(np.shape(v)) != 2 or np.shape(v)[1] != d_v or np.shape(v)[0] < 2:
        raise ValueError(f"v must have shape (n >= 2, {d_v}); got shape {np.shape(v)}")
    v = jnp.asarray(v, params.weights.dtype)
    if base_bias is None:
        base_bias = base_visible_bias(v)
    key_f, key_g, key_r = jax.random.split(key, 3)
    betas = linear_schedule(num_betas)
    forward = rbm_ais(key_f, params, betas, num_chains=num_chains, base_bias=base_bias)
    sample_h, sample_v = rbm.conditionals(params)
    chains, _ = block_gibbs(sample_h, sample_v, forward.samples, key_g, n_steps=gibbs_steps)
    reverse = rbm_reverse_ais(key_r, params, chains.v, betas, base_bias=base_bias)
    neg_f = -rbm.free_energy(params, v)
    data_se = jnp.std(neg_f, ddof=1) / math.sqrt(v.shape[0])
    mean = jnp.mean(neg_f)
    return AISLikelihood(
        log_likelihood=mean - forward.log_normalizer,
        standard_error=jnp.sqrt(data_se**2 + forward.standard_error**2),
        log_partition=forward.log_normalizer,
        log_partition_stderr=forward.standard_error,
        log_partition_upper=reverse.log_normalizer,
        log_likelihood_lower=mean - reverse.log_normalizer,
    )
