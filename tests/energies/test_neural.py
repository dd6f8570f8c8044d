"""Neural energies against ground truths written here: numpy forward passes of the MLP and the
convolutional EBM (numpy SVD for the spectrally normalised one), the read-outs' numpy formulas,
the closed-form gradients of the read-outs of a linear network, and autodiff Jacobians showing
that example ``i``'s energy does not depend on example ``j``."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.energies.neural import (
    READOUTS,
    ConvEnergy,
    MLPEnergy,
    ReadoutEnergy,
    inner_product_readout,
    norm_readout,
    reconstruction_readout,
)
from tests.params import random_params

# ------------------------------------------------------------------ numpy ground truth


def np_swish(h):
    return h / (1.0 + np.exp(-h))


def np_mlp(params, x, kernels=None):
    """The MLP energy in numpy; ``kernels`` overrides the (normalised) kernels by layer name."""
    p = jax.tree.map(np.asarray, params["params"])
    kernels = kernels or {name: p[name]["kernel"] for name in p}
    h = x.reshape(len(x), -1)
    hidden = sorted(name for name in p if name.startswith("dense_"))
    for name in hidden:
        h = np_swish(h @ kernels[name] + p[name]["bias"])
    return (h @ kernels["out"] + p["out"]["bias"])[:, 0]


def np_conv_same_stride2(x, kernel, bias):
    """3x3 cross-correlation, stride 2, "SAME" padding (total ``(out - 1) 2 + 3 - in``, the
    smaller half before), written with loops: ``(n, H, W, Ci) -> (n, ceil(H/2), ceil(W/2), Co)``."""
    n, height, width, _ = x.shape
    out_h, out_w = -(-height // 2), -(-width // 2)
    pad_h, pad_w = max((out_h - 1) * 2 + 3 - height, 0), max((out_w - 1) * 2 + 3 - width, 0)
    xp = np.pad(
        x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))
    )
    y = np.zeros((n, out_h, out_w, kernel.shape[-1]))
    for i in range(out_h):
        for j in range(out_w):
            patch = xp[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3, :]
            y[:, i, j] = np.einsum("nabc,abcd->nd", patch, kernel)
    return y + bias


def np_conv_energy(params, x, pool):
    p = jax.tree.map(np.asarray, params["params"])
    h = x[..., None] if x.ndim == 3 else x
    for name in sorted(name for name in p if name.startswith("conv_")):
        h = np_swish(np_conv_same_stride2(h, p[name]["kernel"], p[name]["bias"]))
    h = h.mean(axis=(1, 2)) if pool == "mean" else h.sum(axis=(1, 2))
    return (h @ p["out"]["kernel"] + p["out"]["bias"])[:, 0]


def assert_per_example(apply, x):
    """The Jacobian ``d E_i / d x_j`` of a batch of 3 is zero for ``i != j`` and not for
    ``i == j``: no example's energy sees another example."""
    jac = np.asarray(jax.jit(jax.jacrev(apply))(x)).reshape(3, 3, -1)
    for i in range(3):
        for j in range(3):
            norm = np.abs(jac[i, j]).max()
            assert (norm == 0.0) if i != j else (norm > 1e-3), (i, j, norm)


# ------------------------------------------------------------------ read-outs


def test_readouts_match_numpy_formulas(x64):
    rng = np.random.default_rng(0)
    x, fx = rng.normal(size=(4, 3, 5)), rng.normal(size=(4, 3, 5))
    expected = {
        "inner_product": np.einsum("nij,nij->n", x, fx),
        "reconstruction": 0.5
        * np.array([np.linalg.norm(a - b) ** 2 for a, b in zip(x, fx, strict=True)]),
        "norm": 0.5 * np.array([np.linalg.norm(b) ** 2 for b in fx]),
    }
    assert set(READOUTS) == set(expected)
    for name, fn in READOUTS.items():
        got = fn(jnp.asarray(x), jnp.asarray(fx))
        assert got.shape == (4,)
        np.testing.assert_allclose(got, expected[name], rtol=1e-13, err_msg=name)


