"""ScoreMLP: the forward pass against a numpy re-implementation, output shapes, per-example
independence and time dependence from autodiff Jacobians, class conditioning with the null class,
the zero-initialised output, ``num_outputs`` (logits of a noisy classifier), bad inputs."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.nets.score_mlp import ScoreMLP
from tests.nets.test_embeddings import numpy_time_embedding
from tests.params import random_params

KEY = jax.random.key(0)


def swish(a):
    return a / (1 + np.exp(-a))


def numpy_score_mlp(params, x, t, y, hidden_sizes, embedding_dim, flat=False):
    """``h_l = swish(W_l h + b_l + V_l swish(c) + d_l)``, ``c = time(t) + table[y]``; the output
    ``(n, out)`` as it is with ``flat``, else reshaped to ``x``'s shape."""
    p = jax.tree.map(np.asarray, params)
    c = numpy_time_embedding(p["condition"]["time"], t, embedding_dim)
    if y is not None:
        c = c + p["condition"]["label"]["table"]["embedding"][y]
    c = swish(c)
    h = np.asarray(x, np.float64).reshape(len(x), -1)
    for i in range(len(hidden_sizes)):
        d, f = p[f"dense_{i}"], p[f"film_{i}"]
        h = swish(h @ d["kernel"] + d["bias"] + c @ f["kernel"] + f["bias"])
    out = h @ p["out"]["kernel"] + p["out"]["bias"]
    return out if flat else out.reshape(x.shape)


@pytest.mark.parametrize("num_classes", [0, 3])
def test_forward_matches_numpy(x64, num_classes):
    model = ScoreMLP(hidden_sizes=(16, 12), embedding_dim=8, num_classes=num_classes)
    x = jax.random.normal(KEY, (4, 3, 2))
    t = jnp.array([0.0, 10.0, 250.0, 999.0])
    y = jnp.array([0, 1, 2, 3]) if num_classes else None
    variables = random_params(model, x, t, y, seed=num_classes)
    out = jax.jit(model.apply)(variables, x, t, y)
    assert out.shape == x.shape
    expected = numpy_score_mlp(variables["params"], x, np.asarray(t), y, (16, 12), 8)
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("num_classes", [0, 2])
def test_num_outputs_forward_matches_numpy(x64, num_classes):
    # num_outputs = 3 on events (3, 2): (n, 3) outputs, e.g. the logits of a noisy classifier.
    model = ScoreMLP(hidden_sizes=(16, 12), embedding_dim=8, num_classes=num_classes, num_outputs=3)
    x = jax.random.normal(KEY, (4, 3, 2))
    t = jnp.array([0.0, 10.0, 250.0, 999.0])
    y = jnp.array([0, 1, 2, 1]) if num_classes else None
    variables = random_params(model, x, t, y, seed=7 + num_classes)
    out = jax.jit(model.apply)(variables, x, t, y)
    assert out.shape == (4, 3)
    expected = numpy_score_mlp(variables["params"], x, np.asarray(t), y, (16, 12), 8, flat=True)
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-9)


def test_num_outputs_shapes_and_default():
    x = jax.ShapeDtypeStruct((5, 28, 28, 1), jnp.float32)
    t = jax.ShapeDtypeStruct((5,), jnp.int32)
    for num_outputs, out_shape in [(10, (5, 10)), (1, (5, 1)), (None, (5, 28, 28, 1))]:
        model = ScoreMLP(hidden_sizes=(32,), embedding_dim=16, num_outputs=num_outputs)
        variables = jax.eval_shape(model.init, KEY, x, t)
        assert jax.eval_shape(model.apply, variables, x, t).shape == out_shape
        assert variables["params"]["out"]["kernel"].shape == (32, math.prod(out_shape[1:]))


@pytest.mark.parametrize("event", [(2,), (8, 8), (28, 28, 1), (32, 32, 3)])
def test_output_shapes(event):
    model = ScoreMLP(hidden_sizes=(32, 32), embedding_dim=16, num_classes=10)
    x = jax.ShapeDtypeStruct((5, *event), jnp.float32)
    t = jax.ShapeDtypeStruct((5,), jnp.float32)
    y = jax.ShapeDtypeStruct((5,), jnp.int32)
    variables = jax.eval_shape(model.init, KEY, x, t, y)
    assert jax.eval_shape(model.apply, variables, x, t, y).shape == (5, *event)
    assert variables["params"]["out"]["kernel"].shape == (32, int(np.prod(event)))


