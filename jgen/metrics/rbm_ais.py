"""Annealed importance sampling of the partition function of a Bernoulli RBM (Salakhutdinov &
Murray 2008, "On the quantitative analysis of deep belief networks"), and its reverse chain for
a stochastic upper bound (Grosse, Ghahramani & Adams 2015, "Sandwiching the marginal likelihood
using bidirectional Monte Carlo").

The path. The base RBM ``A`` has zero weights, zero hidden biases and visible biases ``a_0``
(the data-informed choice of Salakhutdinov & Murray: ``a_0 = logit`` of the data's mean,
:func:`base_visible_bias`), so ``p_A(v) = prod_i Bernoulli(sigmoid(a_0i))`` and::

    log Z_A = sum_i softplus(a_0i) + d_h log 2.

The intermediate distributions are the geometric averages of the *joint* distributions of ``A``
and the target ``B = (W, a, b)``, ``p_beta(v, h) ∝ exp(-(1 - beta) E_A(v, h) - beta E_B(v,
h))``, i.e. the RBM with weights ``beta W``, visible biases ``(1 - beta) a_0 + beta a`` and
hidden biases ``beta b``. Its free energy (the hidden units summed out) is::

    log f_beta(v) = -F_beta(v) = ((1 - beta) a_0 + beta a)^T v + sum_j softplus(beta x_j),
    x = b + v^T W,

so ``f_0 = Z_A p_A`` and ``f_1 = exp(-F)``, whose normaliser is the target ``Z``. (Salakhutdinov
& Murray keep the base's hidden units apart; with zero weights and biases they only contribute
the constant ``2^d_h``, which is why it appears in ``log Z_A`` here.)

The chains. ``v ~ p_A`` exactly; at each ``beta_t`` the weight gains ``log f_t(v) - log
f_{t-1}(v)`` and one block Gibbs sweep at ``beta_t`` follows::

    h ~ Bernoulli(sigmoid(beta_t x)),   v ~ Bernoulli(sigmoid(a_0 + beta_t (a - a_0 + W h))),

which leaves ``p_{beta_t}`` invariant. Then ``E[w] = Z / Z_A``; with ``log Z_A`` added to every
``log w``, ``logmeanexp(log w)`` estimates ``log Z`` and is a stochastic lower bound (Jensen).
Reversed from exact samples of the target, the same sweeps give ``E[w_rev] = Z_A / Z`` and a
stochastic upper bound. The conventions (weights including the base, ``log_normalizer``,
delta-method standard error) are those of :mod:`jgen.metrics.ais`; one
:func:`jgen.samplers.chain.run_chain` scan over the betas, so memory does not depend on ``T``.
Salakhutdinov & Murray used 14,500 betas (spaced 1e-3 on [0, 0.5], 1e-4 on [0.5, 1]) and 100
chains for MNIST-sized RBMs; :func:`jgen.metrics.ais.linear_schedule` and
:func:`jgen.metrics.ais.sigmoid_schedule` build schedules.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_batch, check_int, check_positive
from jgen.energies import rbm
from jgen.metrics.ais import AISResult, check_betas
from jgen.metrics.importance import log_mean_exp
from jgen.samplers.chain import run_chain
from jgen.types import Array, PRNGKey


def base_visible_bias(v_data: Array, *, eps: float = 1e-3) -> Array:
    """The data-informed base biases ``a_0i = log(p_i / (1 - p_i))`` of Salakhutdinov & Murray
    (2008), ``p_i`` the fraction of the data with unit ``i`` on, clipped to ``[eps, 1 - eps]``.

    Args:
      v_data: binary data ``(n, d_v)``, ``n >= 1``.
      eps: clipping of ``p`` in ``(0, 1/2)``: a unit never on would otherwise get ``-inf``.

    Returns:
      ``(d_v,)`` biases in the default float dtype (or the data's float dtype).
    """
    if len(np.shape(v_data)) != 2 or np.shape(v_data)[0] == 0:
        raise ValueError(f"v_data must have shape (n >= 1, d_v); got shape {np.shape(v_data)}")
    check_positive("eps", eps)
    if eps >= 0.5:
        raise ValueError(f"eps must be in (0, 0.5); got {eps!r}")
    v = jnp.asarray(v_data)
    p = jnp.clip(jnp.mean(v.astype(jnp.result_type(v.dtype, float)), axis=0), eps, 1 - eps)
    return jnp.log(p) - jnp.log1p(-p)


def base_log_partition(base_bias: Array, num_hidden: int) -> Array:
    """``log Z_A = sum_i softplus(a_0i) + d_h log 2`` of the base RBM (zero weights and hidden
    biases), in closed form.

    Args:
      base_bias: ``(d_v,)`` visible biases ``a_0``.
      num_hidden: ``d_h``, the target's number of hidden units.

    Returns:
      The scalar ``log Z_A``.
    """
    check_int("num_hidden", num_hidden)
    return jnp.sum(jax.nn.softplus(base_bias)) + num_hidden * math.log(2.0)


def _check(params, base_bias):
    if not isinstance(params, rbm.BernoulliRBM):
        raise ValueError(f"params must be a BernoulliRBM; got {type(params).__name__}")
    rbm.conditionals(params)  # shape checks
    d_v, d_h = np.shape(params.weights)
    dtype = jnp.asarray(params.weights).dtype
    if base_bias is None:
        base_bias = jnp.zeros(d_v, dtype)
    if tuple(np.shape(base_bias)) != (d_v,):
        raise ValueError(f"base_bias must have shape ({d_v},); got {tuple(np.shape(base_bias))}")
    return d_v, d_h, dtype, jnp.asarray(base_bias, dtype)


def _bernoulli(key: PRNGKey, logits: Array) -> Array:
    return jax.random.bernoulli(key, jax.nn.sigmoid(logits)).astype(logits.dtype)


def _anneal(key, params, base_bias, v0, betas, log_w0, reverse):
    """Runs the chains along ``betas`` (backwards when ``reverse``); returns ``(v, log_w)``.

    Both directions are forward AIS along the visited sequence ``s_0, .., s_T``: ``log w +=
    log f_{s_i}(v) - log f_{s_{i-1}}(v)``, then a Gibbs sweep at ``s_i``.
    """
    w, a, b = params
    da = a - base_bias
    betas = betas.astype(v0.dtype)
    num_steps = betas.shape[0] - 1

    def step(state, key, i):
        v, log_w = state
        prev, t = (num_steps - i, num_steps - i - 1) if reverse else (i, i + 1)
        beta, beta_prev = betas[t], betas[prev]
        x = v @ w + b  # shared by the weight and the hidden draw
        log_w = log_w + (beta - beta_prev) * (v @ da)
        log_w = log_w + jnp.sum(jax.nn.softplus(beta * x) - jax.nn.softplus(beta_prev * x), -1)
        key_h, key_v = jax.random.split(key)
        h = _bernoulli(key_h, beta * x)
        v = _bernoulli(key_v, base_bias + beta * (da + h @ w.T))
        return (v, log_w), {}

    (v, log_w), _, _ = run_chain(step, (v0, log_w0), key, num_steps)
    return v, log_w


def rbm_ais(
    key: PRNGKey,
    params: rbm.BernoulliRBM,
    betas: Array,
    *,
    num_chains: int,
    base_bias: Array | None = None,
) -> AISResult:
    """AIS estimate of ``log Z`` of a Bernoulli RBM (Salakhutdinov & Murray 2008).

    ``v_0 ~ p_A``; for ``t = 1 .. T``: ``log w += log f_{beta_t}(v) - log f_{beta_{t-1}}(v)``,
    then one block Gibbs sweep at ``beta_t`` (path and sweep in the module docstring). With
    ``log w`` starting at ``log Z_A``::

        log Z ~= logmeanexp(log w),   se ~= std(w) / (sqrt(M) mean(w)),

    the standard error by the delta method, computed in log space
    (:func:`jgen.metrics.importance.log_mean_exp`). The estimate is consistent in ``M`` and a
    stochastic lower bound (``E[log mean w] <= log Z``); the gap shrinks as ``T`` grows.
    Callers jit (``num_chains`` static).

    Args:
      key: PRNG key.
      params: the target :class:`~jgen.energies.rbm.BernoulliRBM`.
      betas: ``(T + 1,)`` inverse temperatures, non-decreasing from exactly 0 to exactly 1.
      num_chains: ``M >= 1`` independent chains (``>= 2`` for a standard error).
      base_bias: ``(d_v,)`` base visible biases ``a_0`` (:func:`base_visible_bias` of the
        training data is much better than the default zeros).

    Returns:
      :class:`jgen.metrics.ais.AISResult` with ``log_weights (M,)`` (including ``log Z_A``),
      ``log_normalizer`` (the ``log Z`` estimate), ``standard_error``, ``acceptance_rate`` 1
      (Gibbs sweeps always move) and ``samples (M, d_v)``, approximate model samples to be
      weighted by ``log_weights``.

    Raises:
      ValueError: for params that are not a consistent ``BernoulliRBM``, bad ``betas`` (not
        1-D, not from 0 to 1, decreasing), ``num_chains < 1`` or a ``base_bias`` of the wrong
        shape.
    """
    d_v, d_h, dtype, base_bias = _check(params, base_bias)
    check_int("num_chains", num_chains)
    betas = check_betas(betas)
    key_init, key_chains = jax.random.split(key)
    v0 = _bernoulli(key_init, jnp.broadcast_to(base_bias, (num_chains, d_v)))
    log_w0 = jnp.full((num_chains,), base_log_partition(base_bias, d_h), dtype)
    v, log_w = _anneal(key_chains, params, base_bias, v0, betas, log_w0, reverse=False)
    est = log_mean_exp(log_w)
    return AISResult(log_w, est.log_mean, est.standard_error, jnp.ones((), dtype), v)


def rbm_reverse_ais(
    key: PRNGKey,
    params: rbm.BernoulliRBM,
    model_samples: Array,
    betas: Array,
    *,
    base_bias: Array | None = None,
) -> AISResult:
    """Reverse AIS from exact model samples: a stochastic upper bound on ``log Z`` (Grosse,
    Ghahramani & Adams 2015; for RBMs see also Burda, Grosse & Salakhutdinov 2015, "Accurate
    and conservative estimates of MRF log-likelihood using reverse annealing").

    With ``v_T ~ p = exp(-F) / Z`` exactly and the schedule run from ``beta_T = 1`` down to
    ``beta_0 = 0``: ``log w_rev += log f_{beta_{t-1}}(v) - log f_{beta_t}(v)``, then a Gibbs
    sweep at ``beta_{t-1}``; ``log w_rev`` starts at ``-log Z_A``, so ``E[w_rev] = 1 / Z`` and::

        log Z <~ -logmeanexp(log w_rev)        (``log_normalizer``),

    an upper bound in expectation. Together with :func:`rbm_ais` on the same ``betas`` it
    sandwiches ``log Z``; the gap bounds the error of both. The bound holds only for exact
    samples: chains that have not converged (short Gibbs runs from data) void it.

    Args:
      key: PRNG key.
      params: the :class:`~jgen.energies.rbm.BernoulliRBM`.
      model_samples: ``(M, d_v)`` exact samples of the model, one per chain.
      betas: as in :func:`rbm_ais`.
      base_bias: as in :func:`rbm_ais`.

    Returns:
      :class:`jgen.metrics.ais.AISResult` with ``log_weights`` ``log w_rev (M,)``,
      ``log_normalizer = -logmeanexp(log w_rev)`` (the upper bound), its ``standard_error``,
      ``acceptance_rate`` 1 and ``samples (M, d_v)`` (approximately ``p_A``).

    Raises:
      ValueError: as :func:`rbm_ais`, and for ``model_samples`` not of shape ``(M, d_v)``.
    """
    d_v, d_h, dtype, base_bias = _check(params, base_bias)
    check_batch("model_samples", model_samples, (d_v,), floating=False)
    if np.shape(model_samples)[0] == 0:
        raise ValueError("model_samples must hold at least one sample; got shape (0, d_v)")
    betas = check_betas(betas)
    v0 = jnp.asarray(model_samples).astype(dtype)
    log_w0 = jnp.full((v0.shape[0],), -base_log_partition(base_bias, d_h), dtype)
    v, log_w = _anneal(key, params, base_bias, v0, betas, log_w0, reverse=True)
    est = log_mean_exp(log_w)
    return AISResult(log_w, -est.log_mean, est.standard_error, jnp.ones((), dtype), v)
