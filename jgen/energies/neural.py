"""Neural energy functions ``E_theta: (n, *event) -> (n,)``, with ``p(x) ∝ exp(-E_theta(x))``.

Two ways to get a scalar energy from a network:

- A network with a scalar head: :class:`MLPEnergy` for vectors (and any event, flattened) and
  :class:`ConvEnergy`, the small strided convolutional EBM of images (Du & Mordatch 2019,
  "Implicit generation and modeling with energy-based models"; Nijkamp, Hill, Zhu & Wu 2019,
  "Learning non-convergent non-persistent short-run MCMC toward energy-based model").
- A scalar read-out ``E(x) = r(x, f(x))`` of a network ``f`` whose output has the shape of its
  input (a U-Net or denoiser, the architecture of score models): :class:`ReadoutEnergy` with one
  of :data:`READOUTS`. Salimans & Ho 2021 ("Should EBMs model the energy or the score?") show
  that such constrained score models ``-grad_x E`` match unconstrained score networks of the same
  structure; Du et al. 2023 ("Reduce, reuse, recycle: compositional generation with energy-based
  diffusion models and MCMC") compare the read-outs and use the energies for MCMC and
  composition. With a linear ``f(x) = A x`` (tested against these closed forms)::

      inner_product   E = <x, f(x)>                 grad_x E = (A + A^T) x
      reconstruction  E = 1/2 ||x - f(x)||^2        grad_x E = (I - A)^T (I - A) x
      norm            E = 1/2 ||f(x)||^2            grad_x E = A^T A x

The energies are per example: example ``i``'s energy depends on example ``i`` alone (no batch
statistics), so ``jax.grad`` of the batch sum is the per-example gradient ``grad_x E``, the
score up to sign (:func:`jgen.convert.score_from_energy`).

Spectral normalisation (``spectral_norm=True``) uses Miyato et al.'s layers
(:func:`jgen.nets.discriminator.dense_layer`, :class:`~jgen.nets.spectral_norm.SNConv`,
``coeff = 1``, one power iteration per call) with the vectors in the ``"spectral"`` collection:
train with ``apply(..., mutable=["spectral"])`` so the iteration warm-starts across steps.
"""

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jgen.checks import check_choice
from jgen.nets.discriminator import dense_layer
from jgen.nets.spectral_norm import SNConv
from jgen.types import Array


def _check_floating_batch(name: str, x: Array, min_ndim: int, shown: str) -> None:
    """Raises ``ValueError`` unless ``x`` has rank ``>= min_ndim`` and a floating dtype."""
    if jnp.ndim(x) < min_ndim:
        raise ValueError(f"{name} must have shape {shown}; got shape {jnp.shape(x)}")
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise ValueError(f"{name} must have a floating-point dtype; got dtype {jnp.result_type(x)}")


def _check_same_shape(x: Array, fx: Array) -> None:
    """Raises ``ValueError`` unless ``x`` is a batch ``(n, *event)`` and ``fx`` has its shape."""
    _check_floating_batch("x", x, 2, "(n, *event)")
    if jnp.shape(fx) != jnp.shape(x):
        raise ValueError(
            f"fx (the network output f(x)) must have the shape of x, {jnp.shape(x)}; "
            f"got shape {jnp.shape(fx)}"
        )


def _sum_event(a: Array) -> Array:
    """``(n, *event) -> (n,)``: the sum over every non-batch axis."""
    return jnp.sum(a.reshape(a.shape[0], -1), axis=1)


def inner_product_readout(x: Array, fx: Array) -> Array:
    """``E(x) = <x, f(x)> = sum_i x_i f(x)_i`` per example.

    No factor 1/2: the scale of ``E`` only rescales the network's output, which training absorbs.
    For a linear ``f(x) = A x``, ``E = x^T A x`` and ``grad_x E = (A + A^T) x``: only the
    symmetric part of ``A`` enters, as it must for a gradient field.

    Salimans & Ho 2021, "Should EBMs model the energy or the score?"; Du et al. 2023, "Reduce,
    reuse, recycle".

    Args:
      x: ``(n, *event)`` the inputs.
      fx: ``(n, *event)`` the network output ``f(x)``.

    Returns:
      ``(n,)`` the energies.

    Raises:
      ValueError: when ``x`` is not a floating batch or ``fx`` does not have its shape.
    """
    _check_same_shape(x, fx)
    return _sum_event(x * fx)


def reconstruction_readout(x: Array, fx: Array) -> Array:
    """``E(x) = 1/2 ||x - f(x)||^2`` per example: an autoencoder / denoiser's reconstruction error
    as energy, low where ``f`` maps ``x`` to itself. For ``f(x) = A x``, ``grad_x E = (I - A)^T
    (I - A) x``.

    Salimans & Ho 2021, "Should EBMs model the energy or the score?"; Du et al. 2023, "Reduce,
    reuse, recycle" (their U-Net energy ``1/2 ||x - f(x)||^2``).

    Args:
      x: ``(n, *event)`` the inputs.
      fx: ``(n, *event)`` the network output ``f(x)``.

    Returns:
      ``(n,)`` the energies.

    Raises:
      ValueError: when ``x`` is not a floating batch or ``fx`` does not have its shape.
    """
    _check_same_shape(x, fx)
    return 0.5 * _sum_event((x - fx) ** 2)


