"""PixelCNN and gated PixelCNN: masks against hand-written cases, the raster+channel
autoregressive property from the autodiff Jacobian, the blind spot of the plain PixelCNN against
a brute-force enumeration of its kernel taps, and the conditioning paths."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jgen.nets.pixelcnn import (
    GatedPixelCNN,
    MaskedConv2D,
    PixelCNN,
    channel_groups,
    pixelcnn_mask,
)
from tests.params import float64, random_params

NETS = {"pixelcnn": PixelCNN, "gated": GatedPixelCNN}
SIZE, NUM_PARAMS, NUM_LAYERS = 5, 2, 4


def raster_channel_order(channels: int) -> np.ndarray:
    """``allowed[o, i]``: sub-pixel ``i`` comes before sub-pixel ``o`` in raster+channel order,
    indices of ``(H, W, C)`` flattened in C order (which is that order)."""
    size = SIZE * SIZE * channels
    return np.arange(size)[None, :] < np.arange(size)[:, None]


@functools.cache
def dependence(net: str, channels: int, first_kernel_size: int) -> np.ndarray:
    """``dep[o, i] = sum_p |d out[o, p] / d x[i]|`` for one example of a ``5 x 5 x C`` image,
    sub-pixels flattened in raster+channel order; cached so that the blind-spot test reuses the
    causality test's compilation."""
    module = NETS[net](
        NUM_PARAMS,
        channels,
        features=12,  # 4 per group with C = 3
        num_layers=NUM_LAYERS,
        first_kernel_size=first_kernel_size,
        kernel_size=3,
        output_hidden=12 if channels == 3 else None,
        # Smooth: no dead ReLU units whose zero derivatives would hide allowed dependences.
        activation=nn.gelu,
    )
    x = jax.random.normal(jax.random.key(0), (1, SIZE, SIZE, channels))

    @jax.jit  # one compilation instead of many op-by-op dispatches
    def jacobian(x):
        params = random_params(module, x, seed=1)
        return jax.jacfwd(lambda v: module.apply(params, v))(x)  # (1, H, W, C, P, 1, H, W, C)

    jac = np.asarray(jacobian(x))
    assert jac.shape == (1, SIZE, SIZE, channels, NUM_PARAMS, 1, SIZE, SIZE, channels)
    size = SIZE * SIZE * channels
    return np.abs(np.moveaxis(jac[0, ..., 0, :, :, :], 3, -1)).sum(-1).reshape(size, size)


def plain_pixelcnn_offsets(first_radius: int, num_blocks: int) -> set:
    """Pixel offsets ``(dh, dw)`` of the inputs that can reach an output of the plain PixelCNN,
    by brute-force Minkowski sums of the kernel taps each layer keeps: the mask-A kernel keeps
    the rows above and the left of the centre row; each ``3 x 3`` mask-B kernel (and its
    ``1 x 1`` companion) keeps the centre, the left tap and the three taps above."""
    r = first_radius
    reach = {(dh, dw) for dh in range(-r, 1) for dw in range(-r, r + 1) if dh < 0 or dw < 0}
    taps = {(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 0)}
    for _ in range(num_blocks):
        reach = {(a + c, b + d) for a, b in reach for c, d in taps}
    return reach


def expected_dependence(net: str, channels: int, first_kernel_size: int) -> np.ndarray:
    """Where the Jacobian must be nonzero: every earlier sub-pixel for the gated PixelCNN
    (its reach ``1 + 3 = 4`` columns, rows and left covers the 5 x 5 image); for the plain
    PixelCNN, the earlier sub-pixels of the current pixel and the pixels at offsets
    :func:`plain_pixelcnn_offsets`."""
    allowed = raster_channel_order(channels)
    if net == "gated":
        return allowed
    offsets = plain_pixelcnn_offsets(first_kernel_size // 2, NUM_LAYERS - 1)
    rows, cols = np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="ij")
    rows, cols = (np.repeat(a.ravel(), channels) for a in (rows, cols))
    dh, dw = rows[None, :] - rows[:, None], cols[None, :] - cols[:, None]
    reached = np.vectorize(lambda a, b: (a, b) in offsets)(dh, dw)
    same_pixel = (dh == 0) & (dw == 0)
    return allowed & (reached | same_pixel)


# --------------------------------------------------------------------------------------------
# Masks.


