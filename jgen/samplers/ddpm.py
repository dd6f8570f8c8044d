"""Denoising diffusion probabilistic models: the forward marginal, the Gaussian posterior and
ancestral sampling (Ho, Jain & Abbeel 2020, "Denoising diffusion probabilistic models").

Notation: ``betas`` ``(N,)`` index the forward steps ``t = 0 .. N - 1`` (0-based, as in the
paper's code), ``alpha_t = 1 - beta_t``, ``abar_t = prod_{s <= t} alpha_s``, ``abar_{-1} = 1``,
and the forward marginal is

    q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I).

A model predicts the noise, ``eps_fn(x_t, t_index) ~ eps``, with ``t_index`` an int array ``(n,)``;
it relates to the score of ``q(x_t)`` by ``score = -eps / sqrt(1 - abar_t)``
(:func:`score_from_eps`, :func:`eps_from_score`).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_choice, check_int, check_sample_shape, is_traced
from jgen.samplers.chain import run_chain
from jgen.sdes.schedules import alphas_cumprod as _alphas_cumprod
from jgen.sdes.sde import expand
from jgen.types import Array, PRNGKey

EpsFn = Callable[[Array, Array], Array]  # eps(x (n, *event), t_index (n,) int) -> (n, *event)


def score_from_eps(eps: Array, std: Array) -> Array:
    """``score = -eps / std``: the score of ``x_t = m x_0 + std eps`` from a noise prediction.

    Exact for the posterior mean: ``grad log p_t(x) = -E[eps | x_t = x] / std`` (Vincent 2011).

    Args:
      eps: ``(n, *event)`` noise prediction.
      std: ``(n,)`` marginal std (``sqrt(1 - abar_t)`` for DDPM; ``sde.marginal(x0, t)[1]``).

    Returns:
      ``(n, *event)`` score.
    """
    return -eps / expand(std, eps)


def eps_from_score(score: Array, std: Array) -> Array:
    """``eps = -std * score``, the inverse of :func:`score_from_eps`; shapes as there."""
    return -expand(std, score) * score


def _check_t_index(t_index, x: Array, name: str = "x0") -> None:
    if jnp.shape(t_index) != x.shape[:1]:
        raise ValueError(
            f"t_index must have shape (n,) = {x.shape[:1]} to match {name}; "
            f"got shape {jnp.shape(t_index)}"
        )
    if not jnp.issubdtype(jnp.result_type(t_index), jnp.integer):
        raise ValueError(f"t_index must be an integer array; got dtype {jnp.result_type(t_index)}")


def check_schedule(name: str, values) -> Array:
    """A non-empty 1-D schedule with (when concrete) every value in the open interval (0, 1)."""
    values = jnp.asarray(values)
    if values.ndim != 1 or values.shape[0] < 1:
        raise ValueError(f"{name} must be a non-empty 1-D array (N,); got shape {values.shape}")
    if not is_traced(values):
        v = np.asarray(values)
        if not np.all((v > 0) & (v < 1)):
            bad = v[~((v > 0) & (v < 1))]
            raise ValueError(f"{name} must lie in (0, 1); got values such as {bad[:3].tolist()}")
    return values


def q_sample(x0: Array, t_index: Array, noise: Array, alphas_cumprod: Array) -> Array:
    """A draw of the forward marginal ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise``
    (Ho et al. 2020, eq. 4).

    Args:
      x0: ``(n, *event)`` data.
      t_index: ``(n,)`` integer steps in ``[0, N)``.
      noise: ``(n, *event)`` standard normal noise.
      alphas_cumprod: ``(N,)`` ``abar``.

    Returns:
      ``(n, *event)`` noisy data ``x_t``.
    """
    x0 = jnp.asarray(x0)
    if jnp.shape(noise) != x0.shape:
        raise ValueError(f"noise must have the shape of x0 {x0.shape}; got {jnp.shape(noise)}")
    _check_t_index(t_index, x0)
    abar = check_schedule("alphas_cumprod", alphas_cumprod).astype(x0.dtype)[t_index]
    return expand(jnp.sqrt(abar), x0) * x0 + expand(jnp.sqrt(1.0 - abar), x0) * noise


def posterior_coefficients(betas: Array) -> tuple[Array, Array, Array]:
    """``(c0, ct, var)`` of ``q(x_{t-1} | x_t, x_0) = N(c0 x_0 + ct x_t, var I)``, for each t."""
    # 1 - abar through expm1: at t = 0 it is beta_0 to the last bit, so c0 = 1 and ct = 0 there.
    log_abar = jnp.cumsum(jnp.log1p(-betas))
    log_abar_prev = jnp.concatenate([jnp.zeros_like(log_abar[:1]), log_abar[:-1]])
    one_minus_abar, one_minus_abar_prev = -jnp.expm1(log_abar), -jnp.expm1(log_abar_prev)
    c0 = betas * jnp.exp(0.5 * log_abar_prev) / one_minus_abar
    ct = one_minus_abar_prev * jnp.sqrt(1.0 - betas) / one_minus_abar
    var = betas * one_minus_abar_prev / one_minus_abar
    return c0, ct, var


def posterior_mean_variance(
    x0: Array, xt: Array, t_index: Array, betas: Array
) -> tuple[Array, Array]:
    """Mean and variance of the forward posterior ``q(x_{t-1} | x_t, x_0)`` (Ho et al. 2020,
    eqs. 6–7):

        mean = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x_0
               + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t,
        var  = beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t      (0 at t = 0).

    Args:
      x0: ``(n, *event)`` clean data (or its prediction).
      xt: ``(n, *event)`` noisy data at step ``t``.
      t_index: ``(n,)`` integer steps in ``[0, N)``.
      betas: ``(N,)`` forward variances.

    Returns:
      ``(mean, var)``: ``(n, *event)`` and ``(n,)``.
    """
    x0 = jnp.asarray(x0)
    if jnp.shape(xt) != x0.shape:
        raise ValueError(f"xt must have the shape of x0 {x0.shape}; got {jnp.shape(xt)}")
    _check_t_index(t_index, x0)
    betas = check_schedule("betas", betas).astype(x0.dtype)
    c0, ct, var = (c[t_index] for c in posterior_coefficients(betas))
    return expand(c0, x0) * x0 + expand(ct, x0) * xt, var


def _posterior_variance(betas: Array) -> Array:
    return posterior_coefficients(betas)[2]


def _beta_variance(betas: Array) -> Array:
    # No noise is added on the last step (t = 0), as in Ho et al.'s sampler.
    return betas.at[0].set(0.0)


#: ``sigma_t^2`` of the reverse step: ``beta~_t`` is optimal for deterministic ``x_0``, ``beta_t``
#: for ``x_0 ~ N(0, I)``; Ho et al. 2020 (Sec. 3.2) found both to give similar samples.
VARIANCES = {"posterior": _posterior_variance, "beta": _beta_variance}


def ddpm_sample(
    eps_fn: EpsFn,
    key: PRNGKey,
    shape: tuple[int, ...],
    betas: Array,
    *,
    variance: str = "posterior",
    clip: float | None = None,
    record_every: int = 0,
) -> tuple[Array, dict]:
    """Ancestral sampling of Ho et al. 2020 (Algorithm 2), ``t = N - 1 .. 0`` from
    ``x_{N-1} ~ N(0, I)``:

        x0_hat  = (x_t - sqrt(1 - abar_t) eps(x_t, t)) / sqrt(abar_t)     [clipped to +-clip],
        x_{t-1} = mean~_t(x0_hat, x_t) + sigma_t z,

    with ``mean~`` the posterior mean of :func:`posterior_mean_variance`. Unclipped, the mean is
    the paper's ``(x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t)``. No noise is added at
    ``t = 0``.

    Args:
      eps_fn: noise prediction ``eps_fn(x, t_index)``, ``(n, *event), (n,) int -> (n, *event)``.
      key: split into the initial draw and the chain's per-step keys.
      shape: ``(n, *event)``.
      betas: ``(N,)`` forward variances (e.g. :func:`jgen.sdes.schedules.linear_betas`).
      variance: ``'posterior'`` (``sigma_t^2 = beta~_t``) or ``'beta'`` (``sigma_t^2 = beta_t``).
      clip: if set, clip the predicted ``x_0`` to ``[-clip, clip]`` (images in ``[-1, 1]``: 1).
      record_every: when ``k > 0``, record ``x`` after every ``k``-th step (must divide ``N``).

    Returns:
      ``(x, info)``: ``x_0`` of shape ``shape``; ``info`` has ``eps_norm`` (the mean per-example
      norm of the predicted noise) and, when recorded, ``trajectory`` ``(N // k, *shape)``.
    """
    check_choice("variance", variance, VARIANCES)
    shape = check_sample_shape(shape)
    check_int("record_every", record_every, 0)
    if clip is not None and isinstance(clip, int | float) and not clip > 0:
        raise ValueError(f"clip must be None or > 0; got {clip!r}")
    betas = check_schedule("betas", betas)
    n_steps = betas.shape[0]

    init_key, chain_key = jax.random.split(key)
    x = jax.random.normal(init_key, shape)
    betas = betas.astype(x.dtype)
    abar = _alphas_cumprod(betas)
    c0, ct, _ = posterior_coefficients(betas)
    sigma = jnp.sqrt(VARIANCES[variance](betas))

    def step(x, key, i):
        t = n_steps - 1 - i
        eps = eps_fn(x, jnp.full(shape[:1], t, jnp.int32))
        x0 = (x - jnp.sqrt(1.0 - abar[t]) * eps) / jnp.sqrt(abar[t])
        if clip is not None:
            x0 = jnp.clip(x0, -clip, clip)
        z = jax.random.normal(key, shape, x.dtype)
        x = c0[t] * x0 + ct[t] * x + sigma[t] * z
        return x, {"eps_norm": jnp.mean(jnp.linalg.norm(eps.reshape(shape[0], -1), axis=-1))}

    x, info, trajectory = run_chain(step, x, chain_key, n_steps, record_every=record_every)
    if trajectory is not None:
        info["trajectory"] = trajectory
    return x, info