def norm_readout(x: Array, fx: Array) -> Array:
    """``E(x) = 1/2 ||f(x)||^2`` per example. For ``f(x) = A x``, ``grad_x E = A^T A x``.

    Du et al. 2023, "Reduce, reuse, recycle: compositional generation with energy-based diffusion
    models and MCMC" (their U-Net energy ``1/2 ||f(x)||^2``); Salimans & Ho 2021.

    Args:
      x: ``(n, *event)`` the inputs (only their shape is used).
      fx: ``(n, *event)`` the network output ``f(x)``.

    Returns:
      ``(n,)`` the energies.

    Raises:
      ValueError: when ``x`` is not a floating batch or ``fx`` does not have its shape.
    """
    _check_same_shape(x, fx)
    return 0.5 * _sum_event(fx**2)


READOUTS: dict[str, Callable[[Array, Array], Array]] = {
    "inner_product": inner_product_readout,
    "reconstruction": reconstruction_readout,
    "norm": norm_readout,
}
"""The scalar read-outs ``r(x, f(x)) -> (n,)`` of :class:`ReadoutEnergy`, by name."""


class MLPEnergy(nn.Module):
    """``E(x) = w^T h_L + b``, ``h_l = act(W_l h_{l-1} + b_l)``, ``h_0 = flatten(x)``:
    ``(n, *event) -> (n,)``.

    The fully connected EBM of low-dimensional data (e.g. the 2-D toys of Du & Mordatch 2019,
    "Implicit generation and modeling with energy-based models"; Grathwohl et al. 2020). A smooth
    activation (swish, the default) keeps ``grad_x E`` continuous for Langevin sampling.

    Attributes:
      hidden_sizes: widths of the hidden layers.
      activation: the hidden nonlinearity.
      spectral_norm: spectrally normalise every dense layer (Miyato et al. 2018; vectors in the
        ``"spectral"`` collection).
    """

    hidden_sizes: Sequence[int] = (128, 128)
    activation: Callable[[Array], Array] = nn.swish
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        """``(n, *event) -> (n,)``."""
        _check_floating_batch("x", x, 2, "(n, *event)")
        h = x.reshape(x.shape[0], -1)
        for i, width in enumerate(self.hidden_sizes):
            h = self.activation(dense_layer(width, self.spectral_norm, name=f"dense_{i}")(h))
        return dense_layer(1, self.spectral_norm, name="out")(h)[:, 0]


class ConvEnergy(nn.Module):
    """``E(x) = w^T pool(h_L) + b``, ``h_l = act(conv_{3x3, stride 2}(h_{l-1}))``: the small
    convolutional EBM of images, ``(n, H, W)`` or ``(n, H, W, C) -> (n,)``.

    Every convolution halves the resolution ("SAME" padding: ``ceil(H / 2)``); the last feature
    map is pooled over space (mean or sum) and a dense layer reads out the scalar. 2-D events
    ``(H, W)`` get a channel axis. The architecture follows the small EBMs of Du & Mordatch 2019
    ("Implicit generation and modeling with energy-based models") and Nijkamp, Hill, Zhu & Wu 2019
    ("Learning non-convergent non-persistent short-run MCMC toward energy-based model", which uses
    ``leaky_relu`` where Du & Mordatch use swish).

    Attributes:
      features: output channels of the convolutions.
      activation: the nonlinearity (swish; ``jgen.nets.discriminator.leaky_relu`` for Nijkamp et
        al.).
      pool: ``"mean"`` or ``"sum"`` over the spatial positions.
      spectral_norm: spectrally normalise the convolutions and the read-out (Miyato et al. 2018).
    """

    features: Sequence[int] = (32, 64)
    activation: Callable[[Array], Array] = nn.swish
    pool: str = "mean"
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        """``(n, H, W)`` or ``(n, H, W, C) -> (n,)``."""
        check_choice("pool", self.pool, ("mean", "sum"))
        if jnp.ndim(x) not in (3, 4):
            raise ValueError(f"x must have shape (n, H, W) or (n, H, W, C); got shape {x.shape}")
        _check_floating_batch("x", x, 3, "(n, H, W) or (n, H, W, C)")
        h = x[..., None] if x.ndim == 3 else x
        for i, width in enumerate(self.features):
            if self.spectral_norm:
                conv = SNConv(width, 3, strides=2, name=f"conv_{i}")
            else:
                conv = nn.Conv(width, (3, 3), strides=2, padding="SAME", name=f"conv_{i}")
            h = self.activation(conv(h))
        h = jnp.mean(h, axis=(1, 2)) if self.pool == "mean" else jnp.sum(h, axis=(1, 2))
        return dense_layer(1, self.spectral_norm, name="out")(h)[:, 0]


class ReadoutEnergy(nn.Module):
    """``E(x) = r(x, f(x))``: a same-shape network ``f`` (a U-Net, a denoiser) with one of the
    scalar read-outs ``r`` of :data:`READOUTS` (``"inner_product"``: ``<x, f(x)>``,
    ``"reconstruction"``: ``1/2 ||x - f(x)||^2``, ``"norm"``: ``1/2 ||f(x)||^2``).

    Extra call arguments (a noise level, a time, a class context) go to ``network`` unchanged, so
    a noise-conditional network gives a noise-conditional energy ``E(x, sigma)``.

    Salimans & Ho 2021, "Should EBMs model the energy or the score?"; Du et al. 2023, "Reduce,
    reuse, recycle: compositional generation with energy-based diffusion models and MCMC".

    Attributes:
      network: ``f``, a module ``(n, *event), *args -> (n, *event)``.
      readout: the name of the read-out, a key of :data:`READOUTS`.
    """

    network: nn.Module
    readout: str = "reconstruction"

    def __call__(self, x: Array, *args, **kwargs) -> Array:
        """``(n, *event), *args -> (n,)``."""
        check_choice("readout", self.readout, READOUTS)
        return READOUTS[self.readout](x, self.network(x, *args, **kwargs))
