"""MAF and IAF: the bijector battery, the triangular Jacobian, the sequential direction's
accuracy, the permutation between layers, and a flow whose density integrates to one."""

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.bijectors.autoregressive import MAFLayer, MaskedAutoregressive
from jgen.bijectors.permute import Permute, reverse_permutation
from jgen.nets.masked import MADE, resolve_ordering
from tests.bijectors.battery import check_bijector
from tests.params import redraw


def made_conditioner(dim, ordering="natural", seed=0):
    """A MADE conditioner with random non-zero weights and log-scales bounded by tanh (as in
    ``MAFLayer``), so that d sequential passes cannot overflow; jitted so the eager battery is
    fast."""
    made = MADE((16, 16), num_params_per_dim=2, ordering=ordering)
    key = jax.random.key(seed)
    params = redraw(jax.jit(made.init)(key, jnp.zeros((1, dim))), jax.random.fold_in(key, 1))

    @jax.jit
    def conditioner(v):
        out = made.apply(params, v)
        return out[..., 0], jnp.tanh(out[..., 1])

    return conditioner


def random_ordering(dim, seed=0):
    return tuple(int(i) for i in np.random.default_rng(seed).permutation(dim))


@pytest.mark.parametrize("kind", ["maf", "iaf"])
@pytest.mark.parametrize("dim", [2, 5])
def test_bijector_battery(x64, kind, dim):
    ordering = random_ordering(dim) if dim > 2 else "natural"
    bij = MaskedAutoregressive(made_conditioner(dim, ordering), kind=kind)
    x = jax.random.normal(jax.random.key(1), (7, dim))
    check_bijector(bij, x, atol=1e-9)


@pytest.mark.parametrize("kind", ["maf", "iaf"])
def test_jacobian_is_triangular_with_diagonal_exp_log_scale(x64, kind):
    dim = 5
    ordering = random_ordering(dim, seed=3)
    cond = made_conditioner(dim, ordering, seed=3)
    bij = MaskedAutoregressive(cond, kind=kind)
    z = jax.random.normal(jax.random.key(2), (6, dim))
    jacobian = jax.vmap(jax.jacfwd(lambda v: bij.forward(v[None])[0]))
    (x, log_det), jac = jax.jit(lambda z: (bij.forward_and_log_det(z), jacobian(z)))(z)
    # MAF is conditioned on the data side x, IAF on the noise side z.
    _, log_scale = cond(x if kind == "maf" else z)

    order = resolve_ordering(ordering, dim)
    jac = np.asarray(jac)[:, order][:, :, order]
    upper = np.triu(np.ones((dim, dim), bool), k=1)
    np.testing.assert_array_equal(jac[:, upper], 0.0)
    np.testing.assert_allclose(
        np.diagonal(jac, axis1=1, axis2=2), np.exp(log_scale)[:, order], rtol=1e-12
    )
    np.testing.assert_allclose(log_det, jnp.sum(log_scale, axis=-1), atol=1e-12)


def test_sequential_directions_solve_the_one_pass_equations(x64):
    """The d-pass loop against the defining equation, evaluated in one pass on its output."""
    dim = 8
    ordering = random_ordering(dim, seed=5)
    cond = made_conditioner(dim, ordering, seed=5)
    z = 2.0 * jax.random.normal(jax.random.key(6), (64, dim))

    # MAF sampling: x must satisfy z = (x - shift(x)) * exp(-log_scale(x)).
    x = jax.jit(MaskedAutoregressive(cond, "maf").forward)(z)
    shift, log_scale = cond(x)
    np.testing.assert_allclose((x - shift) * jnp.exp(-log_scale), z, rtol=0, atol=1e-9)

    # IAF density: z must satisfy x = z * exp(log_scale(z)) + shift(z).
    z_back = jax.jit(MaskedAutoregressive(cond, "iaf").inverse)(z)
    shift, log_scale = cond(z_back)
    np.testing.assert_allclose(z_back * jnp.exp(log_scale) + shift, z, rtol=0, atol=1e-9)


def test_maf_is_the_inverse_of_an_iaf_with_the_reparameterised_conditioner(x64):
    """x = z exp(s(x)) + m(x) inverts z = x exp(-s(x)) - m(x) exp(-s(x)): an IAF step."""
    dim = 4
    cond = made_conditioner(dim, random_ordering(dim, seed=7), seed=7)

    def flipped(v):
        shift, log_scale = cond(v)
        return -shift * jnp.exp(-log_scale), -log_scale

    maf = MaskedAutoregressive(cond, "maf")
    inverse_iaf = distrax.Inverse(MaskedAutoregressive(flipped, "iaf"))
    v = jax.random.normal(jax.random.key(8), (9, dim))

    def both_directions(bij, v):
        return jax.jit(lambda v: (bij.forward_and_log_det(v), bij.inverse_and_log_det(v)))(v)

    ours = both_directions(maf, v)
    theirs = both_directions(inverse_iaf, v)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("perm", [reverse_permutation(2), np.array([3, 0, 4, 1, 2])])
def test_permute_battery(x64, perm):
    bij = Permute(perm)
    x = jax.random.normal(jax.random.key(0), (5, len(perm)))
    check_bijector(bij, x, atol=1e-12)
    y, log_det = bij.forward_and_log_det(x)
    np.testing.assert_array_equal(y, np.asarray(x)[:, perm])
    np.testing.assert_array_equal(log_det, 0.0)
    jac = jax.jacfwd(lambda v: bij.forward(v[None])[0])(x[0])
    np.testing.assert_allclose(abs(np.linalg.det(jac)), 1.0, atol=1e-12)
    np.testing.assert_array_equal(reverse_permutation(4), [3, 2, 1, 0])


