"""Classifier guidance through a noisy classifier (Dhariwal & Nichol 2021, "Diffusion models beat
GANs on image synthesis", Sec. 4).

A classifier ``p_phi(y | x_t, t)`` trained on noised data (:func:`noisy_classifier_loss`) steers
an unconditional (or conditional) noise predictor towards a class. By Bayes' rule the score of
the class-conditional marginal is

    grad log q(x_t | y) = grad log q(x_t) + grad log p(y | x_t),

and with ``score = -eps / sqrt(1 - abar_t)`` (:func:`jgen.samplers.ddpm.score_from_eps`) the noise
prediction of ``q(x_t) p(y | x_t)^s`` is (Dhariwal & Nichol 2021, eq. 14 and Algorithm 2)

    eps_hat(x_t, t) = eps(x_t, t) - s sqrt(1 - abar_t) grad_x log p_phi(y | x_t, t).

``s = 1`` is the exact conditional model when the classifier is the Bayes posterior; ``s > 1``
sharpens towards the class. The pieces: :func:`classifier_log_prob_grad` (the classifier's
gradient), :func:`classifier_guided_eps` (the formula above) and :func:`classifier_guidance`
(both composed into an ``eps_fn(x, t)`` that :func:`jgen.samplers.ddpm.ddpm_sample` and
:func:`jgen.samplers.ddim.ddim_sample` take unchanged). In ancestral sampling this shifts the
reverse mean by ``s beta_t / sqrt(alpha_t) grad log p`` where Algorithm 1 of the paper shifts it
by ``s sigma_t^2 grad log p``; the two agree to first order in ``beta_t``.

Notation follows :mod:`jgen.samplers.ddpm`: ``alphas_cumprod`` ``(N,)`` holds ``abar_t`` for the
0-based integer steps ``t = 0 .. N - 1``, and the classifier is
``logits_fn(x_t (n, *event), t (n,) int) -> (n, C)`` (e.g.
:class:`~jgen.nets.score_mlp.ScoreMLP` with ``num_outputs=C``, parameters bound by a closure).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_float_batch, is_traced
from jgen.losses.diffusion import EpsFn
from jgen.samplers.ddpm import check_schedule, q_sample
from jgen.sdes.sde import expand
from jgen.types import Array, PRNGKey

LogitsFn = Callable[[Array, Array], Array]
"""``logits_fn(x_t (n, *event), t (n,) int) -> (n, C)``: a time-conditioned classifier's logits."""


# --------------------------------------------------------------------------------------------
# Checks.


def _check_classifier(logits_fn: LogitsFn, x: Array, t_dtype) -> int:
    """``logits_fn(x, t (n,))`` must return floating ``(n, C)`` with ``C >= 2``; checked by tracing
    only (``jax.eval_shape``). Returns ``C``."""
    t = jax.ShapeDtypeStruct(x.shape[:1], t_dtype)
    out = jax.eval_shape(logits_fn, x, t)
    shape = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
    if not (isinstance(shape, tuple) and len(shape) == 2 and shape[0] == x.shape[0]):
        raise ValueError(f"logits_fn must return logits of shape ({x.shape[0]}, C); got {shape}")
    if shape[1] < 2:
        raise ValueError(f"logits_fn must return C >= 2 class logits; got shape {shape}")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"logits_fn must return floating-point logits; got dtype {out.dtype}")
    return shape[1]


def _check_labels(labels, n: int, num_classes: int) -> Array:
    """Integer labels ``(n,)`` in ``[0, num_classes)`` (values checked when concrete)."""
    if tuple(np.shape(labels)) != (n,) or not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
        raise ValueError(
            f"labels must be integers of shape ({n},); got shape {np.shape(labels)}, "
            f"dtype {jnp.result_type(labels)}"
        )
    if not is_traced(labels):
        host = np.asarray(labels)  # on the host: under a trace, jnp ops on constants are staged
        low, high = int(host.min()), int(host.max())
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"labels must lie in [0, {num_classes}) (the classifier's {num_classes} "
                f"classes); got values in [{low}, {high}]"
            )
    return jnp.asarray(labels, jnp.int32)


