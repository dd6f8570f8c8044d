"""Score matching: fitting an unnormalised model through its score ``s(x) = grad_x log p(x)``.

The Fisher divergence ``1/2 E_data ||s(x) - grad_x log p_data(x)||^2`` needs the data score, which
is unknown; integrating by parts removes it (Hyvarinen 2005, "Estimation of non-normalized
statistical models by score matching", Theorem 1)::

    J(s) = E_data[ tr(grad_x s(x)) + 1/2 ||s(x)||^2 ] + const,

the *exact* objective, whose trace costs one Jacobian-vector product per input dimension. Two
estimators of the same minimiser are cheaper in high dimension:

- *sliced* score matching (Song, Garg, Shi & Ermon 2019, "Sliced score matching: a scalable
  approach to density and score estimation") projects onto random directions ``v`` with
  ``E[v v^T] = I``, ``E_v[v^T grad_x(v^T s) + 1/2 (v^T s)^2] = J``: one JVP per projection;
- *denoising* score matching (Vincent 2011, "A connection between score matching and denoising
  autoencoders") regresses ``s`` at a noised point onto the score of the noise kernel, which
  needs no derivative of ``s`` at all but fits the score of the *noised* density.

Every loss takes the model as a score function ``score_fn(x (n, *event)) -> (n, *event)`` of
``x`` alone, so energy models, density models and score networks share them. Build it from an
energy or a log-density with :mod:`jgen.convert` after binding the parameters::

    score_fn = jgen.convert.score_from_energy(functools.partial(energy_fn, params))
    loss = exact_score_matching(score_fn, x).mean()

Each loss returns one value per example, shape ``(n,)``; the caller reduces. Events of any shape
are treated as flat vectors of ``D = prod(event)`` numbers.
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_batch, check_choice, check_int, check_positive
from jgen.types import Array, PRNGKey, ScoreFn

PROJECTIONS: dict[str, Callable[[PRNGKey, tuple[int, ...], jnp.dtype], Array]] = {
    "rademacher": lambda key, shape, dtype: jax.random.rademacher(key, shape, dtype),
    "gaussian": lambda key, shape, dtype: jax.random.normal(key, shape, dtype),
}
"""Projection distributions of :func:`sliced_score_matching`; both have ``E[v v^T] = I``."""


# --------------------------------------------------------------------------------------------
# Checks and helpers.


def _check_x(x) -> None:
    shape = tuple(np.shape(x))
    if len(shape) < 2:
        raise ValueError(f"x must be a batch of shape (n, *event), rank >= 2; got shape {shape}")
    check_batch("x", x, shape[1:])


def _check_score_fn(score_fn: ScoreFn, x: Array) -> None:
    """``score_fn`` must return an array of ``x``'s shape; checked by tracing only (no FLOPs)."""
    out = jax.eval_shape(score_fn, x)
    if tuple(out.shape) != tuple(x.shape):
        raise ValueError(
            f"score_fn must map x of shape (n, *event) to the same shape; got shape "
            f"{tuple(out.shape)} for x of shape {tuple(x.shape)}"
        )


def _sum_event(values: Array) -> Array:
    return jnp.sum(values, axis=tuple(range(1, values.ndim)))


# --------------------------------------------------------------------------------------------
# Losses.


def exact_score_matching(score_fn: ScoreFn, x: Array) -> Array:
    """Hyvarinen's score matching objective per example, with the exact Jacobian trace.

    ``J(x) = tr(grad_x s(x)) + 1/2 ||s(x)||^2`` (Hyvarinen 2005, Eq. 4); its mean over data
    equals the Fisher divergence to the data distribution up to a constant, and is minimised
    by ``s = grad_x log p_data``. For an energy model ``s = -grad_x E`` and the trace is minus
    the Laplacian of ``E``.

    Cost: per example, one linearisation of ``score_fn`` and ``D = prod(event)`` Jacobian-vector
    products with the basis vectors (a ``lax.fori_loop``, so memory stays ``O(D)`` per example
    rather than the ``O(D^2)`` of a full Jacobian). Each example is differentiated on its own
    (``vmap`` over the batch, the model called on batches of one), so this holds even for a
    ``score_fn`` that would mix examples. For large ``D`` use :func:`sliced_score_matching`.

    Args:
      score_fn: ``(n, *event) -> (n, *event)``, the model's score.
      x: ``(n, *event)`` data, floating point.

    Returns:
      ``(n,)`` the per-example objective (minimise its mean).

    Raises:
      ValueError: when ``x`` is not a floating-point batch of rank >= 2 or ``score_fn`` does not
        return ``x``'s shape.
    """
    _check_x(x)
    _check_score_fn(score_fn, x)
    event = x.shape[1:]
    dim = math.prod(event)

    def one(flat: Array) -> Array:
        def flat_score(u: Array) -> Array:
            return score_fn(u.reshape(1, *event)).reshape(dim)

        score, tangent_map = jax.linearize(flat_score, flat)

        def add_diagonal(j, trace):
            basis = jnp.zeros_like(flat).at[j].set(1.0)
            return trace + tangent_map(basis)[j]

        trace = jax.lax.fori_loop(0, dim, add_diagonal, jnp.zeros((), score.dtype))
        return trace + 0.5 * jnp.sum(score**2)

    return jax.vmap(one)(x.reshape(x.shape[0], dim))


