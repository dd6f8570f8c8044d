"""Maximum-likelihood objectives and the unit conversions used to report them.

A density ``p`` fitted to dequantized data ``y = (x + u) / K`` on [0, 1)^D bounds the discrete
model: ``-log P(x) <= -log p(y) + D log K`` (Theis et al. 2016, "A note on the evaluation of
generative models"; Ho et al. 2019, Flow++). Bits per dimension divide that by ``D ln 2``.
"""

import math
from collections.abc import Callable

import jax.numpy as jnp

from jgen.types import Array, Params


def nll_loss(log_prob_fn: Callable[[Params, Array], Array]):
    """Builds ``loss_fn(params, x, key) -> (mean NLL, {"nll": per-example NLL})``.

    ``NLL(x) = -log p_params(x)`` in nats; the key is unused (the signature is the shared loss
    signature, so the same training step serves stochastic objectives).
    """

    def loss_fn(params: Params, x: Array, key=None):
        del key
        nll = -log_prob_fn(params, x)
        return jnp.mean(nll), {"nll": nll}

    return loss_fn


def rescaled_nll(nll_model, num_dims: int, scale):
    """NLL of the data ``x`` when the model saw ``y = scale * x + shift``.

    By the change of variables ``p_x(x) = p_y(y) |scale|^D``::

        -log p_x(x) = -log p_y(y) - D log|scale|,

    so a model of images rescaled from ``[0, 1]`` to ``[-1, 1]`` (``scale = 2``) reports
    ``D log 2`` nats less once its NLL is expressed on the original scale.

    Args:
      nll_model: ``-log p_y(y)`` in nats, any shape.
      num_dims: ``D``, the number of scaled dimensions per example.
      scale: the factor ``scale != 0`` of the affine map (the shift does not matter).
    """
    return nll_model - num_dims * jnp.log(jnp.abs(scale))


def dequantized_nll(nll_continuous, num_dims: int, num_levels: int, data_scale=1.0):
    """NLL of a density on dequantized data as an upper bound on the discrete NLL.

    For ``x`` in ``{0, ..., K-1}^D`` and the model's input ``y = data_scale * (x + u) / K + shift``
    with ``u ~ U[0, 1)^D``, ``-log P(x) <= E_u[-log p_y(y)] - D log(data_scale / K)``
    (Theis et al. 2016): :func:`rescaled_nll` with ``scale = data_scale / K``. With
    ``data_scale = 1`` (data in ``[0, 1)``) that is ``nll + D log K``.

    Args:
      nll_continuous: ``-log p_y(y)`` in nats, any shape.
      num_dims: ``D``.
      num_levels: ``K``, the number of discrete levels per dimension.
      data_scale: the width of the interval the model sees (1 for ``[0, 1)``, 2 for ``[-1, 1)``).
    """
    return rescaled_nll(nll_continuous, num_dims, data_scale / num_levels)


def bits_per_dim(nll_nats, num_dims: int):
    """``nll / (D ln 2)``: nats per example to bits per dimension."""
    return nll_nats / (num_dims * math.log(2.0))
