"""The interface between a generative model and the training loop.

Every model file exposes ``make(config, event_shape) -> Trainer``. The loop calls only these four
pure functions, so it knows no model family: a GAN's state holds both players, a persistent-chain
EBM's state holds its replay buffer, and the loop never looks inside.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

from jgen.types import Array, Metrics, PRNGKey

State = Any


class Trainer(NamedTuple):
    """A generative model as pure functions over an opaque, checkpointable state pytree.

    Attributes:
      init: ``init(key, batch) -> state``; ``batch`` shows the shapes, its values are not used.
      step: ``step(state, batch, key) -> (state, metrics)``: one optimisation step; ``metrics``
        holds scalars and must contain ``"loss"``.
      sample: ``sample(state, key, n) -> x`` of shape ``(n, *event)``.
      evaluate: ``evaluate(state, batch, key) -> metrics`` of per-example ``[B]`` arrays, which
        the loop averages over a whole split.
    """

    init: Callable[[PRNGKey, Array], State]
    step: Callable[[State, Array, PRNGKey], tuple[State, Metrics]]
    sample: Callable[[State, PRNGKey, int], Array]
    evaluate: Callable[[State, Array, PRNGKey], Metrics]
