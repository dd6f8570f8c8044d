"""Training objectives of diffusion and score-based models, as pure functions of the network.

The network is passed as a callable so that each loss stays a pure function of the data and a
key (bind parameters with a closure or ``functools.partial``):

- DDPM's noise regression (Ho, Jain & Abbeel 2020, "Denoising diffusion probabilistic models"),
  :func:`ddpm_eps_loss`, with optional weightings over the step (min-SNR, Hang et al. 2023);
- the variational bound of the same model (Ho et al. 2020, eq. 5), its closed-form terms
  (:func:`vlb_terms`), the whole bound summed exactly or estimated from one step (:func:`vlb`),
  with fixed or learned reverse variances and the hybrid objective of Nichol & Dhariwal 2021,
  "Improved denoising diffusion probabilistic models" (:func:`hybrid_loss`);
- multi-noise denoising score matching of noise-conditional score networks (Song & Ermon 2019,
  "Generative modeling by estimating gradients of the data distribution"), :func:`ncsn_loss`;
- continuous-time denoising score matching on an SDE (Song et al. 2021, "Score-based generative
  modeling through stochastic differential equations"), :func:`sde_score_loss`, with the
  likelihood weighting of Song, Durkan, Murray & Ermon 2021, "Maximum likelihood training of
  score-based diffusion models";
- classifier-free guidance (Ho & Salimans 2022): :func:`guided_eps` and :func:`drop_labels`.

Discrete-time notation follows :mod:`jgen.samplers.ddpm`: ``betas`` ``(N,)`` index the forward
steps ``t = 0 .. N - 1`` (0-based), ``abar_t = prod_{s <= t} (1 - beta_s)``, and the network is
``eps_fn(x_t (n, *event), t (n,) int) -> (n, *event)``. The paper's ``x_0`` is the data and its
``x_{t+1}`` is our step ``t``, so the paper's term ``L_t`` (``L_0`` the decoder
``-log p(x_0 | x_1)``, ``L_t = KL(q(x_t | x_{t+1}, x_0) || p(x_t | x_{t+1}))`` for ``t >= 1``) is
the term *at* our step ``t``, and its ``L_T`` is :func:`prior_kl`.

Every loss returns one value per example, shape ``(n,)``, or ``(per-example values, aux)`` where
documented; the caller reduces.
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr

from jgen.checks import check_choice, check_float_batch, check_int, check_positive
from jgen.gaussian import normal_kl
from jgen.losses.elbo import log1mexp
from jgen.losses.likelihood import bits_per_dim
from jgen.samplers.ddpm import check_schedule, posterior_coefficients
from jgen.sdes.sde import SDE, expand
from jgen.types import Array, NoiseScoreFn, PRNGKey, TimeScoreFn

EpsFn = Callable[[Array, Array], Array]
"""``eps_fn(x_t (n, *event), t (n,) int) -> (n, *event)``: a noise prediction."""
EpsVarFn = Callable[[Array, Array], tuple[Array, Array]]
"""``model_fn(x_t, t) -> (eps (n, *event), v (n, *event))``: a noise prediction and the
interpolation ``v`` of a learned reverse variance (Nichol & Dhariwal 2021, eq. 15)."""

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# --------------------------------------------------------------------------------------------
# Checks and small helpers.


def _check_model(name: str, fn, x: Array, cond_dtype, *, pair: bool = False) -> None:
    """``fn(x, cond (n,))`` must return ``x``'s shape (a pair of them with ``pair``); checked by
    tracing only (``jax.eval_shape``), before any work is done."""
    cond = jax.ShapeDtypeStruct(x.shape[:1], cond_dtype)
    out = jax.eval_shape(fn, x, cond)
    if pair:
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise ValueError(
                f"with variance='learned' {name} must return a pair (eps, v); got "
                f"{type(out).__name__}"
            )
    outputs = out if pair else [out]
    for o in outputs:
        shape = tuple(o.shape) if hasattr(o, "shape") else type(o).__name__
        if shape != tuple(x.shape):
            raise ValueError(
                f"{name} must return arrays of its input's shape {tuple(x.shape)}; got {shape}"
            )


def _sum_event(values: Array) -> Array:
    return jnp.sum(values, axis=tuple(range(1, values.ndim)))


def _mean_event(values: Array) -> Array:
    return jnp.mean(values, axis=tuple(range(1, values.ndim)))


def _num_dims(x: Array) -> int:
    return math.prod(x.shape[1:])


# --------------------------------------------------------------------------------------------
# Gaussian KL and the discretised Gaussian decoder.


def _log_ndtr_diff(upper: Array, lower: Array) -> Array:
    """``log(Phi(upper) - Phi(lower))`` for ``upper > lower``, accurate in both tails.

    Reflected (``Phi(u) - Phi(l) = Phi(-l) - Phi(-u)``) so that the larger CDF value is at most
    one half: then ``log Phi`` (``log_ndtr``) keeps full relative precision and the difference is
    ``log Phi(hi) + log(1 - exp(log Phi(lo) - log Phi(hi)))``, exact where a plain difference of
    CDFs rounds to zero (bins far in a tail, or scales far below the bin width).
    """
    flip = upper + lower > 0
    hi = jnp.where(flip, -lower, upper)
    lo = jnp.where(flip, -upper, lower)
    log_hi, log_lo = log_ndtr(hi), log_ndtr(lo)
    return log_hi + log1mexp(log_hi - log_lo)


def discretized_gaussian_log_mass(x: Array, mean: Array, log_scale: Array, num_bins: int) -> Array:
    """Elementwise log bin mass of :func:`discretized_gaussian_log_likelihood`, not summed.

    Args:
      x, mean, log_scale: arrays that broadcast together; ``x`` on the ``[-1, 1]`` grid.
      num_bins: ``K >= 2``.

    Returns:
      ``log P(x)`` elementwise, of the broadcast shape.
    """
    half_width = 1.0 / (num_bins - 1)
    inv_scale = jnp.exp(-log_scale)
    upper = (x - mean + half_width) * inv_scale
    lower = (x - mean - half_width) * inv_scale
    # Bins are told apart at the midpoints between levels, robust to rounding of x.
    lowest = x < -1.0 + half_width
    highest = x > 1.0 - half_width
    # Keep the unused branches finite so that gradients through jnp.where stay finite.
    safe_lower = jnp.where(lowest, upper - 1.0, lower)
    safe_upper = jnp.where(highest, lower + 1.0, upper)
    interior = _log_ndtr_diff(safe_upper, safe_lower)
    return jnp.where(lowest, log_ndtr(upper), jnp.where(highest, log_ndtr(-lower), interior))


def discretized_gaussian_log_likelihood(
    x: Array, mean: Array, log_scale: Array, num_bins: int = 256
) -> Array:
    """The discretised Gaussian decoder of DDPM (Ho et al. 2020, sec. 3.3, eq. 13), per example.

    Data convention (as :func:`jgen.losses.elbo.discretized_logistic_log_likelihood`): ``x`` lies
    on ``K = num_bins`` levels ``x_j = -1 + 2 j / (K - 1)``; each level gets the mass of the
    Gaussian ``N(mean, exp(log_scale)^2)`` on its bin ``[x - h, x + h]``, ``h = 1 / (K - 1)``,
    the two edge bins extended to ``-inf`` and ``+inf`` so the ``K`` masses sum to one::

        P(x_0) = Phi((x_0 + h - mean) / s),   P(x_{K-1}) = 1 - Phi((x_{K-1} - h - mean) / s),
        P(x)   = Phi((x + h - mean) / s) - Phi((x - h - mean) / s).

    ``K = 256`` is 8-bit images (``x = 2 v / 255 - 1``); e.g. ``K = 17`` for the 4-bit digits.
    The interior mass is computed in log space (:func:`_log_ndtr_diff`), exact in the tails.

    Args:
      x: ``(n, *event)`` grid values in ``[-1, 1]`` (not rounded; the bin ``[x - h, x + h]`` is
        used as it is).
      mean: ``(n, *event)``.
      log_scale: log standard deviation, broadcastable to ``x``.
      num_bins: ``K >= 2``.

    Returns:
      ``(n,)`` log-probabilities (masses, not densities), summed over every non-batch axis.

    Raises:
      ValueError: on a bad ``x``, shape mismatches or ``num_bins < 2``.
    """
    check_int("num_bins", num_bins, minimum=2)
    check_float_batch("x", x)
    if tuple(np.shape(mean)) != tuple(np.shape(x)):
        raise ValueError(f"mean must have the shape of x {np.shape(x)}; got {np.shape(mean)}")
    try:
        ok = np.broadcast_shapes(np.shape(log_scale), np.shape(x)) == tuple(np.shape(x))
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"log_scale must broadcast to the shape of x {np.shape(x)}; got {np.shape(log_scale)}"
        )
    return _sum_event(discretized_gaussian_log_mass(x, mean, log_scale, num_bins))


# --------------------------------------------------------------------------------------------
# DDPM: the noise regression.


def _snr(abar: Array) -> Array:
    return abar / (1.0 - abar)


#: Weights ``w(abar_t)`` of the per-step noise regression in :func:`ddpm_eps_loss`, with
#: ``SNR = abar / (1 - abar)``. As ``||x0 - x0_hat||^2 = ||eps - eps_hat||^2 / SNR``, a weight
#: ``w`` on the noise loss is a weight ``w SNR`` on the data-prediction loss; Hang et al. 2023
#: ("Efficient diffusion training via min-SNR weighting strategy") call "SNR weighting" what is
#: here ``"simple"``.
WEIGHTINGS: dict[str, Callable[[Array, float], Array]] = {
    # Ho et al. 2020, L_simple: every step equally.
    "simple": lambda abar, gamma: jnp.ones_like(abar),
    # Unweighted x0 regression: ||x0 - x0_hat||^2.
    "x0": lambda abar, gamma: 1.0 / _snr(abar),
    # Min-SNR-gamma (Hang et al. 2023): x0 weight min(SNR, gamma).
    "min_snr": lambda abar, gamma: jnp.minimum(_snr(abar), gamma) / _snr(abar),
    # Truncated SNR (Salimans & Ho 2022, "Progressive distillation", gamma = 1): x0 weight
    # max(SNR, gamma).
    "max_snr": lambda abar, gamma: jnp.maximum(_snr(abar), gamma) / _snr(abar),
}


def ddpm_eps_loss(
    eps_fn: EpsFn,
    x0: Array,
    key: PRNGKey,
    alphas_cumprod: Array,
    *,
    weighting: str = "simple",
    snr_gamma: float = 5.0,
) -> Array:
    """DDPM's noise regression with a uniformly drawn step (Ho et al. 2020, Algorithm 1, eq. 14).

    ``t ~ Uniform{0, ..., N - 1}``, ``eps ~ N(0, I)``,
    ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` and, per example,

        loss = w(abar_t) * mean_i (eps_i - eps_fn(x_t, t)_i)^2,

    the mean (not the sum) over the ``D`` event dimensions, as in Ho et al.'s code. With
    ``w = 1`` (``"simple"``) this is ``L_simple``; :data:`WEIGHTINGS` lists the others
    (``"min_snr"`` is Min-SNR-gamma, Hang et al. 2023, with ``gamma = snr_gamma``). For every
    weighting the minimiser is ``eps_fn(x, t) = E[eps | x_t = x]``.

    Args:
      eps_fn: ``(x_t (n, *event), t (n,) int) -> (n, *event)``.
      x0: ``(n, *event)`` data, floating point.
      key: split into the steps and the noise.
      alphas_cumprod: ``(N,)`` ``abar_t`` in ``(0, 1)``
        (:func:`jgen.sdes.schedules.alphas_cumprod`).
      weighting: a key of :data:`WEIGHTINGS`.
      snr_gamma: ``gamma > 0`` of ``"min_snr"`` and ``"max_snr"``.

    Returns:
      ``(n,)`` per-example losses.

    Raises:
      ValueError: on a bad ``x0``, schedule, weighting, ``snr_gamma`` or ``eps_fn`` output shape.
    """
    check_float_batch("x0", x0)
    check_choice("weighting", weighting, WEIGHTINGS)
    check_positive("snr_gamma", snr_gamma)
    abar_all = check_schedule("alphas_cumprod", alphas_cumprod).astype(x0.dtype)
    _check_model("eps_fn", eps_fn, x0, jnp.int32)
    t_key, noise_key = jax.random.split(key)
    t = jax.random.randint(t_key, x0.shape[:1], 0, abar_all.shape[0])
    eps = jax.random.normal(noise_key, x0.shape, x0.dtype)
    abar = abar_all[t]
    x_t = expand(jnp.sqrt(abar), x0) * x0 + expand(jnp.sqrt(1.0 - abar), x0) * eps
    eps_hat = eps_fn(x_t, t)
    return WEIGHTINGS[weighting](abar, snr_gamma) * _mean_event((eps - eps_hat) ** 2)


# --------------------------------------------------------------------------------------------
# DDPM: the variational bound.

#: Reverse variances ``sigma_t^2`` of the bound (log values per step ``t = 0 .. N - 1``):
#: ``"posterior"`` is ``beta~_t``, with ``beta~_1`` at ``t = 0`` where ``beta~_0 = 0`` (the
#: clipping of Ho et al.'s and Nichol & Dhariwal's code); ``"beta"`` is ``beta_t`` at every step
#: (Ho et al. 2020, sec. 3.2); ``"learned"`` interpolates between them in log space with the
#: network's ``v`` (Nichol & Dhariwal 2021, eq. 15).
VARIANCES = ("posterior", "beta", "learned")


def _log_variance_bounds(betas: Array) -> tuple[Array, Array]:
    """``(log beta~_t clipped at t = 0, log beta_t)``, each ``(N,)``."""
    posterior = posterior_coefficients(betas)[2]
    clipped = posterior.at[0].set(posterior[1])
    return jnp.log(clipped), jnp.log(betas)


def _model_log_variance(variance: str, v, t: Array, betas: Array, x0: Array) -> Array:
    """``log sigma_t^2`` broadcast against ``x0``: ``(n, 1, ..)`` or, when learned, elementwise
    ``v log beta_t + (1 - v) log beta~_t`` (Nichol & Dhariwal 2021, eq. 15)."""
    log_min, log_max = (expand(a[t], x0) for a in _log_variance_bounds(betas))
    if variance == "posterior":
        return log_min
    if variance == "beta":
        return log_max
    return v * log_max + (1.0 - v) * log_min


def _vlb_term(
    eps_hat: Array,
    v,
    x0: Array,
    x_t: Array,
    t: Array,
    betas: Array,
    variance: str,
    num_bins: int | None,
    clip: float | None,
) -> tuple[Array, dict]:
    """The term at step ``t`` given the network's outputs at ``(x_t, t)``; see :func:`vlb_terms`."""
    abar = jnp.exp(jnp.cumsum(jnp.log1p(-betas)))[t]
    x0_hat = (x_t - expand(jnp.sqrt(1.0 - abar), x0) * eps_hat) / expand(jnp.sqrt(abar), x0)
    if clip is not None:
        x0_hat = jnp.clip(x0_hat, -clip, clip)
    c0, ct, var = (expand(c[t], x0) for c in posterior_coefficients(betas))
    mean_q = c0 * x0 + ct * x_t
    mean_p = c0 * x0_hat + ct * x_t
    log_var_p = _model_log_variance(variance, v, t, betas, x0)
    # beta~_0 = 0: the KL is not used at t = 0, but must stay finite for jnp.where's gradient.
    log_var_q = jnp.log(jnp.where(expand(t, x0) == 0, 1.0, var))
    kl = _sum_event(normal_kl(mean_q, log_var_q, mean_p, log_var_p) + jnp.zeros_like(x0))
    log_scale = 0.5 * log_var_p + jnp.zeros_like(x0)
    if num_bins is None:
        decoder = _sum_event(
            -0.5 * ((x0 - mean_p) * jnp.exp(-log_scale)) ** 2 - log_scale - _HALF_LOG_2PI
        )
    else:
        decoder = _sum_event(discretized_gaussian_log_mass(x0, mean_p, log_scale, num_bins))
    term = jnp.where(t == 0, -decoder, kl)
    aux = {"x_t": x_t, "mean": mean_p, "log_variance": log_var_p, "x0_hat": x0_hat}
    return term, aux


def _call_model(model_fn, x_t: Array, t: Array, variance: str) -> tuple[Array, Array | None]:
    """``(eps, v)``, ``v`` None for fixed variances (shapes checked by :func:`_check_model`)."""
    out = model_fn(x_t, t)
    return tuple(out) if variance == "learned" else (out, None)


def _check_vlb_args(model_fn, x0, betas, variance: str, num_bins, clip) -> Array:
    check_float_batch("x0", x0)
    check_choice("variance", variance, VARIANCES)
    _check_model("the model", model_fn, x0, jnp.int32, pair=variance == "learned")
    if num_bins is not None:
        check_int("num_bins", num_bins, minimum=2)
    check_positive("clip", clip)
    betas = check_schedule("betas", betas).astype(x0.dtype)
    if betas.shape[0] < 2:
        raise ValueError(f"betas must have at least 2 steps for the bound; got {betas.shape[0]}")
    return betas


def _draw_x_t(key: PRNGKey, x0: Array, t: Array, betas: Array) -> Array:
    abar = jnp.exp(jnp.cumsum(jnp.log1p(-betas)))[t]
    eps = jax.random.normal(key, x0.shape, x0.dtype)
    return expand(jnp.sqrt(abar), x0) * x0 + expand(jnp.sqrt(1.0 - abar), x0) * eps


def vlb_terms(
    eps_fn: EpsFn | EpsVarFn,
    x0: Array,
    t: Array,
    key: PRNGKey,
    betas: Array,
    *,
    variance: str = "posterior",
    num_bins: int | None = 256,
    clip: float | None = None,
) -> tuple[Array, dict]:
    """The terms of DDPM's variational bound at given steps, in nats (Ho et al. 2020, eq. 5).

    ``x_t ~ q(x_t | x0) = N(sqrt(abar_t) x0, (1 - abar_t) I)`` is drawn with ``key``; the model
    ``p(x_{t-1} | x_t) = N(mean~_t(x0_hat, x_t), sigma_t^2 I)`` has the posterior mean of
    :func:`jgen.samplers.ddpm.posterior_mean_variance` at the predicted data
    ``x0_hat = (x_t - sqrt(1 - abar_t) eps_fn(x_t, t)) / sqrt(abar_t)`` (eq. 11), and the term is

        t >= 1:  L_t = KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t))   (closed form),
        t == 0:  L_0 = -log p(x0 | x_t),  the discretised Gaussian decoder
                 :func:`discretized_gaussian_log_likelihood` at ``mean~_0 = x0_hat`` with
                 ``num_bins`` bins, or the Gaussian density when ``num_bins`` is None,

    each summed over the event dimensions. ``sigma_t^2`` is chosen by ``variance`` (see
    :data:`VARIANCES`); with ``"learned"`` the model returns ``(eps, v)`` and
    ``log sigma_t^2 = v log beta_t + (1 - v) log beta~_t`` elementwise (Nichol & Dhariwal 2021).

    Args:
      eps_fn: ``(x_t, t) -> eps`` (``(n, *event)``), or ``-> (eps, v)`` with ``"learned"``.
      x0: ``(n, *event)`` data (on the ``[-1, 1]`` grid of ``num_bins`` levels if discretised).
      t: ``(n,)`` integer steps in ``[0, N)``.
      key: the key of ``x_t``'s noise.
      betas: ``(N,)`` forward variances, ``N >= 2``.
      variance: ``"posterior"``, ``"beta"`` or ``"learned"``.
      num_bins: ``K >= 2`` levels of the decoder, or None for a continuous Gaussian decoder.
      clip: if set, ``x0_hat`` is clipped to ``[-clip, clip]`` (images: 1).

    Returns:
      ``(terms, aux)``: ``(n,)`` nats, and ``aux`` with ``x_t``, the model's ``mean`` and
      ``log_variance`` (broadcastable to ``x0``) and ``x0_hat``.

    Raises:
      ValueError: on bad shapes, schedule, ``variance``, ``num_bins`` or ``clip``.
    """
    betas = _check_vlb_args(eps_fn, x0, betas, variance, num_bins, clip)
    if jnp.shape(t) != x0.shape[:1] or not jnp.issubdtype(jnp.result_type(t), jnp.integer):
        raise ValueError(
            f"t must be an integer array of shape {x0.shape[:1]}; got shape {jnp.shape(t)} "
            f"and dtype {jnp.result_type(t)}"
        )
    x_t = _draw_x_t(key, x0, t, betas)
    eps_hat, v = _call_model(eps_fn, x_t, t, variance)
    return _vlb_term(eps_hat, v, x0, x_t, t, betas, variance, num_bins, clip)


def prior_kl(x0: Array, betas: Array) -> Array:
    """``L_T = KL(q(x_{N-1} | x0) || N(0, I))`` per example in nats (Ho et al. 2020, eq. 5): the
    last marginal ``N(sqrt(abar) x0, (1 - abar) I)`` against the prior; independent of the model.

    Args:
      x0: ``(n, *event)`` data.
      betas: ``(N,)`` forward variances.

    Returns:
      ``(n,)``.
    """
    check_float_batch("x0", x0)
    betas = check_schedule("betas", betas).astype(x0.dtype)
    log_abar = jnp.sum(jnp.log1p(-betas))
    mean = jnp.exp(0.5 * log_abar) * x0
    return _sum_event(normal_kl(mean, jnp.log(-jnp.expm1(log_abar)), 0.0, 0.0))


ESTIMATORS = ("exact", "sample")
"""How :func:`vlb` sums the steps: all of them, or one drawn uniformly (times ``N``)."""


def vlb(
    eps_fn: EpsFn | EpsVarFn,
    x0: Array,
    key: PRNGKey,
    betas: Array,
    *,
    variance: str = "posterior",
    num_bins: int | None = 256,
    clip: float | None = None,
    estimator: str = "exact",
) -> tuple[Array, dict]:
    """DDPM's variational bound on ``-log p(x0)`` per example, in nats (Ho et al. 2020, eq. 5):

        L = L_T + sum_{t=1}^{N-1} L_t + L_0 >= -log p(x0),

    with the terms of :func:`vlb_terms` and ``L_T`` of :func:`prior_kl`.

    - ``estimator="exact"`` evaluates every step (a ``lax.scan`` over ``t``, each ``x_t`` drawn
      with ``fold_in(key, t)``): the evaluation bound, exact in the sum over steps and unbiased
      over ``x_t``. ``aux["terms"]`` is ``(n, N)``.
    - ``estimator="sample"`` draws one step ``t ~ Uniform{0..N-1}`` per example and returns
      ``L_T + N L_t``, an unbiased one-step estimate of the same bound (Nichol & Dhariwal 2021's
      ``L_vlb``, for training). ``aux`` has ``t`` and ``term``.

    Bits per dimension of the (discrete, when ``num_bins`` is set) data are
    ``aux["bits_per_dim"] = L / (D ln 2)``.

    Args:
      eps_fn: as in :func:`vlb_terms`.
      x0: ``(n, *event)`` data.
      key: a PRNG key.
      betas: ``(N,)``, ``N >= 2``.
      variance, num_bins, clip: as in :func:`vlb_terms`.
      estimator: ``"exact"`` or ``"sample"``.

    Returns:
      ``(bound, aux)``: ``(n,)`` nats, and ``aux`` with ``prior`` ``(n,)``, ``bits_per_dim``
      ``(n,)`` and the terms as above.
    """
    betas = _check_vlb_args(eps_fn, x0, betas, variance, num_bins, clip)
    check_choice("estimator", estimator, ESTIMATORS)
    n_steps = betas.shape[0]
    prior = prior_kl(x0, betas)

    def term_at(t: Array, noise_key: PRNGKey) -> Array:
        x_t = _draw_x_t(noise_key, x0, t, betas)
        eps_hat, v = _call_model(eps_fn, x_t, t, variance)
        return _vlb_term(eps_hat, v, x0, x_t, t, betas, variance, num_bins, clip)[0]

    return bound_from_terms(term_at, prior, key, n_steps, estimator, _num_dims(x0))


def bound_from_terms(
    term_at: Callable[[Array, PRNGKey], Array],
    prior: Array,
    key: PRNGKey,
    n_steps: int,
    estimator: str,
    num_dims: int,
) -> tuple[Array, dict]:
    """``L_T + sum_t L_t``, the bound of any diffusion whose per-step terms ``term_at(t (n,),
    key) -> (n,)`` are known (Gaussian here, categorical in
    :mod:`jgen.losses.multinomial_diffusion`): summed over every step (``"exact"``, a
    ``lax.scan``, the step ``t`` drawn with ``fold_in(key, t)``) or ``L_T + N L_t`` at one step
    ``t ~ Uniform{0..N-1}`` per example (``"sample"``).

    Returns:
      ``(bound (n,), aux)`` with ``prior``, ``bits_per_dim`` and ``terms`` ``(n, N)`` (exact) or
      ``t`` and ``term`` (sample).
    """
    batch = prior.shape[:1]
    if estimator == "exact":

        def step(carry, t):
            return carry, term_at(jnp.full(batch, t, jnp.int32), jax.random.fold_in(key, t))

        _, terms = jax.lax.scan(step, None, jnp.arange(n_steps))
        terms = terms.T
        total = prior + jnp.sum(terms, axis=1)
        aux = {"terms": terms}
    else:
        t_key, noise_key = jax.random.split(key)
        t = jax.random.randint(t_key, batch, 0, n_steps)
        term = term_at(t, noise_key)
        total = prior + n_steps * term
        aux = {"t": t, "term": term}
    aux.update(prior=prior, bits_per_dim=bits_per_dim(total, num_dims))
    return total, aux


def hybrid_loss(
    model_fn: EpsVarFn,
    x0: Array,
    key: PRNGKey,
    betas: Array,
    *,
    vlb_weight: float = 1e-3,
    num_bins: int | None = 256,
    clip: float | None = None,
) -> tuple[Array, dict]:
    """Nichol & Dhariwal 2021's hybrid objective ``L_hybrid = L_simple + lambda L_vlb`` (sec. 3.1).

    One step ``t ~ Uniform{0..N-1}`` and one ``x_t`` per example are shared by both terms;
    ``model_fn(x_t, t) -> (eps, v)`` predicts the noise and the variance interpolation::

        simple = mean_i (eps_i - eps_hat_i)^2,
        vlb    = N * L_t(stop_gradient(eps_hat), v) / (D ln 2),

    ``L_t`` the term of :func:`vlb_terms` with ``variance="learned"``, in bits per dimension as
    in the authors' code (``lambda = 0.001`` there). The stop-gradient on the mean makes the bound
    train the variance only, while ``L_simple`` trains the mean. ``L_T`` is omitted (no
    parameter enters it).

    Args:
      model_fn: ``(x_t, t) -> (eps (n, *event), v (n, *event))``.
      x0: ``(n, *event)`` data.
      key: split into the steps and the noise.
      betas: ``(N,)``, ``N >= 2``.
      vlb_weight: ``lambda >= 0``.
      num_bins, clip: as in :func:`vlb_terms`.

    Returns:
      ``(loss, aux)``: ``(n,)`` ``simple + lambda vlb``, and ``aux`` with ``simple``, ``vlb``
      (both ``(n,)``) and ``t``.
    """
    betas = _check_vlb_args(model_fn, x0, betas, "learned", num_bins, clip)
    check_positive("vlb_weight", vlb_weight, allow_zero=True)
    n_steps = betas.shape[0]
    t_key, noise_key = jax.random.split(key)
    t = jax.random.randint(t_key, x0.shape[:1], 0, n_steps)
    abar = jnp.exp(jnp.cumsum(jnp.log1p(-betas)))[t]
    eps = jax.random.normal(noise_key, x0.shape, x0.dtype)
    x_t = expand(jnp.sqrt(abar), x0) * x0 + expand(jnp.sqrt(1.0 - abar), x0) * eps
    eps_hat, v = _call_model(model_fn, x_t, t, "learned")
    simple = _mean_event((eps - eps_hat) ** 2)
    term, _ = _vlb_term(
        jax.lax.stop_gradient(eps_hat), v, x0, x_t, t, betas, "learned", num_bins, clip
    )
    vlb_bpd = bits_per_dim(n_steps * term, _num_dims(x0))
    return simple + vlb_weight * vlb_bpd, {"simple": simple, "vlb": vlb_bpd, "t": t}


# --------------------------------------------------------------------------------------------
# Score-based models: NCSN and the SDE loss.


def _check_sigmas(sigmas) -> Array:
    sigmas = jnp.asarray(sigmas)
    if sigmas.ndim != 1 or sigmas.shape[0] < 1:
        raise ValueError(f"sigmas must be a non-empty 1-D array (L,); got shape {sigmas.shape}")
    check_positive("sigmas", sigmas)
    return sigmas


def ncsn_loss(score_fn: NoiseScoreFn, x: Array, key: PRNGKey, sigmas: Array) -> Array:
    """Multi-noise denoising score matching of NCSN (Song & Ermon 2019, eqs. 5-6).

    ``sigma = sigmas[i]`` with ``i ~ Uniform{0..L-1}`` per example, ``x~ = x + sigma z`` and

        loss = lambda(sigma) * 1/2 || s(x~, sigma) + (x~ - x) / sigma^2 ||^2,
        lambda(sigma) = sigma^2,

    summed over the event dimensions. The weight makes every level's term of order one
    (``sigma ||s|| ~ sqrt(D)``); the minimiser is the score of the data convolved with
    ``N(0, sigma^2 I)``.

    Args:
      score_fn: ``(x~ (n, *event), sigma (n,)) -> (n, *event)``.
      x: ``(n, *event)`` data.
      key: split into the levels and the noise.
      sigmas: ``(L,)`` positive noise levels (:func:`jgen.sdes.schedules.geometric_sigmas`).

    Returns:
      ``(n,)``.

    Raises:
      ValueError: on a bad ``x``, ``sigmas`` or ``score_fn`` output shape.
    """
    check_float_batch("x", x)
    sigmas = _check_sigmas(sigmas).astype(x.dtype)
    _check_model("score_fn", score_fn, x, x.dtype)
    i_key, noise_key = jax.random.split(key)
    sigma = sigmas[jax.random.randint(i_key, x.shape[:1], 0, sigmas.shape[0])]
    z = jax.random.normal(noise_key, x.shape, x.dtype)
    s = expand(sigma, x)
    score = score_fn(x + s * z, sigma)
    # sigma^2 * 1/2 ||score + z / sigma||^2 = 1/2 ||sigma score + z||^2, no division by sigma.
    return 0.5 * _sum_event((s * score + z) ** 2)


def sde_score_loss(
    score_fn: TimeScoreFn,
    x0: Array,
    key: PRNGKey,
    sde: SDE,
    *,
    likelihood_weighting: bool = False,
    eps: float = 1e-5,
    reduce_mean: bool = False,
) -> Array:
    """Continuous-time denoising score matching on an SDE (Song et al. 2021, eq. 7).

    ``t ~ Uniform(eps, T)``, ``z ~ N(0, I)``, ``x_t = mean(x0, t) + std(t) z`` from
    ``sde.marginal`` and

        loss = lambda(t) || s(x_t, t) + z / std(t) ||^2,

    with ``lambda = std^2`` (Song et al. 2021, ``lambda ~ 1 / E||grad log p_{0t}||^2``) or,
    with ``likelihood_weighting``, ``lambda = g(t)^2`` (Song, Durkan, Murray & Ermon 2021,
    Theorem 1: the weighted loss then bounds the negative log-likelihood). ``z / std`` is
    ``-grad log p_{0t}(x_t | x0)``; the minimiser is the marginal score ``grad log p_t``. Summed
    over the event dimensions (the mean with ``reduce_mean``), without a factor 1/2, as in the
    authors' code. Works with :class:`jgen.sdes.sde.VPSDE`, ``SubVPSDE`` and ``VESDE``.

    Args:
      score_fn: ``(x_t (n, *event), t (n,)) -> (n, *event)``.
      x0: ``(n, *event)`` data.
      key: split into the times and the noise.
      sde: a forward SDE with ``marginal`` and ``diffusion``.
      likelihood_weighting: use ``lambda = g(t)^2``.
      eps: the smallest time, ``0 < eps < T`` (the score blows up at ``t = 0``).
      reduce_mean: average over the event dimensions instead of summing.

    Returns:
      ``(n,)``.

    Raises:
      ValueError: on a bad ``x0``, ``eps`` or ``score_fn`` output shape.
    """
    check_float_batch("x0", x0)
    if not isinstance(eps, jax.Array) and not (0 < eps < sde.T):
        raise ValueError(f"eps must satisfy 0 < eps < T = {sde.T}; got {eps!r}")
    _check_model("score_fn", score_fn, x0, x0.dtype)
    t_key, noise_key = jax.random.split(key)
    t = jax.random.uniform(t_key, x0.shape[:1], x0.dtype, eps, sde.T)
    z = jax.random.normal(noise_key, x0.shape, x0.dtype)
    mean, std = sde.marginal(x0, t)
    std_x = expand(std, x0)
    score = score_fn(mean + std_x * z, t)
    reduce = _mean_event if reduce_mean else _sum_event
    if likelihood_weighting:
        return sde.diffusion(t) ** 2 * reduce((score + z / std_x) ** 2)
    # std^2 ||s + z / std||^2 = ||std s + z||^2: finite even where std is tiny.
    return reduce((std_x * score + z) ** 2)


# --------------------------------------------------------------------------------------------
# Classifier-free guidance.


def guided_eps(eps_cond: Array, eps_uncond: Array, w) -> Array:
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6):
    ``eps~ = (1 + w) eps(x, c) - w eps(x)``.

    ``w = 0`` is the conditional model, ``w > 0`` sharpens towards the class (the implicit
    classifier ``p(c | x)^w``); ``w = -1`` is the unconditional model.

    Args:
      eps_cond: ``(n, *event)`` the conditional prediction.
      eps_uncond: ``(n, *event)`` the unconditional prediction (the null label).
      w: the guidance weight, a scalar or ``(n,)``.

    Returns:
      ``(n, *event)``.
    """
    if jnp.shape(eps_cond) != jnp.shape(eps_uncond):
        raise ValueError(
            f"eps_uncond must have the shape of eps_cond {jnp.shape(eps_cond)}; got "
            f"{jnp.shape(eps_uncond)}"
        )
    w = jnp.asarray(w)
    if w.ndim == 1:
        w = expand(w, eps_cond)
    return (1.0 + w) * eps_cond - w * eps_uncond


def drop_labels(key: PRNGKey, y: Array, p: float, null_class: int) -> Array:
    """Label dropout for classifier-free guidance training (Ho & Salimans 2022, Algorithm 1):
    each label is replaced by ``null_class`` independently with probability ``p``, so one network
    learns both ``eps(x, c)`` and ``eps(x) = eps(x, null_class)``.

    Args:
      key: a PRNG key.
      y: ``(n,)`` integer labels.
      p: the drop probability, ``0 <= p <= 1`` (0.1 to 0.2 in the paper).
      null_class: the label that stands for "no class" (usually the number of classes).

    Returns:
      ``(n,)`` labels of ``y``'s dtype.
    """
    if jnp.ndim(y) != 1 or not jnp.issubdtype(jnp.result_type(y), jnp.integer):
        raise ValueError(
            f"y must be an integer array of shape (n,); got shape {jnp.shape(y)} and dtype "
            f"{jnp.result_type(y)}"
        )
    if not isinstance(p, jax.Array) and not (0.0 <= p <= 1.0):
        raise ValueError(f"p must be in [0, 1]; got {p!r}")
    drop = jax.random.bernoulli(key, p, jnp.shape(y))
    return jnp.where(drop, jnp.asarray(null_class, jnp.result_type(y)), y)
