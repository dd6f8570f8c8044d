"""Denoising diffusion implicit models: sampling on a sub-sequence of a DDPM's steps, and the
deterministic encoder (Song, Meng & Ermon 2021, "Denoising diffusion implicit models").

Notation as in :mod:`jgen.samplers.ddpm`: ``abar`` ``(N,)`` are the cumulative products of a DDPM's
``1 - beta_t`` and ``eps_fn(x_t, t_index)`` predicts the noise of ``x_t = sqrt(abar_t) x_0 +
sqrt(1 - abar_t) eps``. ``timesteps`` is any strictly decreasing sequence ``tau_1 > ... > tau_S``
of indices into ``abar`` (e.g. :func:`ddim_timesteps`); the step after ``tau_S`` goes to the data,
where ``abar = 1``.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_int, check_sample_shape
from jgen.samplers.chain import run_chain
from jgen.samplers.ddpm import EpsFn, check_schedule
from jgen.types import Array, PRNGKey


def ddim_timesteps(n_train_steps: int, n_steps: int) -> np.ndarray:
    """The uniform sub-sequence ``tau_i = floor(i N / S)``, ``i = S - 1 .. 0``, decreasing
    (the paper's "linear" choice, Appendix D.2).

    Args:
      n_train_steps: ``N``, the length of the DDPM schedule.
      n_steps: ``S <= N``, the number of sampling steps.

    Returns:
      ``(S,)`` int array, strictly decreasing, ending at 0.
    """
    check_int("n_train_steps", n_train_steps, 1)
    check_int("n_steps", n_steps, 1)
    if n_steps > n_train_steps:
        raise ValueError(f"n_steps must be <= n_train_steps={n_train_steps}; got {n_steps}")
    return (np.arange(n_steps) * n_train_steps // n_steps)[::-1].copy()


def _check_timesteps(timesteps, n_train_steps: int) -> np.ndarray:
    try:
        ts = np.asarray(timesteps)
    except jax.errors.TracerArrayConversionError:
        raise ValueError("timesteps must be concrete (a numpy array or list), not traced") from None
    if ts.ndim != 1 or ts.size < 1 or not np.issubdtype(ts.dtype, np.integer):
        raise ValueError(
            f"timesteps must be a non-empty 1-D integer array; got shape {ts.shape}, "
            f"dtype {ts.dtype}"
        )
    if np.any(np.diff(ts) >= 0):
        raise ValueError(f"timesteps must be strictly decreasing; got {ts.tolist()}")
    if ts[-1] < 0 or ts[0] >= n_train_steps:
        raise ValueError(
            f"timesteps must lie in [0, {n_train_steps}) (len(alphas_cumprod)); "
            f"got range [{ts[-1]}, {ts[0]}]"
        )
    return ts


def ddim_sample(
    eps_fn: EpsFn,
    key: PRNGKey,
    shape: tuple[int, ...],
    alphas_cumprod: Array,
    timesteps,
    *,
    eta: float = 0.0,
    x_T: Array | None = None,
    record_every: int = 0,
) -> tuple[Array, dict]:
    """The generalised reverse process of Song, Meng & Ermon 2021 (eq. 12) on ``timesteps``:

        x0_hat   = (x_t - sqrt(1 - abar_t) eps(x_t, t)) / sqrt(abar_t),
        x_t'     = sqrt(abar_t') x0_hat + sqrt(1 - abar_t' - sigma^2) eps(x_t, t) + sigma z,
        sigma    = eta sqrt((1 - abar_t') / (1 - abar_t)) sqrt(1 - abar_t / abar_t'),

    from ``t = tau_i`` to ``t' = tau_{i+1}`` (``abar = 1`` after the last). ``eta = 0`` is the
    deterministic DDIM (a discretised probability-flow ODE); ``eta = 1`` on every step is DDPM
    ancestral sampling with ``sigma_t^2 = beta~_t`` (same key use as
    :func:`jgen.samplers.ddpm.ddpm_sample`, so the two then agree draw for draw).

    Args:
      eps_fn: noise prediction ``eps_fn(x, t_index)``, ``(n, *event), (n,) int -> (n, *event)``.
      key: split into the initial draw and the chain's per-step keys.
      shape: ``(n, *event)``.
      alphas_cumprod: ``(N,)`` ``abar`` of the DDPM the model was trained on.
      timesteps: ``(S,)`` strictly decreasing concrete integers in ``[0, N)``.
      eta: in ``[0, 1]``; interpolates between DDIM (0) and DDPM (1).
      x_T: optional initial state of shape ``shape`` (default: ``N(0, I)`` drawn from ``key``);
        with ``eta = 0`` the output is then a deterministic function of ``x_T``.
      record_every: when ``k > 0``, record ``x`` after every ``k``-th step (must divide ``S``).

    Returns:
      ``(x, info)``: ``x`` of shape ``shape``; ``info`` has ``eps_norm`` (the mean per-example norm
      of the predicted noise) and, when recorded, ``trajectory`` ``(S // k, *shape)``.

    Raises:
      ValueError: on bad ``timesteps``, ``eta`` outside ``[0, 1]``, a bad ``shape`` or ``x_T``.
    """
    shape = check_sample_shape(shape)
    abar = check_schedule("alphas_cumprod", alphas_cumprod)
    ts = _check_timesteps(timesteps, abar.shape[0])
    check_int("record_every", record_every, 0)
    if isinstance(eta, int | float) and not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1]; got {eta!r}")

    init_key, chain_key = jax.random.split(key)
    if x_T is None:
        x = jax.random.normal(init_key, shape)
    else:
        x = jnp.asarray(x_T)
        if x.shape != shape:
            raise ValueError(f"x_T must have shape {shape} (the shape argument); got {x.shape}")
    abar = abar.astype(x.dtype)
    a_t = abar[ts]
    a_next = jnp.concatenate([abar[ts[1:]], jnp.ones((1,), x.dtype)])
    ts = jnp.asarray(ts, jnp.int32)

    def step(x, key, i):
        a, a_prev = a_t[i], a_next[i]
        eps = eps_fn(x, jnp.full(shape[:1], ts[i], jnp.int32))
        x0 = (x - jnp.sqrt(1.0 - a) * eps) / jnp.sqrt(a)
        sigma = eta * jnp.sqrt((1.0 - a_prev) / (1.0 - a) * (1.0 - a / a_prev))
        direction = jnp.sqrt(jnp.maximum(1.0 - a_prev - sigma**2, 0.0)) * eps
        z = jax.random.normal(key, shape, x.dtype)
        x = jnp.sqrt(a_prev) * x0 + direction + sigma * z
        return x, {"eps_norm": jnp.mean(jnp.linalg.norm(eps.reshape(shape[0], -1), axis=-1))}

    x, info, trajectory = run_chain(step, x, chain_key, len(ts), record_every=record_every)
    if trajectory is not None:
        info["trajectory"] = trajectory
    return x, info


def ddim_encode(eps_fn: EpsFn, x0: Array, alphas_cumprod: Array, timesteps) -> Array:
    """The deterministic DDIM encoder: eq. 12 with ``eta = 0`` run forward in time, mapping data to
    the latents that :func:`ddim_sample` (``eta = 0``, same ``timesteps``, ``x_T=``) decodes back
    (Song, Meng & Ermon 2021, Sec. 5.4):

        x_t' = sqrt(abar_t') x0_hat(x_t, t) + sqrt(1 - abar_t') eps(x_t, t),    t' > t,

    over ``data -> tau_S -> ... -> tau_1``. As in the paper, the noise is predicted at the current
    point (the decoder predicts it at the other end of the step), so encode→decode recovers ``x_0``
    up to the ODE discretisation error; the first step, from the data (``abar = 1``), evaluates
    ``eps`` at ``tau_S``.

    Args:
      eps_fn: noise prediction ``eps_fn(x, t_index)``.
      x0: ``(n, *event)`` data.
      alphas_cumprod: ``(N,)`` ``abar``.
      timesteps: ``(S,)`` strictly decreasing concrete integers in ``[0, N)``, as for sampling.

    Returns:
      ``(n, *event)`` latents ``x_{tau_1}``.
    """
    x0 = jnp.asarray(x0)
    check_sample_shape(x0.shape)
    abar = check_schedule("alphas_cumprod", alphas_cumprod).astype(x0.dtype)
    ts = _check_timesteps(timesteps, abar.shape[0])[::-1]  # increasing
    t_eval = jnp.asarray(np.concatenate([ts[:1], ts[:-1]]), jnp.int32)
    a_from = jnp.concatenate([jnp.ones((1,), x0.dtype), abar[ts[:-1]]])
    a_to = abar[ts]
    n = x0.shape[0]

    def step(x, key, i):
        del key
        eps = eps_fn(x, jnp.full((n,), t_eval[i], jnp.int32))
        x0_hat = (x - jnp.sqrt(1.0 - a_from[i]) * eps) / jnp.sqrt(a_from[i])
        return jnp.sqrt(a_to[i]) * x0_hat + jnp.sqrt(1.0 - a_to[i]) * eps, {}

    x, _, _ = run_chain(step, x0, jax.random.key(0), len(ts))
    return x
