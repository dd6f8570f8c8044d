"""Losses and penalties of generative adversarial networks, as pure functions.

A discriminator (or critic) returns raw scores ``real = D(x_real)`` and ``fake = D(G(z))``, both of
shape ``(B,)``: logits before any sigmoid for the probabilistic losses, critic values for the
Wasserstein and hinge losses. Every loss returns one value per example, shape ``(B,)``, and the
caller reduces (usually with a mean). Both players *minimise* their loss. Writing
``softplus(t) = log(1 + e^t)``, ``sigmoid(t) = 1 / (1 + e^-t)``, ``r = real`` and ``f = fake``:

=====================  ==================================  =====================================
loss                   discriminator                       generator
=====================  ==================================  =====================================
minimax                ``softplus(-r) + softplus(f)``      ``-softplus(f) = log(1 - sigmoid(f))``
non-saturating         ``softplus(-r) + softplus(f)``      ``softplus(-f) = -log sigmoid(f)``
wasserstein            ``f - r``                           ``-f``
least squares          ``(r - b)^2 / 2 + (f - a)^2 / 2``   ``(f - c)^2 / 2``
hinge                  ``relu(1 - r) + relu(1 + f)``       ``-f``
relativistic average   ``softplus(-(r - mean f))``         ``softplus(-(f - mean r))``
                       ``+ softplus(f - mean r)``          ``+ softplus(r - mean f)``
=====================  ==================================  =====================================

- minimax, the saturating loss of Goodfellow et al. 2014 ("Generative adversarial nets"): the
  discriminator is the binary cross-entropy of ``D = sigmoid(logit)``, ``-log D(x) - log(1 -
  D(G(z)))``; against the optimal ``D* = p_d / (p_d + p_g)`` the value is
  ``-log 4 + 2 JSD(p_d, p_g)``. The generator term saturates when ``D`` rejects its samples;
- non-saturating: the same discriminator, and the generator maximises ``log D(G(z))`` instead
  (Goodfellow et al. 2014, Sec. 3), which has strong gradients early in training;
- wasserstein (Arjovsky, Chintala & Bottou 2017, "Wasserstein GAN"): the critic estimates the
  Kantorovich-Rubinstein dual ``W_1 = sup_{|D|_L <= 1} E D(x_real) - E D(x_fake)``; keep it
  Lipschitz with :func:`clip_weights` (the paper), :func:`gradient_penalty` (WGAN-GP) or spectral
  normalisation;
- least squares (Mao et al. 2017, "Least squares generative adversarial networks"): codes ``a``
  for fake, ``b`` for real, and ``c``, the value the generator wants ``D`` to believe. The
  defaults ``a = 0, b = 1, c = 1`` are the 0-1 coding; ``a = -1, b = 1, c = 0`` satisfies the
  paper's ``b - c = 1, b - a = 2``, under which the generator minimises the Pearson
  ``chi^2(p_d + p_g || 2 p_g)``;
- hinge (Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018, "Spectral normalization for
  generative adversarial networks");
- relativistic average (Jolicoeur-Martineau 2019, "The relativistic discriminator: a key element
  missing from standard GAN", RaSGAN): ``D`` judges whether real data are more realistic than the
  average fake, and conversely. The means over the batch couple the examples: example ``i`` is
  the pair ``(real_i, fake_i)``, and only the batch mean of the values is the paper's loss.

Penalties on the critic's input gradient take ``critic_fn(x (B, *event)) -> (B,)``, with the
parameters bound by a closure so ``jax.grad`` of the penalty reaches them. The gradient of the
*sum* of the critic's outputs gives every example's input gradient only if the critic acts on each
example alone: a critic with statistics across the batch (batch normalisation in training mode,
minibatch discrimination) mixes the examples' gradients. Use layer or no normalisation instead.

- :func:`r1_penalty` and :func:`r2_penalty` (Mescheder, Geiger & Nowozin 2018, "Which training
  methods for GANs actually converge?"): ``|grad_x D(x)|^2`` on real or on generated data;
- :func:`gradient_penalty` (Gulrajani et al. 2017, "Improved training of Wasserstein GANs"),
  two-sided or one-sided (Petzka, Fischer & Lukovnikov 2018, "On the regularization of Wasserstein
  GANs"), on random interpolates between real and generated data;
- :func:`penalized_value`, ``value - weight |grad_x D(x)|^2`` (Roth et al. 2017, "Stabilizing
  training of generative adversarial networks through regularization"; Mescheder et al. 2018).

Other adversarial-family objectives: :func:`gmmn_loss` (generative moment matching, Li, Swersky
& Zemel 2015; Dziugaite, Roy & Ghahramani 2015), the InfoGAN mutual-information terms
:func:`infogan_categorical_loss` and :func:`infogan_gaussian_loss` (Chen et al. 2016) and the
CycleGAN :func:`cycle_consistency_loss` (Zhu et al. 2017).

A discriminator step with the non-saturating loss and R1::

    loss = get_loss("non_saturating")

    def d_loss(d_params, x, fake):           # fake = jax.lax.stop_gradient(generate(g_params, z))
        critic = lambda v: discriminate(d_params, v)
        per_example = loss.discriminator(critic(x), critic(fake))
        return jnp.mean(per_example + 0.5 * gamma * r1_penalty(critic, x))
"""

