"""The bijector battery on the coupling layers, and agreement with distrax's MaskedCoupling."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.bijectors.coupling import AffineCoupling, parity_mask
from tests.bijectors.battery import check_bijector


def random_conditioner(key, dim, additive=False):
    """A fixed nonlinear conditioner with random weights: shifts and log-scales of order 1."""
    k1, k2 = jax.random.split(key)
    w1 = jax.random.normal(k1, (dim, 16)) / jnp.sqrt(dim)
    w2 = jax.random.normal(k2, (16, 2 * dim)) / 4.0

    def conditioner(x):
        flat = x.reshape(x.shape[0], -1)
        shift, log_scale = jnp.split(jnp.tanh(flat @ w1) @ w2, 2, axis=-1)
        log_scale = jnp.zeros_like(log_scale) if additive else log_scale
        return shift.reshape(x.shape), log_scale.reshape(x.shape)

    return conditioner


CASES = [((2,), 0, False), ((5,), 1, False), ((4, 4), 0, False), ((3,), 1, True)]


@pytest.mark.parametrize("event_shape,parity,additive", CASES)
def test_bijector_battery(x64, event_shape, parity, additive):
    dim = int(np.prod(event_shape))
    bij = AffineCoupling(
        parity_mask(event_shape, parity),
        random_conditioner(jax.random.key(0), dim, additive),
        event_ndims=len(event_shape),
    )
    x = jax.random.normal(jax.random.key(1), (7, *event_shape))
    check_bijector(bij, x, atol=1e-10)
    if additive:
        np.testing.assert_allclose(bij.forward_and_log_det(x)[1], 0.0, atol=1e-12)


def test_matches_distrax_masked_coupling(x64):
    """distrax.MaskedCoupling with a ScalarAffine inner bijector is the same layer."""
    dim = 6
    mask = parity_mask((dim,), 1)
    cond = random_conditioner(jax.random.key(3), dim)
    ours = AffineCoupling(mask, cond)

    def inner(params):
        shift, log_scale = params
        return distrax.ScalarAffine(shift=shift, log_scale=log_scale)

    theirs = distrax.MaskedCoupling(mask.astype(bool), cond, inner)
    x = jax.random.normal(jax.random.key(4), (9, dim))
    y1, ld1 = ours.forward_and_log_det(x)
    y2, ld2 = theirs.forward_and_log_det(x)
    np.testing.assert_allclose(y1, y2, atol=1e-12)
    np.testing.assert_allclose(ld1, ld2, atol=1e-12)


def test_composes_with_distrax_chain_and_inverse(x64):
    dim = 4
    layers = [
        AffineCoupling(parity_mask((dim,), i % 2), random_conditioner(jax.random.key(i), dim))
        for i in range(3)
    ]
    chain = distrax.Chain(layers)
    x = jax.random.normal(jax.random.key(9), (5, dim))
    y, logdet = chain.forward_and_log_det(x)
    x_back, inv_logdet = distrax.Inverse(chain).forward_and_log_det(y)
    np.testing.assert_allclose(x_back, x, atol=1e-10)
    np.testing.assert_allclose(inv_logdet, -logdet, atol=1e-10)


def test_parity_mask_is_a_checkerboard():
    np.testing.assert_array_equal(parity_mask((4,), 0), [1, 0, 1, 0])
    np.testing.assert_array_equal(parity_mask((2, 2), 1), [[0, 1], [1, 0]])
