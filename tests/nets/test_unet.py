"""UNet: shapes and sizes at the three resolutions (DDPM's published CIFAR-10 parameter count),
the attention block against a numpy re-implementation and under permutations of the positions,
per-example independence and time dependence from autodiff Jacobians, class conditioning, dropout,
the zero-initialised output, bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.nets.unet import AttentionBlock, UNet, unet_config_for
from tests.params import random_params

KEY = jax.random.key(0)
TINY = dict(channels=8, num_groups=4, num_res_blocks=1)


def num_params(variables):
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(variables["params"]))


def abstract(*shape, dtype=jnp.float32):
    return jax.ShapeDtypeStruct(shape, dtype)


@pytest.mark.parametrize(
    "shape,has_labels", [((8, 8), True), ((28, 28, 1), False), ((32, 32, 3), False)]
)
def test_shapes_at_the_three_resolutions(shape, has_labels):
    config = unet_config_for(shape, small=True)
    model = UNet(**config, num_classes=10 if has_labels else 0)
    n = 2
    args = (abstract(n, *shape), abstract(n), abstract(n, dtype=jnp.int32) if has_labels else None)
    variables = jax.eval_shape(model.init, KEY, *args)
    assert jax.eval_shape(model.apply, variables, *args).shape == (n, *shape)
    # one stride-2 convolution per level but the last: 8 -> 4, 28 -> 14 -> 7, 32 -> ... -> 4
    levels = {8: 2, 28: 3, 32: 4}[shape[0]]
    assert len(config["channel_mults"]) == levels
    downsamples = [k for k in variables["params"] if k.endswith("downsample")]
    assert len(downsamples) == levels - 1
    # default attention: the lowest level (down 1 + up 2 blocks) and the middle
    assert sorted(k for k in variables["params"] if "attn" in k) == sorted(
        [f"down_{levels - 1}_attn_0", f"up_{levels - 1}_attn_0", f"up_{levels - 1}_attn_1"]
        + ["mid_attn"]
    )
    # extra output channels (e.g. a learned variance) keep the spatial shape
    wide = UNet(**config, out_channels=2)
    out = jax.eval_shape(wide.apply, jax.eval_shape(wide.init, KEY, *args[:2]), *args[:2])
    assert out.shape == (n, *shape[:2], 2)


def test_ddpm_cifar10_size():
    # Ho et al. 2020, appendix B: the CIFAR-10 model has 35.7M parameters
    model = UNet(**unet_config_for((32, 32, 3)))
    variables = jax.eval_shape(model.init, KEY, abstract(1, 32, 32, 3), abstract(1))
    assert round(num_params(variables) / 1e5) == 357
    assert num_params(variables) == 35_746_307  # measured; pins the architecture


def numpy_attention_block(params, x, num_heads, num_groups, eps=1e-6):
    p = jax.tree.map(np.asarray, params)
    n, height, width, c = x.shape
    g = np.asarray(x, np.float64).reshape(n, height * width, num_groups, c // num_groups)
    mean = g.mean(axis=(1, 3), keepdims=True)
    var = g.var(axis=(1, 3), keepdims=True)
    h = ((g - mean) / np.sqrt(var + eps)).reshape(n, height * width, c)
    h = h * p["GroupNorm_0"]["scale"] + p["GroupNorm_0"]["bias"]
    d = c // num_heads
    q, k, v = (
        np.einsum("nlc,chd->nlhd", h, p[name]["kernel"]) + p[name]["bias"]
        for name in ("query", "key", "value")
    )
    logits = np.einsum("nlhd,nmhd->nhlm", q, k) / np.sqrt(d)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    a = np.einsum("nhlm,nmhd->nlhd", weights, v)
    out = np.einsum("nlhd,hdc->nlc", a, p["out"]["kernel"]) + p["out"]["bias"]
    return x + out.reshape(x.shape)


@pytest.mark.parametrize("num_heads", [1, 2])
def test_attention_block_matches_numpy_and_is_permutation_equivariant(x64, num_heads):
    block = AttentionBlock(num_heads=num_heads, num_groups=2)
    x = jax.random.normal(KEY, (2, 3, 4, 8))
    variables = random_params(block, x, seed=num_heads)
    apply = jax.jit(block.apply)
    out = apply(variables, x)
    expected = numpy_attention_block(variables["params"], np.asarray(x), num_heads, 2)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)
    # permuting the 12 positions of each image permutes the output the same way
    perm = np.random.default_rng(0).permutation(12)

    def permute(a):
        return a.reshape(2, 12, 8)[:, perm].reshape(a.shape)

    np.testing.assert_allclose(apply(variables, permute(x)), permute(out), atol=1e-12)
    assert float(jnp.abs(permute(out) - out).max()) > 0.1  # the permutation is not trivial


def test_per_example_jacobians_and_time_dependence():
    # one level keeps the backward pass's compile short; GroupNorm and attention (the layers
    # that mix positions) are all there
    model = UNet(**TINY, channel_mults=(1,))
    x = jax.random.normal(KEY, (2, 8, 8))
    t = jnp.array([3.0, 700.0])
    variables = random_params(model, x, t, seed=1, scale=0.2)
    jx, jt = jax.jit(jax.jacrev(lambda x, t: model.apply(variables, x, t), argnums=(0, 1)))(x, t)
    # jx[i, a, b, j, c, d] = d out_i[a, b] / d x_j[c, d]; GroupNorm and attention act per image
    assert jx.shape == (2, 8, 8, 2, 8, 8) and jt.shape == (2, 8, 8, 2)
    assert float(jnp.abs(jx[0, :, :, 1]).max()) == 0.0
    assert float(jnp.abs(jx[1, :, :, 0]).max()) == 0.0
    assert float(jnp.abs(jt[0, :, :, 1]).max()) == 0.0
    assert float(jnp.abs(jt[1, :, :, 0]).max()) == 0.0
    # every output pixel sees every input pixel (attention at 8 x 8), and moves with t
    assert float(jnp.abs(jx[0, :, :, 0]).min()) > 0.0
    assert float(jnp.abs(jt[0, :, :, 0]).max()) > 1e-3
    assert float(jnp.abs(jt[1, :, :, 1]).max()) > 1e-3


def test_class_conditioning_and_dropout():
    model = UNet(**TINY, channel_mults=(1, 2), num_classes=2, dropout=0.3)
    image = jax.random.normal(KEY, (1, 8, 8, 1))
    x, t = jnp.tile(image, (4, 1, 1, 1)), jnp.full((4,), 50.0)  # four equal images
    y = jnp.array([0, 1, 2, 0])  # 2 is the null class (y = None: tests/nets/test_score_mlp.py)
    variables = random_params(model, x, t, y, seed=2, scale=0.2)

    @jax.jit  # one compile for both outputs
    def outputs(variables, key):
        dropped = model.apply(variables, x, t, y, train=True, rngs={"dropout": key})
        return model.apply(variables, x, t, y), dropped

    # an "unsafe_rbg" key: its random bits compile much faster on CPU than threefry's
    out, dropped = outputs(variables, jax.random.key(1, impl="unsafe_rbg"))
    # different labels on equal images: different outputs (measured 0.030 and 0.018; float32
    # round-off is ~1e-7)
    assert float(jnp.abs(out[0] - out[1]).max()) > 1e-3
    assert float(jnp.abs(out[0] - out[2]).max()) > 1e-3
    # dropout: evaluation is deterministic, training draws a mask per example from the rng
    np.testing.assert_array_equal(out[0], out[3])
    assert float(jnp.abs(dropped[0] - out[0]).max()) > 1e-3
    assert float(jnp.abs(dropped[0] - dropped[3]).max()) > 1e-3


def test_fresh_network_outputs_exactly_zero():
    # the smallest network (one level) keeps the compile of the random initialisers short
    model = UNet(channels=4, num_groups=2, num_res_blocks=1, channel_mults=(1,))
    x, t = jax.random.normal(KEY, (2, 4, 4)), jnp.array([1.0, 2.0])
    key = jax.random.key(0, impl="unsafe_rbg")  # compiles faster than threefry on CPU
    variables, out = jax.jit(lambda k: model.init_with_output(k, x, t)[::-1])(key)
    assert float(jnp.abs(out).max()) == 0.0
    # zero by the final convolution alone: the features it reads are not zero
    assert float(jnp.abs(variables["params"]["conv_in"]["kernel"]).max()) > 0.0


@pytest.mark.parametrize(
    "kwargs,x_shape,t_shape,match",
    [
        ({"channel_mults": (1, 2, 2, 2)}, (2, 28, 28), (2,), r"divisible by 2\^\(len"),
        ({"channel_mults": (1, 2)}, (2, 8, 9, 1), (2,), r"divisible by 2\^\(len"),
        ({}, (2, 64), (2,), r"x must be floating-point images"),
        ({}, (2, 8, 8), (3,), r"t must have shape \(2,\)"),
        ({"attention_resolutions": (2,)}, (2, 8, 8), (2,), "attention_resolutions must be among"),
        ({"num_groups": 3}, (2, 8, 8), (2,), "num_groups must divide channels"),
        ({"channel_mults": ()}, (2, 8, 8), (2,), "channel_mults must be non-empty"),
        ({"dropout": 1.0}, (2, 8, 8), (2,), r"dropout must lie in \[0, 1\)"),
        ({"num_heads": 3}, (2, 8, 8), (2,), "num_heads must divide"),
    ],
)
def test_bad_inputs_raise(kwargs, x_shape, t_shape, match):
    model = UNet(**{**TINY, **kwargs})
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(model.init, KEY, abstract(*x_shape), abstract(*t_shape))


def test_bad_labels_and_sizes_raise():
    model = UNet(**TINY, num_classes=3)
    x, t = np.zeros((2, 8, 8), np.float32), np.zeros(2, np.float32)
    with pytest.raises(ValueError, match=r"y must lie in \[0, 3\]"):
        model.init(KEY, x, t, np.array([0, 4]))  # concrete labels are range-checked first
    with pytest.raises(ValueError, match="y must be None"):
        UNet(**TINY).init(KEY, x, t, np.array([0, 1]))
    with pytest.raises(ValueError, match="image_shape must start with one of"):
        unet_config_for((16, 16))
