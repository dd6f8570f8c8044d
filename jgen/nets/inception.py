"""Inception-v3 in the variant used for FID, KID and the Inception Score (Szegedy, Vanhoucke,
Ioffe, Shlens & Wojna 2016, "Rethinking the Inception architecture for computer vision").

This is the network of the TTUR code (Heusel et al. 2017) as pytorch-fid rebuilds it
(``FIDInceptionA``, ``FIDInceptionC``, ``FIDInceptionE_1``, ``FIDInceptionE_2``), which differs
from torchvision's ImageNet model in four places: the average pools of the A, C and first E
blocks exclude the padding from their counts (``count_include_pad=False``), the last E block
max-pools in its pool branch, there are 1008 logits, and there is no auxiliary classifier.
Every convolution is followed by batch normalisation (``eps = 1e-3``, inference mode: the stored
statistics) and a ReLU. The 2048 features are the spatial mean of the last block.

Weights are not shipped and nothing is downloaded here. To score images comparably with
published numbers, convert pytorch-fid's checkpoint (``pt_inception-2015-12-05-6726825d.pth``,
a converted copy of the TTUR TensorFlow graph) once, where torch is installed, into the ``.npz``
layout of :func:`save_npz` / :func:`load_npz`, one array per ``/``-joined variable path::

    params/<layer>/conv/kernel    <layer>.conv.weight       OIHW -> HWIO: w.transpose(2, 3, 1, 0)
    params/<layer>/bn/scale       <layer>.bn.weight
    params/<layer>/bn/bias        <layer>.bn.bias
    batch_stats/<layer>/bn/mean   <layer>.bn.running_mean
    batch_stats/<layer>/bn/var    <layer>.bn.running_var
    params/fc/kernel              fc.weight                 transposed: w.T
    params/fc/bias                fc.bias

where ``<layer>`` is ``Conv2d_1a_3x3`` or ``Mixed_5b/branch1x1`` here and ``Conv2d_1a_3x3`` or
``Mixed_5b.branch1x1`` there (:func:`torch_name` maps one to the other)::

    import numpy as np, torch
    from flax import traverse_util
    from jgen.nets.inception import torch_name, variable_shapes

    state = torch.load("pt_inception-2015-12-05-6726825d.pth", map_location="cpu")
    flat = {}
    for key in traverse_util.flatten_dict(variable_shapes(), sep="/"):
        w = state[torch_name(key)].numpy()
        flat[key] = w.transpose(2, 3, 1, 0) if w.ndim == 4 else (w.T if w.ndim == 2 else w)
    np.savez("inception_fid.npz", **flat)

pytorch-fid resizes with ``F.interpolate(mode="bilinear", align_corners=False)``, which
:func:`preprocess` reproduces (``jax.image.resize`` without antialiasing), then maps ``[0, 1]``
to ``[-1, 1]``.
"""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.nets import weights
from jgen.types import Array, PyTree

IMAGE_SIZE = 299
"""The input resolution that the published scores use."""
MIN_IMAGE_SIZE = 75
"""The smallest input that the strided layers leave at least one pixel of."""
NUM_FEATURES = 2048
NUM_CLASSES = 1008
"""The TTUR graph's classifier: the 1000 ImageNet classes and 8 unused ones."""
BATCH_NORM_EPSILON = 1e-3


