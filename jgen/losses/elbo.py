"""Variational bounds on ``log p(x)`` for latent-variable models with a Gaussian encoder.

A model ``p(x, z) = p(z) p(x | z)`` with the prior ``p(z) = N(0, I)`` and an encoder
``q(z | x) = N(mean(x), diag exp(log_std(x))^2)`` is trained by maximising

- the evidence lower bound (Kingma & Welling 2014, "Auto-encoding variational Bayes"; Rezende,
  Mohamed & Wierstra 2014), ``ELBO = E_q[log p(x | z)] - KL(q(z | x) || p(z)) <= log p(x)``,
  with a weight ``beta`` on the KL for the beta-VAE (Higgins et al. 2017) and the annealing
  schedules of :func:`kl_annealing`;
- the importance-weighted bound (Burda, Grosse & Salakhutdinov 2016),
  ``L_k = E[log (1/k) sum_k p(x, z_k) / q(z_k | x)]``, which increases with ``k`` towards
  ``log p(x)``, optionally with the doubly reparameterised gradient (Tucker et al. 2019).

The decoder's ``log p(x | z)`` comes from one of the log-likelihoods below (Bernoulli, Gaussian,
discretised logistic). Each is summed over every non-batch axis and returns ``(B,)``; so do the
KL divergences. The bounds take the encoder and the decoder as functions of the data alone (bind
parameters with a closure), so ``jax.grad`` of a loss built from them differentiates both.
"""

import math
from collections.abc import Callable

import distrax
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from jgen.checks import check_choice, check_int, check_positive
from jgen.gaussian import normal_kl, standard_normal_log_prob
from jgen.types import Array, PRNGKey

Encoder = Callable[[Array], tuple[Array, Array]]
"""``encoder(x (B, *event)) -> (mean (B, *latent), log_std (B, *latent))`` of ``q(z | x)``."""
LogLikelihood = Callable[[Array, Array], Array]
"""``log_likelihood(x (B, *event), z (B, *latent)) -> (B,)``: the decoder's ``log p(x | z)``."""

GRADIENTS = ("standard", "dreg")
"""The gradient estimators of :func:`iwae_bound`."""

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# --------------------------------------------------------------------------------------------
# Shape checks and small helpers.


def _shape(x) -> tuple[int, ...]:
    return tuple(np.shape(x))


def _check_batched(name: str, x) -> None:
    if len(_shape(x)) < 1:
        raise ValueError(f"{name} must be a batch of shape (B, ...); got shape {_shape(x)}")


def _check_same_shape(name: str, x, ref_name: str, ref) -> None:
    if _shape(x) != _shape(ref):
        raise ValueError(
            f"{name} must have the shape of {ref_name}, {_shape(ref)}; got shape {_shape(x)}"
        )


def _check_broadcasts_to(name: str, x, ref_name: str, ref) -> None:
    """``x`` must broadcast to ``ref``'s shape without enlarging it (a scalar, ``(1, *event)``,
    ``(B, 1, ..., 1)``, ...)."""
    try:
        ok = np.broadcast_shapes(_shape(x), _shape(ref)) == _shape(ref)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{name} must broadcast to the shape of {ref_name}, {_shape(ref)}; "
            f"got shape {_shape(x)}"
        )


def _check_gaussian(mean_name: str, mean, log_std_name: str, log_std) -> None:
    _check_batched(mean_name, mean)
    _check_same_shape(log_std_name, log_std, mean_name, mean)


def _check_encoding(x, mean, log_std) -> None:
    """The encoder's outputs: equal shapes, and one row per example of ``x``."""
    _check_gaussian("mean (the encoder's first output)", mean, "log_std", log_std)
    if _shape(mean)[0] != _shape(x)[0]:
        raise ValueError(
            f"the encoder must return a batch of {_shape(x)[0]} (the batch size of x); "
            f"got mean of shape {_shape(mean)}"
        )


def _check_log_likelihood_output(value, batch: int) -> None:
    if _shape(value) != (batch,):
        raise ValueError(
            f"log_likelihood must return shape ({batch},) (one value per example); "
            f"got shape {_shape(value)}"
        )


def _sum_event(values: Array, batch_ndims: int = 1) -> Array:
    """Sums over every axis after the first ``batch_ndims``."""
    return jnp.sum(values, axis=tuple(range(batch_ndims, values.ndim)))


