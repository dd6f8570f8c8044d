"""Annealed importance sampling with Hamiltonian Monte Carlo transitions (Neal 2001, "Annealed
importance sampling", Statistics and Computing 11), its reverse chain for bidirectional Monte Carlo
(Grosse, Ghahramani & Adams 2015, "Sandwiching the marginal likelihood using bidirectional Monte
Carlo"), and the log-likelihood of decoder-based models (Wu, Burda, Salakhutdinov & Grosse 2017,
"On the quantitative analysis of decoder-based generative models").

AIS estimates the normalising constant ``Z = int f_T`` of an unnormalised target ``f_T`` by moving
``n`` chains from a normalised ``p_0`` through the geometric path

    log f_t(x) = (1 - b_t) log p_0(x) + b_t log f_T(x),      0 = b_0 <= b_1 <= ... <= b_T = 1,

accumulating ``log w = sum_t (b_t - b_{t-1}) (log f_T(x_{t-1}) - log p_0(x_{t-1}))`` while
``x_{t-1} -> x_t`` leaves ``f_t`` invariant. Then ``E[w] = Z``: ``logmeanexp(log w)`` is a
consistent estimate of ``log Z`` and, by Jensen, a stochastic lower bound
(``E[log mean w] <= log Z``), as is the per-chain ``mean(log w)``.

The transitions are :func:`jgen.samplers.langevin.hmc` steps on ``f_t``; the whole annealing is
one :func:`jgen.samplers.chain.run_chain` scan over the betas, so memory does not depend on ``T``.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_int, check_positive, is_traced
from jgen.metrics.importance import log_mean_exp
from jgen.samplers.chain import run_chain
from jgen.samplers.langevin import hmc
from jgen.types import Array, PRNGKey

BatchFn = Callable[[Array], Array]


class AISResult(NamedTuple):
    """The outcome of :func:`ais`, :func:`reverse_ais` or :func:`decoder_log_likelihood`.

    Attributes:
      log_weights: log importance weights, one per chain: ``(n,)``, or ``(num_chains, batch)``
        for :func:`decoder_log_likelihood`.
      log_normalizer: the estimate of ``log Z`` from the weights (``()`` or ``(batch,)``):
        ``logmeanexp(log_weights)`` for forward AIS (a stochastic lower bound),
        ``-logmeanexp(log_weights)`` for reverse AIS (a stochastic upper bound).
      standard_error: its delta-method standard error ``std(w) / (sqrt(n) mean(w))``, same shape
        (:func:`jgen.metrics.importance.log_mean_exp`).
      acceptance_rate: the fraction of accepted HMC proposals over all transitions and chains.
      samples: the final states ``(n, *event)`` (``(num_chains, batch, *latent)`` for
        :func:`decoder_log_likelihood`): approximate target samples after forward AIS
        (importance-weighted by ``log_weights``), approximate ``p_0`` samples after reverse AIS.
    """

    log_weights: Array
    log_normalizer: Array
    standard_error: Array
    acceptance_rate: Array
    samples: Array


# --------------------------------------------------------------------------------------------------
# Schedules.


def linear_schedule(num_steps: int) -> Array:
    """``T + 1`` equally spaced inverse temperatures ``b_t = t / T`` from 0 to 1.

    Args:
      num_steps: ``T >= 1``, the number of annealing transitions.

    Returns:
      ``(T + 1,)`` betas with ``b_0 = 0`` and ``b_T = 1``.
    """
    check_int("num_steps", num_steps)
    return jnp.asarray(np.linspace(0.0, 1.0, num_steps + 1))


def sigmoid_schedule(num_steps: int, rad: float = 4.0) -> Array:
    """The sigmoidal schedule of Grosse, Maddison & Salakhutdinov 2013 ("Annealing between
    distributions by averaging moments") used by Wu et al. 2017:

        b_t = (s(u_t) - s(-rad)) / (s(rad) - s(-rad)),     u_t = -rad + 2 rad t / T,

    with ``s`` the logistic sigmoid. It spends more steps near ``b = 0`` and ``b = 1``, where the
    intermediate distributions change fastest per unit of ``b`` for typical models.

    Args:
      num_steps: ``T >= 1``, the number of annealing transitions.
      rad: ``> 0``, the half-width of the sigmoid's argument; larger is more concentrated at the
        ends.

    Returns:
      ``(T + 1,)`` non-decreasing betas with ``b_0 = 0`` and ``b_T = 1`` exactly.
    """
    check_int("num_steps", num_steps)
    check_positive("rad", rad)
    s = 1.0 / (1.0 + np.exp(-np.linspace(-rad, rad, num_steps + 1)))
    return jnp.asarray((s - s[0]) / (s[-1] - s[0]))


# --------------------------------------------------------------------------------------------------
# Checks.


def check_betas(betas) -> Array:
    """``betas`` as an array after checking it is an annealing schedule: 1-D, at least two
    entries, non-decreasing from exactly 0 to exactly 1 (values checked where concrete).

    Raises:
      ValueError: naming ``betas`` with the received shape or values.
    """
    betas = jnp.asarray(betas)
    if betas.ndim != 1 or betas.shape[0] < 2:
        raise ValueError(
            f"betas must be a 1-D array of at least 2 inverse temperatures; got shape "
            f"{tuple(betas.shape)}"
        )
    if not is_traced(betas):
        b = np.asarray(betas)
        if b[0] != 0 or b[-1] != 1 or np.any(np.diff(b) < 0) or not np.all(np.isfinite(b)):
            raise ValueError(
                f"betas must be non-decreasing from betas[0] = 0 to betas[-1] = 1; got "
                f"{np.array2string(b, threshold=8)}"
            )
    return betas


def _check_step_size(step_size, num_betas: int):
    check_positive("step_size", step_size)
    step_size = jnp.asarray(step_size)
    if step_size.ndim and step_size.shape != (num_betas,):
        raise ValueError(
            f"step_size must be a scalar or one per beta, shape ({num_betas},); got shape "
            f"{tuple(step_size.shape)}"
        )
    return step_size


def _check_log_prob(name: str, fn: BatchFn, x: Array) -> None:
    shape = jax.eval_shape(fn, x).shape
    if shape != x.shape[:1]:
        raise ValueError(
            f"{name} must map x of shape (n, *event) to shape (n,); got shape {tuple(shape)} "
            f"for x of shape {tuple(x.shape)}"
        )


# --------------------------------------------------------------------------------------------------
# The annealing scan.


def _anneal(
    key, log_target_fn, log_init_fn, x0, betas, step_size, n_leapfrog, n_hmc, reverse, x0_name
):
    """Runs the chains along ``betas`` (backwards when ``reverse``) and returns the final states,
    the log weights and the acceptance rate.

    Both directions are forward AIS along the visited sequence ``s_0, ..., s_T`` (``s_i = b_i``,
    or ``b_{T-i}`` reversed): ``log w += (s_i - s_{i-1}) (log f_T(x) - log p_0(x))``, then HMC on
    ``f_{s_i}``. Reversed, this is AIS from ``f_T / Z`` to ``p_0``, so ``E[w] = 1 / Z``.
    """
    x0 = jnp.asarray(x0)
    if x0.ndim < 2 or not jnp.issubdtype(x0.dtype, jnp.floating):
        raise ValueError(
            f"{x0_name} must be a floating-point batch of shape (n, *event); got shape "
            f"{tuple(x0.shape)} and dtype {x0.dtype}"
        )
    betas = check_betas(betas)
    step_size = _check_step_size(step_size, betas.shape[0])
    check_int("n_leapfrog", n_leapfrog)
    check_int("n_hmc", n_hmc)
    _check_log_prob("log_target_fn", log_target_fn, x0)
    _check_log_prob("log_init_fn", log_init_fn, x0)
    dtype = x0.dtype
    betas, step_size = betas.astype(dtype), step_size.astype(dtype)
    num_steps = betas.shape[0] - 1

    def step(state, key, i):
        x, log_w = state
        # Indexing in the loop (not scanning over sliced or flipped copies) keeps memory O(1) in T.
        prev, t = (num_steps - i, num_steps - i - 1) if reverse else (i, i + 1)
        b = betas[t]
        # An extra forward pass of both densities at x: hmc recomputes f_b there with its
        # gradient, but the weight needs the two terms apart.
        log_w = log_w + (b - betas[prev]) * (log_target_fn(x) - log_init_fn(x))

        def log_f(y):
            return (1.0 - b) * log_init_fn(y) + b * log_target_fn(y)

        e = step_size[t] if step_size.ndim else step_size
        x, info = hmc(log_f, x, key, step_size=e, n_leapfrog=n_leapfrog, n_steps=n_hmc)
        return (x, log_w), {"acceptance_rate": info["acceptance_rate"]}

    log_w0 = jnp.zeros(x0.shape[:1], dtype)
    (x, log_w), info, _ = run_chain(step, (x0, log_w0), key, num_steps)
    return x, log_w, info["acceptance_rate"]


def ais(
    key: PRNGKey,
    log_target_fn: BatchFn,
    log_init_fn: BatchFn,
    init_samples: Array,
    betas: Array,
    *,
    step_size: float | Array,
    n_leapfrog: int = 10,
    n_hmc: int = 1,
) -> AISResult:
    """Annealed importance sampling of ``Z = int f_T(x) dx`` with HMC transitions (Neal 2001).

    With ``p_0`` normalised, ``x_0 ~ p_0`` and ``log f_t = (1 - b_t) log p_0 + b_t log f_T``::

        log w = sum_{t=1}^{T} (b_t - b_{t-1}) (log f_T(x_{t-1}) - log p_0(x_{t-1})),
        x_t ~ K_t(x_{t-1}, .)       (``n_hmc`` HMC steps leaving ``f_t`` invariant),

    so that ``E[w] = Z``. ``log_normalizer = logmeanexp(log w)`` estimates ``log Z``; it and
    ``mean(log w)`` are stochastic lower bounds (``E[.] <= log Z``), the sandwich's lower half
    (:func:`reverse_ais`). The gap closes as ``T`` grows. One HMC transition follows the last
    weight update, at ``b_T = 1``, so ``samples`` are closer to the target; it does not change
    the weights. Callers jit.

    Args:
      key: PRNG key of the transitions.
      log_target_fn: ``(n, *event) -> (n,)``, ``log f_T``, unnormalised.
      log_init_fn: ``(n, *event) -> (n,)``, ``log p_0``, normalised.
      init_samples: ``(n, *event)`` exact samples of ``p_0``, one per chain (``n >= 2`` for a
        standard error).
      betas: ``(T + 1,)`` inverse temperatures, non-decreasing from exactly 0 to exactly 1
        (:func:`sigmoid_schedule`, :func:`linear_schedule`); ``T >= 1`` transitions.
      step_size: HMC leapfrog step ``> 0``: a scalar, or ``(T + 1,)`` with entry ``t`` used by the
        transition that leaves ``f_{b_t}`` invariant (the posterior narrows as ``b`` grows).
      n_leapfrog: leapfrog steps per HMC proposal.
      n_hmc: HMC proposals per transition.

    Returns:
      :class:`AISResult` with ``log_weights (n,)`` and ``samples (n, *event)``.

    Raises:
      ValueError: for bad ``betas`` (not 1-D, not from 0 to 1, decreasing), a ``step_size`` that
        is not positive or has the wrong shape, non-positive ``n_leapfrog`` or ``n_hmc``,
        ``init_samples`` of rank < 2, or log-densities that do not return shape ``(n,)``.
    """
    x, log_w, acceptance = _anneal(
        key,
        log_target_fn,
        log_init_fn,
        init_samples,
        betas,
        step_size,
        n_leapfrog,
        n_hmc,
        reverse=False,
        x0_name="init_samples",
    )
    est = log_mean_exp(log_w)
    return AISResult(log_w, est.log_mean, est.standard_error, acceptance, x)


def reverse_ais(
    key: PRNGKey,
    log_target_fn: BatchFn,
    log_init_fn: BatchFn,
    target_samples: Array,
    betas: Array,
    *,
    step_size: float | Array,
    n_leapfrog: int = 10,
    n_hmc: int = 1,
) -> AISResult:
    """Reverse AIS: a stochastic upper bound on ``log Z`` (Grosse, Ghahramani & Adams 2015).

    The chains start from exact samples of the normalised target ``p_T = f_T / Z`` and run the
    schedule backwards, ``b_T = 1 -> b_0 = 0``: with ``x_T ~ p_T``::

        log w_rev = sum_{t=1}^{T} (b_t - b_{t-1}) (log p_0(x_t) - log f_T(x_t)),
        x_{t-1} ~ K_{t-1}(x_t, .)       (``n_hmc`` HMC steps leaving ``f_{t-1}`` invariant).

    This is forward AIS from ``f_T`` (normaliser ``Z``) to ``p_0`` (normaliser 1), so
    ``E[w_rev] = 1 / Z`` and, by Jensen, both

        -logmeanexp(log w_rev)   (``log_normalizer``)    and    -mean(log w_rev)

    have expectations ``>= log Z``; the first is never above the second (``logmeanexp >= mean``),
    so it is the tighter bound. Together with :func:`ais` along the same ``betas`` they sandwich
    ``log Z`` (bidirectional Monte Carlo): ``E[log w] = log Z - KL(q_f || q_r)`` and
    ``E[-log w_rev] = log Z + KL(q_r || q_f)`` for the forward and reverse path distributions
    ``q_f``, ``q_r`` (Grosse et al. 2015), so a small gap certifies both estimates. Exact
    target samples are available when the data are simulated from the model
    (:func:`decoder_log_likelihood` with ``z_exact``).

    Args:
      key: PRNG key of the transitions.
      log_target_fn: ``(n, *event) -> (n,)``, ``log f_T``, unnormalised.
      log_init_fn: ``(n, *event) -> (n,)``, ``log p_0``, normalised.
      target_samples: ``(n, *event)`` exact samples of ``f_T / Z``, one per chain.
      betas, step_size, n_leapfrog, n_hmc: as in :func:`ais`.

    Returns:
      :class:`AISResult` with the reverse ``log_weights`` ``log w_rev`` ``(n,)``,
      ``log_normalizer = -logmeanexp(log w_rev)`` (the upper bound) and its standard error,
      and ``samples`` ``(n, *event)`` (approximately ``p_0``).

    Raises:
      ValueError: as :func:`ais`, for ``target_samples`` in place of ``init_samples``.
    """
    x, log_w, acceptance = _anneal(
        key,
        log_target_fn,
        log_init_fn,
        target_samples,
        betas,
        step_size,
        n_leapfrog,
        n_hmc,
        reverse=True,
        x0_name="target_samples",
    )
    est = log_mean_exp(log_w)
    return AISResult(log_w, -est.log_mean, est.standard_error, acceptance, x)


def decoder_log_likelihood(
    key: PRNGKey,
    x: Array,
    log_prior_fn: BatchFn,
    log_likelihood_fn: Callable[[Array, Array], Array],
    prior_sample_fn: Callable[[PRNGKey, int], Array],
    betas: Array,
    *,
    num_chains: int,
    step_size: float | Array,
    n_leapfrog: int = 10,
    n_hmc: int = 1,
    z_exact: Array | None = None,
) -> AISResult:
    """AIS estimate of ``log p(x) = log int p(z) p(x | z) dz`` for a decoder-based model
    (VAE, GAN with a Gaussian observation model, GMMN), after Wu et al. 2017.

    For every observation ``x_i``, ``num_chains`` chains anneal from the prior ``p_0 = p(z)`` to
    the unnormalised posterior ``f_T(z) = p(z) p(x_i | z)``, whose normaliser is ``p(x_i)``;
    the intermediate densities are ``p(z) p(x_i | z)^b``. All ``num_chains * batch`` chains run
    as one flat batch (chain-major: row ``c * batch + i`` is chain ``c`` of ``x_i``).

    Forward (default): ``log_normalizer[i] = logmeanexp_c log w_ci``, a stochastic lower bound
    on ``log p(x_i)``. With ``z_exact`` (an exact posterior sample per observation, e.g. the
    latent that generated simulated data), reverse AIS from it instead (:func:`reverse_ais`):
    ``log_normalizer[i] = -logmeanexp_c log w_rev_ci``, a stochastic upper bound; running both
    is the bidirectional Monte Carlo check of Wu et al. All chains of ``x_i`` start
    from the same ``z_exact[i]``, which leaves each chain's ``E[w_rev] = 1 / p(x_i)`` intact.

    Args:
      key: PRNG key.
      x: observations ``(batch, *event)``.
      log_prior_fn: ``(k, *latent) -> (k,)``, ``log p(z)``, normalised.
      log_likelihood_fn: ``(z (k, *latent), x (k, *event)) -> (k,)``, ``log p(x | z)``,
        normalised in ``x``.
      prior_sample_fn: ``(key, k) -> (k, *latent)`` exact prior samples (unused with
        ``z_exact``).
      betas, step_size, n_leapfrog, n_hmc: as in :func:`ais`, in the latent space.
      num_chains: chains per observation, ``>= 1`` (``>= 2`` for a standard error).
      z_exact: ``(batch, *latent)`` exact posterior samples, to run reverse AIS; ``None`` for
        forward AIS.

    Returns:
      :class:`AISResult` with ``log_weights (num_chains, batch)``, ``log_normalizer`` (the
      ``log p(x_i)`` estimates) and ``standard_error`` ``(batch,)``, and ``samples``
      ``(num_chains, batch, *latent)``.

    Raises:
      ValueError: for ``x`` of rank < 2, ``num_chains < 1``, ``prior_sample_fn`` or ``z_exact``
        of the wrong leading shape, and as :func:`ais`.
    """
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"x must be a batch of shape (batch, *event); got shape {x.shape}")
    check_int("num_chains", num_chains)
    batch = x.shape[0]
    k = num_chains * batch
    key_init, key_chains = jax.random.split(key)
    # Chain-major flattening: z[c * batch + i] pairs with x[i].
    x_rep = jnp.broadcast_to(x, (num_chains, *x.shape)).reshape(k, *x.shape[1:])

    if z_exact is None:
        z0 = prior_sample_fn(key_init, k)
        if jnp.ndim(z0) < 2 or jnp.shape(z0)[0] != k:
            raise ValueError(
                f"prior_sample_fn(key, {k}) must return shape ({k}, *latent); got shape "
                f"{jnp.shape(z0)}"
            )
    else:
        z_exact = jnp.asarray(z_exact)
        if z_exact.ndim < 2 or z_exact.shape[0] != batch:
            raise ValueError(
                f"z_exact must have shape (batch={batch}, *latent), one exact posterior sample "
                f"per observation; got shape {z_exact.shape}"
            )
        z0 = jnp.broadcast_to(z_exact, (num_chains, *z_exact.shape)).reshape(k, *z_exact.shape[1:])

    def log_posterior(z):
        return log_prior_fn(z) + log_likelihood_fn(z, x_rep)

    run = ais if z_exact is None else reverse_ais
    result = run(
        key_chains,
        log_posterior,
        log_prior_fn,
        z0,
        betas,
        step_size=step_size,
        n_leapfrog=n_leapfrog,
        n_hmc=n_hmc,
    )
    log_w = result.log_weights.reshape(num_chains, batch)
    est = log_mean_exp(log_w, axis=0)
    sign = 1.0 if z_exact is None else -1.0
    return AISResult(
        log_w,
        sign * est.log_mean,
        est.standard_error,
        result.acceptance_rate,
        result.samples.reshape(num_chains, batch, *result.samples.shape[1:]),
    )
