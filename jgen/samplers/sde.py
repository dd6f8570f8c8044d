"""Sampling by reversing a diffusion SDE: predictors, the Langevin corrector, and the
predictor–corrector loop of Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole 2021,
"Score-based generative modeling through stochastic differential equations" (Algorithms 1–3).

The reverse time runs on a uniform grid ``t_i = T - i dt``, ``dt = (T - eps) / n_steps``,
``i = 0 .. n_steps - 1``; step ``i`` moves ``x`` from ``t_i`` to ``t_i - dt`` and ends at
``t = eps``. Every update is batch-first (``x`` of shape ``(n, *event)``, ``t`` of shape
``(n,)``) and takes the score ``score_fn(x, t) = grad_x log p_t(x)`` of the forward SDE's
marginals. A predictor or corrector returns ``(x, x_mean)``: the new state and its mean before the
last noise was added, which the final denoising step returns instead of ``x``.

The loop runs on :func:`jgen.samplers.chain.run_chain` (a ``lax.scan``), keeps no trajectory unless
``record_every > 0``, and never jits itself.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jgen.checks import check_choice, check_int, check_positive, check_sample_shape
from jgen.samplers.chain import run_chain
from jgen.sdes.sde import SDE, VESDE, VPSDE, SubVPSDE, expand, reverse
from jgen.types import Array, PRNGKey, TimeScoreFn

#: Largest per-step ``beta_i = beta(t) dt`` of the VP discretisation; keeps ``sqrt(1 - beta_i)``
#: real when ``n_steps`` is too small for ``beta_max`` (the cap of Nichol & Dhariwal's betas).
MAX_BETA = 0.999

Update = Callable[..., tuple[Array, Array]]


# --------------------------------------------------------------------------------------------------
# Discretisations ``x_{i+1} = x_i + f_i(x_i) + G_i z_i`` of the forward SDEs.


def _euler_discretization(sde, x: Array, t: Array, dt) -> tuple[Array, Array]:
    return sde.drift(x, t) * dt, sde.diffusion(t) * jnp.sqrt(dt)


def _vp_discretization(sde: VPSDE, x: Array, t: Array, dt) -> tuple[Array, Array]:
    beta = jnp.minimum(sde.beta(t) * dt, MAX_BETA)
    return (expand(jnp.sqrt(1.0 - beta), x) - 1.0) * x, jnp.sqrt(beta)


def _ve_discretization(sde: VESDE, x: Array, t: Array, dt) -> tuple[Array, Array]:
    return jnp.zeros_like(x), jnp.sqrt(sde.sigma(t) ** 2 - sde.sigma(t - dt) ** 2)


_DISCRETIZATIONS = {VPSDE: _vp_discretization, VESDE: _ve_discretization}


def discretize(sde: SDE, x: Array, t: Array, dt) -> tuple[Array, Array]:
    """The forward step from ``t - dt`` to ``t`` as ``x <- x + f + G z``, ``z ~ N(0, I)``.

    Follows the discretisations of Song et al. 2021 (their ``sde_lib``), under which the reverse
    diffusion predictor is DDPM's ancestral step (VP) or NCSN's (VE):

    * VP: ``f = (sqrt(1 - beta_i) - 1) x``, ``G = sqrt(beta_i)`` with ``beta_i = beta(t) dt``
      (DDPM's Markov chain ``x_i = sqrt(1 - beta_i) x_{i-1} + sqrt(beta_i) z``; ``beta_i`` is capped
      at ``MAX_BETA``).
    * VE: ``f = 0``, ``G = sqrt(sigma(t)^2 - sigma(t - dt)^2)`` (NCSN's noise levels).
    * any other SDE (sub-VP included): Euler–Maruyama, ``f = f(x, t) dt``, ``G = g(t) sqrt(dt)``.

    Args:
      sde: the forward SDE.
      x: ``(n, *event)`` states.
      t: ``(n,)`` times.
      dt: the positive step size.

    Returns:
      ``(f, G)``: ``f`` of the shape of ``x`` and ``G`` of shape ``(n,)``.
    """
    return _DISCRETIZATIONS.get(type(sde), _euler_discretization)(sde, x, t, dt)


# --------------------------------------------------------------------------------------------------
# Predictors: one step of a discretised reverse-time SDE from ``t`` to ``t - dt``.


def euler_maruyama_predictor(
    sde: SDE, score_fn: TimeScoreFn, x: Array, t: Array, dt, key: PRNGKey
) -> tuple[Array, Array]:
    """One Euler–Maruyama step of the reverse-time SDE, backwards in time by ``dt > 0``:

        x_mean = x - [f(x, t) - g(t)^2 score(x, t)] dt,    x = x_mean + g(t) sqrt(dt) z.

    Args:
      sde: the forward SDE.
      score_fn: ``score_fn(x, t)``, ``(n, *event), (n,) -> (n, *event)``.
      x: ``(n, *event)`` states at time ``t``.
      t: ``(n,)`` times.
      dt: the positive step size.
      key: the step's key.

    Returns:
      ``(x, x_mean)`` at time ``t - dt``.
    """
    rsde = reverse(sde, score_fn)
    x_mean = x - rsde.drift(x, t) * dt
    z = jax.random.normal(key, x.shape, x.dtype)
    return x_mean + expand(rsde.diffusion(t) * jnp.sqrt(dt), x) * z, x_mean


def reverse_diffusion_predictor(
    sde: SDE, score_fn: TimeScoreFn, x: Array, t: Array, dt, key: PRNGKey
) -> tuple[Array, Array]:
    """The reverse of the forward step of :func:`discretize` (Song et al. 2021, eq. 46):

        x_mean = x - f_i + G_i^2 score(x, t),    x = x_mean + G_i z.

    Under the VP discretisation this is DDPM's ancestral step with ``sigma_i^2 = beta_i`` (to first
    order in ``beta_i``); under VE it is the NCSN/SMLD ancestral step.

    Args and returns as in :func:`euler_maruyama_predictor`.
    """
    f, g = discretize(sde, x, t, dt)
    g = expand(g, x)
    x_mean = x - f + g**2 * score_fn(x, t)
    z = jax.random.normal(key, x.shape, x.dtype)
    return x_mean + g * z, x_mean


# --------------------------------------------------------------------------------------------------
# Corrector: Langevin MCMC at a fixed time, step size set by a signal-to-noise ratio.


def _vp_alpha(sde, t, dt):
    return 1.0 - jnp.minimum(sde.beta(t) * dt, MAX_BETA)


_LANGEVIN_ALPHAS = {VPSDE: _vp_alpha, SubVPSDE: _vp_alpha}


def _batch_mean_norm(v: Array) -> Array:
    return jnp.mean(jnp.linalg.norm(v.reshape(v.shape[0], -1), axis=-1))


def langevin_corrector(
    sde: SDE,
    score_fn: TimeScoreFn,
    x: Array,
    t: Array,
    dt,
    key: PRNGKey,
    *,
    snr: float = 0.16,
    n_steps: int = 1,
) -> tuple[Array, Array]:
    """``n_steps`` unadjusted Langevin steps targeting ``p_t`` (Song et al. 2021, Algorithm 5):

        x_mean = x + eps s(x, t),    x = x_mean + sqrt(2 eps) z,
        eps = 2 alpha (snr |z| / |s(x, t)|)^2,

    where ``|.|`` is the batch mean of the per-example L2 norms (as in the paper's code, so one
    step size serves the whole batch and no example's step blows up where its score vanishes),
    ``alpha = alpha_i = 1 - beta_i`` for VP and sub-VP and ``alpha = 1`` otherwise.

    Args:
      sde: the forward SDE.
      score_fn: ``score_fn(x, t)``.
      x: ``(n, *event)`` states at time ``t``.
      t: ``(n,)`` times.
      dt: the step size of the time grid (sets ``beta_i`` for ``alpha_i``).
      key: split into one key per Langevin step.
      snr: the signal-to-noise ratio ``r`` (paper: 0.16 for VE on CIFAR-10).
      n_steps: number of Langevin steps (a Python int).

    Returns:
      ``(x, x_mean)`` at the same time ``t``.
    """
    alpha_fn = _LANGEVIN_ALPHAS.get(type(sde))
    alpha = 1.0 if alpha_fn is None else alpha_fn(sde, t, dt)
    x_mean = x
    for j in range(n_steps):
        score = score_fn(x, t)
        z = jax.random.normal(jax.random.fold_in(key, j), x.shape, x.dtype)
        step = 2.0 * alpha * (snr * _batch_mean_norm(z) / _batch_mean_norm(score)) ** 2
        step = expand(jnp.broadcast_to(step, t.shape), x)
        x_mean = x + step * score
        x = x_mean + jnp.sqrt(2.0 * step) * z
    return x, x_mean


# --------------------------------------------------------------------------------------------------
# The predictor–corrector loop.

PREDICTORS: dict[str, Update] = {
    "euler_maruyama": euler_maruyama_predictor,
    "reverse_diffusion": reverse_diffusion_predictor,
}
CORRECTORS: dict[str | None, Update | None] = {None: None, "langevin": langevin_corrector}


def sample_sde(
    sde: SDE,
    score_fn: TimeScoreFn,
    key: PRNGKey,
    shape: tuple[int, ...],
    *,
    n_steps: int,
    predictor: str = "euler_maruyama",
    corrector: str | None = None,
    snr: float = 0.16,
    n_corrector_steps: int = 1,
    eps: float = 1e-3,
    denoise: bool = True,
    record_every: int = 0,
) -> tuple[Array, dict]:
    """Draws ``x_T`` from the prior and integrates the reverse-time SDE down to ``t = eps``.

    Each of the ``n_steps`` steps runs the corrector (if any) at ``t_i`` and then the predictor
    from ``t_i`` to ``t_i - dt`` (Song et al. 2021, Algorithms 2 and 3; ``corrector=None`` is the
    plain predictor, e.g. Euler–Maruyama for ``dx = [f - g^2 score] dt + g dw_bar``). With
    ``denoise=True`` the last predictor step returns its mean, without the final noise.

    Args:
      sde: the forward SDE (``VPSDE``, ``SubVPSDE``, ``VESDE``); a pytree, so it may be traced.
      score_fn: ``score_fn(x, t) = grad_x log p_t(x)``, ``(n, *event), (n,) -> (n, *event)``.
      key: split into the prior draw and the chain's per-step keys.
      shape: ``(n, *event)``.
      n_steps: number of predictor steps (a Python int).
      predictor: ``'euler_maruyama'`` or ``'reverse_diffusion'`` (see :func:`discretize`).
      corrector: ``None`` or ``'langevin'``.
      snr: the corrector's signal-to-noise ratio (> 0).
      n_corrector_steps: Langevin steps per predictor step.
      eps: the last time, in ``(0, T)``; avoids the singular score at ``t = 0``.
      denoise: return the last step's mean instead of its noisy sample.
      record_every: when ``k > 0``, record ``x`` after every ``k``-th step (must divide
        ``n_steps``).

    Returns:
      ``(x, info)``: ``x`` of shape ``shape`` and ``info`` with ``step_norm`` (the mean over steps
      and examples of ``|x_{i+1} - x_i|``) and, when recorded, ``trajectory``
      ``(n_steps // k, *shape)``.

    Raises:
      ValueError: on an unknown predictor or corrector, a bad shape, step count or ``eps``.
    """
    check_choice("predictor", predictor, PREDICTORS)
    check_choice("corrector", corrector, CORRECTORS)
    shape = check_sample_shape(shape)
    check_int("n_steps", n_steps, 1)
    check_int("n_corrector_steps", n_corrector_steps, 1)
    check_positive("snr", snr)
    if isinstance(eps, int | float) and not 0 < eps < sde.T:
        raise ValueError(f"eps must be in (0, T={sde.T}); got {eps!r}")
    predict = PREDICTORS[predictor]
    correct = CORRECTORS[corrector]

    prior_key, chain_key = jax.random.split(key)
    x = sde.prior_sample(prior_key, shape)
    dt = (sde.T - eps) / n_steps

    def step(state, key, i):
        x, _ = state
        t = jnp.full(shape[:1], sde.T - i * dt, x.dtype)
        corrector_key, predictor_key = jax.random.split(key)
        x_start = x
        if correct is not None:
            x, _ = correct(
                sde, score_fn, x, t, dt, corrector_key, snr=snr, n_steps=n_corrector_steps
            )
        x, x_mean = predict(sde, score_fn, x, t, dt, predictor_key)
        norm = jnp.linalg.norm((x - x_start).reshape(shape[0], -1), axis=-1)
        return (x, x_mean), {"step_norm": jnp.mean(norm)}

    (x, x_mean), info, trajectory = run_chain(
        step, (x, x), chain_key, n_steps, record_every=record_every, record=lambda s: s[0]
    )
    if trajectory is not None:
        info["trajectory"] = trajectory
    return (x_mean if denoise else x), info