import math
import numbers
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_choice, check_positive, is_traced
from jgen.metrics.mmd import gaussian_kernel, mmd2_unbiased
from jgen.types import Array, PRNGKey, PyTree

LossFn = Callable[[Array, Array], Array]
"""``loss(real (B,), fake (B,)) -> (B,)``: one player's per-example loss from the scores."""
CriticFn = Callable[[Array], Array]
"""``critic(x (B, *event)) -> (B,)``, acting on each example alone."""

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class GanLoss(NamedTuple):
    """The two players' losses of one GAN objective, both minimised.

    Attributes:
      discriminator: ``discriminator(real (B,), fake (B,)) -> (B,)``.
      generator: ``generator(real (B,), fake (B,)) -> (B,)``. It takes ``real`` because the
        relativistic loss needs it; the other generator losses ignore it (pass the real scores,
        or any array of the same shape).
    """

    discriminator: LossFn
    generator: LossFn


# --------------------------------------------------------------------------------------------
# Input checks.


def _shape(x) -> tuple[int, ...]:
    return tuple(np.shape(x))


def _check_floating(name: str, x) -> None:
    dtype = x.dtype if hasattr(x, "dtype") else jnp.asarray(x).dtype  # lists: their array's
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{name} must have a floating-point dtype; got dtype {dtype}")


def _check_batch(name: str, x) -> None:
    """``x`` is a non-empty floating-point batch ``(B, *event)``."""
    shape = _shape(x)
    if len(shape) < 1 or shape[0] < 1:
        raise ValueError(f"{name} must be a batch of shape (B, *event) with B >= 1; got {shape}")
    _check_floating(name, x)


def _check_same_shape(name: str, x, ref_name: str, ref) -> None:
    if _shape(x) != _shape(ref):
        raise ValueError(
            f"{name} must have the shape of {ref_name}, {_shape(ref)}; got shape {_shape(x)}"
        )


def _check_scores(real, fake) -> tuple[Array, Array]:
    """Both score vectors are ``(B,)`` with the same ``B >= 1``; returns them as arrays."""
    for name, v in (("real", real), ("fake", fake)):
        shape = _shape(v)
        if len(shape) != 1 or shape[0] < 1:
            raise ValueError(
                f"{name} must be a vector of discriminator outputs of shape (B,) with B >= 1; "
                f"got shape {shape}"
            )
        _check_floating(name, v)
    _check_same_shape("fake", fake, "real", real)
    return jnp.asarray(real), jnp.asarray(fake)


