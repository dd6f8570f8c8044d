"""Coupling bijectors: NICE (additive) and RealNVP (affine) layers.

With a binary mask ``m`` and a conditioner ``c`` that sees only the masked-in part,

    (shift, log_scale) = c(m * x)
    y = m * x + (1 - m) * (x * exp(log_scale) + shift)
    log|det dy/dx| = sum((1 - m) * log_scale)

and the inverse is ``x = m * y + (1 - m) * (y - shift) * exp(-log_scale)`` with the same
conditioner output (``m * y = m * x``). NICE is the special case ``log_scale = 0``.

Dinh, Krueger & Bengio 2015, "NICE"; Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation
using Real NVP".
"""

import functools
from collections.abc import Callable, Sequence

import distrax
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jgen.bijectors.masks import channel_mask
from jgen.checks import check_choice
from jgen.nets.mlp import MLP
from jgen.types import Array

Conditioner = Callable[[Array], tuple[Array, Array]]


class AffineCoupling(distrax.Bijector):
    """The RealNVP affine coupling layer; a conditioner returning zero ``log_scale`` gives NICE.

    Args:
      mask: array of the event shape; 1 marks the inputs passed through and fed to the
        conditioner, 0 the ones transformed.
      conditioner: ``c(m * x) -> (shift, log_scale)``, both of the shape of ``x``.
      event_ndims: number of trailing axes that form one event.
    """

    def __init__(self, mask: Array, conditioner: Conditioner, event_ndims: int = 1):
        super().__init__(event_ndims_in=event_ndims)
        self._mask = jnp.asarray(mask)
        self._conditioner = conditioner

    def _transform_params(self, x: Array) -> tuple[Array, Array]:
        shift, log_scale = self._conditioner(x * self._mask)
        return shift * (1 - self._mask), log_scale * (1 - self._mask)

    def _sum_event(self, a: Array) -> Array:
        return jnp.sum(a, axis=tuple(range(-self.event_ndims_in, 0)))

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        shift, log_scale = self._transform_params(x)
        return x * jnp.exp(log_scale) + shift, self._sum_event(log_scale)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        shift, log_scale = self._transform_params(y)
        return (y - shift) * jnp.exp(-log_scale), -self._sum_event(log_scale)


def parity_mask(event_shape: tuple[int, ...], parity: int) -> np.ndarray:
    """Checkerboard mask: 1 where the sum of the element's indices has the given parity.

    For a vector this alternates coordinates; for an image it is the RealNVP checkerboard. A
    numpy array, so the layers can read which elements pass through while tracing.
    """
    grids = np.indices(tuple(event_shape))
    return (np.sum(grids, axis=0) % 2 == parity).astype(np.float32)


