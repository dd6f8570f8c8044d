"""The FID Inception-v3: its variables against torchvision's layer list, outputs, the npz round
trip and its errors, the padding-excluding pool and the pytorch-fid resize.

The network is compiled once for the module at its smallest input (75 x 75, no resize, batch 2).
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jgen.nets import weights
from jgen.nets.inception import (
    InceptionV3,
    avg_pool_3x3,
    load_npz,
    preprocess,
    save_npz,
    torch_name,
    variable_shapes,
)

# ---------------------------------------------------------------------------------------------
# The architecture as torchvision's Inception3 constructor arguments (pytorch-fid builds it with
# num_classes=1008, aux_logits=False): torch state-dict name -> shape, for every variable.


def basic_conv(name, cin, cout, kh, kw=None):
    kw = kh if kw is None else kw
    vec = (cout,)
    return {
        f"{name}.conv.weight": (cout, cin, kh, kw),
        **{f"{name}.bn.{leaf}": vec for leaf in ("weight", "bias", "running_mean", "running_var")},
    }


def inception_a(p, cin, pool_features):
    return {
        **basic_conv(f"{p}.branch1x1", cin, 64, 1),
        **basic_conv(f"{p}.branch5x5_1", cin, 48, 1),
        **basic_conv(f"{p}.branch5x5_2", 48, 64, 5),
        **basic_conv(f"{p}.branch3x3dbl_1", cin, 64, 1),
        **basic_conv(f"{p}.branch3x3dbl_2", 64, 96, 3),
        **basic_conv(f"{p}.branch3x3dbl_3", 96, 96, 3),
        **basic_conv(f"{p}.branch_pool", cin, pool_features, 1),
    }, 64 + 64 + 96 + pool_features


def inception_b(p, cin):
    return {
        **basic_conv(f"{p}.branch3x3", cin, 384, 3),
        **basic_conv(f"{p}.branch3x3dbl_1", cin, 64, 1),
        **basic_conv(f"{p}.branch3x3dbl_2", 64, 96, 3),
        **basic_conv(f"{p}.branch3x3dbl_3", 96, 96, 3),
    }, 384 + 96 + cin


def inception_c(p, cin, c7):
    return {
        **basic_conv(f"{p}.branch1x1", cin, 192, 1),
        **basic_conv(f"{p}.branch7x7_1", cin, c7, 1),
        **basic_conv(f"{p}.branch7x7_2", c7, c7, 1, 7),
        **basic_conv(f"{p}.branch7x7_3", c7, 192, 7, 1),
        **basic_conv(f"{p}.branch7x7dbl_1", cin, c7, 1),
        **basic_conv(f"{p}.branch7x7dbl_2", c7, c7, 7, 1),
        **basic_conv(f"{p}.branch7x7dbl_3", c7, c7, 1, 7),
        **basic_conv(f"{p}.branch7x7dbl_4", c7, c7, 7, 1),
        **basic_conv(f"{p}.branch7x7dbl_5", c7, 192, 1, 7),
        **basic_conv(f"{p}.branch_pool", cin, 192, 1),
    }, 4 * 192


def inception_d(p, cin):
    return {
        **basic_conv(f"{p}.branch3x3_1", cin, 192, 1),
        **basic_conv(f"{p}.branch3x3_2", 192, 320, 3),
        **basic_conv(f"{p}.branch7x7x3_1", cin, 192, 1),
        **basic_conv(f"{p}.branch7x7x3_2", 192, 192, 1, 7),
        **basic_conv(f"{p}.branch7x7x3_3", 192, 192, 7, 1),
        **basic_conv(f"{p}.branch7x7x3_4", 192, 192, 3),
    }, 320 + 192 + cin


def inception_e(p, cin):
    return {
        **basic_conv(f"{p}.branch1x1", cin, 320, 1),
        **basic_conv(f"{p}.branch3x3_1", cin, 384, 1),
        **basic_conv(f"{p}.branch3x3_2a", 384, 384, 1, 3),
        **basic_conv(f"{p}.branch3x3_2b", 384, 384, 3, 1),
        **basic_conv(f"{p}.branch3x3dbl_1", cin, 448, 1),
        **basic_conv(f"{p}.branch3x3dbl_2", 448, 384, 3),
        **basic_conv(f"{p}.branch3x3dbl_3a", 384, 384, 1, 3),
        **basic_conv(f"{p}.branch3x3dbl_3b", 384, 384, 3, 1),
        **basic_conv(f"{p}.branch_pool", cin, 192, 1),
    }, 320 + 2 * 384 + 2 * 384 + 192


def torchvision_fid_inception_shapes():
    shapes = {}
    for name, cin, cout, k in (
        ("Conv2d_1a_3x3", 3, 32, 3),
        ("Conv2d_2a_3x3", 32, 32, 3),
        ("Conv2d_2b_3x3", 32, 64, 3),
        ("Conv2d_3b_1x1", 64, 80, 1),
        ("Conv2d_4a_3x3", 80, 192, 3),
    ):
        shapes.update(basic_conv(name, cin, cout, k))
    channels = 192
    blocks = [
        (inception_a, "Mixed_5b", 32),
        (inception_a, "Mixed_5c", 64),
        (inception_a, "Mixed_5d", 64),
        (inception_b, "Mixed_6a"),
        (inception_c, "Mixed_6b", 128),
        (inception_c, "Mixed_6c", 160),
        (inception_c, "Mixed_6d", 160),
        (inception_c, "Mixed_6e", 192),
        (inception_d, "Mixed_7a"),
        (inception_e, "Mixed_7b"),
        (inception_e, "Mixed_7c"),
    ]
    for block, name, *args in blocks:
        block_shapes, channels = block(name, channels, *args)
        shapes.update(block_shapes)
    assert channels == 2048
    shapes.update({"fc.weight": (1008, 2048), "fc.bias": (1008,)})
    return shapes


# ---------------------------------------------------------------------------------------------


def random_variables(seed):
    """Variables of the architecture's shapes (from ``init``, traced abstractly) with random
    values drawn in numpy: ``init`` itself draws 24M numbers with threefry and takes 30-80 s on
    two shared CPU cores. Convolutions are He-scaled so the ReLU activations keep their scale
    through the 94 layers; the batch-norm statistics are random too, so a swap of two layers'
    statistics would change the output."""
    rng = np.random.default_rng(seed)
    flat = {}
    for key, leaf in traverse_util.flatten_dict(variable_shapes(), sep="/").items():
        shape = leaf.shape
        if key.endswith("kernel"):
            value = rng.normal(size=shape) * np.sqrt(2 / np.prod(shape[:-1]))
        elif key.endswith(("scale", "var")):
            value = rng.uniform(0.5, 1.5, size=shape)
        else:  # biases, means
            value = rng.normal(scale=0.1, size=shape)
        flat[key] = value.astype(np.float32)
    return traverse_util.unflatten_dict(flat, sep="/")


@pytest.fixture(scope="module")
def model():
    """Random variables and the forward pass, compiled once, at 75 x 75 without resizing."""
    net = InceptionV3(resize=False)
    images = jax.random.uniform(jax.random.key(0), (2, 75, 75, 3))
    apply = jax.jit(lambda v, x: net.apply(v, x, return_logits=True))
    return random_variables(0), apply, images


def test_variables_match_torchvision_inception3_with_1008_classes(model):
    variables, _, _ = model
    ours = {torch_name(k): v.shape for k, v in weights.flatten(variables).items()}
    torch_shapes = {
        name: (shape if len(shape) != 4 else (shape[2], shape[3], shape[1], shape[0]))
        for name, shape in torchvision_fid_inception_shapes().items()
    }
    torch_shapes["fc.weight"] = torch_shapes["fc.weight"][::-1]
    assert ours == torch_shapes
    # Trainable parameters (torch's parameters(), running statistics excluded), derived from the
    # layer list above: 23,850,960. The same follows from torchvision's published count for
    # inception_v3 (27,161,264 with the auxiliary classifier and 1000 classes) minus the
    # auxiliary head (3,326,696) plus 8 more classes (8 * 2048 + 8 = 16,392). The batch-norm
    # running means and variances add 34,432 values, 23,885,392 in all.
    spec = torchvision_fid_inception_shapes()
    running = {k: v for k, v in spec.items() if k.endswith(("running_mean", "running_var"))}
    expected = sum(int(np.prod(shape)) for k, shape in spec.items() if k not in running)
    assert expected == 27_161_264 - 3_326_696 + 16_392
    assert sum(a.size for a in jax.tree.leaves(variables["params"])) == expected
    num_running = sum(int(np.prod(shape)) for shape in running.values())
    assert sum(a.size for a in jax.tree.leaves(variables["batch_stats"])) == num_running
    assert expected + num_running == 23_885_392


def test_outputs(model):
    variables, apply, images = model
    features, logits = apply(variables, images)
    assert features.shape == (2, 2048) and logits.shape == (2, 1008)
    assert np.all(np.isfinite(features)) and np.all(np.asarray(features) >= 0)  # mean of ReLUs
    assert not np.allclose(features[0], features[1])
    fc = variables["params"]["fc"]
    expected = np.asarray(features) @ np.asarray(fc["kernel"]) + np.asarray(fc["bias"])
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def test_npz_round_trip_and_errors(model, tmp_path):
    variables, apply, images = model
    path = tmp_path / "inception.npz"
    save_npz(variables, path)
    loaded = load_npz(path)
    flat, flat_loaded = weights.flatten(variables), weights.flatten(loaded)
    assert flat.keys() == flat_loaded.keys()
    for key in flat:
        np.testing.assert_array_equal(flat_loaded[key], flat[key], err_msg=key)
    for got, expected in zip(apply(loaded, images), apply(variables, images), strict=True):
        np.testing.assert_array_equal(got, expected)

    missing = dict(flat)
    del missing["batch_stats/Mixed_6c/branch7x7dbl_4/bn/var"]
    np.savez(tmp_path / "missing.npz", **missing)
    with pytest.raises(ValueError, match="batch_stats/Mixed_6c/branch7x7dbl_4/bn/var"):
        load_npz(tmp_path / "missing.npz")
    key = "params/Mixed_6b/branch7x7_2/conv/kernel"  # (1, 7, 128, 128)
    bad = {**flat, key: flat[key].reshape(7, 1, 128, 128)}
    np.savez(tmp_path / "bad.npz", **bad)
    match = re.escape(f"'{key}'") + r".*\(1, 7, 128, 128\); got \(7, 1, 128, 128\)"
    with pytest.raises(ValueError, match=match):
        load_npz(tmp_path / "bad.npz")


def test_torch_names():
    assert torch_name("params/Conv2d_1a_3x3/conv/kernel") == "Conv2d_1a_3x3.conv.weight"
    assert torch_name("params/Mixed_5b/branch1x1/bn/scale") == "Mixed_5b.branch1x1.bn.weight"
    assert torch_name("batch_stats/Mixed_7c/branch_pool/bn/var") == (
        "Mixed_7c.branch_pool.bn.running_var"
    )
    assert torch_name("params/fc/bias") == "fc.bias"
    with pytest.raises(ValueError, match="got 'params/fc'"):
        torch_name("params/fc")


def test_average_pool_excludes_padding():
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 3)).astype(np.float32)
    expected = np.zeros_like(x)
    for i in range(5):
        for j in range(6):
            window = x[:, max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2]  # inside the image only
            expected[:, i, j] = window.mean(axis=(1, 2))
    np.testing.assert_allclose(avg_pool_3x3(jnp.asarray(x)), expected, rtol=1e-5, atol=1e-6)


def torch_bilinear(x, size):
    """``F.interpolate(mode="bilinear", align_corners=False)`` of ``(n, H, W, C)``: source
    coordinate ``(i + 1/2) in / out - 1/2``, clamped at 0, two taps per axis."""

    def taps(n_in, n_out):
        src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = np.floor(src).astype(int)
        return i0, np.minimum(i0 + 1, n_in - 1), src - i0

    r0, r1, wr = taps(x.shape[1], size)
    c0, c1, wc = taps(x.shape[2], size)
    rows = x[:, r0] * (1 - wr)[None, :, None, None] + x[:, r1] * wr[None, :, None, None]
    return rows[:, :, c0] * (1 - wc)[None, None, :, None] + rows[:, :, c1] * wc[None, None, :, None]


def test_preprocess_matches_pytorch_fid(x64):
    rng = np.random.default_rng(1)
    for shape in ((2, 7, 5, 3), (1, 320, 310, 3)):  # upsampled and downsampled to 299
        x = rng.uniform(size=shape)
        expected = 2 * torch_bilinear(x, 299) - 1
        np.testing.assert_allclose(preprocess(jnp.asarray(x)), expected, atol=1e-12)
        np.testing.assert_allclose(
            preprocess(jnp.asarray(255 * x), input_range=(0.0, 255.0)), expected, atol=1e-12
        )
    x = rng.uniform(-1, 1, size=(1, 80, 75, 3))
    np.testing.assert_array_equal(preprocess(jnp.asarray(x), resize=False, input_range=(-1, 1)), x)
    with pytest.raises(ValueError, match=r"at least 75 x 75 when resize=False; got shape"):
        preprocess(jnp.zeros((1, 74, 80, 3)), resize=False)
    with pytest.raises(ValueError, match=r"images must have shape \(n, H, W, 3\)"):
        preprocess(jnp.zeros((1, 80, 80)))
