"""Forward diffusion SDEs ``dx = f(x, t) dt + g(t) dw`` on ``t in [0, T]`` and their reversals.

Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole 2021, "Score-based generative modeling through
stochastic differential equations". Each SDE is a frozen dataclass registered as a pytree (its
floats are leaves, so an SDE passes through ``jit`` and ``vmap``). Batch-first: ``x`` is
``(n, *event)`` and ``t`` is ``(n,)``; ``drift`` returns the shape of ``x``, ``diffusion`` and the
marginal ``std`` return ``(n,)``.

* VP:     ``dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw``, ``beta(t) = b0 + t (b1 - b0)``;
          ``x_t | x_0 ~ N(m x_0, (1 - m^2) I)`` with ``log m = -t^2 (b1 - b0) / 4 - t b0 / 2``.
          Its Euler discretisation with ``N`` steps is DDPM with ``beta_i = beta(i / N) / N``.
* sub-VP: the VP drift, ``g(t)^2 = beta(t) (1 - exp(-2 int_0^t beta))``; std ``1 - m^2``.
* VE:     ``dx = sqrt(d sigma(t)^2 / dt) dw``, ``sigma(t) = s0 (s1 / s0)^t``; std ``sigma(t)``
          (NCSN's convention, ignoring the ``s0^2`` present at ``t = 0``).
"""

import dataclasses
import math

import jax
import jax.numpy as jnp

from jgen.types import Array, PRNGKey, TimeScoreFn


def expand(v: Array, x: Array) -> Array:
    """Reshapes per-example values ``(n,)`` to broadcast against ``x`` of shape ``(n, *event)``."""
    return jnp.reshape(v, v.shape + (1,) * (x.ndim - v.ndim))


def _isotropic_normal_log_prob(z: Array, std=1.0) -> Array:
    """``log N(z; 0, std^2 I)`` per example."""
    d = math.prod(z.shape[1:])
    flat = z.reshape(z.shape[0], -1)
    return -0.5 * jnp.sum(flat**2, -1) / std**2 - d * (jnp.log(std) + 0.5 * math.log(2 * math.pi))


def _pytree(cls):
    """A frozen dataclass whose fields are pytree leaves, except those marked ``static``."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    fields = dataclasses.fields(cls)
    data = [f.name for f in fields if not f.metadata.get("static")]
    meta = [f.name for f in fields if f.metadata.get("static")]
    return jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=meta)


@_pytree
class VPSDE:
    """Variance-preserving SDE; the continuous limit of DDPM. ``T = 1``."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    T = 1.0

    def beta(self, t: Array) -> Array:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def log_mean_coeff(self, t: Array) -> Array:
        """``log m(t) = -int_0^t beta / 2``."""
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def drift(self, x: Array, t: Array) -> Array:
        return -0.5 * expand(self.beta(t), x) * x

    def diffusion(self, t: Array) -> Array:
        return jnp.sqrt(self.beta(t))

    def marginal(self, x0: Array, t: Array) -> tuple[Array, Array]:
        """Mean ``(n, *event)`` and std ``(n,)`` of ``x_t | x_0``."""
        log_m = self.log_mean_coeff(t)
        return expand(jnp.exp(log_m), x0) * x0, jnp.sqrt(-jnp.expm1(2 * log_m))

    def prior_sample(self, key: PRNGKey, shape: tuple[int, ...]) -> Array:
        return jax.random.normal(key, shape)

    def prior_log_prob(self, z: Array) -> Array:
        return _isotropic_normal_log_prob(z)


@_pytree
class SubVPSDE(VPSDE):
    """Sub-variance-preserving SDE: the VP drift and prior with a smaller diffusion. ``T = 1``."""

    def diffusion(self, t: Array) -> Array:
        return jnp.sqrt(self.beta(t) * -jnp.expm1(4 * self.log_mean_coeff(t)))

    def marginal(self, x0: Array, t: Array) -> tuple[Array, Array]:
        log_m = self.log_mean_coeff(t)
        return expand(jnp.exp(log_m), x0) * x0, -jnp.expm1(2 * log_m)


@_pytree
class VESDE:
    """Variance-exploding SDE; the continuous limit of NCSN's noise levels. ``T = 1``."""

    sigma_min: float = 0.01
    sigma_max: float = 50.0
    T = 1.0

    def sigma(self, t: Array) -> Array:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def drift(self, x: Array, t: Array) -> Array:
        return jnp.zeros_like(x)

    def diffusion(self, t: Array) -> Array:
        return self.sigma(t) * jnp.sqrt(2 * jnp.log(self.sigma_max / self.sigma_min))

    def marginal(self, x0: Array, t: Array) -> tuple[Array, Array]:
        return x0, self.sigma(t)

    def prior_sample(self, key: PRNGKey, shape: tuple[int, ...]) -> Array:
        return self.sigma_max * jax.random.normal(key, shape)

    def prior_log_prob(self, z: Array) -> Array:
        return _isotropic_normal_log_prob(z, self.sigma_max)


SDE = VPSDE | SubVPSDE | VESDE


@_pytree
class ReverseSDE:
    """``dx = [f(x, t) - c g(t)^2 score(x, t)] dt + [c == 1] g(t) dw``, run from ``t = T`` to 0
    (Anderson 1982). ``c = 1`` is the reverse-time SDE, ``c = 1/2`` the probability-flow ODE
    (``diffusion`` is then 0), which has the same marginals."""

    sde: SDE
    score_fn: TimeScoreFn = dataclasses.field(metadata={"static": True})
    probability_flow: bool = dataclasses.field(default=False, metadata={"static": True})

    @property
    def T(self) -> float:
        return self.sde.T

    def drift(self, x: Array, t: Array) -> Array:
        c = 0.5 if self.probability_flow else 1.0
        g2 = expand(self.sde.diffusion(t) ** 2, x)
        return self.sde.drift(x, t) - c * g2 * self.score_fn(x, t)

    def diffusion(self, t: Array) -> Array:
        g = self.sde.diffusion(t)
        return jnp.zeros_like(g) if self.probability_flow else g


def reverse(sde: SDE, score_fn: TimeScoreFn, probability_flow: bool = False) -> ReverseSDE:
    """The reverse-time SDE (or, with ``probability_flow=True``, the probability-flow ODE) of
    ``sde`` given the score ``score_fn(x, t) = grad_x log p_t(x)``."""
    return ReverseSDE(sde, score_fn, probability_flow)