def preprocess(
    images: Array, *, resize: bool = True, input_range: tuple[float, float] = (0.0, 1.0)
) -> Array:
    """Maps images to the network's input: resized to 299 x 299 and scaled to ``[-1, 1]``.

    ``x -> 2 (resize(x) - lo) / (hi - lo) - 1`` with a bilinear resize that, like pytorch-fid's
    ``F.interpolate(mode="bilinear", align_corners=False)``, samples at pixel centres without
    antialiasing (``jax.image.resize(..., antialias=False)``).

    Args:
      images: ``(n, H, W, 3)``, values in ``input_range``; ``H, W >= 75`` when not resized.
      resize: resize to 299 x 299 (the published protocol) or keep the size.
      input_range: ``(lo, hi)``, the range of ``images``: ``(0, 1)``, ``(-1, 1)``, ``(0, 255)``.

    Returns:
      ``(n, 299, 299, 3)`` (or ``(n, H, W, 3)``) in ``[-1, 1]``.

    Raises:
      ValueError: on a shape that is not ``(n, H, W, 3)``, images too small, a bad range.
    """
    shape = tuple(np.shape(images))
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"images must have shape (n, H, W, 3); got shape {shape}")
    if not resize and min(shape[1:3]) < MIN_IMAGE_SIZE:
        raise ValueError(
            f"images must be at least {MIN_IMAGE_SIZE} x {MIN_IMAGE_SIZE} when resize=False; "
            f"got shape {shape}"
        )
    lo, hi = input_range
    if not hi > lo:
        raise ValueError(f"input_range must be (lo, hi) with hi > lo; got {input_range!r}")
    images = jnp.asarray(images)
    if not jnp.issubdtype(images.dtype, jnp.floating):
        images = images.astype(jnp.float32)
    if resize:
        images = jax.image.resize(
            images, (shape[0], IMAGE_SIZE, IMAGE_SIZE, 3), "bilinear", antialias=False
        )
    return 2.0 * (images - lo) / (hi - lo) - 1.0


def avg_pool_3x3(x: Array) -> Array:
    """The 3 x 3, stride 1, ``same``-padded average pool of the FID blocks, whose border outputs
    average only the pixels inside the image (``count_include_pad=False``), as in the TensorFlow
    graph that the published scores come from; ``x`` is ``(n, H, W, C)``."""
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3(x: Array, stride: int, pad: int) -> Array:
    return nn.max_pool(x, (3, 3), strides=(stride, stride), padding=((pad, pad), (pad, pad)))


class BasicConv(nn.Module):
    """``conv (no bias) -> batch norm (stored statistics, eps = 1e-3) -> ReLU``, named ``conv``
    and ``bn`` like torchvision's ``BasicConv2d``.

    Attributes:
      features: output channels.
      kernel_size: ``(kh, kw)``.
      strides: the stride along both axes.
      padding: ``(ph, pw)``, zeros added on both sides of each axis.
    """

    features: int
    kernel_size: tuple[int, int] = (1, 1)
    strides: int = 1
    padding: tuple[int, int] = (0, 0)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        ph, pw = self.padding
        x = nn.Conv(
            self.features,
            self.kernel_size,
            strides=self.strides,
            padding=((ph, ph), (pw, pw)),
            use_bias=False,
            name="conv",
        )(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=BATCH_NORM_EPSILON, name="bn")(x)
        return nn.relu(x)


def _chain(x: Array, layers: list[BasicConv]) -> Array:
    for layer in layers:
        x = layer(x)
    return x


class InceptionA(nn.Module):
    """Mixed_5b-d: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1, concatenated."""

    pool_features: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        return jnp.concatenate(
            [
                BasicConv(64, name="branch1x1")(x),
                _chain(
                    x,
                    [
                        BasicConv(48, name="branch5x5_1"),
                        BasicConv(64, (5, 5), padding=(2, 2), name="branch5x5_2"),
                    ],
                ),
                _chain(
                    x,
                    [
                        BasicConv(64, name="branch3x3dbl_1"),
                        BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2"),
                        BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3"),
                    ],
                ),
                BasicConv(self.pool_features, name="branch_pool")(avg_pool_3x3(x)),
            ],
            axis=-1,
        )


class InceptionB(nn.Module):
    """Mixed_6a, halving the resolution: 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max pool 3x3/2."""

    @nn.compact
    def __call__(self, x: Array) -> Array:
        return jnp.concatenate(
            [
                BasicConv(384, (3, 3), strides=2, name="branch3x3")(x),
                _chain(
                    x,
                    [
                        BasicConv(64, name="branch3x3dbl_1"),
                        BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2"),
                        BasicConv(96, (3, 3), strides=2, name="branch3x3dbl_3"),
                    ],
                ),
                _max_pool_3x3(x, stride=2, pad=0),
            ],
            axis=-1,
        )


