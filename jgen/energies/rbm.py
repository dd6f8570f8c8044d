"""Restricted Boltzmann machines: Bernoulli, Gaussian-Bernoulli, and spins with Gaussian hiddens.

An RBM is a Boltzmann machine on a bipartite graph, visible units ``v`` and hidden units ``h``
with no connection inside a layer (Smolensky 1986, "Information processing in dynamical systems:
foundations of harmony theory"; Hinton 2002, "Training products of experts by minimizing
contrastive divergence"). Given one layer the units of the other are independent, so both
conditionals are factorised, the free energy ``F(v) = -log sum_h exp(-E(v, h))`` has a closed
form, and block Gibbs (:func:`jgen.samplers.gibbs.block_gibbs` with :func:`conditionals`) samples
the joint.

Three models share one interface (every function below takes any of them and dispatches on the
parameter type through the explicit table ``_MODELS``):

:class:`BernoulliRBM`, ``v in {0,1}^D``, ``h in {0,1}^K``::

    E(v, h) = -a^T v - b^T h - v^T W h
    F(v)    = -a^T v - sum_j softplus(b_j + (v^T W)_j)
    p(h_j = 1 | v) = sigmoid(b_j + (v^T W)_j),   p(v_i = 1 | h) = sigmoid(a_i + (W h)_i).

:class:`GaussianBernoulliRBM`, ``v in R^D`` with learned ``sigma = exp(log_sigma)`` (Krizhevsky
2009, "Learning multiple layers of features from tiny images"; Cho, Ilin & Raiko 2011, "Improved
learning of Gaussian-Bernoulli restricted Boltzmann machines"; Hinton & Salakhutdinov 2006,
"Reducing the dimensionality of data with neural networks", with ``sigma = 1``)::

    E(v, h) = 1/2 ||(v - mu) / sigma||^2 - (v / sigma^2)^T W h - b^T h.

  Given ``h`` the energy is, unit by unit, with ``m = mu + W h``::

    (v_i - mu_i)^2 / (2 sigma_i^2) - v_i (W h)_i / sigma_i^2
        = ((v_i - m_i)^2 - m_i^2 + mu_i^2) / (2 sigma_i^2),

  a Gaussian in ``v_i`` of mean ``m_i`` and variance ``sigma_i^2``: ``v | h ~ N(mu + W h,
  diag sigma^2)``. Integrating it out gives the hidden marginal and ``Z``::

    int exp(-E(v, h)) dv = exp(b^T h + sum_i (m_i^2 - mu_i^2) / (2 sigma_i^2))
                           * prod_i sqrt(2 pi) sigma_i,
    log Z = logsumexp_h [b^T h + sum_i (m_i^2 - mu_i^2) / (2 sigma_i^2)]
            + sum_i log sigma_i + (D / 2) log(2 pi).

  Summing ``h`` instead: ``F(v) = 1/2 ||(v - mu) / sigma||^2 - sum_j softplus(b_j + ((v /
  sigma^2)^T W)_j)`` and ``p(h_j = 1 | v) = sigmoid(b_j + ((v / sigma^2)^T W)_j)``.

:class:`SpinGaussianRBM`, spins ``s in {-1,+1}^N`` and Gaussian ``lambda in R^P``, the RBM side
of the Hopfield correspondence (Barra, Bernacchia, Santucci & Contucci 2012, "On the equivalence
of Hopfield networks and Boltzmann machines")::

    H(s, lambda) = sum_mu lambda_mu^2 / 2 - sum_i h_i s_i - sum_{i mu} W_{i mu} s_i lambda_mu.

  Given ``lambda``, ``-H`` is ``sum_i s_i x_i`` plus terms free of ``s``, with ``x_i = h_i +
  sum_mu W_{i mu} lambda_mu``, so ``p(s_i = +1 | lambda) = e^x / (e^x + e^-x) = sigmoid(2 x_i)``.
  Given ``s``, ``-H = -||lambda||^2 / 2 + lambda^T (W^T s) + ...``: ``lambda | s ~ N(W^T s, I)``.
  The Gaussian integral ``int exp(-||l||^2 / 2 + l^T u) dl = (2 pi)^(P/2) exp(||u||^2 / 2)``
  gives the Hopfield energy as the free energy of the spins::

    F(s) = -h^T s - 1/2 ||W^T s||^2 - (P / 2) log(2 pi),

  the Hopfield energy ``-1/(2N) sum_mu (xi^mu . s)^2 - h^T s`` (up to the constant) of the
  patterns ``xi^mu``, the columns of ``sqrt(N) W``.

Exact ``log Z`` (:func:`log_partition`) enumerates the smaller binary layer (``<= 20`` units by
default); :func:`pseudo_log_likelihood` and :func:`reconstruction_error` are the cheap monitors
of training (Hinton 2010, "A practical guide to training restricted Boltzmann machines").
"""

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_batch, check_int, check_positive, is_traced
from jgen.energies.boltzmann import check_enumerable, logsumexp_over_states
from jgen.types import Array, PRNGKey

