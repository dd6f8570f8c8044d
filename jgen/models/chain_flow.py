"""A flow as a chain of invertible steps over a standard-normal base.

``x = f_L(... f_1(z))`` with ``z ~ N(0, I)``, optionally followed by the logit squash
``x = (sigmoid(u) - a) / (1 - 2a)`` for data in [0, 1) (Dinh et al. 2017). The change of variables
gives the exact density, walking from the data side (``h_L = x``) to the latent side:

    log p(x) = log N(f^{-1}(x); 0, I) + sum_l log|det d f_l^{-1}(h_l) / d h_l|.

Each step is a layer module of ``jgen.bijectors``; :func:`step_bijector` turns it into its
latent -> data bijector. Stochastic log-det estimators (residual flows' Russian roulette, FFJORD's
Hutchinson trace) are used when ``log_prob`` gets a key (training); without one every log-det is
exact (evaluation).

Papamakarios, Nalisnick, Rezende, Mohamed & Lakshminarayanan 2021, "Normalizing flows for
probabilistic modeling and inference".
"""

import math
from collections.abc import Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.bijectors.actnorm import ActNormLayer
from jgen.bijectors.autoregressive import MAFLayer
from jgen.bijectors.continuous import ContinuousFlowLayer
from jgen.bijectors.conv1x1 import Conv1x1Layer
from jgen.bijectors.coupling import AffineCouplingLayer
from jgen.bijectors.planar import PlanarLayer
from jgen.bijectors.radial import RadialLayer
from jgen.bijectors.residual import ResidualLayer
from jgen.bijectors.scaling import ScalingLayer
from jgen.bijectors.spline import SplineCouplingLayer
from jgen.gaussian import standard_normal_log_prob
from jgen.types import Array, PRNGKey


def logit_squash(alpha: float, event_ndims: int) -> distrax.Bijector:
    """``u -> (sigmoid(u) - a) / (1 - 2a)``: reals to (0, 1) with the margin ``a`` of Dinh et al.
    2017, so that ``x`` in [0, 1) maps to the finite ``logit(a + (1 - 2a) x)``."""
    return distrax.Chain(
        [
            distrax.Block(
                distrax.ScalarAffine(-alpha / (1 - 2 * alpha), 1 / (1 - 2 * alpha)), event_ndims
            ),
            distrax.Block(distrax.Sigmoid(), event_ndims),
        ]
    )


def step_bijector(step: nn.Module, h: Array, key: PRNGKey | None) -> distrax.Bijector:
    """The map of one flow step in the latent -> data direction.

    Args:
      step: a bound step module (a layer of ``jgen.bijectors``).
      h: a batch on the step's data side. Only its shape is read, except by ActNorm under
        ``init``, which initialises from its statistics.
      key: draws the stochastic log-det estimate of residual and FFJORD steps; None for exact.
    """
    event_shape = h.shape[1:]
    match step:
        case ActNormLayer():  # its forward normalises the data side
            return distrax.Inverse(step(h))
        case Conv1x1Layer():
            return step(h)
        case ScalingLayer():
            return step(event_shape)
        case AffineCouplingLayer() | SplineCouplingLayer():
            return step.bijector(event_shape)
        case MAFLayer() | PlanarLayer() | RadialLayer():
            return step.bijector(event_shape[-1])
        case ResidualLayer():  # data -> latent is the explicit direction x + g(x)
            return distrax.Inverse(step.bijector(event_shape[-1], key))
        case ContinuousFlowLayer():
            return step.bijector(event_shape[-1], key)
    raise ValueError(f"step must be a layer of jgen.bijectors; got {type(step).__name__}")


def chain_to_latent(
    steps: Sequence[nn.Module], h: Array, key: PRNGKey | None
) -> tuple[Array, Array]:
    """Data side -> latent side through ``steps`` (listed latent -> data); returns the latent and
    the summed ``log|det|`` of the data -> latent map."""
    log_det = jnp.zeros(h.shape[:1], h.dtype)
    for i in reversed(range(len(steps))):
        step_key = None if key is None else jax.random.fold_in(key, i)
        h, ld = step_bijector(steps[i], h, step_key).inverse_and_log_det(h)
        log_det = log_det + ld
    return h, log_det


def chain_to_data(steps: Sequence[nn.Module], z: Array) -> Array:
    """Latent side -> data side through ``steps`` (listed latent -> data)."""
    for step in steps:
        z = step_bijector(step, z, None).forward(z)
    return z


class ChainFlow(nn.Module):
    """``x = squash(f_L(... f_1(z)))`` with ``z ~ N(0, I)``; ``log_prob`` and ``sample`` are its
    two methods.

    Attributes:
      steps: the step modules, listed from the latent side to the data side.
      logit_alpha: when > 0, model data in [0, 1) through ``logit(a + (1 - 2a) x)``.
      flatten: run the steps on flattened events ``(D,)`` (vector-only steps on images).
    """

    steps: Sequence[nn.Module]
    logit_alpha: float = 0.0
    flatten: bool = False

    def to_latent(self, x: Array, key: PRNGKey | None = None) -> tuple[Array, Array]:
        """``x -> (z, log|det dz/dx|)``; ``z`` has the event's shape, or ``(D,)`` when
        flattening. With a key, the stochastic log-det estimates (training)."""
        log_det = jnp.zeros(x.shape[:1], x.dtype)
        if self.logit_alpha > 0:
            x, log_det = logit_squash(self.logit_alpha, x.ndim - 1).inverse_and_log_det(x)
        h = x.reshape(len(x), -1) if self.flatten else x
        z, steps_log_det = chain_to_latent(self.steps, h, key)
        return z, log_det + steps_log_det

    def log_prob(self, x: Array, key: PRNGKey | None = None) -> Array:
        """``log p(x) = log N(z) + log|det dz/dx|`` per example (see :meth:`to_latent`)."""
        z, log_det = self.to_latent(x, key)
        return standard_normal_log_prob(z, z.ndim - 1) + log_det

    def sample(self, key: PRNGKey, n: int, event_shape: tuple[int, ...]) -> Array:
        """``n`` draws of events of ``event_shape``."""
        event_shape = tuple(event_shape)
        latent_shape = (math.prod(event_shape),) if self.flatten else event_shape
        z = jax.random.normal(key, (n, *latent_shape))
        x = chain_to_data(self.steps, z).reshape(n, *event_shape)
        if self.logit_alpha > 0:
            x = logit_squash(self.logit_alpha, len(event_shape)).forward(x)
        return x