class InceptionC(nn.Module):
    """Mixed_6b-e, with factorised 7x7 convolutions (1x7 then 7x1) of ``channels_7x7`` channels:
    1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | avg pool -> 1x1."""

    channels_7x7: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        c7 = self.channels_7x7
        return jnp.concatenate(
            [
                BasicConv(192, name="branch1x1")(x),
                _chain(
                    x,
                    [
                        BasicConv(c7, name="branch7x7_1"),
                        BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7_2"),
                        BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7_3"),
                    ],
                ),
                _chain(
                    x,
                    [
                        BasicConv(c7, name="branch7x7dbl_1"),
                        BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2"),
                        BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3"),
                        BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4"),
                        BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5"),
                    ],
                ),
                BasicConv(192, name="branch_pool")(avg_pool_3x3(x)),
            ],
            axis=-1,
        )


class InceptionD(nn.Module):
    """Mixed_7a, halving the resolution: 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max pool."""

    @nn.compact
    def __call__(self, x: Array) -> Array:
        return jnp.concatenate(
            [
                _chain(
                    x,
                    [
                        BasicConv(192, name="branch3x3_1"),
                        BasicConv(320, (3, 3), strides=2, name="branch3x3_2"),
                    ],
                ),
                _chain(
                    x,
                    [
                        BasicConv(192, name="branch7x7x3_1"),
                        BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2"),
                        BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3"),
                        BasicConv(192, (3, 3), strides=2, name="branch7x7x3_4"),
                    ],
                ),
                _max_pool_3x3(x, stride=2, pad=0),
            ],
            axis=-1,
        )


class InceptionE(nn.Module):
    """Mixed_7b-c, with 3x3 convolutions split into parallel 1x3 and 3x1 ones: 1x1 | 1x1 -> (1x3,
    3x1) | 1x1 -> 3x3 -> (1x3, 3x1) | pool -> 1x1. The pool is the padding-excluding average in
    Mixed_7b and a 3x3 max pool in Mixed_7c (``max_pool=True``), as in the TTUR graph."""

    max_pool: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        def split_3x3(y: Array, prefix: str) -> Array:
            return jnp.concatenate(
                [
                    BasicConv(384, (1, 3), padding=(0, 1), name=f"{prefix}a")(y),
                    BasicConv(384, (3, 1), padding=(1, 0), name=f"{prefix}b")(y),
                ],
                axis=-1,
            )

        branch3x3 = BasicConv(384, name="branch3x3_1")(x)
        branch3x3dbl = _chain(
            x,
            [
                BasicConv(448, name="branch3x3dbl_1"),
                BasicConv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2"),
            ],
        )
        pooled = _max_pool_3x3(x, stride=1, pad=1) if self.max_pool else avg_pool_3x3(x)
        return jnp.concatenate(
            [
                BasicConv(320, name="branch1x1")(x),
                split_3x3(branch3x3, "branch3x3_2"),
                split_3x3(branch3x3dbl, "branch3x3dbl_3"),
                BasicConv(192, name="branch_pool")(pooled),
            ],
            axis=-1,
        )