_LOG_2PI = math.log(2.0 * math.pi)


class BernoulliRBM(NamedTuple):
    """Parameters of a binary RBM, ``E(v, h) = -a^T v - b^T h - v^T W h``.

    Attributes:
      weights: ``W`` of shape ``(d_v, d_h)``.
      visible_bias: ``a`` of shape ``(d_v,)``.
      hidden_bias: ``b`` of shape ``(d_h,)``.
    """

    weights: Array
    visible_bias: Array
    hidden_bias: Array


class GaussianBernoulliRBM(NamedTuple):
    """Parameters of a Gaussian-Bernoulli RBM with learned variances (Cho et al. 2011).

    ``E(v, h) = 1/2 ||(v - mu) / sigma||^2 - (v / sigma^2)^T W h - b^T h``, ``sigma =
    exp(log_sigma)``.

    Attributes:
      weights: ``W`` of shape ``(d_v, d_h)``.
      visible_bias: ``mu`` of shape ``(d_v,)``.
      hidden_bias: ``b`` of shape ``(d_h,)``.
      log_sigma: ``log sigma`` of shape ``(d_v,)``.
    """

    weights: Array
    visible_bias: Array
    hidden_bias: Array
    log_sigma: Array


class SpinGaussianRBM(NamedTuple):
    """Parameters of a spin RBM with Gaussian hidden units (the Hopfield RBM, Barra et al. 2012).

    ``H(s, lambda) = ||lambda||^2 / 2 - h^T s - s^T W lambda`` with ``s in {-1,+1}^N`` visible and
    ``lambda in R^P`` hidden.

    Attributes:
      weights: ``W`` of shape ``(N, P)``.
      field: the external field ``h`` of shape ``(N,)``.
    """

    weights: Array
    field: Array


RBM = BernoulliRBM | GaussianBernoulliRBM | SpinGaussianRBM


# --------------------------------------------------------------------------------------------
# Shared helpers.


def _bernoulli(key: PRNGKey, logits: Array) -> Array:
    """``Bernoulli(sigmoid(logits))`` draws as floats of the logits' dtype."""
    u = jax.random.uniform(key, logits.shape, logits.dtype)
    # u < sigmoid(l)  <=>  log u - log(1 - u) < l: exact in the tails where sigmoid rounds to 1.
    return (jnp.log(u) - jnp.log1p(-u) < logits).astype(logits.dtype)


def _row_dot(x: Array, y: Array) -> Array:
    return jnp.sum(x * y, axis=-1)


def _gb_precision(params: GaussianBernoulliRBM) -> Array:
    return jnp.exp(-2.0 * params.log_sigma)  # 1 / sigma^2


# --------------------------------------------------------------------------------------------
# Bernoulli RBM.


def _bern_hidden_logits(p: BernoulliRBM, v: Array) -> Array:
    return v @ p.weights + p.hidden_bias


def _bern_visible_logits(p: BernoulliRBM, h: Array) -> Array:
    return h @ p.weights.T + p.visible_bias


def _bern_energy(p: BernoulliRBM, v: Array, h: Array) -> Array:
    return -(v @ p.visible_bias) - h @ p.hidden_bias - _row_dot(v @ p.weights, h)


def _bern_free_energy(p: BernoulliRBM, v: Array) -> Array:
    return -(v @ p.visible_bias) - jnp.sum(jax.nn.softplus(_bern_hidden_logits(p, v)), axis=-1)