def _check_steps(t, n: int) -> None:
    if tuple(np.shape(t)) != (n,) or not jnp.issubdtype(jnp.result_type(t), jnp.integer):
        raise ValueError(
            f"t must be integer steps of shape ({n},); got shape {np.shape(t)}, "
            f"dtype {jnp.result_type(t)}"
        )


def _label_log_prob(logits: Array, labels: Array) -> Array:
    """``log softmax(logits)[y]`` per example, ``(n, C), (n,) -> (n,)``."""
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(log_p, labels[:, None], axis=-1)[:, 0]


# --------------------------------------------------------------------------------------------
# Training the noisy classifier.


def noisy_classifier_loss(
    logits_fn: LogitsFn, x0: Array, labels: Array, key: PRNGKey, alphas_cumprod: Array
) -> Array:
    """Cross-entropy of a time-conditioned classifier on noised data (Dhariwal & Nichol 2021,
    Sec. 4.1: "we train a classifier p_phi(y | x_t, t) on noisy images x_t").

    ``t ~ Uniform{0, ..., N - 1}``, ``eps ~ N(0, I)``,
    ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` (:func:`jgen.samplers.ddpm.q_sample`, the
    noising of :func:`jgen.losses.diffusion.ddpm_eps_loss`) and, per example,

        loss = -log softmax(logits_fn(x_t, t))[y].

    Its expectation is minimised by the Bayes posterior ``p(y | x_t)`` of the noised data, where
    it equals the conditional entropy ``E_t H(Y | X_t)``.

    Args:
      logits_fn: ``(x_t (n, *event), t (n,) int) -> (n, C)`` logits, ``C >= 2``.
      x0: ``(n, *event)`` data, floating point.
      labels: ``(n,)`` integer classes in ``[0, C)``.
      key: split into the steps and the noise.
      alphas_cumprod: ``(N,)`` ``abar_t`` in ``(0, 1)``
        (:func:`jgen.sdes.schedules.alphas_cumprod`).

    Returns:
      ``(n,)`` per-example cross-entropies in nats.

    Raises:
      ValueError: on a bad ``x0``, ``labels``, schedule or ``logits_fn`` output.
    """
    check_float_batch("x0", x0)
    abar = check_schedule("alphas_cumprod", alphas_cumprod).astype(x0.dtype)
    num_classes = _check_classifier(logits_fn, x0, jnp.int32)
    labels = _check_labels(labels, x0.shape[0], num_classes)
    t_key, noise_key = jax.random.split(key)
    t = jax.random.randint(t_key, x0.shape[:1], 0, abar.shape[0])
    x_t = q_sample(x0, t, jax.random.normal(noise_key, x0.shape, x0.dtype), abar)
    return -_label_log_prob(logits_fn(x_t, t), labels)


# --------------------------------------------------------------------------------------------
# Guidance.


def classifier_log_prob_grad(logits_fn: LogitsFn, x: Array, t: Array, labels: Array) -> Array:
    """The classifier's gradient ``grad_x log p_phi(y | x_t, t)`` per example (Dhariwal & Nichol
    2021, Algorithms 1 and 2).

    Computed as ``grad_x sum_i log softmax(logits_fn(x, t)_i)[y_i]``: one backward pass for the
    whole batch. That sum's gradient with respect to ``x_i`` is example ``i``'s own gradient only
    because the classifier treats examples independently (no batch statistics, no attention
    across the batch); ``logits_fn`` must be such a function (bind batch norm in eval mode).

    Args:
      logits_fn: ``(x_t (n, *event), t (n,) int) -> (n, C)`` logits.
      x: ``(n, *event)`` noisy inputs ``x_t``.
      t: ``(n,)`` integer steps.
      labels: ``(n,)`` integer classes in ``[0, C)``.

    Returns:
      ``(n, *event)``.

    Raises:
      ValueError: on a bad ``x``, ``t``, ``labels`` or ``logits_fn`` output.
    """
    check_float_batch("x", x)
    _check_steps(t, x.shape[0])
    labels = _check_labels(labels, x.shape[0], _check_classifier(logits_fn, x, jnp.result_type(t)))

    def total_log_prob(x):
        return jnp.sum(_label_log_prob(logits_fn(x, t), labels))

    return jax.grad(total_log_prob)(x)