def _normal_log_density(x: Array, mean: Array, log_std: Array) -> Array:
    """Elementwise ``log N(x; mean, exp(log_std)^2)``; ``(x - mean) exp(-log_std)`` rather than a
    division by ``exp(2 log_std)``, which overflows first."""
    return -0.5 * ((x - mean) * jnp.exp(-log_std)) ** 2 - log_std - _HALF_LOG_2PI


def log1mexp(a: Array) -> Array:
    """``log(1 - exp(-a))`` for ``a > 0``, accurate for small and large ``a`` (Maechler 2012,
    "Accurately computing log(1 - exp(-|a|))": ``expm1`` below ``log 2``, ``log1p`` above)."""
    return jnp.where(a < math.log(2.0), jnp.log(-jnp.expm1(-a)), jnp.log1p(-jnp.exp(-a)))


def _reparameterise(mean: Array, log_std: Array, eps: Array) -> Array:
    return mean + jnp.exp(log_std) * eps


# --------------------------------------------------------------------------------------------
# Decoder log-likelihoods.


def bernoulli_log_likelihood(logits: Array, x: Array) -> Array:
    """Independent Bernoullis: ``sum_i x_i log s(l_i) + (1 - x_i) log s(-l_i)``, ``s`` the sigmoid.

    Computed with ``log_sigmoid`` (``-softplus(-l)``), so saturated logits give finite values and
    gradients. ``x`` in ``[0, 1]`` need not be binary (the cross-entropy of grey levels, as in
    the usual "Bernoulli" decoder of MNIST VAEs, Kingma & Welling 2014).

    Args:
      logits: ``(B, *event)`` logits ``l = log p / (1 - p)``.
      x: ``(B, *event)`` data in ``[0, 1]``.

    Returns:
      ``(B,)``, summed over every non-batch axis.

    Raises:
      ValueError: when ``logits`` and ``x`` differ in shape.
    """
    _check_batched("x", x)
    _check_same_shape("logits", logits, "x", x)
    log_p = x * jax.nn.log_sigmoid(logits) + (1.0 - x) * jax.nn.log_sigmoid(-logits)
    return _sum_event(log_p)


def gaussian_log_likelihood(x: Array, mean: Array, log_std: Array) -> Array:
    """Independent Gaussians: ``sum_i log N(x_i; mean_i, exp(log_std_i)^2)``.

    ``log N(x; m, s^2) = -((x - m) / s)^2 / 2 - log s - log(2 pi) / 2``.

    Args:
      x: ``(B, *event)`` data.
      mean: ``(B, *event)``.
      log_std: broadcastable to ``x``'s shape: a scalar (a fixed variance), ``(1, *event)``
        (learned per pixel), ``(B, 1, ..., 1)`` (per example) or ``(B, *event)``.

    Returns:
      ``(B,)``, summed over every non-batch axis (``log_std`` counts once per element).

    Raises:
      ValueError: when ``mean``'s shape is not ``x``'s or ``log_std`` does not broadcast to it.
    """
    _check_batched("x", x)
    _check_same_shape("mean", mean, "x", x)
    _check_broadcasts_to("log_std", log_std, "x", x)
    return _sum_event(_normal_log_density(x, mean, log_std))