def test_channel_groups_are_contiguous_and_balanced():
    np.testing.assert_array_equal(channel_groups(8, 3), [0, 0, 0, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(channel_groups(3, 3), [0, 1, 2])
    np.testing.assert_array_equal(channel_groups(6, 3), [0, 0, 1, 1, 2, 2])  # C P, P = 2
    np.testing.assert_array_equal(channel_groups(5, 1), [0, 0, 0, 0, 0])


def test_single_channel_masks_are_the_spatial_a_and_b_masks():
    a = pixelcnn_mask(3, 1, 1, 1, "A")[:, :, 0, 0]
    b = pixelcnn_mask(3, 1, 1, 1, "B")[:, :, 0, 0]
    np.testing.assert_array_equal(a, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(b, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    wide = pixelcnn_mask((3, 5), 2, 4, 1, "A")
    assert wide.shape == (3, 5, 2, 4) and wide.dtype == np.float32
    expected = [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]]
    for i in range(2):
        for o in range(4):
            np.testing.assert_array_equal(wide[:, :, i, o], expected)


def test_rgb_masks_at_the_centre_connect_groups_in_channel_order():
    # The first layer: inputs R, G, B; 5 outputs in groups (0, 0, 1, 1, 2).
    a = pixelcnn_mask((1, 3), 3, 5, 3, "A")
    b = pixelcnn_mask((1, 3), 3, 5, 3, "B")
    np.testing.assert_array_equal(
        a[0, 1], [[0, 0, 1, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    )  # R feeds G and B, G feeds B
    np.testing.assert_array_equal(b[0, 1], [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1]])
    for m in (a, b):  # the left tap sees every channel, the right tap none
        np.testing.assert_array_equal(m[0, 0], 1.0)
        np.testing.assert_array_equal(m[0, 2], 0.0)
    # Hidden to hidden, C = 2: inputs in groups (0, 0, 1, 1), outputs in groups (0, 0, 1).
    np.testing.assert_array_equal(
        pixelcnn_mask(1, 4, 3, 2, "B")[0, 0], [[1, 1, 1], [1, 1, 1], [0, 0, 1], [0, 0, 1]]
    )
    np.testing.assert_array_equal(
        pixelcnn_mask(1, 4, 3, 2, "A")[0, 0], [[0, 0, 1], [0, 0, 1], [0, 0, 0], [0, 0, 0]]
    )


def test_masked_conv_is_a_correlation_with_the_masked_kernel(x64):
    layer = MaskedConv2D(5, (3, 3), "B", 3)
    x = jax.random.normal(jax.random.key(0), (2, 4, 6, 3), jnp.float64)

    @jax.jit
    def params_and_outputs(x):
        params = float64(random_params(layer, x, seed=1))
        return params, layer.apply(params, x)

    params, y = params_and_outputs(x)
    kernel = np.asarray(params["params"]["kernel"]) * pixelcnn_mask(3, 3, 5, 3, "B")
    # Brute force: y[n, i, j] = sum_{r, s} x_pad[n, i + r, j + s] @ K[r, s] + b ('SAME').
    padded = np.pad(np.asarray(x), ((0, 0), (1, 1), (1, 1), (0, 0)))
    expected = np.asarray(params["params"]["bias"]) + sum(
        padded[:, r : r + 4, s : s + 6] @ kernel[r, s] for r in range(3) for s in range(3)
    )
    np.testing.assert_allclose(y, expected, atol=1e-12)


# --------------------------------------------------------------------------------------------
# The autoregressive property.


@pytest.mark.parametrize(
    "net,channels,first_kernel_size",
    [("pixelcnn", 1, 3), ("pixelcnn", 3, 7), ("gated", 1, 3), ("gated", 3, 7)],
)
def test_jacobian_follows_the_raster_channel_order(net, channels, first_kernel_size):
    dep = dependence(net, channels, first_kernel_size)
    allowed = raster_channel_order(channels)
    # Later sub-pixels and the sub-pixel itself: exactly zero.
    np.testing.assert_array_equal(dep[~allowed], 0.0)
    # And nonzero wherever the architecture promises dependence (the test is not vacuous).
    expected = expected_dependence(net, channels, first_kernel_size)
    np.testing.assert_array_equal(dep != 0.0, expected)


def test_gated_pixelcnn_has_no_blind_spot_where_the_plain_pixelcnn_has_one():
    gated, plain = dependence("gated", 1, 3), dependence("pixelcnn", 1, 3)
    allowed = raster_channel_order(1)
    bottom_right = SIZE * SIZE - 1
    assert np.all(gated[bottom_right, :bottom_right] != 0.0)
    assert np.all(gated[allowed] != 0.0)
    # The plain PixelCNN of the same depth misses earlier pixels; all of them are above and to
    # the right of the output pixel: pixel (1, 0) does not see (0, 2), (0, 3), (0, 4).
    missed = np.argwhere(allowed & (plain == 0.0))
    assert len(missed) > 0
    out_rows, out_cols = np.divmod(missed[:, 0], SIZE)
    in_rows, in_cols = np.divmod(missed[:, 1], SIZE)
    assert np.all((in_rows < out_rows) & (in_cols > out_cols))
    np.testing.assert_array_equal(plain[SIZE, 2:SIZE], 0.0)
    assert np.all(gated[SIZE, 2:SIZE] != 0.0)


# --------------------------------------------------------------------------------------------
# Conditioning.


@pytest.mark.parametrize(
    "net,spatial", [("gated", False), ("gated", True), ("pixelcnn", False), ("pixelcnn", True)]
)
def test_context_reaches_the_outputs_and_keeps_the_order_in_x(net, spatial):
    channels, context_dim = 3, 4
    module = NETS[net](
        NUM_PARAMS, channels, features=9, num_layers=2, first_kernel_size=3, activation=nn.gelu
    )
    x = jax.random.normal(jax.random.key(0), (2, SIZE, SIZE, channels))
    context_shape = (2, SIZE, SIZE, context_dim) if spatial else (2, context_dim)
    context = jax.random.normal(jax.random.key(1), context_shape)

    @jax.jit
    def jacobians_and_outputs(x, context):
        params = random_params(module, x, context, seed=2)
        flat = traverse_util.flatten_dict(params)
        without = traverse_util.unflatten_dict(
            {k: v for k, v in flat.items() if not any("context" in part for part in k)}
        )

        def single(v, h):
            return module.apply(params, v[None], h[None])[0]

        jac = jax.jacfwd(single, argnums=(0, 1))(x[0], context[0])
        zero_context = module.apply(params, x, jnp.zeros_like(context))
        return jac, zero_context, module.apply(without, x)

    (jac_x, jac_c), zero_context, no_context = jacobians_and_outputs(x, context)
    size = SIZE * SIZE * channels
    dep_x = np.abs(np.moveaxis(np.asarray(jac_x), 3, -1)).sum(-1).reshape(size, size)
    np.testing.assert_array_equal(dep_x[~raster_channel_order(channels)], 0.0)
    jac_c = np.abs(np.asarray(jac_c))  # (H, W, C, P, *context_shape[1:])
    if spatial:
        # Every output sees the context at its own pixel (1 x 1 maps into every layer).
        at_own_pixel = np.einsum("hwcphwk->hwcp", jac_c)
        assert np.all(at_own_pixel > 0.0)
    else:
        assert np.all(jac_c.sum(-1) > 0.0)  # the first sub-pixel, which sees no x, included
    # The context maps have no bias: a zero context is no context (to float32 rounding: the
    # two programs are fused differently).
    np.testing.assert_allclose(zero_context, no_context, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------
# Bad input.


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize(
    "kwargs,x_shape,context_shape,match",
    [
        ({}, (2, 5, 5), None, r"x must have shape \(n, H, W, 3\)"),
        ({}, (2, 5, 5, 1), None, r"x must have shape \(n, H, W, 3\).*got shape \(2, 5, 5, 1\)"),
        ({}, (2, 5, 5, 3), (3, 4), r"context must have shape \(2, c\) or \(2, 5, 5, c\)"),
        ({}, (2, 5, 5, 3), (2, 4, 5, 4), r"context must have shape"),
        ({}, (2, 5, 5, 3), (2, 5, 4), r"context must have shape"),
        ({"features": 2}, (2, 5, 5, 3), None, "features must be an integer >= 3"),
        ({"kernel_size": 4}, (2, 5, 5, 3), None, "kernel_size must be an odd positive"),
        ({"first_kernel_size": 0}, (2, 5, 5, 3), None, "first_kernel_size must be an odd"),
        ({"output_hidden": 2}, (2, 5, 5, 3), None, "output_hidden must be an integer >= 3"),
        ({"num_layers": 0}, (2, 5, 5, 3), None, "num_layers"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(net, kwargs, x_shape, context_shape, match):
    module = NETS[net](2, 3, **kwargs)
    context = None if context_shape is None else jnp.zeros(context_shape)
    with pytest.raises(ValueError, match=match):
        module.init(jax.random.key(0), jnp.zeros(x_shape), context)


def test_integer_inputs_and_bad_mask_arguments_raise():
    with pytest.raises(ValueError, match="x must have a floating-point dtype"):
        PixelCNN(2, 1).init(jax.random.key(0), jnp.zeros((1, 4, 4, 1), jnp.int32))
    with pytest.raises(ValueError, match="mask_type must be one of"):
        pixelcnn_mask(3, 1, 1, 1, "C")
    with pytest.raises(ValueError, match="kernel_size must be an odd"):
        pixelcnn_mask((3, 2), 1, 1, 1, "A")
    with pytest.raises(ValueError, match="in_features must be an integer >= 3"):
        pixelcnn_mask(3, 2, 3, 3, "A")
    with pytest.raises(ValueError, match="x must have shape"):
        MaskedConv2D(3, 3, "A", 1).init(jax.random.key(0), jnp.zeros((2, 4, 4)))