@pytest.mark.parametrize("fn", [inner_product_readout, reconstruction_readout, norm_readout])
def test_readouts_check_shapes(fn):
    with pytest.raises(ValueError, match=r"fx .* must have the shape of x, \(4, 3\); got shape"):
        fn(jnp.zeros((4, 3)), jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"x must have shape \(n, \*event\); got shape \(4,\)"):
        fn(jnp.zeros(4), jnp.zeros(4))
    with pytest.raises(ValueError, match="x must have a floating-point dtype; got dtype int32"):
        fn(jnp.zeros((4, 3), jnp.int32), jnp.zeros((4, 3)))


@pytest.mark.parametrize("readout", sorted(READOUTS))
def test_readout_energy_gradient_of_linear_network(readout, x64):
    """``f(x) = A x`` (a bias-free ``nn.Dense`` with kernel ``A^T``): ``grad_x E = M x`` with
    ``M = A + A^T``, ``(I - A)^T (I - A)`` or ``A^T A``."""
    rng = np.random.default_rng(1)
    d = 5
    a = rng.normal(size=(d, d))
    x = rng.normal(size=(6, d))
    model = ReadoutEnergy(nn.Dense(d, use_bias=False), readout)
    variables = {"params": {"network": {"kernel": jnp.asarray(a.T)}}}
    grad = jax.grad(lambda x: jnp.sum(model.apply(variables, x)))(jnp.asarray(x))
    i_minus_a = np.eye(d) - a
    m = {"inner_product": a + a.T, "reconstruction": i_minus_a.T @ i_minus_a, "norm": a.T @ a}
    np.testing.assert_allclose(grad, x @ m[readout].T, atol=1e-12)
    # The energy itself against the quadratic form 1/2 x^T M x (x^T A x for the inner product).
    scale = 1.0 if readout == "inner_product" else 0.5
    quad = np.einsum("ni,ij,nj->n", x, a if readout == "inner_product" else m[readout], x)
    np.testing.assert_allclose(model.apply(variables, jnp.asarray(x)), scale * quad, rtol=1e-12)


class ScaledByNoise(nn.Module):
    """``f(x, sigma) = x sigma``: a noise-conditional same-shape network."""

    def __call__(self, x, sigma):
        return x * sigma[:, None, None]


def test_readout_energy_passes_extra_arguments(x64):
    x = jnp.asarray(np.random.default_rng(2).normal(size=(3, 2, 4)))
    sigma = jnp.array([0.5, 1.0, 2.0])
    got = ReadoutEnergy(ScaledByNoise(), "norm").apply({}, x, sigma)
    expected = 0.5 * np.asarray(sigma) ** 2 * np.sum(np.asarray(x) ** 2, axis=(1, 2))
    np.testing.assert_allclose(got, expected, rtol=1e-13)


def test_readout_energy_errors():
    x = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match=r"readout must be one of \('inner_product'.*got 'l1'"):
        ReadoutEnergy(nn.Dense(3), "l1").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match=r"must have the shape of x, \(2, 3\); got shape \(2, 4\)"):
        ReadoutEnergy(nn.Dense(4), "norm").init(jax.random.key(0), x)


# ------------------------------------------------------------------ MLPEnergy

EVENT = (3, 2)
MLP = MLPEnergy(hidden_sizes=(8, 6))


def test_mlp_energy_matches_numpy(x64):
    x = np.random.default_rng(3).normal(size=(5, *EVENT))
    params = random_params(MLP, jnp.zeros((1, *EVENT)), seed=3)
    got = jax.jit(MLP.apply)(params, jnp.asarray(x))
    assert got.shape == (5,)
    np.testing.assert_allclose(got, np_mlp(params, x), rtol=1e-12)


def test_mlp_energy_is_per_example(x64):
    x = jnp.asarray(np.random.default_rng(4).normal(size=(3, *EVENT)))
    params = random_params(MLP, x, seed=4)
    assert_per_example(lambda x: MLP.apply(params, x), x)


