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


def dequantized_nll(nll_continuous, num_dims: int, num_levels: int):
    """``nll + D log K``: NLL of a density on [0, 1)^D as an upper bound on the discrete NLL."""
    return nll_continuous + num_dims * math.log(num_levels)


def bits_per_dim(nll_nats, num_dims: int):
    """``nll / (D ln 2)``: nats per example to bits per dimension."""
    return nll_nats / (num_dims * math.log(2.0))