def _check_real_number(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite real number; got {value!r}")


def _event_axes(x: Array) -> tuple[int, ...]:
    return tuple(range(1, jnp.ndim(x)))


# --------------------------------------------------------------------------------------------
# Losses.


def minimax_discriminator_loss(real: Array, fake: Array) -> Array:
    """``softplus(-r) + softplus(f) = -log D(x) - log(1 - D(G(z)))`` with ``D = sigmoid(logit)``:
    the binary cross-entropy of Goodfellow et al. 2014, also the discriminator of the
    non-saturating loss.

    Args:
      real: ``(B,)`` logits of real data.
      fake: ``(B,)`` logits of generated data.

    Returns:
      ``(B,)``.
    """
    real, fake = _check_scores(real, fake)
    return jax.nn.softplus(-real) + jax.nn.softplus(fake)


def minimax_generator_loss(real: Array, fake: Array) -> Array:
    """``-softplus(f) = log(1 - D(G(z)))``, the saturating generator loss of Goodfellow et al.
    2014 (its gradient vanishes when ``D`` confidently rejects the samples).

    Args:
      real: ``(B,)`` logits of real data (unused; checked for its shape).
      fake: ``(B,)`` logits of generated data.

    Returns:
      ``(B,)``.
    """
    _, fake = _check_scores(real, fake)
    return -jax.nn.softplus(fake)


def non_saturating_generator_loss(real: Array, fake: Array) -> Array:
    """``softplus(-f) = -log D(G(z))``, the non-saturating generator loss (Goodfellow et al. 2014,
    Sec. 3).

    Args:
      real: ``(B,)`` logits of real data (unused; checked for its shape).
      fake: ``(B,)`` logits of generated data.

    Returns:
      ``(B,)``.
    """
    _, fake = _check_scores(real, fake)
    return jax.nn.softplus(-fake)


def wasserstein_discriminator_loss(real: Array, fake: Array) -> Array:
    """``f - r``: the critic maximises ``E D(x_real) - E D(x_fake)``, the dual estimate of the
    Wasserstein-1 distance when ``D`` is 1-Lipschitz (Arjovsky, Chintala & Bottou 2017).

    Args:
      real: ``(B,)`` critic values of real data.
      fake: ``(B,)`` critic values of generated data.

    Returns:
      ``(B,)``.
    """
    real, fake = _check_scores(real, fake)
    return fake - real


def wasserstein_generator_loss(real: Array, fake: Array) -> Array:
    """``-f``: the generator raises the critic's values of its samples (Arjovsky et al. 2017);
    also the generator loss of the hinge GAN (Lim & Ye 2017; Miyato et al. 2018).

    Args:
      real: ``(B,)`` critic values of real data (unused; checked for its shape).
      fake: ``(B,)`` critic values of generated data.

    Returns:
      ``(B,)``.
    """
    _, fake = _check_scores(real, fake)
    return -fake


def clip_weights(params: PyTree, bound: float) -> PyTree:
    """Clips every parameter to ``[-bound, bound]``, the WGAN critic's crude Lipschitz constraint
    (Arjovsky et al. 2017, Algorithm 1, ``c = 0.01``); apply after each critic update.

    Args:
      params: a pytree of arrays.
      bound: ``c > 0``.

    Returns:
      The clipped pytree.
    """
    check_positive("bound", bound)
    return jax.tree.map(lambda p: jnp.clip(p, -bound, bound), params)


def least_squares_discriminator_loss(
    real: Array, fake: Array, a: float = 0.0, b: float = 1.0
) -> Array:
    """``(r - b)^2 / 2 + (f - a)^2 / 2`` (Mao et al. 2017): ``D`` regresses real data onto ``b``
    and generated data onto ``a``; its optimum is ``D* = (b p_d + a p_g) / (p_d + p_g)``.

    Args:
      real: ``(B,)`` discriminator outputs of real data.
      fake: ``(B,)`` discriminator outputs of generated data.
      a: the target for generated data.
      b: the target for real data.

    Returns:
      ``(B,)``.
    """
    real, fake = _check_scores(real, fake)
    return 0.5 * (real - b) ** 2 + 0.5 * (fake - a) ** 2


def least_squares_generator_loss(real: Array, fake: Array, c: float = 1.0) -> Array:
    """``(f - c)^2 / 2`` (Mao et al. 2017): the generator wants ``D`` to output ``c``.

    Args:
      real: ``(B,)`` discriminator outputs of real data (unused; checked for its shape).
      fake: ``(B,)`` discriminator outputs of generated data.
      c: the value the generator wants ``D`` to believe for its samples.

    Returns:
      ``(B,)``.
    """
    _, fake = _check_scores(real, fake)
    return 0.5 * (fake - c) ** 2


def least_squares(a: float = 0.0, b: float = 1.0, c: float = 1.0) -> GanLoss:
    """The least-squares GAN (Mao et al. 2017, "Least squares generative adversarial networks").

    ``D: (r - b)^2 / 2 + (f - a)^2 / 2`` and ``G: (f - c)^2 / 2``. The defaults are the 0-1 coding
    (``a = 0, b = 1, c = 1``); with ``a = -1, b = 1, c = 0`` (``b - c = 1, b - a = 2``) the
    generator minimises the Pearson ``chi^2(p_d + p_g || 2 p_g)`` against the optimal ``D``.

    Args:
      a: the discriminator's target for generated data.
      b: the discriminator's target for real data, ``b != a``.
      c: the generator's target.

    Returns:
      The :class:`GanLoss`.

    Raises:
      ValueError: when a code is not a finite number, or ``a == b``.
    """
    for name, value in (("a", a), ("b", b), ("c", c)):
        _check_real_number(name, value)
    if a == b:
        raise ValueError(f"b (the target for real data) must differ from a; got a = b = {b!r}")

    def discriminator(real: Array, fake: Array) -> Array:
        return least_squares_discriminator_loss(real, fake, a=a, b=b)

    def generator(real: Array, fake: Array) -> Array:
        return least_squares_generator_loss(real, fake, c=c)

    return GanLoss(discriminator, generator)


def hinge_discriminator_loss(real: Array, fake: Array) -> Array:
    """``relu(1 - r) + relu(1 + f)``, the hinge loss (Lim & Ye 2017, "Geometric GAN"; Miyato et
    al. 2018, "Spectral normalization for GANs"); the generator loss is
    :func:`wasserstein_generator_loss`, ``-f``.

    Args:
      real: ``(B,)`` critic values of real data.
      fake: ``(B,)`` critic values of generated data.

    Returns:
      ``(B,)``.
    """
    real, fake = _check_scores(real, fake)
    return jax.nn.relu(1.0 - real) + jax.nn.relu(1.0 + fake)


def _relativistic_average(real: Array, fake: Array) -> Array:
    """``softplus(-(r - mean f)) + softplus(f - mean r)``: the binary cross-entropy of
    ``D~(x_r) = sigmoid(r - mean f)`` labelled real and ``D~(x_f) = sigmoid(f - mean r)``
    labelled fake; the generator's loss is the same with the roles swapped."""
    real, fake = _check_scores(real, fake)
    return jax.nn.softplus(-(real - jnp.mean(fake))) + jax.nn.softplus(fake - jnp.mean(real))


def relativistic_average_discriminator_loss(real: Array, fake: Array) -> Array:
    """``softplus(-(r - mean f)) + softplus(f - mean r)`` with the means over the batch
    (Jolicoeur-Martineau 2019, RaSGAN): real data should look more realistic than the average
    fake, and fakes less realistic than the average real.

    The means couple the examples: value ``i`` belongs to the pair ``(real_i, fake_i)``, and the
    batch mean is the paper's loss.

    Args:
      real: ``(B,)`` logits of real data.
      fake: ``(B,)`` logits of generated data.

    Returns:
      ``(B,)``.
    """
    return _relativistic_average(real, fake)


def relativistic_average_generator_loss(real: Array, fake: Array) -> Array:
    """``softplus(-(f - mean r)) + softplus(r - mean f)`` (Jolicoeur-Martineau 2019, RaSGAN): the
    discriminator loss with real and fake swapped, so the generator also pushes real data to look
    less realistic than its samples.

    Args:
      real: ``(B,)`` logits of real data.
      fake: ``(B,)`` logits of generated data.

    Returns:
      ``(B,)``.
    """
    _check_scores(real, fake)  # so errors name the arguments as the caller passed them
    return _relativistic_average(fake, real)


LOSSES: dict[str, GanLoss] = {
    "minimax": GanLoss(minimax_discriminator_loss, minimax_generator_loss),
    "non_saturating": GanLoss(minimax_discriminator_loss, non_saturating_generator_loss),
    "wasserstein": GanLoss(wasserstein_discriminator_loss, wasserstein_generator_loss),
    "least_squares": least_squares(),
    "hinge": GanLoss(hinge_discriminator_loss, wasserstein_generator_loss),
    "relativistic_average": GanLoss(
        relativistic_average_discriminator_loss, relativistic_average_generator_loss
    ),
}
"""Every GAN loss by name (least squares with its default codes ``a = 0, b = 1, c = 1``)."""


def get_loss(name: str) -> GanLoss:
    """The :class:`GanLoss` called ``name``, one of the keys of :data:`LOSSES`.

    Raises:
      ValueError: when ``name`` is unknown (the message lists the choices).
    """
    check_choice("name", name, LOSSES)
    return LOSSES[name]


# --------------------------------------------------------------------------------------------
# Gradient penalties.


def _input_gradient(critic_fn: CriticFn, x: Array) -> Array:
    """``grad_x sum_i D(x)_i``, ``(B, *event)``: each example's input gradient when ``D`` acts
    per example."""
    batch = _shape(x)[0]

    def total(v: Array) -> Array:
        out = critic_fn(v)
        if _shape(out) != (batch,):
            raise ValueError(
                f"critic_fn must map x of shape (B, *event) to shape (B,) = ({batch},); "
                f"got output shape {_shape(out)}"
            )
        return jnp.sum(out)

    return jax.grad(total)(x)


def _safe_norm(squared: Array) -> Array:
    """``sqrt(squared)`` whose derivative at 0 is 0 rather than NaN (the inner ``where`` keeps
    the untaken branch's ``1 / (2 sqrt(0))`` out of the gradient)."""
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def squared_gradient_norm(critic_fn: CriticFn, x: Array) -> Array:
    """``|grad_x D(x_i)|^2`` for each example, summed over the event axes.

    Computed as the gradient of ``sum_i D(x)_i``, which is every example's own gradient only when
    ``critic_fn`` acts on each example alone (no statistics across the batch).

    Args:
      critic_fn: ``critic(x (B, *event)) -> (B,)``.
      x: ``(B, *event)``.

    Returns:
      ``(B,)``.

    Raises:
      ValueError: when ``x`` is not a floating-point batch or the critic's output is not ``(B,)``.
    """
    _check_batch("x", x)
    x = jnp.asarray(x)
    grad = _input_gradient(critic_fn, x)
    return jnp.sum(grad**2, axis=_event_axes(grad))


def r1_penalty(critic_fn: CriticFn, real: Array) -> Array:
    """R1, ``|grad_x D(x)|^2`` on real data (Mescheder, Geiger & Nowozin 2018, "Which training
    methods for GANs actually converge?"). The discriminator adds ``gamma / 2`` times its mean
    to its loss.

    Args:
      critic_fn: ``critic(x (B, *event)) -> (B,)``, acting per example.
      real: ``(B, *event)`` real data.

    Returns:
      ``(B,)``.
    """
    _check_batch("real", real)
    return squared_gradient_norm(critic_fn, real)


def r2_penalty(critic_fn: CriticFn, fake: Array) -> Array:
    """R2, ``|grad_x D(x)|^2`` on generated data (Mescheder et al. 2018); weighted by
    ``gamma / 2`` like :func:`r1_penalty`. Pass ``stop_gradient`` samples so that only the
    discriminator is penalised.

    Args:
      critic_fn: ``critic(x (B, *event)) -> (B,)``, acting per example.
      fake: ``(B, *event)`` generated data.

    Returns:
      ``(B,)``.
    """
    _check_batch("fake", fake)
    return squared_gradient_norm(critic_fn, fake)


def gradient_penalty(
    critic_fn: CriticFn,
    real: Array,
    fake: Array,
    key: PRNGKey,
    target: float = 1.0,
    one_sided: bool = False,
) -> Array:
    """The WGAN-GP penalty (Gulrajani et al. 2017, "Improved training of Wasserstein GANs"):
    ``(|grad D(x^)| - target)^2`` at ``x^ = eps real + (1 - eps) fake``, ``eps ~ U(0, 1)`` drawn
    once per example; with ``one_sided``, ``max(0, |grad D(x^)| - target)^2``, which only
    penalises gradients steeper than ``target`` (Petzka, Fischer & Lukovnikov 2018).

    The paper weights the mean by ``lambda = 10``. Pass ``stop_gradient`` samples as ``fake`` so
    that only the critic is penalised. The norm's derivative at a zero gradient is 0, not NaN.

    Args:
      critic_fn: ``critic(x (B, *event)) -> (B,)``, acting per example.
      real: ``(B, *event)`` real data.
      fake: ``(B, *event)`` generated data.
      key: draws ``eps``.
      target: the gradient norm aimed at, ``>= 0`` (1 for a 1-Lipschitz critic).
      one_sided: penalise only norms above ``target``.

    Returns:
      ``(B,)``.
    """
    _check_batch("real", real)
    _check_same_shape("fake", fake, "real", real)
    _check_floating("fake", fake)
    check_positive("target", target, allow_zero=True)
    real, fake = jnp.asarray(real), jnp.asarray(fake)
    dtype = jnp.result_type(real, fake)
    # One eps per example, broadcast over its event axes, so x^ lies on the segment.
    eps = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), dtype)
    interpolates = eps * real + (1.0 - eps) * fake
    excess = _safe_norm(squared_gradient_norm(critic_fn, interpolates)) - target
    if one_sided:
        excess = jax.nn.relu(excess)
    return excess**2