def split_indices(mask, event_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the passed-through (mask 1) and the transformed (mask 0) elements of an
    event; ``mask`` broadcasts to ``event_shape`` and must be concrete (not traced)."""
    flat = np.broadcast_to(np.asarray(mask), tuple(event_shape)).reshape(-1)
    return np.flatnonzero(flat != 0), np.flatnonzero(flat == 0)


def _stride(idx: np.ndarray) -> int | None:
    """The step of an increasing arithmetic progression, else None."""
    steps = np.diff(idx)
    if len(idx) == 1:
        return 1
    return int(steps[0]) if steps[0] > 0 and np.all(steps == steps[0]) else None


def take_elements(flat: Array, idx: np.ndarray) -> Array:
    """``flat[..., idx]``: a strided slice when ``idx`` is a progression (the alternating masks
    of vectors), a gather otherwise (XLA's gather and scatter are slow on CPU)."""
    stride = _stride(idx)
    if stride is None:
        return jnp.take(flat, idx, axis=-1)
    return flat[..., idx[0] : idx[-1] + 1 : stride]


def merge_elements(a: Array, a_idx: np.ndarray, b: Array, b_idx: np.ndarray) -> Array:
    """The array ``v`` of size ``len(a_idx) + len(b_idx)`` on its last axis with
    ``v[..., a_idx] = a`` and ``v[..., b_idx] = b`` (complementary index sets): an interleave by
    reshaping when the two alternate, a gather otherwise."""
    size = len(a_idx) + len(b_idx)
    if len(a_idx) == len(b_idx) and _stride(a_idx) == _stride(b_idx) == 2:
        first, second = (a, b) if a_idx[0] == 0 else (b, a)
        return jnp.stack([first, second], axis=-1).reshape(*a.shape[:-1], size)
    inverse = np.argsort(np.concatenate([a_idx, b_idx]))
    return jnp.take(jnp.concatenate([a, b], axis=-1), inverse, axis=-1)


class SplitMLP(nn.Module):
    """The MLP conditioner of a coupling: the passed-through elements ``(n, P)`` ->
    ``per_element`` parameters for each of the ``T`` transformed elements, ``(n, T,
    per_element)``. It reads and writes only the halves that matter (the form of distrax's
    ``SplitCoupling``), not the masked full vector. The output layer starts at zero."""

    hidden_sizes: Sequence[int]
    per_element: int

    @nn.compact
    def __call__(self, x_passed: Array, num_transformed: int) -> Array:
        width = num_transformed * self.per_element
        out = MLP(self.hidden_sizes, width, zero_init_output=True)(x_passed)
        return out.reshape(*x_passed.shape[:-1], num_transformed, self.per_element)


MASKS = ("checkerboard", "channel")
NETWORKS = ("mlp", "conv")


class CouplingConditioner(nn.Module):
    """``m * x -> (shift, log_scale)`` of the shape of ``x``.

    ``network='mlp'``: a :class:`SplitMLP` from the passed-through elements to the transformed ones
    (vectors, small images; needs the ``mask``); zeros on the passed-through elements.
    ``network='conv'`` (images ``(n, H, W, C)``): Glow's ``Conv3x3 -> ReLU -> Conv1x1 -> ReLU ->
    Conv3x3`` of width ``hidden_sizes[0]`` on ``m * x``. Either way the output layer starts at zero,
    so every coupling starts as the identity, and ``log_scale = s * tanh(raw)`` with ``s`` learned
    per element keeps the scale bounded early in training; ``additive=True`` gives ``log_scale = 0``
    (NICE).
    """

    hidden_sizes: Sequence[int]
    additive: bool = False
    network: str = "mlp"

    @nn.compact
    def __call__(self, x_masked: Array, mask=None) -> tuple[Array, Array]:
        check_choice("network", self.network, NETWORKS)
        if self.network == "conv":
            if x_masked.ndim != 4:
                raise ValueError(
                    f"network='conv' needs images (n, H, W, C); got shape {x_masked.shape}"
                )
            width = self.hidden_sizes[0]
            h = nn.relu(nn.Conv(width, (3, 3))(x_masked))
            h = nn.relu(nn.Conv(width, (1, 1))(h))
            out = nn.Conv(2 * x_masked.shape[-1], (3, 3), kernel_init=nn.initializers.zeros)(h)
            shift, raw = jnp.split(out, 2, axis=-1)
        else:
            if mask is None:
                raise ValueError("mask must be given to the network='mlp' conditioner; got None")
            return self._split_mlp(x_masked, mask)
        scale = self.param("tanh_scale", nn.initializers.ones, x_masked.shape[1:])
        log_scale = jnp.zeros_like(raw) if self.additive else scale * jnp.tanh(raw)
        return shift, log_scale

    def _split_mlp(self, x_masked: Array, mask) -> tuple[Array, Array]:
        n, event_shape = x_masked.shape[0], x_masked.shape[1:]
        passed, transformed = split_indices(mask, event_shape)
        x_passed = take_elements(x_masked.reshape(n, -1), passed)
        out = SplitMLP(self.hidden_sizes, 2)(x_passed, len(transformed))
        shift, raw = out[..., 0], out[..., 1]
        scale = self.param("tanh_scale", nn.initializers.ones, (len(transformed),))
        log_scale = jnp.zeros_like(raw) if self.additive else scale * jnp.tanh(raw)
        zeros = jnp.zeros_like(x_passed)
        return tuple(
            merge_elements(zeros, passed, a, transformed).reshape(x_masked.shape)
            for a in (shift, log_scale)
        )


class AffineCouplingLayer(nn.Module):
    """The parameters of one :class:`AffineCoupling`: its conditioner and its mask.

    ``bijector(event_shape)`` builds the distrax bijector (call it inside ``apply`` or on a bound
    module); ``__call__(x)`` is its ``forward_and_log_det``, e.g. for ``init``.

    Attributes:
      hidden_sizes: hidden widths of the conditioner (the conv conditioner uses the first).
      parity: which half passes through: 0 or 1.
      mask: ``'checkerboard'`` (:func:`parity_mask`) or ``'channel'`` (``masks.channel_mask``,
        images only).
      additive: NICE's additive coupling instead of the affine one.
      network: the conditioner, ``'mlp'`` or ``'conv'`` (see :class:`CouplingConditioner`).
    """

    hidden_sizes: Sequence[int] = (64, 64)
    parity: int = 0
    mask: str = "checkerboard"
    additive: bool = False
    network: str = "mlp"

    def setup(self):
        check_choice("mask", self.mask, MASKS)
        self.conditioner = CouplingConditioner(self.hidden_sizes, self.additive, self.network)

    def bijector(self, event_shape: tuple[int, ...]) -> AffineCoupling:
        """The coupling on events of ``event_shape``."""
        event_shape = tuple(event_shape)
        if self.mask == "channel":
            if len(event_shape) != 3:
                raise ValueError(f"mask='channel' needs image events (H, W, C); got {event_shape}")
            m = channel_mask(event_shape[-1], self.parity)
        else:
            m = parity_mask(event_shape, self.parity)
        return AffineCoupling(m, functools.partial(self.conditioner, mask=m), len(event_shape))

    def __call__(self, x: Array) -> tuple[Array, Array]:
        return self.bijector(x.shape[1:]).forward_and_log_det(x)
