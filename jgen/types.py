"""Shared type aliases and the callable protocols that connect models, losses and samplers.

The sign conventions: ``log_prob(x) = -energy(x)`` up to ``log Z`` and ``score(x) = grad_x
log_prob(x) = -grad_x energy(x)``. Every callable is batch-first: an energy or a log-density maps
``(n, *event) -> (n,)``, a score maps ``(n, *event) -> (n, *event)``. Samplers take these as
functions of ``x`` alone; bind a model's parameters with ``functools.partial(fn, params)``, and
convert between the three with ``jgen.convert``.
"""

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import jax

PRNGKey = jax.Array
Array = jax.Array
PyTree = Any
Params = PyTree
Batch = Mapping[str, Array] | Array
Metrics = Mapping[str, Array]


class EnergyFn(Protocol):
    def __call__(self, x: Array) -> Array:
        """Energy ``E(x)`` of a batch: ``(n, *event) -> (n,)``."""


class LogProbFn(Protocol):
    def __call__(self, x: Array) -> Array:
        """Log-density ``log p(x)`` of a batch: ``(n, *event) -> (n,)``."""


class ScoreFn(Protocol):
    def __call__(self, x: Array) -> Array:
        """Score ``grad_x log p(x)`` of a batch: ``(n, *event) -> (n, *event)``."""


# Time- and noise-conditional scores of diffusion and score-based models (plain aliases).
TimeScoreFn = Callable[[Array, Array], Array]
"""``score(x (n, *event), t (n,)) -> (n, *event)``: the score of the SDE marginal ``p_t``."""
NoiseScoreFn = Callable[[Array, Array], Array]
"""``score(x (n, *event), sigma (n,)) -> (n, *event)``: the score of ``p`` convolved with
``N(0, sigma^2 I)`` (noise-conditional score networks)."""