def _bern_log_partition(p: BernoulliRBM, max_units: int) -> Array:
    d_v, d_h = p.weights.shape
    if d_v <= d_h:
        check_enumerable("visible layer (the smaller layer)", d_v, max_units)
        return logsumexp_over_states(lambda v: -_bern_free_energy(p, v), d_v, dtype=p.weights.dtype)
    check_enumerable("hidden layer (the smaller layer)", d_h, max_units)
    # The free energy of h with v summed out: -b^T h - sum_i softplus(a_i + (W h)_i).
    return logsumexp_over_states(
        lambda h: h @ p.hidden_bias + jnp.sum(jax.nn.softplus(_bern_visible_logits(p, h)), -1),
        d_h,
        dtype=p.weights.dtype,
    )


# --------------------------------------------------------------------------------------------
# Gaussian-Bernoulli RBM.


def _gb_hidden_logits(p: GaussianBernoulliRBM, v: Array) -> Array:
    return (v * _gb_precision(p)) @ p.weights + p.hidden_bias


def _gb_visible_mean(p: GaussianBernoulliRBM, h: Array) -> Array:
    return p.visible_bias + h @ p.weights.T


def _gb_quadratic(p: GaussianBernoulliRBM, v: Array) -> Array:
    return 0.5 * jnp.sum(((v - p.visible_bias) * jnp.exp(-p.log_sigma)) ** 2, axis=-1)


def _gb_energy(p: GaussianBernoulliRBM, v: Array, h: Array) -> Array:
    coupling = _row_dot((v * _gb_precision(p)) @ p.weights, h)
    return _gb_quadratic(p, v) - coupling - h @ p.hidden_bias


def _gb_free_energy(p: GaussianBernoulliRBM, v: Array) -> Array:
    return _gb_quadratic(p, v) - jnp.sum(jax.nn.softplus(_gb_hidden_logits(p, v)), axis=-1)


def _gb_sample_visible(p: GaussianBernoulliRBM, key: PRNGKey, h: Array) -> Array:
    mean = _gb_visible_mean(p, h)
    return mean + jnp.exp(p.log_sigma) * jax.random.normal(key, mean.shape, mean.dtype)


def _gb_log_partition(p: GaussianBernoulliRBM, max_units: int) -> Array:
    d_v, d_h = p.weights.shape
    check_enumerable("hidden layer (the binary layer)", d_h, max_units)
    mu, precision = p.visible_bias, _gb_precision(p)

    def log_weight(h):  # b^T h + sum_i (m_i^2 - mu_i^2) / (2 sigma_i^2), m = mu + W h
        shift = h @ p.weights.T
        return h @ p.hidden_bias + 0.5 * jnp.sum(shift * (2 * mu + shift) * precision, axis=-1)

    gaussian_integral = jnp.sum(p.log_sigma) + 0.5 * d_v * _LOG_2PI
    return logsumexp_over_states(log_weight, d_h, dtype=p.weights.dtype) + gaussian_integral


# --------------------------------------------------------------------------------------------
# Spin RBM with Gaussian hidden units.


def _spin_hidden_mean(p: SpinGaussianRBM, s: Array) -> Array:
    return s @ p.weights


def _spin_visible_logits(p: SpinGaussianRBM, lam: Array) -> Array:
    # log p(s_i=+1|lambda) / p(s_i=-1|lambda) = 2 x_i.
    return 2.0 * (p.field + lam @ p.weights.T)


def _spin_energy(p: SpinGaussianRBM, s: Array, lam: Array) -> Array:
    return 0.5 * jnp.sum(lam**2, axis=-1) - s @ p.field - _row_dot(s @ p.weights, lam)


def _spin_free_energy(p: SpinGaussianRBM, s: Array) -> Array:
    n_hidden = p.weights.shape[1]
    overlap = s @ p.weights
    return -(s @ p.field) - 0.5 * jnp.sum(overlap**2, axis=-1) - 0.5 * n_hidden * _LOG_2PI


def _spin_sample_hidden(p: SpinGaussianRBM, key: PRNGKey, s: Array) -> Array:
    mean = _spin_hidden_mean(p, s)
    return mean + jax.random.normal(key, mean.shape, mean.dtype)


def _spin_log_partition(p: SpinGaussianRBM, max_units: int) -> Array:
    check_enumerable("spin layer (the binary layer)", p.weights.shape[0], max_units)
    return logsumexp_over_states(
        lambda s: -_spin_free_energy(p, s), p.weights.shape[0], spin=True, dtype=p.weights.dtype
    )


# --------------------------------------------------------------------------------------------
# The dispatch table: one explicit entry per model.