def penalized_value(value: Array, critic_fn: CriticFn, x: Array, weight: float) -> Array:
    """``value - weight |grad_x D(x)|^2``: a critic objective (to maximise) with the gradient
    penalty of Roth et al. 2017 ("Stabilizing training of generative adversarial networks through
    regularization") and Mescheder et al. 2018, whose simplest form is R1 (``x`` real) or R2
    (``x`` generated).

    Args:
      value: ``(B,)`` the per-example objective.
      critic_fn: ``critic(x (B, *event)) -> (B,)``, acting per example.
      x: ``(B, *event)`` the points where the gradient is penalised.
      weight: ``>= 0``.

    Returns:
      ``(B,)``.
    """
    _check_batch("x", x)
    batch = _shape(x)[0]
    if _shape(value) != (batch,):
        raise ValueError(
            f"value must have shape (B,) = ({batch},), the batch of x; got shape {_shape(value)}"
        )
    check_positive("weight", weight, allow_zero=True)
    return value - weight * squared_gradient_norm(critic_fn, x)


# --------------------------------------------------------------------------------------------
# Other objectives.


def gmmn_loss(
    x: Array, y: Array, bandwidths: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
) -> Array:
    """Generative moment matching (Li, Swersky & Zemel 2015, "Generative moment matching
    networks"; Dziugaite, Roy & Ghahramani 2015): the unbiased ``MMD_u^2`` (Gretton et al. 2012)
    between data and samples with the kernel ``k(x, y) = sum_h exp(-|x - y|^2 / (2 h^2))``.

    A sum of Gaussian kernels keeps gradients alive at every scale between the bandwidths (both
    papers use several). The default range suits standardised data; scale it with the typical
    distance between examples (:func:`jgen.metrics.mmd.median_heuristic`). The MMD compares the
    two samples as a whole, so the loss is a scalar, not a per-example ``(B,)``.

    Args:
      x: ``(n, *event)`` data, ``n >= 2``.
      y: ``(m, *event)`` generated samples, ``m >= 2``.
      bandwidths: the kernels' ``h > 0``, at least one.

    Returns:
      A scalar, minimised by the generator (through ``y``).
    """
    bandwidths = tuple(bandwidths)
    if not bandwidths:
        raise ValueError("bandwidths must hold at least one bandwidth; got ()")
    kernels = [gaussian_kernel(h) for h in bandwidths]

    def kernel(a: Array, b: Array) -> Array:
        return sum(k(a, b) for k in kernels)

    return mmd2_unbiased(x, y, kernel)


