"""Losses of the non-probabilistic autoencoders that VAEs are compared with: the deterministic
autoencoder and the denoising autoencoder (Vincent, Larochelle, Bengio & Manzagol 2008,
"Extracting and composing robust features with denoising autoencoders", ICML).

The encoder and decoder are plain batch-first functions, ``encode(x (B, *event)) -> z (B, ...)``
and ``decode(z) -> x̂ (B, *event)``; bind parameters with ``functools.partial`` (or a closure) and
differentiate the loss with respect to them. Losses are per example, ``(loss (B,), aux)``; take
the mean for a training objective.

A linear autoencoder trained on squared error learns the subspace of the top principal components
(Baldi & Hornik 1989, "Neural networks and principal component analysis"); probabilistic PCA
(:mod:`jgen.models.ppca`) is its probabilistic counterpart.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_batch, check_choice, check_positive, is_traced
from jgen.losses.elbo import bernoulli_log_likelihood
from jgen.types import Array, PRNGKey

RECONSTRUCTIONS = ("squared", "bernoulli")
"""Kinds of reconstruction error: squared error, or the Bernoulli cross-entropy of logits."""
NOISES = ("gaussian", "masking")
"""Corruptions of the denoising autoencoder (Vincent et al. 2008, Sec. 2.3)."""


def _check_batch(name: str, x) -> tuple[int, ...]:
    """Checks a floating-point batch ``(B, *event)`` of any event shape; returns its shape."""
    shape = tuple(np.shape(x))
    if len(shape) < 2:
        raise ValueError(f"{name} must be a batch of shape (B, *event); got shape {shape}")
    check_batch(name, x, shape[1:])
    return shape


def reconstruction_loss(x: Array, x_hat: Array, *, kind: str = "squared") -> Array:
    """Per-example reconstruction error, summed over the non-batch axes.

    * ``"squared"``: ``Σ_j (x_j - x̂_j)²`` (twice the Gaussian negative log-likelihood with unit
      variance, up to a constant);
    * ``"bernoulli"``: ``x̂`` are logits ``l`` and the error is the binary cross-entropy
      ``Σ_j -x_j log σ(l_j) - (1 - x_j) log σ(-l_j) = Σ_j softplus(l_j) - x_j l_j``; targets in
      ``[0, 1]`` (not only ``{0, 1}``) are accepted, as for grey-level images.

    Args:
      x: ``(B, *event)`` floating-point targets.
      x_hat: ``(B, *event)`` reconstructions (logits for ``"bernoulli"``).
      kind: one of :data:`RECONSTRUCTIONS`.

    Returns:
      ``(B,)`` errors.

    Raises:
      ValueError: when ``kind`` is unknown, ``x`` is not a floating-point batch or the shapes
        differ.
    """
    check_choice("kind", kind, RECONSTRUCTIONS)
    shape = _check_batch("x", x)
    if tuple(np.shape(x_hat)) != shape:
        raise ValueError(
            f"x_hat must have the shape of x {shape}; got shape {tuple(np.shape(x_hat))}"
        )
    if kind == "bernoulli":
        return -bernoulli_log_likelihood(x_hat, x)
    return jnp.sum(((x - x_hat) ** 2).reshape(shape[0], -1), axis=1)


def _encode_decode_loss(x_in, x, encode, decode, kind) -> tuple[Array, dict[str, Array]]:
    """Reconstruction of the target ``x`` from ``decode(encode(x_in))``, with the code's norm."""
    z = encode(x_in)
    batch = x.shape[0]
    if jnp.ndim(z) < 1 or jnp.shape(z)[0] != batch:
        raise ValueError(
            f"encode must return a batch of codes (B={batch}, ...); got shape {jnp.shape(z)}"
        )
    loss = reconstruction_loss(x, decode(z), kind=kind)
    return loss, {"code_sq_norm": jnp.sum(jnp.reshape(z, (batch, -1)) ** 2, axis=1)}


def autoencoder_loss(
    x: Array,
    encode: Callable[[Array], Array],
    decode: Callable[[Array], Array],
    *,
    kind: str = "squared",
) -> tuple[Array, dict[str, Array]]:
    """The deterministic autoencoder's loss ``L(x) = reconstruction_loss(x, decode(encode(x)))``.

    Args:
      x: ``(B, *event)`` floating-point batch.
      encode: ``x (B, *event) -> z (B, ...)``.
      decode: ``z -> x̂ (B, *event)`` (logits for ``kind="bernoulli"``).
      kind: one of :data:`RECONSTRUCTIONS`; see :func:`reconstruction_loss`.

    Returns:
      ``(loss (B,), aux)`` with ``aux["code_sq_norm"] = |z|²`` per example ``(B,)`` (a code that
      grows without bound is the usual failure of an unregularised autoencoder).

    Raises:
      ValueError: when ``kind`` is unknown or the shapes of ``x``, ``z`` or ``x̂`` are wrong.
    """
    check_choice("kind", kind, RECONSTRUCTIONS)
    _check_batch("x", x)
    return _encode_decode_loss(x, x, encode, decode, kind)