def discretized_logistic_log_likelihood(
    x: Array, mean: Array, log_scale: Array, num_levels: int
) -> Array:
    """The discretised logistic of PixelCNN++ (Salimans, Karpathy, Chen & Kingma 2017; Kingma et
    al. 2016, IAF), one logistic per element.

    Data convention: ``x`` lies on the grid of ``K = num_levels`` values ``x_j = -1 + 2 j / (K-1)``,
    ``j = 0..K-1`` (8-bit pixels ``v`` enter as ``x = 2 v / 255 - 1``), so bins have width
    ``2 / (K - 1)`` and half-width ``h = 1 / (K - 1)``. With ``F`` the logistic CDF of location
    ``mean`` and scale ``s = exp(log_scale)``, each level gets the mass of its bin, the edge bins
    extended to infinity so the ``K`` masses sum to one::

        P(x_0) = F(x_0 + h),   P(x_{K-1}) = 1 - F(x_{K-1} - h),   P(x) = F(x + h) - F(x - h).

    With ``a = (x + h - mean) / s`` and ``b = (x - h - mean) / s`` the interior mass is computed
    as the product ``sigmoid(a) sigmoid(-b) (1 - exp(b - a))`` (an identity), in log space:
    ``log_sigmoid(a) + log_sigmoid(-b) + log(1 - exp(-2h / s))``. It is exact in both tails and for
    scales far below the bin width, where the difference of two sigmoids rounds to zero; PixelCNN++
    guards that case with a fallback (density at the centre times the bin width, used when the
    difference is below 1e-5), which this form makes unnecessary. The edges are
    ``log_sigmoid(a)`` and ``log_sigmoid(-b)``.

    Args:
      x: ``(B, *event)`` grid values in ``[-1, 1]``. Values off the grid are not rounded: the
        interval ``[x - h, x + h]`` is used as it is (which bin is an edge bin is decided at the
        midpoints between levels).
      mean: ``(B, *event)`` logistic locations.
      log_scale: broadcastable to ``x`` (as ``log_std`` in :func:`gaussian_log_likelihood`).
      num_levels: ``K >= 2``.

    Returns:
      ``(B,)`` log-probabilities (not densities), summed over every non-batch axis.

    Raises:
      ValueError: on shape mismatches or ``num_levels < 2``.
    """
    check_int("num_levels", num_levels, minimum=2)
    _check_batched("x", x)
    _check_same_shape("mean", mean, "x", x)
    _check_broadcasts_to("log_scale", log_scale, "x", x)
    return _sum_event(discretized_logistic_log_mass(x, mean, log_scale, num_levels))


def discretized_logistic_log_mass(
    x: Array, mean: Array, log_scale: Array, num_levels: int
) -> Array:
    """Elementwise log bin mass of :func:`discretized_logistic_log_likelihood` (same formula and
    data convention), unchecked and not summed: the piece that mixtures of discretised logistics
    (:func:`jgen.losses.autoregressive.discretized_logistic_mixture_log_likelihood`) share.

    Args:
      x, mean, log_scale: arrays that broadcast together; ``x`` on the ``[-1, 1]`` grid.
      num_levels: ``K >= 2``.

    Returns:
      ``log P(x)`` elementwise, the broadcast shape.
    """
    half_width = 1.0 / (num_levels - 1)
    inv_scale = jnp.exp(-log_scale)
    a = (x - mean + half_width) * inv_scale
    b = (x - mean - half_width) * inv_scale
    # Bins are told apart at the midpoints between levels, robust to rounding of x.
    lowest = x < -1.0 + half_width
    highest = x > 1.0 - half_width
    zero = jnp.zeros_like(a)
    return (
        jnp.where(highest, zero, jax.nn.log_sigmoid(a))
        + jnp.where(lowest, zero, jax.nn.log_sigmoid(-b))
        + jnp.where(lowest | highest, zero, log1mexp(a - b))
    )


# --------------------------------------------------------------------------------------------
# KL divergences.


def _diagonal_gaussian_kl(mean_q, log_std_q, mean_p, log_std_p) -> Array:
    return _sum_event(normal_kl(mean_q, 2.0 * log_std_q, mean_p, 2.0 * log_std_p))


def gaussian_kl(mean: Array, log_std: Array) -> Array:
    """``KL(N(mean, diag s^2) || N(0, I))`` with ``s = exp(log_std)``, per example.

    ``KL = 1/2 sum_i (mean_i^2 + s_i^2 - 1 - 2 log s_i)`` (Kingma & Welling 2014, App. B).

    Args:
      mean: ``(B, *latent)``.
      log_std: ``(B, *latent)``.

    Returns:
      ``(B,)``.

    Raises:
      ValueError: when the two shapes differ.
    """
    _check_gaussian("mean", mean, "log_std", log_std)
    return _diagonal_gaussian_kl(mean, log_std, 0.0, 0.0)


