"""Annealed Langevin dynamics, the sampler of noise-conditional score networks (NCSN).

Song & Ermon 2019, "Generative modeling by estimating gradients of the data distribution",
Algorithm 1, with the final denoising step of Song & Ermon 2020, "Improved techniques for training
score-based generative models", and Jolicoeur-Martineau et al. 2021, "Adversarial score matching
and improved sampling for image generation".
"""

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_int, check_positive, is_traced
from jgen.samplers.chain import run_chain
from jgen.types import Array, NoiseScoreFn, PRNGKey


def _per_example_norm(x: Array) -> Array:
    return jnp.sqrt(jnp.sum(jnp.reshape(x, (x.shape[0], -1)) ** 2, axis=-1))


def _check_sigmas(sigmas) -> None:
    if jnp.ndim(sigmas) != 1 or jnp.shape(sigmas)[0] < 1:
        raise ValueError(
            f"sigmas must be a 1-D array of at least one noise level; got shape "
            f"{tuple(jnp.shape(sigmas))}"
        )
    if is_traced(sigmas):
        return  # values unknown under tracing; only the shape can be checked
    values = np.asarray(sigmas, dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"sigmas must be positive and finite; got {values.tolist()}")
    if np.any(np.diff(values) >= 0):
        raise ValueError(
            f"sigmas must be strictly decreasing (sigma_1 > ... > sigma_L); got {values.tolist()}"
        )


def annealed_langevin(
    score_fn: NoiseScoreFn,
    x0: Array,
    key: PRNGKey,
    *,
    sigmas: Array,
    n_steps_each: int,
    step_lr: float,
    denoise: bool = True,
    record_every: int = 0,
) -> tuple[Array, dict]:
    """Samples with annealed Langevin dynamics from a noise-conditional score ``s(x, sigma)``.

    For each noise level ``sigma_1 > ... > sigma_L`` in turn, with step size
    ``alpha_i = step_lr * sigma_i^2 / sigma_L^2`` (Song & Ermon 2019, Alg. 1), runs
    ``n_steps_each`` unadjusted Langevin steps targeting the data perturbed by ``N(0, sigma_i^2)``::

        x <- x + alpha_i / 2 * s(x, sigma_i) + sqrt(alpha_i) * z,    z ~ N(0, I).

    The step grows with ``sigma_i^2`` so that the signal-to-noise ratio of a step is the same at
    every level. With ``denoise`` the samples finally take one step of Tweedie's formula,
    ``x <- x + sigma_L^2 s(x, sigma_L) = E[x_clean | x]`` under the ``sigma_L``-perturbed
    distribution, which removes the last level's noise (Song & Ermon 2020; Jolicoeur-Martineau et
    al. 2021). All ``L * n_steps_each`` steps run in one :func:`run_chain` scan; step ``t`` is at
    level ``t // n_steps_each``.

    Args:
      score_fn: ``(x (n, *event), sigma (n,)) -> (n, *event)``, an estimate of
        ``grad_x log p_sigma(x)``, the score of the data convolved with ``N(0, sigma^2 I)``.
      x0: initial samples ``(n, *event)`` (NCSN uses uniform noise), floating point.
      key: PRNG key of the chains (split once per step by ``run_chain``).
      sigmas: ``(L,)`` strictly decreasing positive noise levels, e.g.
        :func:`jgen.sdes.schedules.geometric_sigmas`.
      n_steps_each: Langevin steps per level ``T`` (Python int, >= 1).
      step_lr: ``epsilon``, the step size at the last level (> 0).
      denoise: whether to apply the final Tweedie denoising step.
      record_every: when ``k > 0``, keep ``x`` after every ``k``-th step (``k`` must divide
        ``L * n_steps_each``); 0 keeps no trajectory.

    Returns:
      ``(x, info)``: samples ``(n, *event)`` in the dtype of ``x0``, and a dict of means over all
      steps of ``scaled_score_norm`` (``sigma_i ||s(x, sigma_i)||``, close to ``sqrt(dim)`` at
      levels where ``sigma_i`` dominates the data's own spread, since ``||s|| ~ sqrt(dim) / sigma``
      there, Song & Ermon 2020; much larger values flag a diverging chain) and ``step_norm``
      (``||x_new - x||``), each averaged over the chains, and, when ``record_every > 0``,
      ``trajectory`` of shape ``(L * n_steps_each // record_every, n, *event)`` (before
      denoising).
    """
    if jnp.ndim(x0) < 1:
        raise ValueError(f"x0 must be a batch of shape (n, *event); got shape {jnp.shape(x0)}")
    x0 = jnp.asarray(x0)
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        raise ValueError(f"x0 must have a floating-point dtype; got dtype {x0.dtype}")
    _check_sigmas(sigmas)
    check_int("n_steps_each", n_steps_each)
    check_positive("step_lr", step_lr)
    sigmas = jnp.asarray(sigmas, x0.dtype)
    n_levels = sigmas.shape[0]
    sigma_last = sigmas[-1]
    n = x0.shape[0]

    def step(x, key, t):
        sigma = sigmas[t // n_steps_each]
        alpha = step_lr * (sigma / sigma_last) ** 2
        score = score_fn(x, jnp.full((n,), sigma, x.dtype))
        z = jax.random.normal(key, x.shape, x.dtype)
        x_new = (x + 0.5 * alpha * score + jnp.sqrt(alpha) * z).astype(x.dtype)
        info = {
            "scaled_score_norm": jnp.mean(sigma * _per_example_norm(score)),
            "step_norm": jnp.mean(_per_example_norm(x_new - x)),
        }
        return x_new, info

    x, info, trajectory = run_chain(
        step, x0, key, n_levels * n_steps_each, record_every=record_every
    )
    if denoise:
        score = score_fn(x, jnp.full((n,), sigma_last, x.dtype))
        x = (x + sigma_last**2 * score).astype(x0.dtype)
    if trajectory is not None:
        info["trajectory"] = trajectory
    return x, info
