"""Discrete noise schedules: DDPM's linear and cosine betas, NCSN's geometric sigmas."""

import jax.numpy as jnp


def linear_betas(num_steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> jnp.ndarray:
    """``beta_i`` evenly spaced from ``beta_start`` to ``beta_end`` (Ho et al. 2020, DDPM).

    Returns:
      ``(num_steps,)`` betas; ``alpha_bar_i = prod_{j <= i} (1 - beta_j)``.
    """
    return jnp.linspace(beta_start, beta_end, num_steps)


def cosine_betas(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> jnp.ndarray:
    """Betas of ``alpha_bar(t) = cos^2(((t / N + s) / (1 + s)) pi / 2)``, clipped at ``max_beta``
    (Nichol & Dhariwal 2021, "Improved denoising diffusion probabilistic models")."""
    t = jnp.arange(num_steps + 1) / num_steps
    alpha_bar = jnp.cos((t + s) / (1 + s) * jnp.pi / 2) ** 2
    return jnp.minimum(1 - alpha_bar[1:] / alpha_bar[:-1], max_beta)


def alphas_cumprod(betas: jnp.ndarray) -> jnp.ndarray:
    """``alpha_bar_i = prod_{j <= i} (1 - beta_j)``: the signal kept after step ``i``."""
    return jnp.cumprod(1.0 - betas)


def geometric_sigmas(sigma_max: float, sigma_min: float, num_levels: int) -> jnp.ndarray:
    """``num_levels`` noise levels from ``sigma_max`` down to ``sigma_min`` in geometric progression
    (Song & Ermon 2019, NCSN)."""
    return jnp.exp(jnp.linspace(jnp.log(sigma_max), jnp.log(sigma_min), num_levels))
