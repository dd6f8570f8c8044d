"""Exponential tilting of a trained generator: an energy-based correction of a flow or a VAE.

A frozen base model ``q`` (a normalizing flow ``x = g(z)``, ``z ~ N(0, I)``, or the mean of a VAE
decoder) is corrected by an energy ``E``:

    p(x) = q(x) exp(-E(x)) / Z,        Z = E_q[exp(-E(x))].

For a flow, ``q(x) = N(z; 0, I) |det dg/dz|^-1`` at ``z = g^-1(x)``, and pulling ``p`` back to the
latent space multiplies by ``|det dg/dz|``, which cancels the Jacobian of ``q``:

    p(z) = N(z; 0, I) exp(-E(g(z))) / Z,     U(z) = 1/2 |z|^2 + E(g(z)),

so ``p`` is sampled by Langevin dynamics on the latent energy ``U``, where the base has already
whitened the data and the chains mix (Nijkamp et al. 2022, "MCMC should mix: learning
energy-based model with neural transport latent space MCMC"; Xiao, Yan & Amit 2021, "VAEBM: a
symbiosis between variational autoencoders and energy-based models"; Arbel, Zhou & Gretton 2021,
"Generalized energy based models"). For a VAE decoder mean the same ``U`` defines the tilted
latent model whose decoded samples are the outputs (VAEBM's ``p(z) exp(-E(g(z)))`` term).

Training maximises the likelihood of the data under ``p`` with the base frozen. ``log Z``
depends on the energy's parameters ``theta`` through ``d log Z = -E_p[d E_theta(x)]``, so

    d(-1/n sum_i log p(x_i)) = 1/n sum_i d E_theta(x_i) - E_p[d E_theta(x)],

estimated with model samples ``x = g(z)``, ``z`` from latent Langevin (:func:`sample_latent`),
as the gradient of the surrogate :func:`tilting_loss`.

All functions are pure and batch-first: energies and log-densities map ``(n, *event) -> (n,)``;
bind parameters with ``functools.partial`` first.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_choice, check_positive, is_traced
from jgen.convert import log_prob_from_energy, score_from_energy
from jgen.losses.ebm import contrastive_loss
from jgen.samplers.langevin import langevin, mala
from jgen.types import Array, PRNGKey

BatchFn = Callable[[Array], Array]


# --------------------------------------------------------------------------------------------------
# Shape checks shared by every function below.


def _check_batch(name: str, x) -> None:
    """Raises ``ValueError`` unless ``x`` is a floating-point batch ``(n, *event)``, ``n >= 1``."""
    shape = tuple(np.shape(x))
    if len(shape) < 2 or shape[0] < 1:
        raise ValueError(
            f"{name} must be a batch of shape (n, *event) with rank >= 2 and n >= 1; "
            f"got shape {shape}"
        )
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise ValueError(f"{name} must have a floating-point dtype; got dtype {jnp.result_type(x)}")


def _checked_energy(name: str, energy_fn: BatchFn, x: Array, input_name: str = "x") -> Array:
    """``energy_fn(x)`` after checking that it returned one value per example: shape ``(n,)``."""
    values = energy_fn(x)
    if tuple(np.shape(values)) != x.shape[:1]:
        raise ValueError(
            f"{name} must map {input_name} of shape (n, *event) to shape (n,); got shape "
            f"{tuple(np.shape(values))} for {input_name} of shape {tuple(x.shape)}"
        )
    return values


def standard_normal_energy(z: Array) -> Array:
    """The energy of the base prior ``N(0, I)``: ``U_0(z) = 1/2 |z|^2`` (``log Z`` dropped).

    Args:
      z: latents ``(n, *latent)``.

    Returns:
      ``(n,)``, the half squared norm of each example over all its latent axes.
    """
    return 0.5 * jnp.sum(jnp.square(z.reshape(z.shape[0], -1)), axis=1)


# --------------------------------------------------------------------------------------------------
# Densities.


def latent_energy(
    energy_fn: BatchFn, decode_fn: BatchFn, *, prior_energy: BatchFn | None = None
) -> BatchFn:
    """Returns the latent energy of the tilted model, ``z -> U(z) = U_0(z) + E(g(z))``.

    With the flow prior ``U_0(z) = 1/2 |z|^2`` (the default), ``exp(-U)`` is the pullback of
    ``p(x) ∝ q(x) exp(-E(x))`` through ``x = g(z)``: the Jacobian factor of ``q`` cancels with the
    change of variables (module docstring; Nijkamp et al. 2022; Arbel, Zhou & Gretton 2021). For a
    VAE decoder mean ``g`` it is the VAEBM latent energy (Xiao, Yan & Amit 2021).

    Args:
      energy_fn: the tilt ``E``, ``(n, *event) -> (n,)``.
      decode_fn: the frozen generator ``g``, ``(n, *latent) -> (n, *event)``.
      prior_energy: ``U_0``, ``(n, *latent) -> (n,)``, the negative log-density of a base prior
        other than ``N(0, I)`` (up to a constant); default :func:`standard_normal_energy`.

    Returns:
      ``(n, *latent) -> (n,)``.

    Raises:
      ValueError: (when called) if ``z`` is not a floating-point batch, ``decode_fn`` does not
        keep the batch size, or ``energy_fn`` / ``prior_energy`` do not return shape ``(n,)``.
    """
    prior = standard_normal_energy if prior_energy is None else prior_energy

    def energy(z: Array) -> Array:
        _check_batch("z", z)
        x = decode_fn(z)
        if np.ndim(x) < 1 or np.shape(x)[0] != z.shape[0]:
            raise ValueError(
                f"decode_fn must map z of shape (n, *latent) to shape (n, *event); got shape "
                f"{tuple(np.shape(x))} for z of shape {tuple(z.shape)}"
            )
        u0 = _checked_energy("prior_energy", prior, z, "z")
        return u0 + _checked_energy("energy_fn", energy_fn, x)

    return energy


def tilted_log_prob_unnormalized(energy_fn: BatchFn, base_log_prob: BatchFn) -> BatchFn:
    """Returns ``x -> log q(x) - E(x)``, the tilted log-density ``log p(x) + log Z``.

    ``p(x) = q(x) exp(-E(x)) / Z`` (Arbel, Zhou & Gretton 2021, "Generalized energy based
    models"); ``Z`` is unknown, so only differences between points are meaningful (estimate it
    with importance sampling from ``q``: ``Z = E_q[exp(-E)]``).

    Args:
      energy_fn: ``(n, *event) -> (n,)``.
      base_log_prob: the base model's log-density ``log q``, ``(n, *event) -> (n,)``.

    Returns:
      ``(n, *event) -> (n,)``.

    Raises:
      ValueError: (when called) for a non-batch ``x`` or functions not returning shape ``(n,)``.
    """

    def log_prob(x: Array) -> Array:
        _check_batch("x", x)
        log_q = _checked_energy("base_log_prob", base_log_prob, x)
        return log_q - _checked_energy("energy_fn", energy_fn, x)

    return log_prob


# --------------------------------------------------------------------------------------------------
# Sampling.


def sample_latent(
    energy_fn: BatchFn,
    decode_fn: BatchFn,
    z0: Array,
    key: PRNGKey,
    *,
    step_size: float,
    n_steps: int,
    noise_scale: float = 1.0,
    grad_clip: float | None = None,
    prior_energy: BatchFn | None = None,
    method: str = "langevin",
    record_every: int = 0,
) -> tuple[Array, Array, dict]:
    """Samples the tilted model by MCMC in the latent space and decodes: ``x = g(z)``.

    The chains target ``p(z) ∝ exp(-U(z))``, ``U = U_0 + E o g`` (:func:`latent_energy`), with

    - ``method="langevin"``: unadjusted Langevin :func:`jgen.samplers.langevin.langevin` on the
      score ``-grad U`` (:func:`jgen.convert.score_from_energy`),
      ``z <- z - (h/2) grad U(z) + sigma sqrt(h) eps``; ``O(h)`` biased, the usual short-run EBM
      sampler (Nijkamp et al. 2022);
    - ``method="mala"``: :func:`jgen.samplers.langevin.mala`, the Metropolis-adjusted version,
      exact for any ``h`` (no ``noise_scale`` or ``grad_clip``).

    Args:
      energy_fn: the tilt ``E``, ``(n, *event) -> (n,)``.
      decode_fn: the frozen generator ``g``, ``(n, *latent) -> (n, *event)``.
      z0: initial latents ``(n, *latent)``, floating point (e.g. prior draws, or persistent
        chains from the previous training step).
      key: PRNG key of the chains.
      step_size: ``h > 0``.
      n_steps: number of steps, an int ``>= 1``.
      noise_scale: ``sigma >= 0`` (Langevin only).
      grad_clip: per-example bound on the score's L2 norm (Langevin only).
      prior_energy: ``U_0``, default ``1/2 |z|^2``.
      method: ``"langevin"`` or ``"mala"``.
      record_every: if ``k > 0``, ``info["trajectory"]`` holds the latents every ``k`` steps.

    Returns:
      ``(x, z, info)``: decoded samples ``g(z)`` ``(n, *event)``, final latents ``z``
      ``(n, *latent)``, and the sampler's info dict plus ``energy``, the mean tilt ``E(x)``
      over the final samples.

    Raises:
      ValueError: for a bad ``z0``, ``step_size``, ``n_steps``, ``noise_scale``, ``grad_clip``,
        an unknown ``method``, or Langevin-only options given with ``method="mala"``.
    """
    check_choice("method", method, _SAMPLERS)
    _check_batch("z0", z0)
    u = latent_energy(energy_fn, decode_fn, prior_energy=prior_energy)
    changed_noise = not is_traced(noise_scale) and np.any(np.asarray(noise_scale) != 1.0)
    if method == "mala" and (changed_noise or grad_clip is not None):
        raise ValueError(
            "noise_scale and grad_clip apply to method='langevin' only; got "
            f"noise_scale={noise_scale!r}, grad_clip={grad_clip!r} with method='mala'"
        )
    options = {"noise_scale": noise_scale, "grad_clip": grad_clip} if method == "langevin" else {}
    sampler = _SAMPLERS[method]
    z, info = sampler(
        u,
        jnp.asarray(z0),
        key,
        step_size=step_size,
        n_steps=n_steps,
        record_every=record_every,
        **options,
    )
    x = decode_fn(z)
    info["energy"] = _checked_energy("energy_fn", energy_fn, x).mean()
    return x, z, info


def _langevin_on_energy(u: BatchFn, z0: Array, key: PRNGKey, **kwargs) -> tuple[Array, dict]:
    return langevin(score_from_energy(u), z0, key, **kwargs)


def _mala_on_energy(u: BatchFn, z0: Array, key: PRNGKey, **kwargs) -> tuple[Array, dict]:
    return mala(log_prob_from_energy(u), z0, key, **kwargs)


_SAMPLERS = {"langevin": _langevin_on_energy, "mala": _mala_on_energy}


# --------------------------------------------------------------------------------------------------
# Training.


def tilting_loss(
    energy_fn: BatchFn, x_data: Array, x_model: Array, *, l2_weight: float = 0.0
) -> tuple[Array, dict]:
    """The maximum-likelihood surrogate of an exponentially tilted model (base frozen).

        L = 1/n sum_i E(x_i) - 1/m sum_j E(sg(x~_j))
            + lambda (1/n sum_i E(x_i)^2 + 1/m sum_j E(sg(x~_j))^2),

    with ``x~_j`` model samples (:func:`sample_latent`) and ``sg`` the stop-gradient. Its gradient
    in the energy's parameters is the log-likelihood gradient
    ``1/n sum_i dE(x_i) - E_p[dE(x)]`` (module docstring; Nijkamp et al. 2022; Arbel, Zhou &
    Gretton 2021) plus the energy-magnitude regulariser of Du & Mordatch 2019 ("Implicit
    generation and generalization in energy-based models"), which keeps ``E`` from drifting by a
    constant the contrastive term cannot see. The value is not ``-log p`` (``log Z`` is unknown).

    Bind the parameters first and differentiate through ``energy_fn``::

        grads = jax.grad(lambda p: tilting_loss(partial(E, p), x, x_neg)[0])(params)

    Args:
      energy_fn: ``(n, *event) -> (n,)``.
      x_data: data ``(n, *event)``.
      x_model: model samples ``(m, *event)``, same event shape; no gradient flows into them.
      l2_weight: ``lambda >= 0``.

    Returns:
      ``(loss, aux)`` as :func:`jgen.losses.ebm.contrastive_loss` (the surrogate of every EBM
      trained with sampled negatives) returns them: the mean energies ``energy_data`` and
      ``energy_model``, ``energy_gap`` (the first two terms) and ``energy_l2`` (the bracket).

    Raises:
      ValueError: for non-batch inputs, different event shapes, a negative ``l2_weight``, or an
        ``energy_fn`` that does not return one value per example.
    """
    _check_batch("x_data", x_data)
    _check_batch("x_model", x_model)
    if np.shape(x_data)[1:] != np.shape(x_model)[1:]:
        raise ValueError(
            "x_data and x_model must share the event shape; got shapes "
            f"{tuple(np.shape(x_data))} and {tuple(np.shape(x_model))}"
        )
    check_positive("l2_weight", l2_weight, allow_zero=True)
    x_data = jnp.asarray(x_data)
    x_model = jax.lax.stop_gradient(jnp.asarray(x_model))
    e_data = _checked_energy("energy_fn", energy_fn, x_data, "x_data")
    e_model = _checked_energy("energy_fn", energy_fn, x_model, "x_model")
    return contrastive_loss(e_data, e_model, l2_weight=l2_weight)
