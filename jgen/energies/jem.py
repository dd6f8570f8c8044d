"""A classifier's logits read as an energy-based model of ``(x, y)`` and of ``x``: JEM.

Grathwohl, Wang, Jacobsen, Duvenaud, Norouzi & Swersky 2020, "Your classifier is secretly an
energy based model and you should treat it like one". The logits ``f(x)`` ``(n, C)`` of any
classifier define

    E(x, y) = -f(x)[y]                            p(x, y) ∝ exp(f(x)[y])
    E(x)    = -log sum_y exp(f(x)[y])             p(x) = sum_y p(x, y) ∝ exp(-E(x))
    p(y | x) = p(x, y) / p(x) = exp(-E(x, y) + E(x)) = softmax(f(x))[y],

so the usual classifier is the conditional of the joint EBM, and the shift of the logits by a
function of ``x``, to which the softmax is blind, is what the energy ``E(x)`` adds. JEM trains
``log p(y | x)`` by cross-entropy and ``log p(x)`` with SGLD samples of ``exp(-E(x))``.

Every function here takes logits ``(n, C)``; :func:`energy_fn` binds a classifier's parameters
into the batch energy ``x -> (n,)`` that the samplers take.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from jgen.checks import is_traced
from jgen.types import Array, Params


def _check_logits(logits: Array) -> None:
    """Raises ``ValueError`` unless ``logits`` is a floating array ``(n, C)`` with ``C >= 1``."""
    shape = jnp.shape(logits)
    if len(shape) != 2 or shape[1] < 1:
        raise ValueError(f"logits must have shape (n, C) with C >= 1; got shape {shape}")
    dtype = jnp.result_type(logits)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"logits must have a floating-point dtype; got dtype {dtype}")


def _check_labels(y: Array, n: int, num_classes: int) -> None:
    """Raises ``ValueError`` unless ``y`` is an integer array ``(n,)`` with values in
    ``[0, num_classes)``; the range is checked only when ``y`` is concrete (under ``jit`` an
    out-of-range label would be clamped silently by the gather, so check before tracing)."""
    if jnp.shape(y) != (n,):
        raise ValueError(f"y must be integer labels of shape ({n},); got shape {jnp.shape(y)}")
    dtype = jnp.result_type(y)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"y must have an integer dtype; got dtype {dtype}")
    if not is_traced(y):
        values = np.asarray(y)
        if n and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(
                f"y must hold labels in [0, {num_classes}) (C = {num_classes} logits); "
                f"got values in [{values.min()}, {values.max()}]"
            )


def energy(logits: Array) -> Array:
    """``E(x) = -log sum_y exp(f(x)[y])``, the marginal energy of JEM.

    Grathwohl et al. 2020, "Your classifier is secretly an energy based model and you should treat
    it like one".

    Args:
      logits: ``(n, C)`` the classifier's logits ``f(x)``.

    Returns:
      ``(n,)`` the energies (computed stably by ``logsumexp``).

    Raises:
      ValueError: when ``logits`` is not a floating ``(n, C)`` array.
    """
    _check_logits(logits)
    return -logsumexp(logits, axis=-1)


def class_log_probs(logits: Array) -> Array:
    """``log p(y | x) = f(x)[y] - log sum_y' exp(f(x)[y']) = -E(x, y) + E(x)`` for every ``y``.

    Grathwohl et al. 2020 (the classifier's softmax as the conditional of the joint EBM).

    Args:
      logits: ``(n, C)`` the classifier's logits ``f(x)``.

    Returns:
      ``(n, C)`` the class log-probabilities (each row's ``exp`` sums to 1).

    Raises:
      ValueError: when ``logits`` is not a floating ``(n, C)`` array.
    """
    _check_logits(logits)
    return jax.nn.log_softmax(logits, axis=-1)


def joint_energy(logits: Array, y: Array) -> Array:
    """``E(x, y) = -f(x)[y]``, the energy of the joint ``p(x, y) ∝ exp(f(x)[y])``.

    Grathwohl et al. 2020.

    Args:
      logits: ``(n, C)`` the classifier's logits ``f(x)``.
      y: ``(n,)`` integer labels in ``[0, C)``.

    Returns:
      ``(n,)`` the joint energies ``-logits[i, y_i]``.

    Raises:
      ValueError: when ``logits`` is not a floating ``(n, C)`` array, or ``y`` is not an integer
        ``(n,)`` array (with values in ``[0, C)`` when it is concrete).
    """
    _check_logits(logits)
    n, num_classes = jnp.shape(logits)
    _check_labels(y, n, num_classes)
    return -jnp.take_along_axis(logits, jnp.asarray(y)[:, None], axis=-1)[:, 0]


def energy_fn(
    classifier_apply: Callable[[Params, Array], Array], params: Params
) -> Callable[[Array], Array]:
    """The batch energy ``x -> E(x) = -log sum_y exp(f_params(x)[y])`` of a classifier.

    Grathwohl et al. 2020. Sample ``p(x) ∝ exp(-E(x))`` by passing the result to
    :func:`jgen.convert.score_from_energy` and a Langevin sampler.

    Args:
      classifier_apply: ``(params, x (n, *event)) -> logits (n, C)``; for a module returning
        more than logits (``jgen.nets.classifier.ConvClassifier`` returns ``(features,
        logits)``) pass ``lambda p, x: model.apply(p, x)[1]``.
      params: the classifier's variables.

    Returns:
      ``energy(x)``: ``(n, *event) -> (n,)``, raising ``ValueError`` when the classifier's output
      is not logits ``(n, C)`` for the ``n`` inputs.
    """

    def batch_energy(x: Array) -> Array:
        logits = classifier_apply(params, x)
        if not hasattr(logits, "shape"):
            raise ValueError(
                "classifier_apply(params, x) must return the logits array (n, C); got a "
                f"{type(logits).__name__} (for a module returning (features, logits), pass "
                "lambda p, x: model.apply(p, x)[1])"
            )
        if jnp.ndim(logits) != 2 or jnp.shape(logits)[0] != jnp.shape(x)[0]:
            raise ValueError(
                f"classifier_apply(params, x) must return logits of shape ({jnp.shape(x)[0]}, C) "
                f"for x of shape {jnp.shape(x)}; got shape {jnp.shape(logits)}"
            )
        return energy(logits)

    return batch_energy