def _check_level(noise: str, level) -> None:
    check_positive("level", level, allow_zero=True)
    if noise == "masking" and not is_traced(level) and np.any(np.asarray(level) > 1):
        raise ValueError(f"level must be a probability in [0, 1] for masking noise; got {level!r}")


def corrupt(key: PRNGKey, x: Array, *, noise: str, level) -> Array:
    """The corruption ``x̃ ~ q(x̃ | x)`` of a denoising autoencoder (Vincent et al. 2008, Sec. 2.3).

    * ``"gaussian"``: additive isotropic noise, ``x̃ = x + level · ε`` with ``ε ~ N(0, I)``;
    * ``"masking"``: every entry is independently set to 0 with probability ``level``,
      ``x̃ = x ⊙ m`` with ``m_j ~ Bernoulli(1 - level)``. (Vincent et al. zero a fixed number
      ``level · d`` of entries per example; independent draws zero that share in expectation and
      need no sort.)

    Args:
      key: PRNG key.
      x: ``(B, *event)`` floating-point batch.
      noise: one of :data:`NOISES`.
      level: the noise's standard deviation (``>= 0``) for ``"gaussian"``, the probability of
        zeroing an entry (in ``[0, 1]``) for ``"masking"``; may be traced.

    Returns:
      ``x̃``, the shape and dtype of ``x``.

    Raises:
      ValueError: when ``noise`` is unknown, ``level`` is out of range or ``x`` is not a
        floating-point batch.
    """
    check_choice("noise", noise, NOISES)
    _check_level(noise, level)
    _check_batch("x", x)
    x = jnp.asarray(x)
    if noise == "gaussian":
        return x + level * jax.random.normal(key, x.shape, x.dtype)
    keep = jax.random.bernoulli(key, 1.0 - level, x.shape)
    return jnp.where(keep, x, jnp.zeros_like(x))


def denoising_autoencoder_loss(
    key: PRNGKey,
    x: Array,
    encode: Callable[[Array], Array],
    decode: Callable[[Array], Array],
    *,
    noise: str = "gaussian",
    level,
    kind: str = "squared",
) -> tuple[Array, dict[str, Array]]:
    """The denoising autoencoder's loss: reconstruct the clean ``x`` from a corrupted ``x̃``,

        ``L(x) = reconstruction_loss(x, decode(encode(x̃)))``,  ``x̃ ~ q(x̃ | x)``

    (Vincent, Larochelle, Bengio & Manzagol 2008, eq. 3), with ``q`` given by :func:`corrupt`.
    With squared error and Gaussian noise the optimal reconstruction is ``E[x | x̃]``, and
    ``(E[x | x̃] - x̃) / level² = ∇ log p_level(x̃)`` is the score of the data density convolved
    with the noise (Tweedie's formula; Vincent 2011, "A connection between score matching and
    denoising autoencoders").

    Args:
      key: PRNG key, passed as is to :func:`corrupt` (so ``corrupt(key, x, ...)`` reproduces
        ``x̃``).
      x: ``(B, *event)`` floating-point batch.
      encode: ``x (B, *event) -> z (B, ...)``.
      decode: ``z -> x̂ (B, *event)`` (logits for ``kind="bernoulli"``).
      noise: one of :data:`NOISES`.
      level: the Gaussian noise's std, or the masking probability; see :func:`corrupt`.
      kind: one of :data:`RECONSTRUCTIONS`; see :func:`reconstruction_loss`.

    Returns:
      ``(loss (B,), aux)`` with ``aux["code_sq_norm"] = |z|²`` and
      ``aux["corruption_sq_norm"] = |x̃ - x|²``, both ``(B,)``.

    Raises:
      ValueError: when ``noise``, ``level`` or ``kind`` is out of range, or shapes are wrong.
    """
    check_choice("kind", kind, RECONSTRUCTIONS)
    x_tilde = corrupt(key, x, noise=noise, level=level)
    loss, aux = _encode_decode_loss(x_tilde, x, encode, decode, kind)
    changed = jnp.reshape(x_tilde - x, (x_tilde.shape[0], -1))
    return loss, {**aux, "corruption_sq_norm": jnp.sum(changed**2, axis=1)}