class _Model(NamedTuple):
    vectors: tuple[tuple[str, str], ...]  # (field, layer "v" or "h") of every bias-like field
    energy: Callable
    free_energy: Callable
    hidden_mean: Callable  # E[h | v]
    visible_mean: Callable  # E[v | h]
    hidden_logits: Callable | None  # log-odds of h_j = 1 | v (binary hidden units only)
    visible_logits: Callable | None  # log-odds of v_i = 1 (spins: +1) | h (binary visibles only)
    sample_hidden: Callable
    sample_visible: Callable
    log_partition: Callable
    flip: Callable | None  # the other value of a binary visible unit


def _from_logits(logits_fn, transform=jax.nn.sigmoid):
    return lambda p, x: transform(logits_fn(p, x))


def _sample_from_logits(logits_fn, transform=lambda b: b):
    return lambda p, key, x: transform(_bernoulli(key, logits_fn(p, x)))


_MODELS: dict[type, _Model] = {
    BernoulliRBM: _Model(
        vectors=(("visible_bias", "v"), ("hidden_bias", "h")),
        energy=_bern_energy,
        free_energy=_bern_free_energy,
        hidden_mean=_from_logits(_bern_hidden_logits),
        visible_mean=_from_logits(_bern_visible_logits),
        hidden_logits=_bern_hidden_logits,
        visible_logits=_bern_visible_logits,
        sample_hidden=_sample_from_logits(_bern_hidden_logits),
        sample_visible=_sample_from_logits(_bern_visible_logits),
        log_partition=_bern_log_partition,
        flip=lambda x: 1 - x,
    ),
    GaussianBernoulliRBM: _Model(
        vectors=(("visible_bias", "v"), ("hidden_bias", "h"), ("log_sigma", "v")),
        energy=_gb_energy,
        free_energy=_gb_free_energy,
        hidden_mean=_from_logits(_gb_hidden_logits),
        visible_mean=_gb_visible_mean,
        hidden_logits=_gb_hidden_logits,
        visible_logits=None,
        sample_hidden=_sample_from_logits(_gb_hidden_logits),
        sample_visible=_gb_sample_visible,
        log_partition=_gb_log_partition,
        flip=None,
    ),
    SpinGaussianRBM: _Model(
        vectors=(("field", "v"),),
        energy=_spin_energy,
        free_energy=_spin_free_energy,
        hidden_mean=_spin_hidden_mean,
        # E[s_i | lambda] = tanh(x_i) = 2 sigmoid(2 x_i) - 1.
        visible_mean=_from_logits(_spin_visible_logits, lambda t: jnp.tanh(0.5 * t)),
        hidden_logits=None,
        visible_logits=_spin_visible_logits,
        sample_hidden=_spin_sample_hidden,
        sample_visible=_sample_from_logits(_spin_visible_logits, lambda b: 2 * b - 1),
        log_partition=_spin_log_partition,
        flip=lambda x: -x,
    ),
}


def _model(params) -> tuple[_Model, int, int]:
    """The table entry of ``params`` and its layer sizes ``(d_v, d_h)``, shapes checked."""
    model = _MODELS.get(type(params))
    if model is None:
        names = ", ".join(t.__name__ for t in _MODELS)
        raise ValueError(f"params must be one of {names}; got {type(params).__name__}")
    name = type(params).__name__
    w_shape = tuple(np.shape(params.weights))
    if len(w_shape) != 2:
        raise ValueError(f"{name}.weights must have shape (d_v, d_h); got shape {w_shape}")
    d_v, d_h = w_shape
    for field, layer in model.vectors:
        expected = (d_v,) if layer == "v" else (d_h,)
        got = tuple(np.shape(getattr(params, field)))
        if got != expected:
            raise ValueError(
                f"{name}.{field} must have shape {expected} to match weights {w_shape}; got {got}"
            )
    return model, d_v, d_h


def _layer(name: str, x, size: int, params) -> Array:
    """Checks a batch ``(n, size)`` and casts it to the float dtype shared with ``params``."""
    check_batch(name, x, (size,), floating=False)
    x = jnp.asarray(x)
    return x.astype(jnp.result_type(x.dtype, params.weights.dtype, float))


def _unsupported(what: str, params, why: str) -> ValueError:
    return ValueError(f"{what} is not defined for {type(params).__name__}: {why}")


# --------------------------------------------------------------------------------------------
# Public API.


