"""Multinomial diffusion for categorical data (Hoogeboom, Nielsen, Jaini, Forré & Welling 2021,
"Argmax flows and multinomial diffusion: learning categorical distributions", sec. 4).

Every element of ``x`` takes one of ``K`` categories. The forward chain mixes each category with
the uniform distribution::

    q(x_t | x_{t-1}) = Cat(x_t; (1 - beta_t) x_{t-1} + beta_t / K),
    q(x_t | x_0)     = Cat(x_t; abar_t x_0 + (1 - abar_t) / K),
    abar_t = prod_{s <= t} (1 - beta_s),

with ``x`` read as a one-hot vector; the posterior is (eq. 14)::

    q(x_{t-1} | x_t, x_0) = Cat(theta_post(x_t, x_0)),
    theta_post(x_t, x_0) ∝ [alpha_t x_t + (1 - alpha_t) / K]
                          ⊙ [abar_{t-1} x_0 + (1 - abar_{t-1}) / K],

and the model is ``p(x_{t-1} | x_t) = Cat(theta_post(x_t, x0_hat))`` with
``x0_hat = softmax(network(x_t, t))``. As ``theta_post`` is linear in ``x_0`` before the
normalisation, this is also the ``x_0``-parametrisation of Austin et al. 2021 (D3PM, eq. 4):
``p(x_{t-1} | x_t) ∝ sum_{x_0} q(x_{t-1}, x_t | x_0) x0_hat(x_0)``.

The best ``x0_hat`` is not the posterior mean ``E[x_0 | x_t]``: ``theta_post(x_t, m)`` is
``L(m) / Z(m)`` with ``L`` and ``Z(m) = q(x_t | m)`` linear in ``m``, so the exact reverse
marginal of element ``i``, ``E[theta_post(x_t, x_0)_i | x_t]``, is reached at
``m_i ∝ P(x_0i | x_t) / q(x_ti | x_0i)``, the posterior of ``x_0i`` given the *other* elements
of ``x_t``. Training the bound finds that target; a network fitted to ``E[x_0 | x_t]`` (by
cross-entropy alone) would give a loose bound and wrong samples (see the tests).

Step indices follow :mod:`jgen.losses.diffusion`: ``betas`` ``(N,)`` index the forward steps
``t = 0 .. N - 1`` (0-based), the paper's ``x_{t+1}`` is the state *at* our step ``t``, and at
``t = 0`` the previous state is the data (``abar_{-1} = 1``: ``theta_post`` at step 0 is
``q(x_1 | x_0) x0_hat`` normalised, the decoder ``p(x_0 | x_1)``). The schedule of
Hoogeboom et al. is the cosine one of Nichol & Dhariwal 2021
(:func:`jgen.sdes.schedules.cosine_betas`).

Data and samples are integer category indices ``(n, *event)`` in ``[0, K)``; distributions are
log-probabilities ``(n, *event, K)`` and every mixture is computed in log space (log-sum-exp),
so steps where ``beta_t`` or ``1 - abar_t`` is tiny keep their precision. The network is a
callable ``logits_fn(x_t (n, *event) int, t (n,) int) -> (n, *event, K)`` returning the logits
of ``x0_hat``. Losses return one value per example, in nats, summed over the event.
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_choice, check_int, check_sample_shape, concrete_or_none
from jgen.losses.diffusion import ESTIMATORS, bound_from_terms
from jgen.samplers.ddpm import check_schedule
from jgen.sdes.sde import expand
from jgen.types import Array, PRNGKey

LogitsFn = Callable[[Array, Array], Array]
"""``logits_fn(x_t (n, *event) int, t (n,) int) -> (n, *event, K)``: logits of ``x0_hat``."""


# --------------------------------------------------------------------------------------------
# Checks and log-space helpers.


def _check_classes(name: str, x, num_classes: int) -> None:
    """``x`` must be an integer batch ``(n, *event)``; its values in ``[0, K)`` where concrete."""
    shape = tuple(np.shape(x))
    if len(shape) < 2:
        raise ValueError(f"{name} must be a batch of shape (n, *event), rank >= 2; got {shape}")
    if not jnp.issubdtype(jnp.result_type(x), jnp.integer):
        raise ValueError(
            f"{name} must hold integer category indices; got dtype {jnp.result_type(x)}"
        )
    v = concrete_or_none(x)
    if v is not None and v.size and (v.min() < 0 or v.max() >= num_classes):
        raise ValueError(
            f"{name} must hold categories in [0, {num_classes}) (num_classes={num_classes}); "
            f"got values from {int(v.min())} to {int(v.max())}"
        )


def _check_log_probs(name: str, log_p, num_classes: int | None = None) -> None:
    shape = tuple(np.shape(log_p))
    if len(shape) < 2 or (num_classes is not None and shape[-1] != num_classes):
        k = "K" if num_classes is None else num_classes
        raise ValueError(f"{name} must have shape (n, *event, {k}); got {shape}")


def _check_steps(t, n: int, num_steps: int) -> None:
    if tuple(jnp.shape(t)) != (n,) or not jnp.issubdtype(jnp.result_type(t), jnp.integer):
        raise ValueError(
            f"t must be an integer array of shape ({n},); got shape {tuple(jnp.shape(t))} and "
            f"dtype {jnp.result_type(t)}"
        )
    v = concrete_or_none(t)
    if v is not None and (v.min() < 0 or v.max() >= num_steps):
        raise ValueError(
            f"t must hold steps in [0, {num_steps}); got values from {int(v.min())} to "
            f"{int(v.max())}"
        )


def _check_network(logits_fn, x: Array, num_classes: int) -> None:
    """``logits_fn(x, t)`` must return ``(*x.shape, K)``; checked by tracing only."""
    t = jax.ShapeDtypeStruct(x.shape[:1], jnp.int32)
    out = jax.eval_shape(logits_fn, jax.ShapeDtypeStruct(x.shape, jnp.int32), t)
    expected = (*x.shape, num_classes)
    got = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
    if got != expected:
        raise ValueError(f"logits_fn must return logits of shape {expected}; got {got}")


def _sum_event(values: Array) -> Array:
    return jnp.sum(values, axis=tuple(range(1, values.ndim)))


def _log_1m_exp(log_w: Array) -> Array:
    """``log(1 - w)`` from ``log w <= 0``, floored at the dtype's smallest normal so that
    ``w = 1`` (no noise) gives a finite value instead of ``-inf`` (which would turn gradients
    through ``logaddexp`` into NaN)."""
    tiny = jnp.finfo(jnp.result_type(log_w, float)).tiny
    return jnp.log(jnp.maximum(-jnp.expm1(log_w), tiny))


def log_one_hot(x: Array, num_classes: int, dtype=None) -> Array:
    """``log one_hot(x, K)`` ``(n, *event, K)``, the zeros floored at the smallest normal number
    of ``dtype`` (``log tiny`` ~ -87 in float32) rather than ``-inf``, so that products with zero
    probabilities stay exact zeros without producing ``0 * inf``.

    Args:
      x: ``(n, *event)`` integer categories.
      num_classes: ``K``.
      dtype: the floating dtype (default: JAX's default float).
    """
    dtype = jnp.result_type(float) if dtype is None else dtype
    tiny = jnp.finfo(dtype).tiny
    return jnp.log(jnp.maximum(jax.nn.one_hot(x, num_classes, dtype=dtype), tiny))


def mix_with_uniform(log_x: Array, log_w: Array) -> Array:
    """``log(w x + (1 - w) / K)`` elementwise over the last axis, in log space:
    ``logaddexp(log w + log x, log(1 - w) - log K)``.

    Args:
      log_x: ``(n, *event, K)`` log-probabilities.
      log_w: ``(n,)`` per-example ``log w`` with ``w`` in ``(0, 1]``.

    Returns:
      ``(n, *event, K)`` log-probabilities.
    """
    k = log_x.shape[-1]
    log_w = expand(log_w, log_x)
    return jnp.logaddexp(log_w + log_x, _log_1m_exp(log_w) - math.log(k))


def log_schedule(betas: Array) -> tuple[Array, Array]:
    """``(log alpha_t, log abar_t)``, each ``(N,)``, with ``alpha_t = 1 - beta_t`` and
    ``log abar_t = sum_{s <= t} log(1 - beta_s)`` (a sum of ``log1p``, exact for small betas).

    Raises:
      ValueError: unless ``betas`` is a 1-D array with values in ``(0, 1)``.
    """
    betas = check_schedule("betas", betas)
    log_alpha = jnp.log1p(-betas)
    return log_alpha, jnp.cumsum(log_alpha)


# --------------------------------------------------------------------------------------------
# The forward process, its posterior and the model.


def log_transition(log_x_prev: Array, t: Array, betas: Array) -> Array:
    """``log q(x_t | x_{t-1}) = log((1 - beta_t) x_{t-1} + beta_t / K)`` (Hoogeboom et al. 2021,
    eq. 12), the one-step transition from the state before step ``t``.

    Args:
      log_x_prev: ``(n, *event, K)`` log-probabilities of the previous state (a log one-hot for
        a known state, :func:`log_one_hot`).
      t: ``(n,)`` integer steps in ``[0, N)``.
      betas: ``(N,)``.

    Returns:
      ``(n, *event, K)`` log-probabilities of the state at step ``t``.
    """
    _check_log_probs("log_x_prev", log_x_prev)
    log_alpha, _ = log_schedule(betas)
    _check_steps(t, log_x_prev.shape[0], log_alpha.shape[0])
    return mix_with_uniform(log_x_prev, log_alpha.astype(log_x_prev.dtype)[t])


def log_marginal(log_x0: Array, t: Array, betas: Array) -> Array:
    """``log q(x_t | x_0) = log(abar_t x_0 + (1 - abar_t) / K)`` (Hoogeboom et al. 2021, eq. 13).

    Args:
      log_x0: ``(n, *event, K)`` log-probabilities of ``x_0`` (a log one-hot, or ``log x0_hat``).
      t: ``(n,)`` integer steps in ``[0, N)``.
      betas: ``(N,)``.

    Returns:
      ``(n, *event, K)``.
    """
    _check_log_probs("log_x0", log_x0)
    _, log_abar = log_schedule(betas)
    _check_steps(t, log_x0.shape[0], log_abar.shape[0])
    return mix_with_uniform(log_x0, log_abar.astype(log_x0.dtype)[t])


def log_posterior(log_x_t: Array, log_x0: Array, t: Array, betas: Array) -> Array:
    """``log theta_post(x_t, x_0)``, the distribution of the state before step ``t``
    (Hoogeboom et al. 2021, eq. 14)::

        theta_post ∝ [alpha_t x_t + (1 - alpha_t) / K] ⊙ [abar_{t-1} x_0 + (1 - abar_{t-1}) / K],

    normalised over the ``K`` categories by a log-sum-exp, with ``abar_{-1} = 1`` at ``t = 0``
    (the state before step 0 is the data). A one-hot ``x_0`` gives the posterior
    ``q(x_{t-1} | x_t, x_0)``; ``x0_hat`` gives the model ``p(x_{t-1} | x_t)``.

    Args:
      log_x_t: ``(n, *event, K)`` the state at step ``t`` (a log one-hot).
      log_x0: ``(n, *event, K)`` log-probabilities of ``x_0``.
      t: ``(n,)`` integer steps in ``[0, N)``.
      betas: ``(N,)``.

    Returns:
      ``(n, *event, K)`` normalised log-probabilities.
    """
    _check_log_probs("log_x_t", log_x_t)
    _check_log_probs("log_x0", log_x0, log_x_t.shape[-1])
    if log_x0.shape != log_x_t.shape:
        raise ValueError(
            f"log_x0 must have the shape of log_x_t {log_x_t.shape}; got {log_x0.shape}"
        )
    log_alpha, log_abar = log_schedule(betas)
    _check_steps(t, log_x_t.shape[0], log_alpha.shape[0])
    dtype = log_x_t.dtype
    log_abar_prev = jnp.where(t == 0, 0.0, log_abar.astype(dtype)[jnp.maximum(t - 1, 0)])
    # As a function of x_{t-1}: q(x_t | x_{t-1}) is symmetric in its two states, so the
    # likelihood factor is the transition applied to x_t.
    unnormalised = mix_with_uniform(log_x_t, log_alpha.astype(dtype)[t]) + mix_with_uniform(
        log_x0, log_abar_prev
    )
    return jax.nn.log_softmax(unnormalised, axis=-1)


def categorical_kl(log_q: Array, log_p: Array) -> Array:
    """``KL(Cat(q) || Cat(p)) = sum_k q_k (log q_k - log p_k)`` per example, summed over the
    event (elementwise KLs of independent categoricals add up).

    Args:
      log_q, log_p: ``(n, *event, K)`` normalised log-probabilities.

    Returns:
      ``(n,)`` nats.
    """
    _check_log_probs("log_q", log_q)
    if np.shape(log_p) != np.shape(log_q):
        raise ValueError(
            f"log_p must have the shape of log_q {np.shape(log_q)}; got {np.shape(log_p)}"
        )
    return _sum_event(jnp.sum(jnp.exp(log_q) * (log_q - log_p), axis=-1))


def log_categorical(x: Array, log_p: Array) -> Array:
    """``log Cat(x; p) = sum_i log p_i[x_i]`` per example.

    Args:
      x: ``(n, *event)`` integer categories.
      log_p: ``(n, *event, K)`` log-probabilities.

    Returns:
      ``(n,)``.
    """
    _check_log_probs("log_p", log_p)
    _check_classes("x", x, log_p.shape[-1])
    if tuple(np.shape(x)) != tuple(log_p.shape[:-1]):
        raise ValueError(f"x must have shape {tuple(log_p.shape[:-1])}; got {tuple(np.shape(x))}")
    return _sum_event(jnp.take_along_axis(log_p, x[..., None], axis=-1)[..., 0])


def sample_categorical(key: PRNGKey, log_p: Array) -> Array:
    """One draw per element from ``Cat(exp(log_p))`` (the Gumbel-max trick), ``(n, *event)``
    int32."""
    return jax.random.categorical(key, log_p, axis=-1).astype(jnp.int32)


def q_sample(key: PRNGKey, x0: Array, t: Array, betas: Array, num_classes: int) -> Array:
    """``x_t ~ q(x_t | x_0) = Cat(abar_t x_0 + (1 - abar_t) / K)`` (Hoogeboom et al. 2021, eq. 13).

    Args:
      key: a PRNG key.
      x0: ``(n, *event)`` integer categories in ``[0, K)``.
      t: ``(n,)`` integer steps in ``[0, N)``.
      betas: ``(N,)``.
      num_classes: ``K >= 2``.

    Returns:
      ``(n, *event)`` int32 categories.
    """
    check_int("num_classes", num_classes, minimum=2)
    _check_classes("x0", x0, num_classes)
    return sample_categorical(key, log_marginal(log_one_hot(x0, num_classes), t, betas))


# --------------------------------------------------------------------------------------------
# The variational bound.


def _one_plus_a_log1p_minus_a(a: Array) -> Array:
    """``f(a) = (1 + a) log(1 + a) - a >= 0`` for ``a >= -1``, accurate near 0 where the two
    terms cancel: the series ``a^2/2 - a^3/6 + a^4/12 - a^5/20`` for ``|a| < 0.01`` (error
    ``< a^6 / 30``), ``f(-1) = 1``."""
    small = jnp.abs(a) < 0.01
    s = jnp.where(small, a, 0.0)
    series = s**2 * (0.5 - s / 6 + s**2 / 12 - s**3 / 20)
    direct = jax.scipy.special.xlog1py(1.0 + a, jnp.where(small, 1.0, a)) - a
    return jnp.where(small, series, direct)


def prior_kl(x0: Array, betas: Array, num_classes: int) -> Array:
    """``L_T = KL(q(x_{N-1} | x_0) || Uniform(K))`` per example in nats, summed over the event;
    independent of the model. With ``w = abar_{N-1}``, every element has
    ``q = w x_0 + (1 - w) / K`` whatever its category, and ``sum_k q_k log(K q_k)`` is::

        L_T = D [f((K - 1) w) + (K - 1) f(-w)] / K,   f(a) = (1 + a) log(1 + a) - a >= 0,

    with ``f`` summed by its series near 0, so that a near-uniform end (``w`` ~ 1e-6 in the
    cosine schedule, ``L_T`` ~ ``D (K - 1) w^2 / 2``) keeps its relative precision instead of
    rounding to noise of either sign, as the plain sum does.

    Args:
      x0: ``(n, *event)`` integer categories.
      betas: ``(N,)``.
      num_classes: ``K >= 2``.

    Returns:
      ``(n,)``.
    """
    check_int("num_classes", num_classes, minimum=2)
    _check_classes("x0", x0, num_classes)
    _, log_abar = log_schedule(betas)
    dtype = jnp.result_type(float)
    w = jnp.exp(log_abar[-1].astype(dtype))
    k = num_classes
    f = _one_plus_a_log1p_minus_a
    per_element = (f((k - 1) * w) + (k - 1) * f(-w)) / k
    num_elements = math.prod(np.shape(x0)[1:])
    return jnp.full(np.shape(x0)[:1], num_elements * per_element, dtype)


def _term(
    logits_fn: LogitsFn, x0: Array, x_t: Array, t: Array, betas: Array, num_classes: int
) -> tuple[Array, dict]:
    """The bound's term at step ``t`` given ``x_t`` (see :func:`vlb_terms`); no checks."""
    dtype = jnp.result_type(float)
    log_x0_hat = jax.nn.log_softmax(logits_fn(x_t, t).astype(dtype), axis=-1)
    log_x_t = log_one_hot(x_t, num_classes, dtype)
    log_model = log_posterior(log_x_t, log_x0_hat, t, betas)
    log_true = log_posterior(log_x_t, log_one_hot(x0, num_classes, dtype), t, betas)
    kl = categorical_kl(log_true, log_model)
    decoder = -_sum_event(jnp.take_along_axis(log_model, x0[..., None], axis=-1)[..., 0])
    term = jnp.where(t == 0, decoder, kl)
    return term, {"x_t": x_t, "log_x0_hat": log_x0_hat, "log_model": log_model}


def _check_bound_args(logits_fn, x0, betas, num_classes: int) -> Array:
    check_int("num_classes", num_classes, minimum=2)
    _check_classes("x0", x0, num_classes)
    betas = check_schedule("betas", betas)
    if betas.shape[0] < 2:
        raise ValueError(f"betas must have at least 2 steps for the bound; got {betas.shape[0]}")
    _check_network(logits_fn, x0, num_classes)
    return betas


def vlb_terms(
    logits_fn: LogitsFn, x0: Array, t: Array, key: PRNGKey, betas: Array, num_classes: int
) -> tuple[Array, dict]:
    """The terms of the variational bound at given steps, in nats (Hoogeboom et al. 2021, sec. 4):
    with ``x_t ~ q(x_t | x_0)`` drawn with ``key`` and ``p = theta_post(x_t, x0_hat)``::

        t >= 1:  L_t = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))
                     = sum_i KL(theta_post(x_t, x_0)_i || theta_post(x_t, x0_hat)_i),
        t == 0:  L_0 = -log p(x_0 | x_1) = -sum_i log theta_post(x_1, x0_hat)_i[x_0i],

    ``x0_hat = softmax(logits_fn(x_t, t))``.

    Args:
      logits_fn: ``(x_t (n, *event) int, t (n,) int) -> (n, *event, K)``.
      x0: ``(n, *event)`` integer categories in ``[0, K)``.
      t: ``(n,)`` integer steps in ``[0, N)``.
      key: the key of ``x_t``.
      betas: ``(N,)``, ``N >= 2``.
      num_classes: ``K >= 2``.

    Returns:
      ``(terms, aux)``: ``(n,)`` nats, and ``aux`` with ``x_t``, ``log_x0_hat`` and the model's
      ``log_model = log p(x_{t-1} | x_t)`` ``(n, *event, K)``.

    Raises:
      ValueError: on bad categories, steps, schedule, ``num_classes`` or network output shape.
    """
    betas = _check_bound_args(logits_fn, x0, betas, num_classes)
    _check_steps(t, x0.shape[0], betas.shape[0])
    x_t = q_sample(key, x0, t, betas, num_classes)
    return _term(logits_fn, x0, x_t, t, betas, num_classes)


def vlb(
    logits_fn: LogitsFn,
    x0: Array,
    key: PRNGKey,
    betas: Array,
    num_classes: int,
    *,
    estimator: str = "exact",
) -> tuple[Array, dict]:
    """The variational bound on ``-log P(x_0)`` per example, in nats (Hoogeboom et al. 2021):

        L = L_T + sum_{t=1}^{N-1} L_t + L_0 >= -log P(x_0),

    with the terms of :func:`vlb_terms` and ``L_T`` of :func:`prior_kl`.

    - ``estimator="exact"``: every step, in a ``lax.scan`` over ``t`` (``x_t`` drawn with
      ``fold_in(key, t)``): exact in the sum over steps, unbiased over ``x_t``; ``aux["terms"]``
      is ``(n, N)``. The evaluation bound.
    - ``estimator="sample"``: one step ``t ~ Uniform{0..N-1}`` per example,
      ``L_T + N L_t``, an unbiased estimate of the same bound (the training objective);
      ``aux`` has ``t`` and ``term``.

    ``aux["bits_per_dim"] = L / (D ln 2)`` with ``D`` the number of categorical variables.

    Args:
      logits_fn: as in :func:`vlb_terms`.
      x0: ``(n, *event)`` integer categories.
      key: a PRNG key.
      betas: ``(N,)``, ``N >= 2``.
      num_classes: ``K >= 2``.
      estimator: ``"exact"`` or ``"sample"``.

    Returns:
      ``(bound, aux)``: ``(n,)`` nats, and ``aux`` with ``prior``, ``bits_per_dim`` (both
      ``(n,)``) and the terms as above.
    """
    betas = _check_bound_args(logits_fn, x0, betas, num_classes)
    check_choice("estimator", estimator, ESTIMATORS)
    n_steps = betas.shape[0]
    prior = prior_kl(x0, betas, num_classes)

    def term_at(t: Array, noise_key: PRNGKey) -> Array:
        x_t = sample_categorical(noise_key, log_marginal(log_one_hot(x0, num_classes), t, betas))
        return _term(logits_fn, x0, x_t, t, betas, num_classes)[0]

    return bound_from_terms(term_at, prior, key, n_steps, estimator, math.prod(x0.shape[1:]))


# --------------------------------------------------------------------------------------------
# Ancestral sampling.


def multinomial_sample(
    logits_fn: LogitsFn,
    key: PRNGKey,
    shape: tuple[int, ...],
    betas: Array,
    num_classes: int,
) -> tuple[Array, dict]:
    """Ancestral sampling of multinomial diffusion (Hoogeboom et al. 2021, sec. 4): ``x_{N-1}``
    uniform over the ``K`` categories, then for ``t = N-1 .. 0``
    ``x_{t-1} ~ Cat(theta_post(x_t, softmax(logits_fn(x_t, t))))``, the last draw (``t = 0``)
    being the data ``x_0``. A ``lax.scan`` over the steps with keys ``fold_in(key, t)``; not
    jitted here (callers jit).

    Args:
      logits_fn: ``(x_t (n, *event) int, t (n,) int) -> (n, *event, K)``.
      key: a PRNG key.
      shape: ``(n, *event)``.
      betas: ``(N,)``.
      num_classes: ``K >= 2``.

    Returns:
      ``(x0, info)``: ``(n, *event)`` int32 categories, and ``info["changed"]`` ``(N,)`` the
      fraction of elements whose category changed at each step (index ``t``).
    """
    check_int("num_classes", num_classes, minimum=2)
    shape = check_sample_shape(shape)
    betas = check_schedule("betas", betas)
    n_steps = betas.shape[0]
    init_key, key = jax.random.split(key)
    x = jax.random.randint(init_key, shape, 0, num_classes, jnp.int32)
    _check_network(logits_fn, x, num_classes)
    dtype = jnp.result_type(float)

    def step(x, t):
        t_vec = jnp.full(shape[:1], t, jnp.int32)
        log_x0_hat = jax.nn.log_softmax(logits_fn(x, t_vec).astype(dtype), axis=-1)
        log_p = log_posterior(log_one_hot(x, num_classes, dtype), log_x0_hat, t_vec, betas)
        x_prev = sample_categorical(jax.random.fold_in(key, t), log_p)
        return x_prev, jnp.mean(x_prev != x)

    x, changed = jax.lax.scan(step, x, jnp.arange(n_steps)[::-1])
    return x, {"changed": changed[::-1]}
