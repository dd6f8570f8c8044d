"""Exact log-likelihoods of autoregressive models over discrete data.

An autoregressive model factorises ``p(x) = prod_i p(x_i | x_<i)``; its network returns, for every
element ``i`` at once, the parameters of ``p(x_i | x_<i)`` (masking makes element ``i``'s
parameters depend on ``x_<i`` only), so ``log p(x)`` is one forward pass and a sum over elements:

- a categorical over ``K`` values per element (Bernoulli for ``K = 2``; the 256-way softmax of
  PixelRNN/PixelCNN, van den Oord et al. 2016; characters of a language model);
- a mixture of ``M`` discretised logistics per element (PixelCNN++, Salimans, Karpathy, Chen &
  Kingma 2017), which ties neighbouring levels together with ``3 M`` numbers instead of ``K``.

Both return ``(B,)`` log-probabilities summed over every event axis; the caller reduces the
batch. Bits per dimension (or per character) are ``-log p / (D ln 2)``
(:func:`jgen.losses.likelihood.bits_per_dim`).
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from jgen.checks import check_int
from jgen.losses.elbo import discretized_logistic_log_mass
from jgen.types import Array


def _check_parameters(name: str, params, x, num_trailing: int | None = None) -> None:
    """``params`` must be ``(*x.shape, P)`` (with ``P = num_trailing`` when given)."""
    if np.ndim(x) < 1:
        raise ValueError(f"x must have a leading batch axis; got shape {np.shape(x)}")
    expected = (*np.shape(x), num_trailing if num_trailing is not None else "P")
    shape = np.shape(params)
    if (
        len(shape) != len(expected)
        or shape[:-1] != np.shape(x)
        or (num_trailing is not None and shape[-1] != num_trailing)
    ):
        raise ValueError(f"{name} must have shape {expected} (x's shape, then P); got {shape}")


def _sum_event(values: Array) -> Array:
    return jnp.sum(values, axis=tuple(range(1, values.ndim)))


def categorical_log_likelihood(logits: Array, tokens: Array) -> Array:
    """``log p(x) = sum_i log softmax(logits_i)[x_i]``, per example.

    Args:
      logits: ``(B, *event, K)`` unnormalised log-probabilities of each element's ``K`` values.
      tokens: ``(B, *event)`` integers in ``{0, ..., K-1}``.

    Returns:
      ``(B,)`` log-probabilities in nats.

    Raises:
      ValueError: naming ``tokens`` when its dtype is not an integer, ``logits`` when its shape
        is not ``(*tokens.shape, K)``.
    """
    dtype = jnp.asarray(tokens).dtype
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"tokens must have an integer dtype; got dtype {dtype}")
    _check_parameters("logits", logits, tokens)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(log_probs, tokens[..., None].astype(jnp.int32), axis=-1)
    return _sum_event(picked[..., 0])


def split_logistic_mixture(params: Array) -> tuple[Array, Array, Array]:
    """``(..., 3 M)`` network outputs -> ``(logit_weights, means, log_scales)``, each ``(..., M)``.

    Raises:
      ValueError: naming ``params`` when its last axis is not a multiple of 3.
    """
    if np.shape(params)[-1] % 3:
        raise ValueError(
            f"params must have a last axis of 3 M (weights, means, log-scales); "
            f"got shape {np.shape(params)}"
        )
    return tuple(jnp.split(params, 3, axis=-1))


def discretized_logistic_mixture_log_likelihood(
    x: Array, logit_weights: Array, means: Array, log_scales: Array, num_levels: int
) -> Array:
    """The mixture of discretised logistics of PixelCNN++ (Salimans et al. 2017, eq. 2), per
    element independent given its parameters::

        P(x_i) = sum_m softmax(logit_weights_i)_m  P_logistic(x_i; means_im, exp(log_scales_im))

    with each component's bin mass as in
    :func:`jgen.losses.elbo.discretized_logistic_log_likelihood` (edge bins extended to infinity,
    so the ``K`` masses sum to one), combined in log space.
    PixelCNN++ also couples the three colour channels of a pixel by linear coefficients; here the
    network's channel masks condition channel ``c`` on channels ``< c`` instead.

    Args:
      x: ``(B, *event)`` values on the grid ``x_j = -1 + 2 j / (K - 1)``.
      logit_weights, means, log_scales: ``(B, *event, M)``.
      num_levels: ``K >= 2``.

    Returns:
      ``(B,)`` log-probabilities in nats.

    Raises:
      ValueError: naming the argument whose shape is not ``(*x.shape, M)``, or ``num_levels``.
    """
    check_int("num_levels", num_levels, minimum=2)
    num_components = np.shape(logit_weights)[-1] if np.ndim(logit_weights) else None
    for name, value in (("logit_weights", logit_weights), ("means", means)):
        _check_parameters(name, value, x, num_components)
    _check_parameters("log_scales", log_scales, x, num_components)
    log_mass = discretized_logistic_log_mass(x[..., None], means, log_scales, num_levels)
    per_element = logsumexp(jax.nn.log_softmax(logit_weights, axis=-1) + log_mass, axis=-1)
    return _sum_event(per_element)


def tokens_to_grid(tokens: Array, num_levels: int) -> Array:
    """Level ``k`` of ``{0, ..., K-1}`` -> the grid value ``-1 + 2 k / (K - 1)`` in ``[-1, 1]``."""
    return 2.0 * tokens / (num_levels - 1) - 1.0