def energy(params: RBM, v: Array, h: Array) -> Array:
    """The joint energy ``E(v, h)`` of a batch (formulas in the module docstring).

    Bernoulli: ``-a^T v - b^T h - v^T W h`` (Smolensky 1986; Hinton 2002). Gaussian-Bernoulli:
    ``1/2 ||(v - mu) / sigma||^2 - (v / sigma^2)^T W h - b^T h`` (Cho et al. 2011). Spin:
    ``||lambda||^2 / 2 - h^T s - s^T W lambda`` (Barra et al. 2012).

    Args:
      params: a :class:`BernoulliRBM`, :class:`GaussianBernoulliRBM` or :class:`SpinGaussianRBM`.
      v: visible states ``(n, d_v)``.
      h: hidden states ``(n, d_h)``.

    Returns:
      ``(n,)`` energies.
    """
    model, d_v, d_h = _model(params)
    v, h = _layer("v", v, d_v, params), _layer("h", h, d_h, params)
    if v.shape[0] != h.shape[0]:
        raise ValueError(
            f"v and h must have the same batch size; got {v.shape[0]} and {h.shape[0]}"
        )
    return model.energy(params, v, h)


def free_energy(params: RBM, v: Array) -> Array:
    """``F(v) = -log sum_h exp(-E(v, h))`` (an integral for Gaussian hidden units), closed form.

    Bernoulli: ``-a^T v - sum_j softplus(b_j + (v^T W)_j)``. Gaussian-Bernoulli:
    ``1/2 ||(v - mu) / sigma||^2 - sum_j softplus(b_j + ((v / sigma^2)^T W)_j)``. Spin (the
    Hopfield energy): ``-h^T s - 1/2 ||W^T s||^2 - (P / 2) log(2 pi)``. ``p(v) = exp(-F(v)) / Z``.

    Args:
      params: the RBM.
      v: visible states ``(n, d_v)``.

    Returns:
      ``(n,)`` free energies.
    """
    model, d_v, _ = _model(params)
    return model.free_energy(params, _layer("v", v, d_v, params))


def hidden_mean(params: RBM, v: Array) -> Array:
    """``E[h | v]``: ``p(h = 1 | v)`` for binary hidden units, ``W^T s`` for Gaussian ones.

    Args:
      params: the RBM.
      v: visible states ``(n, d_v)``.

    Returns:
      ``(n, d_h)``.
    """
    model, d_v, _ = _model(params)
    return model.hidden_mean(params, _layer("v", v, d_v, params))


def visible_mean(params: RBM, h: Array) -> Array:
    """``E[v | h]``: ``sigmoid(a + W h)`` (Bernoulli), ``mu + W h`` (Gaussian-Bernoulli),
    ``tanh(h + W lambda)`` (spins).

    Args:
      params: the RBM.
      h: hidden states ``(n, d_h)``.

    Returns:
      ``(n, d_v)``.
    """
    model, _, d_h = _model(params)
    return model.visible_mean(params, _layer("h", h, d_h, params))


def hidden_probs(params: BernoulliRBM | GaussianBernoulliRBM, v: Array) -> Array:
    """``p(h_j = 1 | v)`` of binary hidden units.

    Bernoulli: ``sigmoid(b_j + (v^T W)_j)``; Gaussian-Bernoulli: ``sigmoid(b_j + ((v /
    sigma^2)^T W)_j)``.

    Args:
      params: a :class:`BernoulliRBM` or :class:`GaussianBernoulliRBM`.
      v: visible states ``(n, d_v)``.

    Returns:
      ``(n, d_h)`` probabilities.
    """
    model, d_v, _ = _model(params)
    if model.hidden_logits is None:
        raise _unsupported("hidden_probs", params, "its hidden units are Gaussian (hidden_mean)")
    return jax.nn.sigmoid(model.hidden_logits(params, _layer("v", v, d_v, params)))


def visible_probs(params: BernoulliRBM | SpinGaussianRBM, h: Array) -> Array:
    """``p(v_i = 1 | h)`` of binary visible units (for spins, ``p(s_i = +1 | lambda)``).

    Bernoulli: ``sigmoid(a_i + (W h)_i)``; spins: ``sigmoid(2 x_i)``, ``x_i = h_i + (W
    lambda)_i``.

    Args:
      params: a :class:`BernoulliRBM` or :class:`SpinGaussianRBM`.
      h: hidden states ``(n, d_h)``.

    Returns:
      ``(n, d_v)`` probabilities.
    """
    model, _, d_h = _model(params)
    if model.visible_logits is None:
        raise _unsupported("visible_probs", params, "its visible units are Gaussian (visible_mean)")
    return jax.nn.sigmoid(model.visible_logits(params, _layer("h", h, d_h, params)))