def infogan_categorical_loss(code_logits: Array, codes: Array) -> Array:
    """``-log Q(c | x)`` for a categorical code (Chen et al. 2016, "InfoGAN").

    The mutual-information bound ``L_I = H(c) - E[loss] <= I(c; G(z, c))`` (Chen et al. 2016,
    Sec. 5): ``H(c)`` is fixed by the code's prior, so the generator and ``Q`` both minimise
    ``lambda E[loss]`` added to their losses.

    Args:
      code_logits: ``(B, K)`` the logits of ``Q(c | x)`` at the generated ``x = G(z, c)``.
      codes: ``(B,)`` integer codes in ``[0, K)`` that generated ``x``.

    Returns:
      ``(B,)``.
    """
    shape = _shape(code_logits)
    if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"code_logits must have shape (B, K) with B, K >= 1; got shape {shape}")
    _check_floating("code_logits", code_logits)
    if _shape(codes) != shape[:1]:
        raise ValueError(f"codes must have shape (B,) = {shape[:1]}; got shape {_shape(codes)}")
    codes = jnp.asarray(codes)
    if not jnp.issubdtype(codes.dtype, jnp.integer):
        raise ValueError(f"codes must have an integer dtype; got dtype {codes.dtype}")
    if not is_traced(codes):
        # take_along_axis would silently clamp an out-of-range code.
        values = np.asarray(codes)
        if values.min() < 0 or values.max() >= shape[1]:
            raise ValueError(
                f"codes must lie in [0, K) = [0, {shape[1]}); got values from {values.min()} "
                f"to {values.max()}"
            )
    log_q = jax.nn.log_softmax(code_logits, axis=-1)
    return -jnp.take_along_axis(log_q, codes[:, None], axis=-1)[:, 0]