def test_per_example_jacobians_and_time_dependence():
    model = ScoreMLP(hidden_sizes=(32, 32), embedding_dim=16)
    x = jax.random.normal(KEY, (2, 3))
    t = jnp.array([5.0, 600.0])
    variables = random_params(model, x, t, seed=4, scale=0.3)
    jx, jt = jax.jit(jax.jacrev(lambda x, t: model.apply(variables, x, t), argnums=(0, 1)))(x, t)
    # jx[i, :, j, :] = d out_i / d x_j, jt[i, :, j] = d out_i / d t_j
    assert float(jnp.abs(jx[0, :, 1]).max()) == 0.0 and float(jnp.abs(jx[1, :, 0]).max()) == 0.0
    assert float(jnp.abs(jt[0, :, 1]).max()) == 0.0 and float(jnp.abs(jt[1, :, 0]).max()) == 0.0
    assert float(jnp.abs(jx[0, :, 0]).min()) > 0.0
    assert float(jnp.abs(jt[0, :, 0]).max()) > 1e-3  # the output moves with t


def test_class_conditioning_and_null_class():
    model = ScoreMLP(hidden_sizes=(16,), embedding_dim=8, num_classes=2)
    x = jnp.ones((3, 2))
    t = jnp.full((3,), 7.0)
    variables = random_params(model, x, t, jnp.zeros(3, jnp.int32), seed=5)
    out, unconditional = jax.jit(
        lambda v: (model.apply(v, x, t, jnp.array([0, 1, 2])), model.apply(v, x, t, None))
    )(variables)
    # identical inputs, different labels: different outputs
    assert float(jnp.abs(out[0] - out[1]).min()) > 1e-3
    assert float(jnp.abs(out[0] - out[2]).min()) > 1e-3
    # y = None is the null class 2 for every example
    np.testing.assert_array_equal(unconditional, out[jnp.array([2, 2, 2])])


def test_zero_initialised_output_is_exactly_zero():
    x, t = jax.random.normal(KEY, (3, 2)), jnp.array([1.0, 2.0, 3.0])

    @jax.jit  # one compile instead of op-by-op initialisers
    def fresh_outputs(key):
        models = [ScoreMLP((8,), 4, zero_init_output=z) for z in (True, False)]
        return [m.apply(m.init(key, x, t), x, t) for m in models]

    zero, default = fresh_outputs(jax.random.key(0, impl="unsafe_rbg"))  # quick to compile
    assert float(jnp.abs(zero).max()) == 0.0
    assert float(jnp.abs(default).max()) > 0.0  # by default the output layer is not zero


@pytest.mark.parametrize(
    "kwargs,x,t,y,match",
    [
        ({}, np.zeros(3, np.float32), np.zeros(3), None, r"x must be a floating-point batch"),
        ({}, np.zeros((3, 2), np.int32), np.zeros(3), None, r"x must be a floating-point batch"),
        ({}, np.zeros((3, 2), np.float32), np.zeros(2), None, r"t must have shape \(3,\)"),
        ({}, np.zeros((3, 2), np.float32), np.zeros(3), np.zeros(3, int), "y must be None"),
        ({"num_classes": 2}, np.zeros((3, 2), np.float32), np.zeros(3), np.full(3, 3), "y must"),
        ({"embedding_dim": 7}, np.zeros((3, 2), np.float32), np.zeros(3), None, "embedding_dim"),
        ({"hidden_sizes": (8, 0)}, np.zeros((3, 2), np.float32), np.zeros(3), None, "hidden"),
        ({"num_outputs": 0}, np.zeros((3, 2), np.float32), np.zeros(3), None, "num_outputs"),
    ],
)
def test_bad_inputs_raise(kwargs, x, t, y, match):
    model = ScoreMLP(**{"hidden_sizes": (8,), "embedding_dim": 4, **kwargs})
    with pytest.raises(ValueError, match=match):
        model.init(KEY, x, t, y)  # concrete labels: their range is checked too
