"""Conversions between the three model interfaces: energy, log-density and score.

A model exposes whichever of ``E(x)``, ``log p(x)`` or ``grad_x log p(x)`` is natural to it; a
sampler asks for the one it needs. The conventions (see :mod:`jgen.types`):

    log p(x) = -E(x) - log Z,        score(x) = grad_x log p(x) = -grad_x E(x).

Everything is batch-first: an energy or log-density maps ``(n, *event) -> (n,)`` and a score maps
``(n, *event) -> (n, *event)``. The helpers take and return functions of ``x`` only; close over
parameters first (``functools.partial(energy, params)``).

Per-example gradients are computed as the gradient of the batch *sum*: because example ``i``'s
output depends on example ``i``'s input only, ``d/dx_i sum_j f(x)_j = d f(x)_i / d x_i``. This is
one reverse pass instead of ``n``. It is wrong for a function that couples examples (batch
normalisation in training mode), which no energy or density should do.
"""

from collections.abc import Callable

import jax

from jgen.types import Array

BatchFn = Callable[[Array], Array]


def _summed(name: str, fn: BatchFn, sign: float) -> Callable[[Array], tuple[Array, Array]]:
    """``x -> (sign * sum(fn(x)), fn(x))`` after checking that ``fn`` returns one value per row."""

    def total(x):
        values = fn(x)
        if values.shape != x.shape[:1]:
            raise ValueError(
                f"{name} must map x of shape (n, *event) to shape (n,); got shape "
                f"{tuple(values.shape)} for x of shape {tuple(x.shape)}"
            )
        return sign * values.sum(), values

    return total


def log_prob_from_energy(energy_fn: BatchFn) -> BatchFn:
    """Returns ``x -> log p(x) = -E(x)``, the log-density up to the constant ``log Z``.

    Args:
      energy_fn: ``(n, *event) -> (n,)``.

    Returns:
      ``(n, *event) -> (n,)``, the unnormalised log-density of the Gibbs distribution
      ``p(x) = exp(-E(x)) / Z``.
    """
    return lambda x: -energy_fn(x)


def energy_from_log_prob(log_prob_fn: BatchFn) -> BatchFn:
    """Returns ``x -> E(x) = -log p(x)``.

    Args:
      log_prob_fn: ``(n, *event) -> (n,)``, normalised or not.

    Returns:
      ``(n, *event) -> (n,)``, the energy whose Gibbs distribution is ``p``.
    """
    return lambda x: -log_prob_fn(x)


def score_from_log_prob(log_prob_fn: BatchFn) -> BatchFn:
    """Returns the score ``x -> grad_x log p(x)``, one gradient per example.

    Computed as ``grad_x sum_i log p(x_i)``, valid because examples are independent (module
    docstring). The normalising constant does not matter.

    Args:
      log_prob_fn: ``(n, *event) -> (n,)``.

    Returns:
      ``(n, *event) -> (n, *event)``.

    Raises:
      ValueError: (when called) if ``log_prob_fn`` does not return shape ``(n,)``.
    """
    total = _summed("log_prob_fn", log_prob_fn, 1.0)
    return lambda x: jax.grad(total, has_aux=True)(x)[0]


def score_from_energy(energy_fn: BatchFn) -> BatchFn:
    """Returns the score ``x -> -grad_x E(x)``, one gradient per example.

    Args:
      energy_fn: ``(n, *event) -> (n,)``.

    Returns:
      ``(n, *event) -> (n, *event)``.

    Raises:
      ValueError: (when called) if ``energy_fn`` does not return shape ``(n,)``.
    """
    total = _summed("energy_fn", energy_fn, -1.0)
    return lambda x: jax.grad(total, has_aux=True)(x)[0]


def log_prob_and_score(log_prob_fn: BatchFn) -> Callable[[Array], tuple[Array, Array]]:
    """Returns ``x -> (log p(x), grad_x log p(x))`` from one forward and one backward pass.

    What Metropolis-adjusted samplers need at every proposal.

    Args:
      log_prob_fn: ``(n, *event) -> (n,)``.

    Returns:
      ``(n, *event) -> ((n,), (n, *event))``.

    Raises:
      ValueError: (when called) if ``log_prob_fn`` does not return shape ``(n,)``.
    """
    total = _summed("log_prob_fn", log_prob_fn, 1.0)

    def value_and_score(x):
        (_, values), score = jax.value_and_grad(total, has_aux=True)(x)
        return values, score

    return value_and_score