def infogan_gaussian_loss(mean: Array, log_std: Array, codes: Array) -> Array:
    """``-log N(c; mean, diag exp(log_std)^2)`` summed over the code dimensions, for a continuous
    code (Chen et al. 2016, "InfoGAN"); ``L_I = H(c) - E[loss] <= I(c; G(z, c))`` as for
    :func:`infogan_categorical_loss`.

    Args:
      mean: ``(B, d)`` the mean of ``Q(c | x)``.
      log_std: ``(B, d)`` its log standard deviation.
      codes: ``(B, d)`` the codes that generated ``x``.

    Returns:
      ``(B,)``.
    """
    shape = _shape(mean)
    if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"mean must have shape (B, d) with B, d >= 1; got shape {shape}")
    _check_floating("mean", mean)
    for name, v in (("log_std", log_std), ("codes", codes)):
        _check_same_shape(name, v, "mean", mean)
        _check_floating(name, v)
    mean, log_std, codes = jnp.asarray(mean), jnp.asarray(log_std), jnp.asarray(codes)
    z = (codes - mean) * jnp.exp(-log_std)
    return jnp.sum(0.5 * z**2 + log_std + _HALF_LOG_2PI, axis=-1)


def cycle_consistency_loss(x: Array, x_cycled: Array, norm: str = "l1") -> Array:
    """``mean |F(G(x)) - x|`` (``"l1"``) or ``mean (F(G(x)) - x)^2`` (``"l2"``) over the event
    axes (Zhu, Park, Isola & Efros 2017, "Unpaired image-to-image translation using
    cycle-consistent adversarial networks", CycleGAN; the paper uses L1, weighted by 10).

    Args:
      x: ``(B, *event)`` inputs.
      x_cycled: ``(B, *event)`` their round trip ``F(G(x))``.
      norm: ``"l1"`` or ``"l2"``.

    Returns:
      ``(B,)``.
    """
    _check_batch("x", x)
    _check_same_shape("x_cycled", x_cycled, "x", x)
    _check_floating("x_cycled", x_cycled)
    check_choice("norm", norm, ("l1", "l2"))
    diff = jnp.asarray(x_cycled) - jnp.asarray(x)
    err = jnp.abs(diff) if norm == "l1" else diff**2
    return jnp.mean(err, axis=_event_axes(err))