def sample_hidden(params: RBM, key: PRNGKey, v: Array) -> Array:
    """One draw ``h ~ p(h | v)`` per example (independent units given ``v``).

    Args:
      params: the RBM.
      key: PRNG key.
      v: visible states ``(n, d_v)``.

    Returns:
      ``(n, d_h)`` samples as floats: ``{0, 1}`` or, for the spin RBM, ``N(W^T s, I)``.
    """
    model, d_v, _ = _model(params)
    return model.sample_hidden(params, key, _layer("v", v, d_v, params))


def sample_visible(params: RBM, key: PRNGKey, h: Array) -> Array:
    """One draw ``v ~ p(v | h)`` per example (independent units given ``h``).

    Args:
      params: the RBM.
      key: PRNG key.
      h: hidden states ``(n, d_h)``.

    Returns:
      ``(n, d_v)`` samples as floats: ``{0, 1}``, ``N(mu + W h, sigma^2)`` or ``{-1, +1}``.
    """
    model, _, d_h = _model(params)
    return model.sample_visible(params, key, _layer("h", h, d_h, params))


def conditionals(params: RBM) -> tuple[Callable, Callable]:
    """The two block samplers that :func:`jgen.samplers.gibbs.block_gibbs` takes.

    Example::

        sample_h, sample_v = conditionals(params)
        state, info = block_gibbs(sample_h, sample_v, v0, key, n_steps=100)

    Args:
      params: the RBM.

    Returns:
      ``(sample_h_given_v(key, v), sample_v_given_h(key, h))``.
    """
    _model(params)
    return (
        functools.partial(sample_hidden, params),
        functools.partial(sample_visible, params),
    )


def log_partition(params: RBM, *, max_units: int = 20) -> Array:
    """Exact ``log Z`` by enumerating the smaller binary layer; the other is summed or
    integrated in closed form.

    Bernoulli: ``logsumexp_v -F(v)`` when ``d_v <= d_h``, else ``logsumexp_h [b^T h + sum_i
    softplus(a_i + (W h)_i)]``. Gaussian-Bernoulli: ``logsumexp_h [b^T h + sum_i (m_i^2 -
    mu_i^2) / (2 sigma_i^2)] + sum_i log sigma_i + (D / 2) log(2 pi)``, ``m = mu + W h``. Spin:
    ``logsumexp_s -F(s)`` over ``{-1, +1}^N``. Cost ``2^units``; differentiable, so
    ``jax.grad`` of :func:`log_likelihood` gives the exact data-minus-model gradient of a small
    RBM.

    Args:
      params: the RBM.
      max_units: the largest layer enumerated; more raises ``ValueError`` naming the layer.

    Returns:
      The scalar ``log Z``.
    """
    model, _, _ = _model(params)
    return model.log_partition(params, max_units)


def log_likelihood(params: RBM, v: Array, *, max_units: int = 20) -> Array:
    """Exact ``log p(v) = -F(v) - log Z`` (a log-density for Gaussian visibles).

    Args:
      params: the RBM.
      v: visible states ``(n, d_v)``.
      max_units: as in :func:`log_partition`.

    Returns:
      ``(n,)`` log-likelihoods.
    """
    return -free_energy(params, v) - log_partition(params, max_units=max_units)