class InceptionV3(nn.Module):
    """The FID Inception-v3: images in ``input_range`` -> 2048 pool features (and 1008 logits).

    Attributes:
      resize: resize inputs bilinearly to 299 x 299 first (the published protocol); without it
        inputs must be at least 75 x 75.
      input_range: ``(lo, hi)``, the range of the input values, mapped to ``[-1, 1]``.
    """

    resize: bool = True
    input_range: tuple[float, float] = (0.0, 1.0)

    @nn.compact
    def __call__(self, images: Array, return_logits: bool = False) -> Array | tuple[Array, Array]:
        """Args: ``images (n, H, W, 3)``; ``return_logits`` to return the logits as well.

        Returns: ``features (n, 2048)``, or ``(features (n, 2048), logits (n, 1008))``.
        """
        x = preprocess(images, resize=self.resize, input_range=self.input_range)
        x = BasicConv(32, (3, 3), strides=2, name="Conv2d_1a_3x3")(x)
        x = BasicConv(32, (3, 3), name="Conv2d_2a_3x3")(x)
        x = BasicConv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
        x = _max_pool_3x3(x, stride=2, pad=0)
        x = BasicConv(80, name="Conv2d_3b_1x1")(x)
        x = BasicConv(192, (3, 3), name="Conv2d_4a_3x3")(x)
        x = _max_pool_3x3(x, stride=2, pad=0)
        x = InceptionA(32, name="Mixed_5b")(x)
        x = InceptionA(64, name="Mixed_5c")(x)
        x = InceptionA(64, name="Mixed_5d")(x)
        x = InceptionB(name="Mixed_6a")(x)
        x = InceptionC(128, name="Mixed_6b")(x)
        x = InceptionC(160, name="Mixed_6c")(x)
        x = InceptionC(160, name="Mixed_6d")(x)
        x = InceptionC(192, name="Mixed_6e")(x)
        x = InceptionD(name="Mixed_7a")(x)
        x = InceptionE(name="Mixed_7b")(x)
        x = InceptionE(max_pool=True, name="Mixed_7c")(x)
        features = jnp.mean(x, axis=(1, 2))
        if not return_logits:
            return features
        return features, nn.Dense(NUM_CLASSES, name="fc")(features)


def variable_shapes() -> PyTree:
    """The variables of :class:`InceptionV3` as ``jax.ShapeDtypeStruct`` leaves (nothing is
    computed), the template that :func:`load_npz` checks a file against."""
    images = jax.ShapeDtypeStruct((1, MIN_IMAGE_SIZE, MIN_IMAGE_SIZE, 3), jnp.float32)
    init = lambda key, x: InceptionV3(resize=False).init(key, x, return_logits=True)
    return jax.eval_shape(init, jax.random.key(0), images)


def save_npz(variables: PyTree, path: str | os.PathLike) -> None:
    """Writes Inception variables to ``path``, one array per ``/``-joined variable path
    (``params/Mixed_5b/branch1x1/conv/kernel``), the layout of the module docstring."""
    weights.save_npz(variables, path)


def load_npz(path: str | os.PathLike) -> PyTree:
    """Reads Inception variables from an ``.npz`` file and checks them against the architecture.

    Args:
      path: a file written by :func:`save_npz` or converted from pytorch-fid's checkpoint.

    Returns:
      ``{"params": ..., "batch_stats": ...}`` for ``InceptionV3().apply``.

    Raises:
      FileNotFoundError: when ``path`` does not exist.
      ValueError: naming the first missing, unexpected or mis-shaped variable.
    """
    return weights.load_npz(path, variable_shapes())


_TORCH_LEAF_NAMES = {
    ("params", "kernel"): "weight",
    ("params", "scale"): "weight",
    ("params", "bias"): "bias",
    ("batch_stats", "mean"): "running_mean",
    ("batch_stats", "var"): "running_var",
}


def torch_name(key: str) -> str:
    """The pytorch-fid state-dict name of a variable: ``params/Mixed_5b/branch1x1/conv/kernel``
    -> ``Mixed_5b.branch1x1.conv.weight``, ``batch_stats/Conv2d_1a_3x3/bn/mean`` ->
    ``Conv2d_1a_3x3.bn.running_mean``. Convolution kernels are stored OIHW there and HWIO here,
    the ``fc`` kernel transposed.

    Raises:
      ValueError: for a key that is not ``{params,batch_stats}/.../leaf`` of this network.
    """
    parts = key.split("/")
    leaf = _TORCH_LEAF_NAMES.get((parts[0], parts[-1])) if len(parts) >= 3 else None
    if leaf is None:
        raise ValueError(
            f"key must be 'params/.../{{kernel,scale,bias}}' or 'batch_stats/.../{{mean,var}}'; "
            f"got {key!r}"
        )
    return ".".join([*parts[1:-1], leaf])