class TwoDimFlow(nn.Module):
    """Four autoregressive layers with reversals between them, on a standard normal base."""

    kind: str = "maf"

    def setup(self):
        self.layers = [MAFLayer((16, 16), kind=self.kind) for _ in range(4)]

    def bijector(self, dim):
        parts = []
        for i, layer in enumerate(self.layers):
            if i:
                parts.append(Permute(reverse_permutation(dim)))
            parts.append(layer.bijector(dim))
        return distrax.Chain(parts[::-1])  # Chain applies its last bijector first

    def log_prob(self, x):
        base = distrax.MultivariateNormalDiag(jnp.zeros(x.shape[-1], x.dtype))
        return distrax.Transformed(base, self.bijector(x.shape[-1])).log_prob(x)

    def sample(self, key, n, dim):
        return self.bijector(dim).forward(jax.random.normal(key, (n, dim)))


def flow_and_params(kind, dtype=jnp.float64):
    flow = TwoDimFlow(kind)
    params = jax.jit(flow.init, static_argnames="method")(
        jax.random.key(0), jnp.zeros((1, 2), dtype), method=TwoDimFlow.log_prob
    )
    # Away from the identity (zero-initialised outputs), but with moderate scales.
    noise = redraw(params, jax.random.key(1), scale=0.4)
    return flow, jax.tree.map(jnp.add, params, noise)


def test_maf_density_integrates_to_one_on_a_grid(x64):
    flow, params = flow_and_params("maf")
    # Of 1e5 samples ~1% fall beyond |x_i| = 10, the largest at 17.3: integrate on [-20, 20].
    half_width, num = 20.0, 800
    edges = np.linspace(-half_width, half_width, num + 1)
    mids = 0.5 * (edges[1:] + edges[:-1])
    grid = np.stack(np.meshgrid(mids, mids, indexing="ij"), axis=-1).reshape(-1, 2)
    log_prob = jax.jit(lambda x: flow.apply(params, x, method=TwoDimFlow.log_prob))
    density = np.exp(np.asarray(log_prob(jnp.asarray(grid))))
    mass = density.sum() * (edges[1] - edges[0]) ** 2
    assert abs(mass - 1.0) < 1e-3, mass  # measured: -1.4e-6
    # Not vacuous: the flow is far from the standard normal.
    normal = np.exp(-0.5 * (grid**2).sum(-1)) / (2 * np.pi)
    assert np.abs(density - normal).max() > 1e-2


def test_flow_under_jit_vmap_and_grad(x64):
    flow, params = flow_and_params("maf")
    x = jax.random.normal(jax.random.key(3), (6, 2))

    def log_prob(params, x):
        return flow.apply(params, x, method=TwoDimFlow.log_prob)

    @jax.jit
    def per_batch_and_per_example(params, x):
        return log_prob(params, x), jax.vmap(lambda v: log_prob(params, v[None])[0])(x)

    lp, lp_vmap = per_batch_and_per_example(params, x)
    np.testing.assert_allclose(lp_vmap, lp, atol=1e-12)
    assert np.all(np.isfinite(lp))

    # Reverse mode through the density (one pass) and through sampling (the fori_loop).
    def sample_sum(params):
        return jnp.sum(flow.apply(params, jax.random.key(4), 8, 2, method=TwoDimFlow.sample))

    grads, sample_grads = jax.jit(
        lambda p: (jax.grad(lambda q: jnp.mean(log_prob(q, x)))(p), jax.grad(sample_sum)(p))
    )(params)
    for g in (grads, sample_grads):
        leaves = jax.tree.leaves(g)
        assert all(np.all(np.isfinite(leaf)) for leaf in leaves)
        assert sum(float(jnp.sum(jnp.abs(leaf))) for leaf in leaves) > 0


def test_zero_initialised_layer_is_the_identity():
    layer = MAFLayer((8,))
    x = jax.random.normal(jax.random.key(0), (3, 4))
    z, log_det = jax.jit(lambda x: layer.apply(layer.init(jax.random.key(1), x), x))(x)
    np.testing.assert_array_equal(z, x)
    np.testing.assert_array_equal(log_det, 0.0)


def test_bad_arguments_raise_value_errors_naming_them():
    def cond(v):
        return v, v

    with pytest.raises(ValueError, match="kind"):
        MaskedAutoregressive(cond, kind="nice")
    with pytest.raises(ValueError, match="conditioner"):
        MaskedAutoregressive(None)
    with pytest.raises(ValueError, match="conditioner"):
        MaskedAutoregressive(lambda v: (v[:, :1], v)).forward(jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="permutation"):
        Permute([0, 2])
    with pytest.raises(ValueError, match="permutation"):
        Permute([[0, 1]])
    with pytest.raises(ValueError, match="x"):
        Permute([1, 0]).forward(jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="dim"):
        reverse_permutation(0)
    x = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match="kind"):
        MAFLayer((4,), kind="nice").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="ordering"):
        MAFLayer((4,), ordering=(0, 1)).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="x"):
        MAFLayer((4,)).init(jax.random.key(0), jnp.zeros((2, 3, 1)))