def test_spectral_norm_mlp_matches_numpy_svd(x64):
    """After enough warm-started power iterations (``mutable=["spectral"]``) every kernel is
    divided by its largest singular value (numpy SVD)."""
    model = MLPEnergy(hidden_sizes=(8, 6), spectral_norm=True)
    x = jnp.asarray(np.random.default_rng(5).normal(size=(4, *EVENT)))
    variables = random_params(model, x, seed=5)

    @jax.jit
    def iterate(variables):
        def step(_, v):
            return {**v, **model.apply(v, x, mutable=["spectral"])[1]}

        v = jax.lax.fori_loop(0, 300, step, variables)
        return model.apply(v, x, mutable=["spectral"])[0], v

    got, variables = iterate(variables)
    kernels = {
        name: np.asarray(p["kernel"]) / np.linalg.svd(np.asarray(p["kernel"]), compute_uv=False)[0]
        for name, p in variables["params"].items()
    }
    np.testing.assert_allclose(got, np_mlp(variables, np.asarray(x), kernels), rtol=1e-8)
    # Pure calls (spectral not mutable) give the same value from the converged vectors.
    np.testing.assert_allclose(jax.jit(model.apply)(variables, x), got, rtol=1e-8)


@pytest.mark.parametrize("model", [MLP, ConvEnergy(features=(4, 6))], ids=["mlp", "conv"])
def test_spectral_norm_makes_energy_invariant_to_kernel_scale(model, x64):
    """``W / sigma(W)`` does not change when every kernel is multiplied by 7; the plain network
    does."""
    x = jnp.asarray(np.random.default_rng(6).normal(size=(3, 8, 8)))
    outputs = {}
    for sn in (False, True):
        m = model.clone(spectral_norm=sn)
        variables = random_params(m, x, seed=6)
        scaled = {
            **variables,
            "params": jax.tree_util.tree_map_with_path(
                lambda path, p: 7.0 * p if path[-1].key == "kernel" else p, variables["params"]
            ),
        }
        apply = jax.jit(m.apply)
        outputs[sn] = apply(variables, x), apply(scaled, x)
    np.testing.assert_allclose(*outputs[True], rtol=1e-10)
    assert np.max(np.abs(outputs[False][0] - outputs[False][1])) > 0.1


def test_mlp_energy_input_errors():
    with pytest.raises(ValueError, match=r"x must have shape \(n, \*event\); got shape \(4,\)"):
        MLP.init(jax.random.key(0), jnp.zeros(4))
    with pytest.raises(ValueError, match="x must have a floating-point dtype; got dtype int32"):
        MLP.init(jax.random.key(0), jnp.zeros((4, 2), jnp.int32))


# ------------------------------------------------------------------ ConvEnergy

CONV = ConvEnergy(features=(4, 6))


@pytest.mark.parametrize("pool", ["mean", "sum"])
def test_conv_energy_matches_numpy(pool, x64):
    """Odd and even sizes (7 x 6) exercise both halves of the "SAME" padding."""
    model = CONV.clone(pool=pool)
    x = np.random.default_rng(7).normal(size=(3, 7, 6, 2))
    params = random_params(model, jnp.asarray(x), seed=7)
    got = jax.jit(model.apply)(params, jnp.asarray(x))
    assert got.shape == (3,)
    np.testing.assert_allclose(got, np_conv_energy(params, x, pool), rtol=1e-11)


def test_conv_energy_grey_images_get_a_channel(x64):
    x = jnp.asarray(np.random.default_rng(8).normal(size=(3, 8, 8)))
    params = random_params(CONV, x, seed=8)
    grey = CONV.apply(params, x)
    np.testing.assert_array_equal(grey, CONV.apply(params, x[..., None]))
    np.testing.assert_allclose(grey, np_conv_energy(params, np.asarray(x), "mean"), rtol=1e-11)


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_conv_energy_is_per_example(spectral_norm, x64):
    model = CONV.clone(spectral_norm=spectral_norm)
    x = jnp.asarray(np.random.default_rng(9).normal(size=(3, 8, 8, 1)))
    params = random_params(model, x, seed=9)
    assert_per_example(lambda x: model.apply(params, x), x)


def test_conv_energy_input_errors():
    key = jax.random.key(0)
    for shape in [(2, 8), (2, 8, 8, 1, 1)]:
        with pytest.raises(ValueError, match=r"x must have shape \(n, H, W\) or \(n, H, W, C\)"):
            CONV.init(key, jnp.zeros(shape))
    with pytest.raises(ValueError, match="x must have a floating-point dtype; got dtype int32"):
        CONV.init(key, jnp.zeros((2, 8, 8), jnp.int32))
    with pytest.raises(ValueError, match=r"pool must be one of \('mean', 'sum'\); got 'max'"):
        CONV.clone(pool="max").init(key, jnp.zeros((2, 8, 8)))
