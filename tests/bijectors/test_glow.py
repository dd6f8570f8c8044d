"""Glow and NICE layers: ActNorm, the LU 1x1 convolution, NICE scaling, squeeze, channel masks.

Ground truths: the shared battery (log-det = slogdet of the autodiff Jacobian), numpy for the 1x1
convolution (einsum and slogdet of the matrix it was built from), explicit index loops for the
squeeze, and batch statistics for ActNorm's data-dependent initialisation.
"""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.bijectors.actnorm import ActNorm, ActNormLayer
from jgen.bijectors.conv1x1 import Conv1x1, Conv1x1Layer, lu_decompose, random_rotation
from jgen.bijectors.coupling import AffineCoupling
from jgen.bijectors.masks import channel_mask
from jgen.bijectors.scaling import Scaling
from jgen.bijectors.squeeze import Squeeze, merge_half, split_half
from tests.bijectors.battery import check_bijector


def normal(seed, shape, scale=1.0):
    return scale * jax.random.normal(jax.random.key(seed), shape)


def random_conv1x1(seed, c):
    """Unconstrained random LU parameters with a random permutation and random signs."""
    keys = jax.random.split(jax.random.key(seed), 5)
    perm = jnp.eye(c)[jax.random.permutation(keys[0], c)]
    sign = jnp.where(jax.random.bernoulli(keys[1], 0.5, (c,)), 1.0, -1.0)
    return Conv1x1(
        permutation=perm,
        lower=0.5 * jax.random.normal(keys[2], (c, c)),
        upper=0.5 * jax.random.normal(keys[3], (c, c)),
        log_abs_s=0.3 * jax.random.normal(keys[4], (c,)),
        sign=sign,
    )


def random_conditioner(seed, event_shape):
    """A fixed nonlinear conditioner with random weights: shifts and log-scales of order 1."""
    dim = int(np.prod(event_shape))
    w1 = normal(seed, (dim, 16)) / np.sqrt(dim)
    w2 = normal(seed + 1, (16, 2 * dim)) / 4.0

    def conditioner(x):
        shift, log_scale = jnp.split(jnp.tanh(x.reshape(len(x), -1) @ w1) @ w2, 2, axis=-1)
        return shift.reshape(x.shape), log_scale.reshape(x.shape)

    return conditioner


# ActNorm


@pytest.mark.parametrize("event_shape", [(5,), (4, 4, 3)])
def test_actnorm_battery(x64, event_shape):
    c = event_shape[-1]
    bij = ActNorm(normal(0, (c,), 0.5), normal(1, (c,)), event_ndims=len(event_shape))
    check_bijector(bij, normal(2, (6, *event_shape)), atol=1e-10, event_ndims=len(event_shape))


@pytest.mark.parametrize("event_shape", [(5,), (4, 4, 3)])
def test_actnorm_data_dependent_init(x64, event_shape):
    c = event_shape[-1]
    # Channels with different means and scales: the init must undo both.
    means, scales = np.linspace(-3.0, 4.0, c), np.linspace(0.2, 5.0, c)
    x = means + scales * np.asarray(normal(3, (64, *event_shape)))
    layer = ActNormLayer()
    variables = layer.init(jax.random.key(0), x)
    y = layer.apply(variables, x).forward(x)
    axes = tuple(range(y.ndim - 1))
    np.testing.assert_allclose(y.mean(axis=axes), 0.0, atol=1e-12)
    # std / (std + eps) with eps = 1e-6 and std >= ~0.2 differs from 1 by < 1e-5.
    np.testing.assert_allclose(y.std(axis=axes), 1.0, atol=1e-5)

    # apply keeps the stored parameters: a new batch is normalised with the first batch's stats.
    x2 = 2.0 * x + 1.0
    expected = (x2 - x.mean(axis=axes)) / (x.std(axis=axes) + 1e-6)
    np.testing.assert_allclose(layer.apply(variables, x2).forward(x2), expected, atol=1e-10)


# Conv1x1


@pytest.mark.parametrize("event_shape", [(4, 4, 3), (2, 2, 8)])
def test_conv1x1_battery(x64, event_shape):
    bij = random_conv1x1(0, event_shape[-1])
    check_bijector(bij, normal(1, (5, *event_shape)), atol=1e-10, event_ndims=3)