def gaussian_kl_between(mean_q: Array, log_std_q: Array, mean_p: Array, log_std_p: Array) -> Array:
    """``KL(N(mean_q, diag s_q^2) || N(mean_p, diag s_p^2))`` per example.

    ``KL = sum_i [log s_p,i - log s_q,i + (s_q,i^2 + (mean_q,i - mean_p,i)^2) / (2 s_p,i^2)
    - 1/2]``: the per-layer term of hierarchical VAEs (Sonderby et al. 2016, Ladder VAE; Vahdat &
    Kautz 2020, NVAE), where ``p`` is the conditional prior of a layer.

    Args:
      mean_q: ``(B, *latent)``.
      log_std_q: ``(B, *latent)``.
      mean_p: broadcastable to ``(B, *latent)`` (e.g. ``(1, *latent)`` for a learned prior).
      log_std_p: broadcastable to ``(B, *latent)``.

    Returns:
      ``(B,)``.

    Raises:
      ValueError: when the shapes of ``q``'s parameters differ or ``p``'s do not broadcast to
        them.
    """
    _check_gaussian("mean_q", mean_q, "log_std_q", log_std_q)
    _check_broadcasts_to("mean_p", mean_p, "mean_q", mean_q)
    _check_broadcasts_to("log_std_p", log_std_p, "mean_q", mean_q)
    return _diagonal_gaussian_kl(mean_q, log_std_q, mean_p, log_std_p)


def monte_carlo_kl(
    key: PRNGKey,
    q: distrax.Distribution,
    p: distrax.Distribution,
    num_samples: int = 1,
) -> Array:
    """Monte Carlo ``KL(q || p) ~= (1/S) sum_s [log q(z_s) - log p(z_s)]``, ``z_s ~ q``.

    Unbiased for any pair of distributions on the same space; for reparameterisable ``q``
    (``sample_and_log_prob`` differentiable in its parameters) its gradient is the pathwise one.

    Args:
      key: a PRNG key.
      q: a distrax distribution with batch shape ``(B,)`` (wrap per-element distributions in
        ``distrax.Independent`` or use ``MultivariateNormalDiag`` so events are whole examples).
      p: a distrax distribution with the same batch and event shapes.
      num_samples: ``S >= 1``.

    Returns:
      ``(B,)``.

    Raises:
      ValueError: when ``num_samples < 1``, ``q``'s batch shape is not ``(B,)``, or ``p``'s batch
        or event shape differs from ``q``'s.
    """
    check_int("num_samples", num_samples, minimum=1)
    if len(q.batch_shape) != 1:
        raise ValueError(f"q must have batch shape (B,); got batch shape {tuple(q.batch_shape)}")
    for attr in ("batch_shape", "event_shape"):
        if tuple(getattr(p, attr)) != tuple(getattr(q, attr)):
            raise ValueError(
                f"p must have the {attr} of q, {tuple(getattr(q, attr))}; "
                f"got {tuple(getattr(p, attr))}"
            )
    z, log_q = q.sample_and_log_prob(seed=key, sample_shape=(num_samples,))
    return jnp.mean(log_q - p.log_prob(z), axis=0)


# --------------------------------------------------------------------------------------------
# Bounds.


def elbo(
    key: PRNGKey,
    x: Array,
    encoder: Encoder,
    log_likelihood: LogLikelihood,
    *,
    beta: float | Array = 1.0,
) -> tuple[Array, dict[str, Array]]:
    """The single-sample evidence lower bound with the analytic KL, weighted by ``beta``.

    ``ELBO_beta(x) = log p(x | z) - beta KL(q(z | x) || N(0, I))`` with the reparameterised
    ``z = mean(x) + exp(log_std(x)) * eps``, ``eps ~ N(0, I)`` (Kingma & Welling 2014, Eq. 10).
    Its expectation over ``eps`` is ``<= log p(x)`` for ``beta = 1``, with equality iff ``q(z | x)``
    is the posterior; ``beta > 1`` is the beta-VAE objective (Higgins et al. 2017).

    Args:
      key: a PRNG key for ``eps`` (``jax.random.normal(key, mean.shape)``).
      x: ``(B, *event)``.
      encoder: ``x -> (mean, log_std)``, each ``(B, *latent)`` (:data:`Encoder`).
      log_likelihood: ``(x, z) -> log p(x | z)`` of shape ``(B,)`` (:data:`LogLikelihood`).
      beta: the KL weight ``>= 0`` (a scalar, possibly traced, e.g. from :func:`kl_annealing`).

    Returns:
      ``(value, aux)``: the per-example ``value`` ``(B,)`` (maximise it; the loss is its negative
      mean) and ``aux = {"reconstruction": log p(x | z) (B,), "kl": KL (B,)}``.

    Raises:
      ValueError: when the encoder's outputs differ in shape or batch size from ``x``, the
        log-likelihood's output is not ``(B,)``, or ``beta < 0``.
    """
    check_positive("beta", beta, allow_zero=True)
    _check_batched("x", x)
    mean, log_std = encoder(x)
    _check_encoding(x, mean, log_std)
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    reconstruction = log_likelihood(x, _reparameterise(mean, log_std, eps))
    _check_log_likelihood_output(reconstruction, _shape(x)[0])
    kl = gaussian_kl(mean, log_std)
    return reconstruction - beta * kl, {"reconstruction": reconstruction, "kl": kl}