def pseudo_log_likelihood(
    params: BernoulliRBM | SpinGaussianRBM,
    key: PRNGKey | None,
    v: Array,
    *,
    index: Array | None = None,
) -> Array:
    """The stochastic pseudo-log-likelihood of scikit-learn's ``BernoulliRBM.score_samples``.

    With ``v~`` equal to ``v`` with the one unit ``i`` flipped::

        PL(v) = D log sigmoid(F(v~) - F(v)) = D log p(v_i | v_-i),

    an unbiased estimate (over ``i`` uniform) of the pseudo-log-likelihood ``sum_i log p(v_i |
    v_-i)`` (Besag 1975, "Statistical analysis of non-lattice data") without ``Z``.

    Args:
      params: an RBM with binary visible units (:class:`BernoulliRBM`, :class:`SpinGaussianRBM`).
      key: PRNG key drawing ``i`` uniformly per example; may be None when ``index`` is given.
      v: binary visible states ``(n, d_v)``.
      index: optional ``(n,)`` ints in ``[0, d_v)``, the flipped unit of each example.

    Returns:
      ``(n,)`` estimates.
    """
    model, d_v, _ = _model(params)
    if model.flip is None:
        raise _unsupported("pseudo_log_likelihood", params, "its visible units are continuous")
    v = _layer("v", v, d_v, params)
    n = v.shape[0]
    if index is None:
        if key is None:
            raise ValueError("pseudo_log_likelihood needs a key or an explicit index; got neither")
        index = jax.random.randint(key, (n,), 0, d_v)
    else:
        if tuple(np.shape(index)) != (n,):
            raise ValueError(f"index must have shape ({n},); got {tuple(np.shape(index))}")
        if not is_traced(index):
            concrete = np.asarray(index)
            if not np.issubdtype(concrete.dtype, np.integer) or (
                n and (concrete.min() < 0 or concrete.max() >= d_v)
            ):
                raise ValueError(f"index must hold integers in [0, {d_v}); got {concrete}")
        index = jnp.asarray(index)
    rows = jnp.arange(n)
    flipped = v.at[rows, index].set(model.flip(v[rows, index]))
    gap = model.free_energy(params, flipped) - model.free_energy(params, v)
    return d_v * jax.nn.log_sigmoid(gap)


def reconstruction_error(params: RBM, key: PRNGKey | None, v: Array) -> Array:
    """Squared error of a one-step reconstruction, ``||v - E[v | h]||^2`` per example.

    With ``key=None`` the mean-field reconstruction ``h = E[h | v]``; with a key, ``h ~ p(h |
    v)`` (the reconstruction of CD-1, Hinton 2002). A poor proxy of the likelihood (Hinton 2010,
    section 5) but a cheap sign that learning runs.

    Args:
      params: the RBM.
      key: None for mean field, or the PRNG key of the hidden sample.
      v: visible states ``(n, d_v)``.

    Returns:
      ``(n,)`` squared errors summed over the visible units.
    """
    model, d_v, _ = _model(params)
    v = _layer("v", v, d_v, params)
    h = model.hidden_mean(params, v) if key is None else model.sample_hidden(params, key, v)
    return jnp.sum((v - model.visible_mean(params, h)) ** 2, axis=-1)


def init_params(
    key: PRNGKey,
    d_v: int,
    d_h: int,
    scale: float = 0.01,
    visible_mean: Array | None = None,
    *,
    eps: float = 1e-4,
) -> BernoulliRBM:
    """Initial Bernoulli RBM parameters following Hinton's practical guide (2010, section 8).

    ``W ~ N(0, scale^2)``, ``b = 0`` and ``a_i = log(p_i / (1 - p_i))`` with ``p_i`` the fraction
    of training vectors with unit ``i`` on (``a = 0`` without data), so that the visible units
    start at their marginal rates. ``p`` is clipped to ``[eps, 1 - eps]``: a unit that is never on
    would otherwise get ``a = -inf``.

    Args:
      key: PRNG key of the weights.
      d_v: number of visible units.
      d_h: number of hidden units.
      scale: standard deviation of the weights (> 0; the guide suggests 0.01).
      visible_mean: optional ``(d_v,)`` data means ``p`` in ``[0, 1]``.
      eps: clipping of ``p``.

    Returns:
      A :class:`BernoulliRBM` in the default float dtype.
    """
    check_int("d_v", d_v)
    check_int("d_h", d_h)
    check_positive("scale", scale)
    check_positive("eps", eps)
    dtype = jnp.asarray(0.0).dtype
    weights = scale * jax.random.normal(key, (d_v, d_h), dtype)
    if visible_mean is None:
        visible_bias = jnp.zeros(d_v, dtype)
    else:
        if tuple(np.shape(visible_mean)) != (d_v,):
            raise ValueError(
                f"visible_mean must have shape ({d_v},); got {tuple(np.shape(visible_mean))}"
            )
        p = jnp.clip(jnp.asarray(visible_mean, dtype), eps, 1 - eps)
        visible_bias = jnp.log(p) - jnp.log1p(-p)
    return BernoulliRBM(weights, visible_bias, jnp.zeros(d_h, dtype))
