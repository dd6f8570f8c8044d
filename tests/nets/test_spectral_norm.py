"""Spectral normalisation against numpy's SVD: the power iteration's sigma (one long run, or one
step per mutable call), the normalised kernels' norms, the clip / no-clip rescalings, the
gradient of sigma, and SNConv against a numpy cross-correlation and the bounds on the
convolution's operator norm."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.nets.spectral_norm import SNConv, SNDense, spectral_normalize
from tests.params import random_params


def top_singular_values(w2d):
    return np.linalg.svd(np.asarray(w2d, np.float64), compute_uv=False)[:2]


def kernel_and_hat(layer, in_features, seed=0, scale=0.5):
    """``(W, W_hat)`` of a layer with random parameters (``u`` random too)."""
    conv = isinstance(layer, SNConv)
    x = jnp.ones((1, 5, 5, in_features) if conv else (1, in_features))
    variables = random_params(layer, x, seed=seed, scale=scale)
    w_hat, _ = layer.apply(variables, in_features, method=type(layer).weights)
    return np.asarray(variables["params"]["kernel"]), np.asarray(w_hat), variables


LAYERS = [
    (SNDense(5, coeff=0.7, n_iter=50, clip=False), 6),
    (SNConv(4, (3, 2), coeff=1.0, n_iter=50), 3),
]


@pytest.mark.parametrize("layer,in_features", LAYERS, ids=["dense", "conv"])
def test_unclipped_sigma_and_normalised_norm_match_numpy_svd(x64, layer, in_features):
    w, w_hat, _ = kernel_and_hat(layer, in_features)
    w2d, w_hat2d = w.reshape(-1, w.shape[-1]), w_hat.reshape(-1, w.shape[-1])
    s1, s2 = top_singular_values(w2d)
    assert s2 / s1 < 0.9  # the gap that 50 iterations close (error ~ (s2 / s1)^200)
    # W_hat = coeff W / sigma_hat: recover sigma_hat by least squares.
    sigma_hat = layer.coeff * np.sum(w2d * w2d) / np.sum(w2d * w_hat2d)
    assert abs(sigma_hat - s1) / s1 < 1e-5
    np.testing.assert_allclose(top_singular_values(w_hat2d)[0], layer.coeff, rtol=1e-5)


def test_one_step_per_mutable_call_converges(x64):
    layer = SNConv(4, 3, n_iter=1)
    w, _, variables = kernel_and_hat(layer, 3, seed=1)
    s1 = top_singular_values(w.reshape(-1, 4))[0]

    @jax.jit
    def call(variables):
        (w_hat, _), updates = layer.apply(variables, 3, method=SNConv.weights, mutable=["spectral"])
        return w_hat, {**variables, **updates}

    errors = []
    for _ in range(60):
        w_hat, variables = call(variables)
        sigma_hat = np.sum(w * w) / np.sum(w * np.asarray(w_hat))
        errors.append(abs(sigma_hat - s1) / s1)
    assert errors[0] > 1e-3  # a random start is far off: the warm start does the work
    assert errors[-1] < 1e-6
    np.testing.assert_allclose(top_singular_values(np.asarray(w_hat).reshape(-1, 4))[0], 1, 1e-6)


def test_clip_true_default_is_min_one_coeff_over_sigma(x64):
    layer = SNDense(6, n_iter=300)
    assert (layer.coeff, layer.clip, layer.use_bias) == (0.9, True, True)
    for scale in (10.0, 1e-3):  # sigma above coeff (rescaled), below (kept)
        w, w_hat, _ = kernel_and_hat(layer, 4, seed=2, scale=scale)
        s1 = top_singular_values(w)[0]
        np.testing.assert_allclose(w_hat, w * min(1.0, 0.9 / s1), rtol=1e-10)
        unclipped = SNDense(6, n_iter=300, clip=False)
        _, w_free, _ = kernel_and_hat(unclipped, 4, seed=2, scale=scale)
        np.testing.assert_allclose(w_free, w * 0.9 / s1, rtol=1e-10)
    assert s1 < 0.9  # the small kernel: clip keeps it, no clip scales it up


def test_sigma_gradient_is_outer_product_of_top_singular_vectors(x64):
    w = jax.random.normal(jax.random.key(0), (7, 5))
    u0 = jax.random.normal(jax.random.key(1), (5,))
    grad = jax.grad(lambda w: spectral_normalize(w, u0, 200)[2])(w)
    left, _, right_t = np.linalg.svd(np.asarray(w))
    np.testing.assert_allclose(grad, np.outer(left[:, 0], right_t[0]), atol=1e-10)


def test_dense_without_bias(x64):
    layer = SNDense(3, n_iter=100, clip=False, use_bias=False)
    x = jax.random.normal(jax.random.key(0), (2, 4))
    variables = random_params(layer, x, seed=3)
    assert set(variables["params"]) == {"kernel"}
    w = np.asarray(variables["params"]["kernel"])
    np.testing.assert_allclose(
        layer.apply(variables, x), np.asarray(x) @ (0.9 * w / top_singular_values(w)[0]), 1e-10
    )


def numpy_correlation(x, kernel, bias, strides, padding):
    """Cross-correlation ``(n, H, W, I) * (kh, kw, I, O)`` with XLA's 'SAME' convention
    (``ceil(H / s)`` outputs, the odd padding row at the bottom / right)."""
    kh, kw = kernel.shape[:2]
    if padding == "SAME":
        pads = []
        for size, k, s in zip(x.shape[1:3], (kh, kw), strides, strict=True):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
    elif padding == "VALID":
        pads = [(0, 0), (0, 0)]
    else:
        pads = [(padding, padding)] * 2
    xp = np.pad(x, [(0, 0), *pads, (0, 0)])
    out_h = (xp.shape[1] - kh) // strides[0] + 1
    out_w = (xp.shape[2] - kw) // strides[1] + 1
    out = np.zeros((x.shape[0], out_h, out_w, kernel.shape[-1]))
    for i in range(out_h):
        for j in range(out_w):
            top, left = i * strides[0], j * strides[1]
            patch = xp[:, top : top + kh, left : left + kw]
            out[:, i, j] = np.einsum("nabc,abco->no", patch, kernel)
    return out + bias


@pytest.mark.parametrize(
    "kernel_size,strides,padding",
    [(3, 1, "SAME"), (4, 2, "SAME"), ((3, 2), (1, 2), "VALID"), (3, 2, 1)],
)
def test_conv_matches_numpy_correlation_with_svd_normalised_kernel(
    x64, kernel_size, strides, padding
):
    layer = SNConv(4, kernel_size, strides=strides, padding=padding, n_iter=100)
    x = jax.random.normal(jax.random.key(0), (2, 7, 6, 3))
    variables = random_params(layer, x, seed=4)
    kernel = np.asarray(variables["params"]["kernel"])
    kernel_hat = kernel / top_singular_values(kernel.reshape(-1, 4))[0]
    strides = (strides, strides) if isinstance(strides, int) else strides
    expected = numpy_correlation(
        np.asarray(x), kernel_hat, np.asarray(variables["params"]["bias"]), strides, padding
    )
    np.testing.assert_allclose(layer.apply(variables, x), expected, atol=1e-10)


@pytest.mark.parametrize("kernel_size,strides,bound", [(3, 1, 3.0), (4, 2, 2.0)])
def test_conv_operator_norm_lies_between_the_reshape_bounds(x64, kernel_size, strides, bound):
    """``||W||_2 = 1 <= ||K *||_2 <= sqrt(ceil(kh / s) ceil(kw / s))``: normalising the reshape
    bounds the convolution's norm without fixing it."""
    layer = SNConv(3, kernel_size, strides=strides, n_iter=100)
    x = jnp.zeros((1, 8, 8, 2))
    variables = random_params(layer, x, seed=5)
    jac = jax.jacfwd(lambda v: layer.apply(variables, v))(x)
    norm = np.linalg.norm(np.asarray(jac).reshape(-1, x.size), 2)
    assert 1.0 - 1e-9 <= norm <= bound
    assert norm > 1.05  # strictly above 1: the reshape norm is not the operator norm


def test_bad_arguments():
    x = jnp.ones((1, 4, 4, 2))
    with pytest.raises(ValueError, match="x must have shape"):
        SNConv(3, 3).init(jax.random.key(0), x[0])
    with pytest.raises(ValueError, match="kernel_size"):
        SNConv(3, (3, 3, 3)).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="padding"):
        SNConv(3, 3, padding="FULL").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="coeff"):
        SNDense(3, coeff=0.0).init(jax.random.key(0), x[:, 0, 0])