def sliced_score_matching(
    score_fn: ScoreFn,
    x: Array,
    key: PRNGKey,
    num_projections: int = 1,
    distribution: str = "rademacher",
    variance_reduced: bool = False,
) -> Array:
    """Sliced score matching per example (Song, Garg, Shi & Ermon 2019, Eq. 7 and 8).

    With ``M = num_projections`` directions ``v_m`` per example, drawn i.i.d. from
    ``distribution`` (both choices have ``E[v v^T] = I``)::

        SSM(x)    = 1/M sum_m [ v_m^T grad_x(v_m^T s(x)) + 1/2 (v_m^T s(x))^2 ],
        SSM-VR(x) = 1/M sum_m [ v_m^T grad_x(v_m^T s(x)) ] + 1/2 ||s(x)||^2.

    Both are unbiased for :func:`exact_score_matching`: ``E_v[v^T A v] = tr(A)`` and
    ``E_v[(v^T s)^2] = ||s||^2`` whenever ``E[v v^T] = I``. The variance-reduced form (SSM-VR)
    integrates the second term analytically and is only valid for such projections. Rademacher
    directions have the lower variance (``v^T A v`` has variance ``2 sum_{i != j} A_ij^2``,
    Gaussian ones ``2 ||A||_F^2`` for symmetric ``A``).

    ``grad_x s(x) v`` is one forward-mode JVP of ``score_fn`` on the whole batch with tangent
    ``v`` (one direction per example), after a single linearisation shared by the ``M``
    projections. Like :mod:`jgen.convert`, this relies on examples being independent (example
    ``i``'s score depends on ``x_i`` only).

    Args:
      score_fn: ``(n, *event) -> (n, *event)``.
      x: ``(n, *event)`` data, floating point.
      key: a PRNG key for the projections, drawn as one ``(M, n, *event)`` array.
      num_projections: ``M >= 1``.
      distribution: ``"rademacher"`` or ``"gaussian"`` (:data:`PROJECTIONS`).
      variance_reduced: use SSM-VR.

    Returns:
      ``(n,)``, the per-example estimate averaged over the ``M`` projections.

    Raises:
      ValueError: on a bad ``x``, ``score_fn`` output shape, ``num_projections`` or
        ``distribution``.
    """
    check_int("num_projections", num_projections, minimum=1)
    check_choice("distribution", distribution, PROJECTIONS)
    _check_x(x)
    _check_score_fn(score_fn, x)
    v = PROJECTIONS[distribution](key, (num_projections, *x.shape), x.dtype)
    score, tangent_map = jax.linearize(score_fn, x)
    jvps = jax.vmap(tangent_map)(v)  # (M, n, *event): grad_x s(x_i) v_mi
    curvature = jnp.mean(jax.vmap(_sum_event)(v * jvps), axis=0)
    if variance_reduced:
        return curvature + 0.5 * _sum_event(score**2)
    projected = jax.vmap(_sum_event)(v * score)  # (M, n): v_mi^T s(x_i)
    return curvature + 0.5 * jnp.mean(projected**2, axis=0)


def denoising_score_matching(score_fn: ScoreFn, x: Array, key: PRNGKey, sigma) -> Array:
    """Denoising score matching at one noise level (Vincent 2011, Eq. 9 with a Gaussian kernel).

    ``x~ = x + sigma eps``, ``eps ~ N(0, I)`` and

        DSM(x) = 1/2 || s(x~) + (x~ - x) / sigma^2 ||^2 = 1/2 || s(x~) + eps / sigma ||^2,

    the regression of ``s(x~)`` onto ``grad_x~ log N(x~; x, sigma^2 I)``. Its expectation equals
    the exact score matching objective of the *noised* density ``q_sigma = p_data * N(0,
    sigma^2 I)`` up to a constant, so its minimiser is ``grad log q_sigma``, not the data score:
    for Gaussian data ``N(mu, Sigma)`` it is the score of ``N(mu, Sigma + sigma^2 I)``. Small
    ``sigma`` brings the two closer but the ``eps / sigma`` target makes the estimate noisy.
    Here ``score_fn`` sees ``x~`` only; noise-conditional scores ``s(x~, sigma)`` trained over
    many levels belong to the diffusion losses.

    Args:
      score_fn: ``(n, *event) -> (n, *event)``.
      x: ``(n, *event)`` data, floating point.
      key: a PRNG key for ``eps`` (``jax.random.normal(key, x.shape)``).
      sigma: the noise standard deviation, a positive scalar (possibly traced).

    Returns:
      ``(n,)``.

    Raises:
      ValueError: on a bad ``x``, ``score_fn`` output shape, or a ``sigma`` that is not a
        positive scalar.
    """
    _check_x(x)
    if np.ndim(sigma) != 0:
        raise ValueError(f"sigma must be a scalar; got shape {tuple(np.shape(sigma))}")
    check_positive("sigma", sigma)
    _check_score_fn(score_fn, x)
    eps = jax.random.normal(key, x.shape, x.dtype)
    return 0.5 * _sum_event((score_fn(x + sigma * eps) + eps / sigma) ** 2)
