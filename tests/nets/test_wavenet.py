"""WaveNet: the receptive field from the paper's numbers, and causality (output i depends on
exactly x_{i-R} .. x_{i-1}) from the autodiff Jacobian."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.nets.wavenet import WaveNet, receptive_field
from tests.params import random_params

N, F, C, P = 2, 3, 2, 2


def test_receptive_field_matches_the_paper():
    # Section 2.1: "1, 2, 4, ..., 512" with filter width 2 has a receptive field of 1024;
    # Fig. 3's stack 1, 2, 4, 8 sees 16 inputs.
    assert receptive_field([2**b for b in range(10)], kernel_size=2) == 1024
    assert receptive_field((1, 2, 4, 8)) == 16
    # Each repetition adds its span again; width K multiplies the span of a dilation by K - 1.
    assert receptive_field((1, 2, 4, 8), kernel_size=2, num_stacks=3) == 1 + 3 * 15
    assert receptive_field((1, 3), kernel_size=3, num_stacks=2) == 1 + 2 * 2 * 4
    assert receptive_field((5,), kernel_size=1) == 1


@pytest.mark.parametrize(
    "dilations,kernel_size,num_stacks",
    [((1, 2, 4), 2, 1), ((1, 3), 3, 2)],
)
def test_output_i_depends_on_exactly_the_receptive_field_before_i(
    x64, dilations, kernel_size, num_stacks
):
    r = receptive_field(dilations, kernel_size, num_stacks)
    length = r + 4  # so some outputs see the whole window and have inputs outside it
    # 16 channels: the output ReLUs of a position are all inactive with probability ~2^-16, so
    # no dependence inside the window is hidden by them.
    model = WaveNet(
        P, channels=16, dilations=dilations, kernel_size=kernel_size, num_stacks=num_stacks
    )
    x = jax.random.normal(jax.random.key(0), (N, length, F))
    context = jax.random.normal(jax.random.key(1), (N, C))
    params = random_params(model, x, context, seed=2, dtype=np.float64)

    @jax.jit  # one compilation instead of many op-by-op dispatches
    def outputs_and_jacobians(x, context):

        def single(v, h):
            return model.apply(params, v[None], h[None])[0]

        jac = jax.vmap(jax.jacfwd(single, argnums=(0, 1)))(x, context)
        return model.apply(params, x, context), jac

    out, (jac_x, jac_c) = outputs_and_jacobians(x, context)
    assert out.shape == (N, length, P)
    # Dependence of output i on input j, summed over parameters and features: (n, L, L).
    dependence = np.abs(np.asarray(jac_x)).sum(axis=(2, 4))
    i, j = np.meshgrid(np.arange(length), np.arange(length), indexing="ij")
    window = (j >= i - r) & (j <= i - 1)
    # Structural zeros outside [i - R, i - 1]: exactly zero, not small.
    np.testing.assert_array_equal(dependence[:, ~window], 0.0)
    # These dilations reach every position of the window, so every entry inside is nonzero:
    # together with the zeros this pins R down exactly.
    assert np.all(dependence[:, window] > 0.0)
    # Global conditioning reaches every output, position 0 included.
    assert np.all(np.abs(np.asarray(jac_c)).sum(axis=(2, 3)) > 0.0)


def test_without_context_the_first_output_is_a_constant():
    model = WaveNet(P, channels=4, dilations=(1, 2))
    x = jax.random.normal(jax.random.key(0), (4, 5, F))
    out = model.apply(random_params(model, x, None, seed=1), x)
    np.testing.assert_array_equal(out[:, 0], np.broadcast_to(out[0, 0], (4, P)))
    assert not np.allclose(out[:, 1], out[0, 1])  # later positions do see x


@pytest.mark.parametrize(
    "kwargs,x_shape,context_shape,name",
    [
        ({"dilations": ()}, (2, 5, F), None, "dilations"),
        ({"dilations": (1, 0)}, (2, 5, F), None, r"dilations\[1\]"),
        ({"kernel_size": 0}, (2, 5, F), None, "kernel_size"),
        ({"num_stacks": 2.0}, (2, 5, F), None, "num_stacks"),
        ({"channels": 0}, (2, 5, F), None, "channels"),
        ({}, (2, 5), None, r"x must have shape \(n, L, F\)"),
        ({}, (2, 5, F), (2, 3, 1), r"context must have shape \(2, c\)"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs, x_shape, context_shape, name):
    model = WaveNet(P, **kwargs)
    context = None if context_shape is None else jnp.zeros(context_shape)
    with pytest.raises(ValueError, match=name):
        jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(x_shape), context)
    with pytest.raises(ValueError, match="kernel_size"):
        receptive_field((1, 2), kernel_size=-1)