def test_conv1x1_matches_numpy(x64):
    """Built from the LU factors of a numpy matrix A, the layer is ``y = A x`` per pixel with
    log-det ``H W log|det A|``."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    bij = Conv1x1(**lu_decompose(a))
    np.testing.assert_allclose(bij.matrix(), a, atol=1e-12)
    x = rng.normal(size=(3, 4, 2, 5))
    y, log_det = bij.forward_and_log_det(x)
    np.testing.assert_allclose(y, np.einsum("nhwc,dc->nhwd", x, a), atol=1e-12)
    np.testing.assert_allclose(log_det, 4 * 2 * np.linalg.slogdet(a)[1], atol=1e-12)
    np.testing.assert_allclose(bij.inverse(y), x, atol=1e-12)


def test_conv1x1_layer_init_is_an_exact_lu_of_a_rotation(x64):
    q = random_rotation(jax.random.key(7), 6)
    np.testing.assert_allclose(q @ q.T, np.eye(6), atol=1e-12)
    np.testing.assert_allclose(Conv1x1(**lu_decompose(q)).matrix(), q, atol=1e-13)

    x = normal(1, (2, 4, 4, 6))
    layer = Conv1x1Layer()
    variables = layer.init(jax.random.key(0), x)
    assert set(variables["params"]) == {"lower", "upper", "log_abs_s"}
    assert set(variables["constants"]) == {"permutation", "sign"}
    perm = np.asarray(variables["constants"]["permutation"])
    np.testing.assert_array_equal(np.sort(perm, axis=0)[:-1], 0.0)
    np.testing.assert_array_equal(perm.sum(axis=0), 1.0)
    np.testing.assert_array_equal(perm.sum(axis=1), 1.0)

    bij = layer.apply(variables, x)
    w = bij.matrix()
    np.testing.assert_allclose(w @ w.T, np.eye(6), atol=1e-12)
    np.testing.assert_allclose(bij.forward_and_log_det(x)[1], 0.0, atol=1e-12)

    def loss(v):
        return jnp.sum(layer.apply(v, x).forward(x) ** 3)

    grads = jax.grad(loss)(variables)
    assert np.abs(grads["params"]["lower"]).max() > 0
    for g in jax.tree.leaves(grads["constants"]):
        np.testing.assert_array_equal(g, 0.0)


# Scaling


@pytest.mark.parametrize("event_shape", [(6,), (2, 3, 2)])
def test_scaling_battery(x64, event_shape):
    bij = Scaling(normal(0, event_shape, 0.5))
    check_bijector(bij, normal(1, (4, *event_shape)), atol=1e-10, event_ndims=len(event_shape))


# Squeeze and the multi-scale helpers


def test_squeeze_matches_index_definition(x64):
    x = np.asarray(normal(0, (2, 4, 6, 3)))
    y, log_det = Squeeze().forward_and_log_det(x)
    assert y.shape == (2, 2, 3, 12)
    expected = np.empty((2, 2, 3, 12))
    for i in range(2):
        for j in range(3):
            for c in range(3):
                for a in range(2):
                    for b in range(2):
                        expected[:, i, j, 4 * c + 2 * a + b] = x[:, 2 * i + a, 2 * j + b, c]
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(log_det, np.zeros(2))
    x_back, inv_log_det = Squeeze().inverse_and_log_det(y)
    np.testing.assert_array_equal(x_back, x)
    np.testing.assert_array_equal(inv_log_det, np.zeros(2))


def test_squeeze_jacobian_is_a_permutation_and_transforms_compose(x64):
    event_shape = (4, 2, 2)
    x = normal(0, (3, *event_shape))
    squeeze = Squeeze()

    def single(v):
        return squeeze.forward(v.reshape(1, *event_shape)).reshape(-1)

    jac = np.asarray(jax.jacfwd(single)(x[0].reshape(-1)))
    np.testing.assert_array_equal(np.sort(jac, axis=0)[:-1], 0.0)
    np.testing.assert_array_equal(jac.sum(axis=0), 1.0)
    np.testing.assert_array_equal(jac.sum(axis=1), 1.0)
    np.testing.assert_allclose(abs(np.linalg.det(jac)), 1.0, atol=1e-12)

    y = squeeze.forward(x)
    y_jit, ld_jit = jax.jit(squeeze.forward_and_log_det)(x)
    np.testing.assert_array_equal(y_jit, y)
    y_vmap, ld_vmap = jax.vmap(squeeze.forward_and_log_det)(x[:, None])
    np.testing.assert_array_equal(y_vmap[:, 0], y)
    assert ld_jit.shape == (3,) and ld_vmap.shape == (3, 1)


def test_squeeze_in_a_transformed_distribution(x64):
    """distrax infers the new event shape and the density is the base density at the unsqueezed
    point (log-det 0), also through a Chain with a layer on the squeezed channels."""
    base = distrax.Independent(distrax.Normal(jnp.zeros((4, 4, 3)), 1.0), 3)
    actnorm = ActNorm(normal(1, (12,), 0.5), normal(2, (12,)))
    dist = distrax.Transformed(base, distrax.Chain([actnorm, Squeeze()]))
    assert dist.event_shape == (2, 2, 12)
    y = normal(3, (5, 2, 2, 12))
    z = Squeeze().inverse(actnorm.inverse(y))
    expected = base.log_prob(z) - 4 * jnp.sum(actnorm._log_scale)
    np.testing.assert_allclose(dist.log_prob(y), expected, atol=1e-12)
    assert dist.sample(seed=jax.random.key(0), sample_shape=2).shape == (2, 2, 2, 12)


def test_split_and_merge_half():
    x = jnp.arange(2 * 3 * 8.0).reshape(2, 3, 8)
    x1, x2 = split_half(x)
    np.testing.assert_array_equal(x1, x[..., :4])
    np.testing.assert_array_equal(x2, x[..., 4:])
    np.testing.assert_array_equal(merge_half(x1, x2), x)


def test_channel_mask():
    np.testing.assert_array_equal(channel_mask(4, 0), [[[1, 1, 0, 0]]])
    np.testing.assert_array_equal(channel_mask(4, 1), [[[0, 0, 1, 1]]])
    np.testing.assert_array_equal(channel_mask(5, 0) + channel_mask(5, 1), np.ones((1, 1, 5)))


# One Glow step


def test_glow_step_chain_battery(x64):
    """ActNorm -> Conv1x1 -> affine coupling with a channel mask (Glow's flow step)."""
    event_shape = (3, 3, 4)
    actnorm = ActNorm(normal(0, (4,), 0.5), normal(1, (4,)))
    coupling = AffineCoupling(channel_mask(4, 0), random_conditioner(2, event_shape), 3)
    chain = distrax.Chain([coupling, random_conv1x1(3, 4), actnorm])  # applied right to left
    x = normal(4, (4, *event_shape))
    check_bijector(chain, x, atol=1e-10, event_ndims=3)
    y, log_det = chain.forward_and_log_det(x)
    x_back, inv_log_det = distrax.Inverse(chain).forward_and_log_det(y)
    np.testing.assert_allclose(x_back, x, atol=1e-10)
    np.testing.assert_allclose(inv_log_det, -log_det, atol=1e-10)


# Bad arguments


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="x must have even height"):
        Squeeze().forward(jnp.zeros((1, 3, 4, 2)))
    with pytest.raises(ValueError, match="y must have a multiple of 4 channels"):
        Squeeze().inverse(jnp.zeros((1, 2, 2, 6)))
    with pytest.raises(ValueError, match="x must have shape"):
        ActNorm(jnp.zeros(3), jnp.zeros(3)).forward(jnp.zeros((1, 2, 2, 4)))
    with pytest.raises(ValueError, match="bias must have the shape"):
        ActNorm(jnp.zeros(3), jnp.zeros(4))
    with pytest.raises(ValueError, match="log_scale must have shape"):
        ActNorm(jnp.zeros((3, 1)), jnp.zeros((3, 1)))
    with pytest.raises(ValueError, match="event_ndims"):
        ActNorm(jnp.zeros(3), jnp.zeros(3), event_ndims=0)
    with pytest.raises(ValueError, match="y must have shape"):
        random_conv1x1(0, 3).inverse(jnp.zeros((1, 2, 2, 5)))
    with pytest.raises(ValueError, match="upper must have shape"):
        Conv1x1(jnp.eye(3), jnp.eye(3), jnp.eye(2), jnp.zeros(3), jnp.ones(3))
    with pytest.raises(ValueError, match="matrix must be square"):
        lu_decompose(jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="x must have shape"):
        Scaling(jnp.zeros((2, 2, 3))).forward(jnp.zeros((1, 2, 2, 4)))
    with pytest.raises(ValueError, match="x must have an even number of channels"):
        split_half(jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="x2 must have the shape"):
        merge_half(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="parity"):
        channel_mask(4, 2)
    with pytest.raises(ValueError, match="num_channels"):
        channel_mask(1, 0)
    with pytest.raises(ValueError, match="x must be a batch"):
        ActNormLayer().init(jax.random.key(0), jnp.zeros(3))