def classifier_guided_eps(eps: Array, grad_log_prob: Array, abar_t: Array, scale) -> Array:
    """The guided noise prediction (Dhariwal & Nichol 2021, eq. 14 and Algorithm 2):

        eps_hat = eps - scale * sqrt(1 - abar_t) * grad_x log p(y | x_t),

    the noise prediction of ``q(x_t) p(y | x_t)^scale``: with the score
    ``-eps / sqrt(1 - abar_t)``, the scores add, ``grad log q(x_t) + scale grad log p(y | x_t)``.

    Args:
      eps: ``(n, *event)`` the noise prediction ``eps(x_t, t)``.
      grad_log_prob: ``(n, *event)`` the classifier's gradient (:func:`classifier_log_prob_grad`).
      abar_t: ``abar`` at each example's step, ``(n,)`` (or a scalar for the whole batch).
      scale: the guidance scale ``s``, a scalar or ``(n,)`` (1: the conditional model).

    Returns:
      ``(n, *event)``.

    Raises:
      ValueError: on mismatched shapes.
    """
    eps = jnp.asarray(eps)
    if jnp.shape(grad_log_prob) != eps.shape:
        raise ValueError(
            f"grad_log_prob must have the shape of eps {eps.shape}; got {jnp.shape(grad_log_prob)}"
        )
    per_example = [(), eps.shape[:1]]
    for name, value in (("abar_t", abar_t), ("scale", scale)):
        if jnp.shape(value) not in per_example:
            raise ValueError(
                f"{name} must be a scalar or of shape {eps.shape[:1]} (one per example); "
                f"got shape {jnp.shape(value)}"
            )
    abar_t, scale = jnp.asarray(abar_t, eps.dtype), jnp.asarray(scale, eps.dtype)
    coeff = expand(jnp.broadcast_to(scale * jnp.sqrt(1.0 - abar_t), eps.shape[:1]), eps)
    return eps - coeff * grad_log_prob


def classifier_guidance(
    eps_fn: EpsFn, logits_fn: LogitsFn, labels: Array, alphas_cumprod: Array, scale=1.0
) -> EpsFn:
    """A classifier-guided noise predictor ``eps_hat(x, t)`` (Dhariwal & Nichol 2021, eq. 14):

        eps_hat(x_t, t) = eps(x_t, t) - scale sqrt(1 - abar_t) grad_x log p_phi(y | x_t, t),

    :func:`classifier_guided_eps` of :func:`classifier_log_prob_grad`. The result has the
    samplers' signature ``(x (n, *event), t (n,) int) -> (n, *event)`` and goes to
    :func:`jgen.samplers.ddpm.ddpm_sample` or :func:`jgen.samplers.ddim.ddim_sample` unchanged;
    ``labels`` fixes the class of each of the ``n`` samples.

    Args:
      eps_fn: ``(x_t, t) -> (n, *event)`` the (unconditional) noise prediction.
      logits_fn: ``(x_t, t) -> (n, C)`` the noisy classifier.
      labels: ``(n,)`` integer target classes in ``[0, C)``, checked at each call.
      alphas_cumprod: ``(N,)`` ``abar_t`` in ``(0, 1)`` that ``t`` indexes.
      scale: the guidance scale ``s``, a scalar or ``(n,)``.

    Returns:
      ``eps_hat(x, t) -> (n, *event)``.

    Raises:
      ValueError: on a bad schedule or ``scale`` here; on bad labels, steps or outputs when
        ``eps_hat`` is called.
    """
    abar = check_schedule("alphas_cumprod", alphas_cumprod)
    if np.ndim(scale) > 1:
        raise ValueError(f"scale must be a scalar or (n,); got shape {np.shape(scale)}")

    def guided_eps_fn(x: Array, t: Array) -> Array:
        grad = classifier_log_prob_grad(logits_fn, x, t, labels)
        return classifier_guided_eps(eps_fn(x, t), grad, abar.astype(x.dtype)[t], scale)

    return guided_eps_fn