def _tile(a: Array, k: int) -> Array:
    """``(B, ...)`` to ``(k * B, ...)``, sample-major: row ``s * B + b`` is example ``b``."""
    return jnp.broadcast_to(a, (k, *a.shape)).reshape(k * a.shape[0], *a.shape[1:])


def iwae_bound(
    key: PRNGKey,
    x: Array,
    encoder: Encoder,
    log_likelihood: LogLikelihood,
    num_samples: int,
    *,
    gradient: str = "standard",
) -> tuple[Array, dict[str, Array]]:
    """The importance-weighted bound ``L_k`` (Burda, Grosse & Salakhutdinov 2016, Eq. 8).

    ``L_k(x) = log (1/k) sum_k w_k`` with ``log w_k = log p(x | z_k) + log N(z_k; 0, I)
    - log q(z_k | x)`` and ``z_k = mean(x) + exp(log_std(x)) * eps_k``. ``E[L_k] <= log p(x)``,
    increases with ``k`` and tends to ``log p(x)``; ``k = 1`` is the ELBO with a one-sample KL.

    The decoder sees one batch of ``k * B`` rows ordered sample-major: row ``s * B + b`` holds
    example ``b`` with its ``s``-th latent sample (``x`` tiled ``k`` times along the batch axis).

    Gradients (``w~_k = w_k / sum_j w_j``, ``sg`` = stop-gradient):

    - ``"standard"``: the reparameterised gradient of ``L_k``, ``sum_k w~_k grad log w_k``.
    - ``"dreg"``: the doubly reparameterised estimator (Tucker, Lawson, Gu & Maddison 2019, Eq. 7).
      For the encoder parameters ``phi`` it is ``sum_k w~_k^2 (d log w_k / d z_k) (d z_k / d phi)``:
      the score term of ``log q`` is dropped (``q``'s density is evaluated with ``sg`` on
      ``mean``, ``log_std``, while ``z_k`` keeps its path to ``phi``), which is unbiased and has a
      signal-to-noise ratio that does not vanish as ``k`` grows. For the decoder parameters
      ``theta`` it is the usual ``sum_k w~_k grad_theta log p(x | z_k)``. Parameters cannot be
      told apart inside this function, so the surrogate is built so that both hold::

          S = sum_k sg(w~_k^2) [log p(x | z_k) + log N(z_k; 0, I) - log q_sg(z_k | x)]
            + sum_k sg(w~_k - w~_k^2) log p(x | sg(z_k)),

      ``value = sg(L_k) + S - sg(S)``. The second sum has no path to ``phi`` (``z_k`` is
      stopped) and tops the decoder's weights up from ``w~_k^2`` to ``w~_k``. The value is
      ``L_k`` (``S - sg(S)`` is zero; bit for bit when run eagerly, to rounding under ``jit``,
      where XLA fuses the two programs differently). It costs a second decoder pass on the
      ``k * B`` rows. The variance reduction needs well-behaved weights: on a linear-Gaussian
      model with an encoder narrower than the posterior (heavy-tailed weights) the DReG encoder
      gradient was measured noisier than the standard one.

    Args:
      key: a PRNG key for the ``eps_k`` (``jax.random.normal(key, (k, *mean.shape))``).
      x: ``(B, *event)``.
      encoder: ``x -> (mean, log_std)``, each ``(B, *latent)``.
      log_likelihood: ``(x, z) -> log p(x | z)``, called on ``k * B`` rows, returns ``(k * B,)``.
      num_samples: ``k >= 1``.
      gradient: ``"standard"`` or ``"dreg"``.

    Returns:
      ``(value, aux)``: ``value`` ``(B,)`` and ``aux = {"log_weights": (k, B), "ess": (B,)}``,
      both without gradient; ``ess = (sum_k w_k)^2 / sum_k w_k^2`` in ``[1, k]``.

    Raises:
      ValueError: when ``num_samples < 1``, ``gradient`` is unknown, the encoder's outputs do not
        match ``x``, or the log-likelihood's output is not ``(k * B,)``.
    """
    check_int("num_samples", num_samples, minimum=1)
    check_choice("gradient", gradient, GRADIENTS)
    _check_batched("x", x)
    mean, log_std = encoder(x)
    _check_encoding(x, mean, log_std)
    k, batch, latent_ndims = num_samples, _shape(x)[0], mean.ndim - 1
    eps = jax.random.normal(key, (k, *mean.shape), mean.dtype)
    z = _reparameterise(mean, log_std, eps)  # (k, B, *latent)
    flat_x, flat_z = _tile(x, k), z.reshape(k * batch, *mean.shape[1:])

    def decoder_log_prob(latents):
        value = log_likelihood(flat_x, latents)
        _check_log_likelihood_output(value, k * batch)
        return value.reshape(k, batch)

    log_px = decoder_log_prob(flat_z)
    log_prior = standard_normal_log_prob(z, latent_ndims)
    if gradient == "dreg":
        mean, log_std = jax.lax.stop_gradient((mean, log_std))
    log_q = _sum_event(_normal_log_density(z, mean, log_std), batch_ndims=2)
    log_w = log_px + log_prior - log_q
    bound = logsumexp(log_w, axis=0) - math.log(k)

    stopped = jax.lax.stop_gradient(log_w)
    aux = {
        "log_weights": stopped,
        "ess": jnp.exp(2.0 * logsumexp(stopped, axis=0) - logsumexp(2.0 * stopped, axis=0)),
    }
    if gradient == "standard":
        return bound, aux
    w = jax.nn.softmax(stopped, axis=0)
    surrogate = jnp.sum(
        w**2 * log_w + (w - w**2) * decoder_log_prob(jax.lax.stop_gradient(flat_z)), axis=0
    )
    value = jax.lax.stop_gradient(bound) + (surrogate - jax.lax.stop_gradient(surrogate))
    return value, aux


