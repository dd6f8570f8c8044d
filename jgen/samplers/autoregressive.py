"""Ancestral sampling of autoregressive models, one element per step of a ``lax.scan``.

``x_i ~ p(x_i | x_<i)`` for ``i`` in the model's order. Two drivers:

- :func:`sample_sequential` for networks that map a whole input to every element's parameters
  at once (MADE, PixelCNN, WaveNet, a transformer without its cache): step ``i`` runs the full
  network on the partly filled input and reads element ``order[i]``; ``D`` full passes.
- :func:`sample_cached` for networks with incremental decoding (a transformer's key/value cache,
  an RNN's hidden state): step ``i`` computes position ``i`` only, from the previous token and
  the cache, so a sequence costs one position per step.

Per-element draws (:func:`sample_categorical`, :func:`sample_logistic_mixture`) take a
temperature ``T`` (logits divided by ``T``; ``T = 0`` is the argmax) and, for categoricals,
top-k truncation (Fan, Lewis & Dauphin 2018, "Hierarchical neural story generation"). Keys are
pre-split, one per step, so the draw of step ``i`` does not depend on how the scan is run.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_int, check_positive
from jgen.types import Array, PRNGKey

ElementSampler = Callable[[PRNGKey, Array], Array]
"""``sample_fn(key, params (n, P)) -> tokens (n,)``: one element's draw from its parameters."""


def _tempered(logits: Array, temperature: float) -> Array:
    check_positive("temperature", temperature, allow_zero=True)
    return logits / temperature


def sample_categorical(
    key: PRNGKey, logits: Array, temperature: float = 1.0, top_k: int = 0
) -> Array:
    """``x ~ Categorical(softmax(logits / T))`` over the last axis, restricted to the ``top_k``
    largest logits when ``top_k > 0``; ``T = 0`` returns the argmax.

    Args:
      key: PRNG key.
      logits: ``(..., K)``.
      temperature: ``T >= 0``.
      top_k: ``0`` (no truncation) or ``1 <= top_k <= K``.

    Returns:
      ``(...)`` int32 draws.
    """
    num_values = np.shape(logits)[-1]
    check_int("top_k", top_k, minimum=0)
    if top_k > num_values:
        raise ValueError(f"top_k must be <= the number of values {num_values}; got {top_k}")
    if temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = _tempered(logits, temperature)
    if top_k:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def sample_logistic_mixture(
    key: PRNGKey,
    logit_weights: Array,
    means: Array,
    log_scales: Array,
    num_levels: int,
    temperature: float = 1.0,
) -> Array:
    """A level ``k`` in ``{0, ..., K-1}`` from a mixture of discretised logistics (PixelCNN++):
    a component ``m ~ softmax(logit_weights / T)``, ``y = mean_m + T s_m log(u / (1 - u))``
    with ``u ~ U(0, 1)``, then the bin of ``y`` on the grid ``-1 + 2 k / (K - 1)`` (edge bins
    extended to infinity); ``T = 0`` takes the heaviest component's mean.

    Args:
      key: PRNG key.
      logit_weights, means, log_scales: ``(..., M)``.
      num_levels: ``K >= 2``.
      temperature: ``T >= 0``, applied to the component choice and the logistic's scale.

    Returns:
      ``(...)`` int32 levels.
    """
    check_int("num_levels", num_levels, minimum=2)
    component_key, noise_key = jax.random.split(key)
    component = sample_categorical(component_key, logit_weights, temperature)
    pick = lambda a: jnp.take_along_axis(a, component[..., None], axis=-1)[..., 0]  # noqa: E731
    u = jax.random.uniform(noise_key, component.shape, minval=1e-5, maxval=1.0 - 1e-5)
    y = pick(means) + temperature * jnp.exp(pick(log_scales)) * (jnp.log(u) - jnp.log1p(-u))
    level = jnp.round((y + 1.0) * (num_levels - 1) / 2.0)
    return jnp.clip(level, 0, num_levels - 1).astype(jnp.int32)


def sample_sequential(
    key: PRNGKey,
    outputs_fn: Callable[[Array], Array],
    sample_fn: ElementSampler,
    initial: Array,
    order=None,
) -> Array:
    """Fills ``initial`` element by element: for ``i`` in ``order``,
    ``x_i ~ sample_fn(params(x)_i)`` with ``params = outputs_fn(x)`` recomputed on the current
    ``x`` (one full network pass per element).

    Args:
      key: PRNG key; one sub-key per element.
      outputs_fn: ``x (n, *event) int -> params (n, *event, P)``, autoregressive in ``order``.
      sample_fn: ``(key, params (n, P)) -> (n,)`` int draws.
      initial: ``(n, *event)`` integer array (its values are overwritten; any value works).
      order: the elements' generation order as a permutation of ``range(D)`` over the flattened
        event (row-major), or None for ``0, 1, ..., D - 1``.

    Returns:
      ``(n, *event)`` int32 samples.
    """
    n, event = initial.shape[0], initial.shape[1:]
    num_elements = int(np.prod(event))
    order = np.arange(num_elements) if order is None else np.asarray(order)
    if order.shape != (num_elements,):
        raise ValueError(f"order must have shape ({num_elements},); got shape {order.shape}")
    keys = jax.random.split(key, num_elements)

    def step(flat, inputs):
        element, element_key = inputs
        params = outputs_fn(flat.reshape(n, *event))
        params = params.reshape(n, num_elements, params.shape[-1])
        draw = sample_fn(element_key, jnp.take(params, element, axis=1))
        return flat.at[:, element].set(draw), None

    flat = jnp.asarray(initial, jnp.int32).reshape(n, num_elements)
    flat, _ = jax.lax.scan(step, flat, (jnp.asarray(order), keys))
    return flat.reshape(initial.shape)


def sample_cached(
    key: PRNGKey,
    decode_fn: Callable,
    cache,
    sample_fn: ElementSampler,
    encode_fn: Callable[[Array], Array],
    num_sequences: int,
    num_elements: int,
) -> Array:
    """Generates ``num_elements`` positions in order with incremental decoding:
    ``params_i, cache = decode_fn(cache, encode_fn(x_{i-1}))``, ``x_i ~ sample_fn(params_i)``
    (at ``i = 0`` the previous input is token 0's encoding, which the network ignores in favour
    of its start state).

    Args:
      key: PRNG key; one sub-key per position.
      decode_fn: ``(cache, x_prev (n, F)) -> (params (n, P), cache)``.
      cache: the initial cache for ``n`` sequences of length ``num_elements``.
      sample_fn: ``(key, params (n, P)) -> (n,)`` int draws.
      encode_fn: ``tokens (n,) -> (n, F)`` the network's input for one token (e.g. one-hot).
      num_sequences: ``n``.
      num_elements: ``L``.

    Returns:
      ``(n, L)`` int32 samples.
    """
    check_int("num_sequences", num_sequences)
    check_int("num_elements", num_elements)
    keys = jax.random.split(key, num_elements)

    def step(carry, position_key):
        cache, previous = carry
        params, cache = decode_fn(cache, encode_fn(previous))
        token = sample_fn(position_key, params)
        return (cache, token), token

    first = jnp.zeros((num_sequences,), jnp.int32)
    _, tokens = jax.lax.scan(step, (cache, first), keys)
    return tokens.T
