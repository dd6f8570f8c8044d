"""PixelCNN and gated PixelCNN: convolutions masked so that every output sub-pixel is a function
of the sub-pixels before it in raster order over (row, column) and, inside a pixel, channel order.

**Masks.** A ``kh x kw`` kernel (both odd) with centre ``(a, b) = (kh // 2, kw // 2)`` is multiplied
by ``M[r, s, i, o]`` with

    M[r, s, i, o] = 1                        if r < a, or r = a and s < b   (earlier pixels)
    M[a, b, i, o] = [g_in(i) <  g_out(o)]    mask 'A'                       (the centre)
    M[a, b, i, o] = [g_in(i) <= g_out(o)]    mask 'B'
    M[r, s, i, o] = 0                        otherwise                      (later pixels)

where the ``F`` features of a layer are split into ``C`` contiguous groups, ``g(k) = floor(k C /
F)``, group ``g`` belonging to data channel ``g`` (R, G, B for ``C = 3``). The ``C`` data channels
themselves are the groups of the first layer (``g(k) = k``). Mask 'A' (first layer only) keeps
data channel ``c`` out of its own group and of the groups before it; mask 'B' (every later layer)
lets a group see itself. By induction, hidden group ``g`` at pixel ``p`` is a function of the
pixels before ``p`` and of channels ``< g`` of ``p``; an output layer with mask 'B' whose
features are grouped per data channel gives ``out[h, w, c]`` a function of exactly the inputs the
autoregressive order allows. With ``C = 1`` the centre is 0 ('A') or 1 ('B'): the usual masks.

**PixelCNN** (:class:`PixelCNN`): a ``7 x 7`` mask-A convolution and residual blocks
``h <- h + W_2 * relu(W_1 * relu(h))`` with ``W_1`` a ``3 x 3`` and ``W_2`` a ``1 x 1`` mask-B
convolution. Stacked masked convolutions miss a wedge above and to the right of every pixel: with
a first kernel of radius ``r`` followed by ``3 x 3`` layers, pixel ``(h, w)`` never sees ``(h - d,
w + e)`` for ``e > r - 1 + d``, however deep the stack (the "blind spot").

**Gated PixelCNN** (:class:`GatedPixelCNN`) removes the blind spot with two stacks. The vertical
stack ``v`` convolves with an unmasked ``(k // 2 + 1) x k`` kernel padded so that row ``h`` sees
rows ``h - k // 2 .. h``: after ``L`` layers of radii ``r_1, r, ..., r`` (``r = k // 2``) every
row above, within ``r_1 + (L - 1) r`` columns either side, with no gap. It reaches the
horizontal stack shifted down one row, so row ``h`` receives rows ``< h`` only. The horizontal
stack ``u`` convolves along the row with a ``1 x k`` masked kernel (mask 'A' in the first layer,
'B' after, channel groups as above; its right half is masked out, leaving the paper's
``1 x (k // 2 + 1)`` kernel). Each layer is

    v' = tanh(W_vf * v + V_vf c) . sigmoid(W_vg * v + V_vg c)
    a_f = W_hf * u + U_f down(W_v * v) + V_hf c        (likewise a_g)
    u' = u + W_o * (tanh(a_f) . sigmoid(a_g))           (no residual in the first layer)

with ``W_v * v = (W_vf * v, W_vg * v)`` the vertical pre-activations, ``U`` a ``1 x 1``
convolution, ``W_o`` a ``1 x 1`` mask-B convolution and ``V c`` the conditioning term: a dense
map of a vector context ``(n, c)`` added at every pixel, or a ``1 x 1`` convolution of a spatial
context ``(n, H, W, c)`` (PixelVAE's latent feature maps). The context is not one of the ordered
variables, so any output may depend on all of it.

van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks" (masks A and B,
the PixelCNN, channel groups); van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves &
Kavukcuoglu 2016, "Conditional Image Generation with PixelCNN Decoders" (the gated PixelCNN,
conditioning); Gulrajani, Kumar, Ahmed, Taiga, Visin, Vazquez & Courville 2017, "PixelVAE: A
Latent Variable Model for Natural Images" (spatial conditioning).
"""

