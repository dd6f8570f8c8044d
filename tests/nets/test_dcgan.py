"""GAN players: shapes and ranges of the DCGAN generator / discriminator on the three image sizes,
the minibatch standard deviation against numpy, the projection head recomputed by hand, which
discriminators act per example (autodiff Jacobians), batch-norm statistics, and spectrally
normalised discriminator kernels against numpy's SVD."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.nets.dcgan import DCGANDiscriminator, DCGANGenerator, num_upsamplings
from jgen.nets.discriminator import MLPDiscriminator, MLPGenerator, minibatch_stddev
from tests.params import random_params

KEY = jax.random.key(0)


def one_hot(labels, num_classes):
    return jax.nn.one_hot(jnp.asarray(labels), num_classes)


def random_variables(module, *args, seed=0):
    """:func:`random_params` with positive batch-norm variances (usable in evaluation mode)."""
    variables = random_params(module, *args, seed=seed)
    if "batch_stats" in variables:
        stats = variables["batch_stats"]
        variables["batch_stats"] = jax.tree.map(lambda a: 0.5 + jnp.abs(a), stats)
    return variables


@pytest.mark.parametrize(
    "image_shape,num_classes", [((8, 8), 0), ((28, 28, 1), 3), ((32, 32, 3), 0)]
)
def test_generator_and_discriminator_shapes(image_shape, num_classes):
    n = 4
    context = one_hot(np.arange(n) % 3, 3) if num_classes else None
    z = jax.ShapeDtypeStruct((n, 6), jnp.float32)
    gen = DCGANGenerator(image_shape, features=8, num_classes=num_classes)
    disc = DCGANDiscriminator(8, num_classes=num_classes)
    g_vars = jax.eval_shape(gen.init, KEY, z, context)
    x, _ = jax.eval_shape(lambda v, z: gen.apply(v, z, context, mutable=["batch_stats"]), g_vars, z)
    x_eval = jax.eval_shape(lambda v, z: gen.apply(v, z, context, train=False), g_vars, z)
    d_vars = jax.eval_shape(disc.init, KEY, x, context)
    logits = jax.eval_shape(lambda v, x: disc.apply(v, x, context), d_vars, x)
    assert x.shape == x_eval.shape == (n, *image_shape)
    assert logits.shape == (n,)
    assert num_upsamplings(image_shape[0]) == {8: 1, 28: 2, 32: 3}[image_shape[0]]
    deconvs = [k for k in g_vars["params"] if k.startswith("deconv")]
    assert len(deconvs) == num_upsamplings(image_shape[0])
    convs = [k for k in d_vars["params"] if k.startswith("conv")]
    assert len(convs) == {8: 1, 28: 3, 32: 3}[image_shape[0]]


def test_generator_outputs_lie_in_tanh_range():
    gen = DCGANGenerator((8, 8, 1), features=4)
    z = 3.0 * jax.random.normal(KEY, (4, 6))
    variables = random_variables(gen, z, seed=1)
    x, _ = jax.jit(lambda v, z: gen.apply(v, z, mutable=["batch_stats"]))(variables, z)
    assert float(jnp.max(jnp.abs(x))) <= 1.0
    assert float(jnp.std(x)) > 0.1  # not a constant image


def numpy_minibatch_stddev(x, group_size):
    x = np.asarray(x, np.float64)
    n = len(x)
    groups = n // min(group_size, n)  # M; example i is in group i mod M
    stats = np.empty(n)
    for i in range(n):
        members = x[[j for j in range(n) if j % groups == i % groups]]
        stats[i] = np.mean(np.sqrt(members.var(axis=0) + 1e-8))
    extra = np.broadcast_to(stats.reshape(n, *[1] * (x.ndim - 1)), (*x.shape[:-1], 1))
    return np.concatenate([x, extra], axis=-1)


@pytest.mark.parametrize("shape,group_size", [((8, 3, 2, 5), 4), ((6, 3), 2), ((4, 3), 16)])
def test_minibatch_stddev_matches_numpy(x64, shape, group_size):
    x = jax.random.normal(jax.random.key(1), shape) * jnp.arange(1, shape[-1] + 1)
    out = jax.jit(minibatch_stddev, static_argnums=1)(x, group_size)  # one compile, not ten
    np.testing.assert_allclose(out, numpy_minibatch_stddev(x, group_size), rtol=1e-12)


def test_minibatch_stddev_rejects_indivisible_batch():
    with pytest.raises(ValueError, match="divisible by the group size"):
        minibatch_stddev(jnp.ones((6, 2)), 4)


def leaky(a):
    return np.where(a > 0, a, 0.2 * a)


def test_mlp_projection_discriminator_by_hand(x64):
    disc = MLPDiscriminator((6, 5), num_classes=3)
    x = jax.random.normal(jax.random.key(2), (4, 2))
    y = one_hot([0, 2, 1, 2], 3)
    p = jax.tree.map(np.asarray, random_params(disc, x, y, seed=3)["params"])
    phi = leaky(np.asarray(x) @ p["dense_0"]["kernel"] + p["dense_0"]["bias"])
    phi = leaky(phi @ p["dense_1"]["kernel"] + p["dense_1"]["bias"])
    psi, embed = p["head"]["psi"], p["head"]["embed"]["kernel"]  # embed: (C, F)
    expected = (phi @ psi["kernel"])[:, 0] + psi["bias"] + np.sum((np.asarray(y) @ embed) * phi, 1)
    variables = {"params": p}
    np.testing.assert_allclose(disc.apply(variables, x, y), expected, rtol=1e-12)
    # The class term is linear in the one-hot: D(x, e_a) - D(x, e_b) = <V e_a - V e_b, phi>.
    d0, d2 = (disc.apply(variables, x, one_hot([c] * 4, 3)) for c in (0, 2))
    np.testing.assert_allclose(d0 - d2, phi @ (embed[0] - embed[2]), rtol=1e-12)


def test_dcgan_projection_class_term_is_linear(x64):
    disc = DCGANDiscriminator(4, spectral_norm=True, num_classes=3)
    x = jax.random.normal(jax.random.key(4), (2, 8, 8))
    variables = random_params(disc, x, one_hot([0, 1], 3), seed=5)

    @jax.jit
    def logits_and_features(y):
        out, inter = disc.apply(
            variables,
            x,
            y,
            capture_intermediates=lambda module, method: method == "weights",
            mutable=["intermediates"],
        )
        inter = inter["intermediates"]
        return out, inter["features"][0], inter["head"]["embed"]["weights"][0][0]

    ys = jnp.stack([one_hot([0, 0], 3), one_hot([2, 2], 3)])
    (d_a, d_b, d_mix), phi, embed_hat = jax.vmap(logits_and_features)(
        jnp.concatenate([ys, ys.mean(0, keepdims=True)])
    )
    phi, embed_hat = phi[0], embed_hat[0]
    np.testing.assert_allclose(d_a - d_b, phi @ (embed_hat[0] - embed_hat[2]), rtol=1e-10)
    np.testing.assert_allclose(d_mix, 0.5 * (d_a + d_b), rtol=1e-12)


PER_EXAMPLE = [
    (DCGANDiscriminator(4), (8, 8), True, False),
    (DCGANDiscriminator(4, minibatch_std=True), (8, 8), True, True),
    (DCGANDiscriminator(4, batch_norm=True), (16, 16, 1), True, True),
    (DCGANDiscriminator(4, batch_norm=True), (16, 16, 1), False, False),  # running averages
    (MLPDiscriminator((8,)), (2,), True, False),
    (MLPDiscriminator((8,), minibatch_std=True), (2,), True, True),
]


@pytest.mark.parametrize(
    "disc,event,train,coupled",
    PER_EXAMPLE,
    ids=["plain", "mbstd", "bn-train", "bn-eval", "mlp", "mlp-mbstd"],
)
def test_which_discriminators_act_per_example(disc, event, train, coupled):
    """``d D_i / d x_j = 0`` for ``i != j`` unless the batch is coupled (batch norm in training,
    minibatch std), which is what a per-example gradient penalty needs."""
    n = 4
    x = jax.random.normal(jax.random.key(6), (n, *event))
    kwargs = {"train": train} if isinstance(disc, DCGANDiscriminator) else {}

    variables = random_variables(disc, x, seed=2)

    @jax.jit
    def jacobian(x):

        def logits(x):
            out = disc.apply(variables, x, mutable=["batch_stats"], **kwargs)
            return out[0]

        return jax.jacrev(logits)(x).reshape(n, n, -1)

    jac = np.asarray(jacobian(x))
    off = jac[~np.eye(n, dtype=bool)]
    assert np.all(np.abs(jac[np.arange(n), np.arange(n)]).max(axis=1) > 0)
    if coupled:
        assert np.abs(off).max() > 1e-6
    else:
        np.testing.assert_array_equal(off, 0.0)


def test_generator_batch_norm_updates_batch_stats(x64):
    gen = DCGANGenerator((8, 8), features=4)
    z = jax.random.normal(jax.random.key(7), (5, 3))
    variables = random_variables(gen, z, seed=3)
    apply = jax.jit(gen.apply, static_argnames=("train", "mutable"))
    _, updates = apply(variables, z, train=True, mutable=("batch_stats",))
    # bn_0 normalises the dense output (n, 4, 4, c0); flax keeps the biased batch variance.
    dense, old = variables["params"]["dense"], variables["batch_stats"]["bn_0"]
    h = (np.asarray(z) @ dense["kernel"] + dense["bias"]).reshape(-1, 4)
    stats = updates["batch_stats"]["bn_0"]
    np.testing.assert_allclose(stats["mean"], 0.9 * old["mean"] + 0.1 * h.mean(0), rtol=1e-10)
    np.testing.assert_allclose(stats["var"], 0.9 * old["var"] + 0.1 * h.var(0), rtol=1e-10)
    assert set(updates["batch_stats"]) == {"bn_0", "bn_1"}
    # Evaluation mode reads the running averages: one example's output ignores the others.
    variables = {**variables, **updates}
    together = apply(variables, z, train=False, mutable=False)
    alone = apply(variables, z[:2], train=False, mutable=False)
    np.testing.assert_allclose(together[:2], alone, rtol=1e-10)


def test_spectral_norm_discriminator_kernels_reach_unit_norm(x64):
    disc = DCGANDiscriminator(4, spectral_norm=True, num_classes=3)
    x = jax.random.normal(jax.random.key(8), (2, 16, 16, 1))
    y = one_hot([1, 2], 3)
    variables = random_params(disc, x, y, seed=9)

    @jax.jit
    def normalised_kernels(variables):
        _, inter = disc.apply(
            variables,
            x,
            y,
            capture_intermediates=lambda module, method: method == "weights",
            mutable=["intermediates"],
        )
        return inter["intermediates"]

    def top_sigmas(variables):
        hats = jax.tree.leaves(
            normalised_kernels(variables),
            is_leaf=lambda t: isinstance(t, tuple) and len(t) == 2,  # (W_hat, b)
        )
        hats = [np.asarray(t[0]) for t in hats if isinstance(t, tuple)]
        assert len(hats) == 4  # conv_0, conv_1 (16 -> 8 -> 4), the head's psi and embed
        return np.array([np.linalg.norm(w.reshape(-1, w.shape[-1]), 2) for w in hats])

    @jax.jit
    def warm(variables):
        def step(_, v):
            _, updates = disc.apply(v, x, y, mutable=["spectral"])
            return {**v, **updates}

        return jax.lax.fori_loop(0, 100, step, variables)

    assert np.abs(top_sigmas(variables) - 1).max() > 1e-3  # a random u: not normalised yet
    np.testing.assert_allclose(top_sigmas(warm(variables)), 1.0, rtol=1e-6)


def test_mlp_generator_and_context_checks():
    gen = MLPGenerator((8,), out_size=2, num_classes=3)
    z, y = jnp.ones((4, 5)), one_hot([0, 1, 2, 0], 3)
    variables = jax.eval_shape(gen.init, KEY, z, y)
    assert variables["params"]["dense_0"]["kernel"].shape == (8, 8)  # z and the one-hot
    assert jax.eval_shape(gen.apply, variables, z, y).shape == (4, 2)
    with pytest.raises(ValueError, match="context must be the one-hot"):
        jax.eval_shape(gen.apply, variables, z)
    with pytest.raises(ValueError, match="context must be None"):
        jax.eval_shape(MLPDiscriminator((4,)).init, KEY, jnp.ones((4, 2)), y)
    with pytest.raises(ValueError, match=r"divisible by 2\^1"):
        jax.eval_shape(DCGANGenerator((8, 7)).init, KEY, z)
    with pytest.raises(ValueError, match="image_shape"):
        jax.eval_shape(DCGANGenerator((8, 8, 1, 1)).init, KEY, z)