# --------------------------------------------------------------------------------------------
# KL weight schedules.


def kl_annealing(
    step: int | Array, *, warmup_steps: int, beta_max: float | Array = 1.0, cycles: int = 1
) -> Array:
    """The KL weight ``beta`` at ``step``: a linear warm-up, optionally repeated.

    ``cycles = 1``: ``beta = beta_max min(step / warmup_steps, 1)`` (Bowman et al. 2016,
    "Generating sentences from a continuous space"). ``cycles = M > 1``: the cyclical schedule of
    Fu et al. 2019 ("Cyclical annealing schedule", NAACL) with their ratio ``R = 0.5``: ``M``
    cycles of ``2 warmup_steps`` steps, each ramping ``beta`` from 0 to ``beta_max`` over
    ``warmup_steps`` steps and holding it for ``warmup_steps``; after the last ramp ``beta`` stays
    at ``beta_max``. ``cycles = 1`` is the special case with one ramp.

    Args:
      step: the training step, an integer (possibly traced, any shape).
      warmup_steps: steps per ramp, ``>= 1``.
      beta_max: the final weight ``>= 0``.
      cycles: the number of ramps ``M >= 1``.

    Returns:
      ``beta`` with the shape of ``step`` (floating point; 0 for negative steps).

    Raises:
      ValueError: when ``warmup_steps`` or ``cycles`` is not a positive integer or
        ``beta_max < 0``.
    """
    check_int("warmup_steps", warmup_steps, minimum=1)
    check_int("cycles", cycles, minimum=1)
    check_positive("beta_max", beta_max, allow_zero=True)
    step = jnp.maximum(jnp.asarray(step), 0)
    period = 2 * warmup_steps
    # Within the first M - 1 cycles the position restarts every period; the last ramp never ends.
    last_start = (cycles - 1) * period
    position = jnp.where(step < last_start, jnp.mod(step, period), step - last_start)
    return beta_max * jnp.clip(position / warmup_steps, 0.0, 1.0)