import numbers
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_choice, check_int

KernelSize = int | Sequence[int]


def _check_odd(name: str, value) -> None:
    """Raises ``ValueError`` unless ``value`` is an odd positive integer (a kernel with a
    centre)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < 1
        or value % 2 != 1
    ):
        raise ValueError(f"{name} must be an odd positive integer; got {value!r}")


def _kernel_shape(name: str, kernel_size: KernelSize) -> tuple[int, int]:
    """``kernel_size`` as ``(kh, kw)``, both odd."""
    if isinstance(kernel_size, numbers.Integral):
        _check_odd(name, kernel_size)
        return int(kernel_size), int(kernel_size)
    shape = tuple(kernel_size)
    if len(shape) != 2:
        raise ValueError(f"{name} must be an odd integer or a pair of them; got {kernel_size!r}")
    for size in shape:
        _check_odd(name, size)
    return int(shape[0]), int(shape[1])


def channel_groups(features: int, num_channels: int) -> np.ndarray:
    """The data channel each feature belongs to: ``g(k) = floor(k C / F)``, ``C`` contiguous
    groups of sizes differing by at most one (van den Oord et al. 2016, "Pixel Recurrent Neural
    Networks", section 3.4).

    Args:
      features: ``F >= C``, the width of the layer.
      num_channels: ``C``, the data channels.

    Returns:
      ``(F,)`` integers in ``{0, ..., C - 1}``, nondecreasing, every value present.

    Raises:
      ValueError: naming ``num_channels`` or ``features`` when they are not positive integers or
        ``features < num_channels`` (a channel without features).
    """
    check_int("num_channels", num_channels)
    check_int("features", features, minimum=num_channels)
    return np.arange(features) * num_channels // features


def pixelcnn_mask(
    kernel_size: KernelSize,
    in_features: int,
    out_features: int,
    num_channels: int,
    mask_type: str,
) -> np.ndarray:
    """The PixelCNN mask ``M[r, s, i, o]`` (module docstring) of a ``kh x kw`` kernel.

    ``M = 1`` at rows above the centre and left of it on the centre row; at the centre
    ``M = [g_in(i) < g_out(o)]`` for ``'A'`` and ``[g_in(i) <= g_out(o)]`` for ``'B'`` with
    :func:`channel_groups`; ``0`` elsewhere (van den Oord, Kalchbrenner & Kavukcuoglu 2016).

    Args:
      kernel_size: ``k`` or ``(kh, kw)``, odd.
      in_features: ``F_in >= C`` (``C`` for the first layer: one data channel per group).
      out_features: ``F_out >= C``.
      num_channels: ``C``, the data channels.
      mask_type: ``'A'`` (the first layer: a sub-pixel does not see itself) or ``'B'``.

    Returns:
      ``(kh, kw, F_in, F_out)`` float32 array of zeros and ones.

    Raises:
      ValueError: naming the argument that is not valid.
    """
    kh, kw = _kernel_shape("kernel_size", kernel_size)
    check_choice("mask_type", mask_type, ("A", "B"))
    check_int("num_channels", num_channels)
    check_int("in_features", in_features, minimum=num_channels)
    check_int("out_features", out_features, minimum=num_channels)
    rows, cols = np.meshgrid(np.arange(kh), np.arange(kw), indexing="ij")
    a, b = kh // 2, kw // 2
    earlier = (rows < a) | ((rows == a) & (cols < b))
    mask = np.broadcast_to(earlier[:, :, None, None], (kh, kw, in_features, out_features)).copy()
    g_in = channel_groups(in_features, num_channels)[:, None]
    g_out = channel_groups(out_features, num_channels)[None, :]
    mask[a, b] = g_in < g_out if mask_type == "A" else g_in <= g_out
    return mask.astype(np.float32)


class MaskedConv2D(nn.Module):
    """``y = x * (W . M) + b``: a stride-1 'SAME' convolution whose kernel is multiplied by the
    :func:`pixelcnn_mask` ``M``.

    Attributes:
      features: ``F_out >= num_channels``.
      kernel_size: ``k`` or ``(kh, kw)``, odd.
      mask_type: ``'A'`` or ``'B'``.
      num_channels: ``C``, the data channels the feature groups belong to.
      use_bias: whether to add a bias.
      kernel_init: initializer of the unmasked kernel ``W`` ``(kh, kw, F_in, F_out)``.
    """

    features: int
    kernel_size: KernelSize
    mask_type: str
    num_channels: int
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Args: x: ``(n, H, W, F_in)``. Returns: ``(n, H, W, F_out)``."""
        if x.ndim != 4:
            raise ValueError(f"x must have shape (n, H, W, features); got shape {x.shape}")
        shape = _kernel_shape("kernel_size", self.kernel_size)
        mask = pixelcnn_mask(shape, x.shape[-1], self.features, self.num_channels, self.mask_type)
        kernel = self.param("kernel", self.kernel_init, mask.shape)
        x, kernel = nn.dtypes.promote_dtype(x, kernel * jnp.asarray(mask, kernel.dtype))
        y = jax.lax.conv_general_dilated(
            x,
            kernel,
            window_strides=(1, 1),
            padding="SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y


def _check_inputs(x: jax.Array, context: jax.Array | None, num_channels: int) -> None:
    """``x`` a float ``(n, H, W, C)``; ``context`` None, ``(n, c)`` or ``(n, H, W, c)``."""
    if x.ndim != 4 or x.shape[-1] != num_channels:
        raise ValueError(
            f"x must have shape (n, H, W, {num_channels}) (num_channels={num_channels}); "
            f"got shape {x.shape}"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must have a floating-point dtype; got dtype {x.dtype}")
    if context is None:
        return
    n, height, width = x.shape[:3]
    if not (
        (context.ndim == 2 and context.shape[0] == n)
        or (context.ndim == 4 and context.shape[:3] == (n, height, width))
    ):
        raise ValueError(
            f"context must have shape ({n}, c) or ({n}, {height}, {width}, c) (matching x of "
            f"shape {x.shape}); got shape {context.shape}"
        )


def _context_term(context: jax.Array | None, features: int, name: str):
    """``V c``: a dense map of ``(n, c)`` broadcast over pixels, or the same map applied per
    pixel to ``(n, H, W, c)`` (a ``1 x 1`` convolution); ``0`` without context. No bias: the
    layer it feeds has one."""
    if context is None:
        return 0.0
    term = nn.Dense(features, use_bias=False, name=name)(context)
    return term if context.ndim == 4 else term[:, None, None, :]


def _check_attributes(module) -> None:
    """The size attributes shared by :class:`PixelCNN` and :class:`GatedPixelCNN`."""
    check_int("num_params", module.num_params)
    check_int("num_channels", module.num_channels)
    check_int("features", module.features, minimum=module.num_channels)
    check_int("num_layers", module.num_layers)
    if module.output_hidden is not None:
        check_int("output_hidden", module.output_hidden, minimum=module.num_channels)


def _output_layers(module, h: jax.Array) -> jax.Array:
    """``(n, H, W, F) -> (n, H, W, C, P)`` by ``1 x 1`` mask-B convolutions: an optional hidden
    layer of width ``output_hidden``, then ``C P`` outputs, features ``c P .. c P + P - 1``
    forming group ``c`` (:func:`channel_groups` of ``C P`` features)."""
    channels, per_channel = module.num_channels, module.num_params
    h = module.activation(h)
    if module.output_hidden is not None:
        h = MaskedConv2D(module.output_hidden, 1, "B", channels, name="output_hidden")(h)
        h = module.activation(h)
    out = MaskedConv2D(channels * per_channel, 1, "B", channels, name="output")(h)
    return out.reshape(*h.shape[:3], channels, per_channel)


class _PixelCNNFields(nn.Module):
    """The attributes both PixelCNNs share (documented on each)."""

    num_params: int
    num_channels: int
    features: int = 64
    num_layers: int = 8
    first_kernel_size: KernelSize = 7
    kernel_size: KernelSize = 3
    output_hidden: int | None = None
    activation: Callable[[jax.Array], jax.Array] = nn.relu


class PixelCNN(_PixelCNNFields):
    """``(x (n, H, W, C), context) -> (n, H, W, C, P)``: the PixelCNN of van den Oord,
    Kalchbrenner & Kavukcuoglu 2016 (module docstring), with its blind spot.

    ``h = W_A * x + V_0 c``, then ``num_layers - 1`` residual blocks
    ``h <- h + W_2 * act(W_1 * act(h) + V_l c)`` (``W_1`` ``k x k``, ``W_2`` ``1 x 1``, both
    mask B), then ``1 x 1`` mask-B output layers (an optional hidden one, then ``C P`` outputs,
    features ``c P .. c P + P - 1`` forming group ``c``).

    Attributes:
      num_params: ``P``, outputs per sub-pixel (e.g. ``K`` logits).
      num_channels: ``C``, channels of the data.
      features: hidden width ``F >= C``.
      num_layers: masked ``k x k`` convolutions including the first one.
      first_kernel_size: the odd kernel of the mask-A layer.
      kernel_size: the odd kernel of the residual blocks.
      output_hidden: width of a ``1 x 1`` mask-B layer (followed by ``activation``) before the
        output layer, or None for none.
      activation: the nonlinearity.
    """

    @nn.compact
    def __call__(self, x: jax.Array, context: jax.Array | None = None) -> jax.Array:
        """The output parameters of every sub-pixel.

        Args:
          x: ``(n, H, W, C)`` float inputs (pixel values scaled to ``[-1, 1]``).
          context: None, ``(n, c)`` or ``(n, H, W, c)``, added to the pre-activation of every
            masked ``k x k`` layer through an unmasked map without bias.

        Returns:
          ``(n, H, W, C, P)``; ``out[:, h, w, c]`` depends only on ``x`` at pixels before
          ``(h, w)`` in raster order and channels ``< c`` of ``(h, w)`` (and on ``context``).

        Raises:
          ValueError: naming ``x``, ``context`` or a size attribute that is not valid.
        """
        _check_attributes(self)
        _kernel_shape("first_kernel_size", self.first_kernel_size)
        _kernel_shape("kernel_size", self.kernel_size)
        _check_inputs(x, context, self.num_channels)
        channels, features = self.num_channels, self.features
        h = MaskedConv2D(features, self.first_kernel_size, "A", channels, name="input")(x)
        h = h + _context_term(context, features, "context_0")
        for layer in range(1, self.num_layers):
            a = MaskedConv2D(features, self.kernel_size, "B", channels, name=f"conv_{layer}")(
                self.activation(h)
            )
            a = a + _context_term(context, features, f"context_{layer}")
            h = h + MaskedConv2D(features, 1, "B", channels, name=f"mix_{layer}")(
                self.activation(a)
            )
        return _output_layers(self, h)


def _down_shift(v: jax.Array) -> jax.Array:
    """Row ``h`` of the result is row ``h - 1`` of ``v`` (zeros in row 0)."""
    return jnp.pad(v, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


def _gate(a: jax.Array) -> jax.Array:
    """``tanh(a_f) . sigmoid(a_g)`` with ``a = (a_f, a_g)`` split in halves on the last axis."""
    a_f, a_g = jnp.split(a, 2, axis=-1)
    return jnp.tanh(a_f) * jax.nn.sigmoid(a_g)


class GatedLayer(nn.Module):
    """One layer of the gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation
    with PixelCNN Decoders", figure 2): ``(v, u, context) -> (v', u')`` with the formulas of the
    module docstring.

    The horizontal ``tanh`` and ``sigmoid`` halves get separate masked convolutions: the gate
    multiplies ``a_f[k]`` by ``a_g[k]``, so both must lie in the channel group of feature ``k``,
    which a single convolution of width ``2 F`` (groups over ``2 F`` features) would not give.

    Attributes:
      features: ``F``, the width of both stacks.
      kernel_size: ``k`` (odd): vertical kernel ``(k // 2 + 1) x k``, horizontal ``1 x k``.
      num_channels: ``C``.
      first: the first layer (mask A on the horizontal stack, no residual).
    """

    features: int
    kernel_size: int
    num_channels: int
    first: bool = False

    @nn.compact
    def __call__(
        self, v: jax.Array, u: jax.Array, context: jax.Array | None
    ) -> tuple[jax.Array, jax.Array]:
        """Args: v, u: ``(n, H, W, F)`` (``(n, H, W, C)``, both ``x``, in the first layer);
        context: None, ``(n, c)`` or ``(n, H, W, c)``. Returns: ``(v', u')``, each
        ``(n, H, W, F)``."""
        k, f, channels = self.kernel_size, self.features, self.num_channels
        r = k // 2
        # Rows h - r .. h of v, columns within r: padding the top only keeps rows below out.
        vertical = nn.Conv(2 * f, (r + 1, k), padding=((r, 0), (r, r)), name="vertical")(v)
        vertical = vertical + _context_term(context, 2 * f, "context_vertical")
        link = nn.Dense(2 * f, use_bias=False, name="vertical_to_horizontal")(_down_shift(vertical))
        link = link + _context_term(context, 2 * f, "context_horizontal")
        mask = "A" if self.first else "B"
        a_f = MaskedConv2D(f, (1, k), mask, channels, name="horizontal_tanh")(u)
        a_g = MaskedConv2D(f, (1, k), mask, channels, name="horizontal_sigmoid")(u)
        gated = _gate(jnp.concatenate([a_f, a_g], axis=-1) + link)
        update = MaskedConv2D(f, 1, "B", channels, name="horizontal_out")(gated)
        return _gate(vertical), (update if self.first else u + update)


class GatedPixelCNN(_PixelCNNFields):
    """``(x (n, H, W, C), context) -> (n, H, W, C, P)``: the gated PixelCNN (van den Oord,
    Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu 2016; module docstring), without a
    blind spot: after ``L`` layers pixel ``(h, w)`` sees every pixel of the rows above within
    ``r_1 + (L - 1) r`` columns either side and as many to its left (``r_1``, ``r`` the first and
    later kernel radii).

    ``num_layers`` gated layers (:class:`GatedLayer`, the first with ``first_kernel_size``), then
    ``1 x 1`` mask-B output layers on the horizontal stack (an optional hidden one, then ``C P``
    outputs grouped per channel).

    Attributes:
      num_params: ``P``, outputs per sub-pixel (e.g. ``K`` logits).
      num_channels: ``C``, channels of the data.
      features: width ``F >= C`` of both stacks.
      num_layers: gated layers.
      first_kernel_size: odd ``k`` of the first layer.
      kernel_size: odd ``k`` of the later layers.
      output_hidden: width of a ``1 x 1`` mask-B layer (followed by ``activation``) before the
        output layer, or None for none.
      activation: the nonlinearity before the output layers.
    """

    @nn.compact
    def __call__(self, x: jax.Array, context: jax.Array | None = None) -> jax.Array:
        """The output parameters of every sub-pixel.

        Args:
          x: ``(n, H, W, C)`` float inputs (pixel values scaled to ``[-1, 1]``).
          context: None, ``(n, c)`` (a dense map into every gated pre-activation of both
            stacks) or ``(n, H, W, c)`` (a ``1 x 1`` convolution into the same places).

        Returns:
          ``(n, H, W, C, P)``; ``out[:, h, w, c]`` depends only on ``x`` at pixels before
          ``(h, w)`` in raster order and channels ``< c`` of ``(h, w)`` (and on ``context``).

        Raises:
          ValueError: naming ``x``, ``context`` or a size attribute that is not valid.
        """
        _check_attributes(self)
        _check_odd("first_kernel_size", self.first_kernel_size)
        _check_odd("kernel_size", self.kernel_size)
        _check_inputs(x, context, self.num_channels)
        v = u = x
        for layer in range(self.num_layers):
            first = layer == 0
            kernel = self.first_kernel_size if first else self.kernel_size
            v, u = GatedLayer(
                self.features, kernel, self.num_channels, first=first, name=f"gated_{layer}"
            )(v, u, context)
        return _output_layers(self, u)
