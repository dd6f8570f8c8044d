"""MAF and IAF, affine and spline: the bijector battery, the triangular Jacobian, the sequential
direction's accuracy, the permutation between layers, a flow whose density integrates to one, and
the spline's identity tails far outside its interval."""

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.bijectors.autoregressive import (
    AFFINE,
    MAFLayer,
    MaskedAutoregressive,
    SplineTransformer,
)
from jgen.bijectors.permute import Permute, reverse_permutation
from jgen.nets.masked import MADE, resolve_ordering
from tests.bijectors.battery import check_bijector
from tests.params import redraw

SPLINE = SplineTransformer(num_bins=5, bound=2.0)
TRANSFORMERS = {"affine": AFFINE, "spline": SPLINE}


def redrawn_params(init, key, x):
    """``init(key, x)`` with every parameter redrawn (``redraw``), in one compiled call rather
    than one per parameter shape."""
    return jax.jit(lambda key, x: redraw(init(key, x), jax.random.fold_in(key, 1)))(key, x)


def made_conditioner(dim, ordering="natural", seed=0, transformer=AFFINE):
    """A MADE conditioner with random non-zero weights; for the affine transformer, log-scales
    bounded by tanh (as in ``MAFLayer``), so that d sequential passes cannot overflow; for the
    spline, the raw outputs. Jitted so the eager battery is fast."""
    made = MADE((16, 16), num_params_per_dim=transformer.num_params, ordering=ordering)
    params = redrawn_params(made.init, jax.random.key(seed), jnp.zeros((1, dim)))

    @jax.jit
    def conditioner(v):
        out = made.apply(params, v)
        if transformer is AFFINE:
            return out[..., 0], jnp.tanh(out[..., 1])
        return out

    return conditioner


def normal_points(key, shape, transformer="affine"):
    """Standard normal points; for the spline, spread to 1.5 B so that about half fall outside
    [-B, B], where the spline is the identity."""
    x = jax.random.normal(key, shape)
    if transformer == "spline":
        x = 1.5 * SPLINE.bound * x
        assert 0 < np.mean(np.abs(x) > SPLINE.bound) < 1
    return x


def random_ordering(dim, seed=0):
    return tuple(int(i) for i in np.random.default_rng(seed).permutation(dim))


@pytest.mark.parametrize("transformer", ["affine", "spline"])
@pytest.mark.parametrize("kind", ["maf", "iaf"])
@pytest.mark.parametrize("dim", [2, 5])
def test_bijector_battery(x64, kind, dim, transformer):
    ordering = random_ordering(dim) if dim > 2 else "natural"
    elementwise = TRANSFORMERS[transformer]
    cond = made_conditioner(dim, ordering, transformer=elementwise)
    bij = MaskedAutoregressive(cond, kind=kind, transformer=elementwise)
    x = normal_points(jax.random.key(1), (7, dim), transformer)
    check_bijector(bij, x, atol=1e-9)


@pytest.mark.parametrize("transformer", ["affine", "spline"])
@pytest.mark.parametrize("kind", ["maf", "iaf"])
def test_jacobian_is_triangular_with_the_elementwise_derivatives_on_its_diagonal(
    x64, kind, transformer
):
    """Diagonal ``tau'(z_i; theta_i)``: ``exp(log_scale)`` for the affine transformer."""
    dim = 5
    ordering = random_ordering(dim, seed=3)
    elementwise = TRANSFORMERS[transformer]
    cond = made_conditioner(dim, ordering, seed=3, transformer=elementwise)
    bij = MaskedAutoregressive(cond, kind=kind, transformer=elementwise)
    z = normal_points(jax.random.key(2), (6, dim), transformer)
    jacobian = jax.vmap(jax.jacfwd(lambda v: bij.forward(v[None])[0]))
    (x, log_det), jac = jax.jit(lambda z: (bij.forward_and_log_det(z), jacobian(z)))(z)
    # MAF is conditioned on the data side x, IAF on the noise side z.
    _, log_scale = elementwise.forward(z, cond(x if kind == "maf" else z))

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
    transformer: str = "affine"

    def setup(self):
        self.layers = [
            MAFLayer((16, 16), kind=self.kind, transformer=self.transformer) for _ in range(4)
        ]

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


def flow_and_params(kind, dtype=jnp.float64, transformer="affine"):
    flow = TwoDimFlow(kind, transformer)
    params = jax.jit(flow.init, static_argnames="method")(
        jax.random.key(0), jnp.zeros((1, 2), dtype), method=TwoDimFlow.log_prob
    )
    # Away from the identity (zero-initialised outputs), but with moderate scales. The spline
    # parameters are unbounded (no tanh): larger noise gives bins and densities spikier than the
    # integration grid below resolves.
    noise = redraw(params, jax.random.key(1), scale=0.4 if transformer == "affine" else 0.1)
    return flow, jax.tree.map(jnp.add, params, noise)


# Of 1e5 samples of the affine flow ~1% fall beyond |x_i| = 10, the largest at 17.3; of the
# spline flow's (identity tails beyond B = 3) none beyond 4.9. The grid spacing is 0.05.
@pytest.mark.parametrize(("transformer", "half_width"), [("affine", 20.0), ("spline", 8.0)])
def test_maf_density_integrates_to_one_on_a_grid(x64, transformer, half_width):
    flow, params = flow_and_params("maf", transformer=transformer)
    num = round(40 * half_width)
    edges = np.linspace(-half_width, half_width, num + 1)
    mids = 0.5 * (edges[1:] + edges[:-1])
    grid = np.stack(np.meshgrid(mids, mids, indexing="ij"), axis=-1).reshape(-1, 2)
    log_prob = jax.jit(lambda x: flow.apply(params, x, method=TwoDimFlow.log_prob))
    density = np.exp(np.asarray(log_prob(jnp.asarray(grid))))
    mass = density.sum() * (edges[1] - edges[0]) ** 2
    assert abs(mass - 1.0) < 1e-3, mass  # measured: -1.4e-6 (affine), 7.9e-5 (spline)
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


@pytest.mark.parametrize("transformer", ["affine", "spline"])
def test_zero_initialised_layer_is_the_identity(transformer):
    layer = MAFLayer((8,), transformer=transformer)
    x = jax.random.normal(jax.random.key(0), (3, 4))

    def both_directions(x):
        params = layer.init(jax.random.key(1), x)
        bij = layer.apply(params, x.shape[-1], method=MAFLayer.bijector)
        return bij.inverse_and_log_det(x), bij.forward_and_log_det(x)

    for out, log_det in jax.jit(both_directions)(x):
        if transformer == "affine":
            np.testing.assert_array_equal(out, x)
            np.testing.assert_array_equal(log_det, 0.0)
        else:  # equal bins and unit knot derivatives, up to the rounding of the knots
            np.testing.assert_allclose(out, x, rtol=0, atol=1e-6)
            np.testing.assert_allclose(log_det, 0.0, atol=1e-6)


def test_spline_layer_is_finite_with_gradients_far_outside_the_interval():
    """float32 inputs at |x| = 1e4 (which drive the spline parameters into the thousands) pass the
    identity tails exactly, with finite values and parameter gradients in both directions (the
    one-pass inverse and the d-pass forward of a MAF: the IAF runs the same two paths)."""
    dim = 3
    layer = MAFLayer((8, 8), transformer="spline", num_bins=4, bound=3.0)
    far = 1e4
    x = jnp.array([[far, -far, far], [-far, 0.5, far], [0.3, -far, -1.2], [1.0, 2.0, -far]])
    params = redrawn_params(layer.init, jax.random.key(0), x)

    def loss(params):
        bij = layer.apply(params, dim, method=MAFLayer.bijector)
        outputs = bij.inverse_and_log_det(x), bij.forward_and_log_det(x)
        return sum(jnp.sum(leaf) for leaf in jax.tree.leaves(outputs)), outputs

    (_, outputs), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    outside = np.abs(x) > layer.bound
    for out, log_det in outputs:
        assert out.dtype == jnp.float32
        assert np.all(np.isfinite(out)) and np.all(np.isfinite(log_det))
        np.testing.assert_array_equal(out[outside], x[outside])
        assert not np.allclose(out[~outside], x[~outside])
        assert log_det[0] == 0.0  # the first row is all outside
    leaves = jax.tree.leaves(grads)
    assert all(np.all(np.isfinite(leaf)) for leaf in leaves)
    assert sum(float(jnp.sum(jnp.abs(leaf))) for leaf in leaves) > 0


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

    # The spline transformer: its arguments, and conditioner outputs that do not fit it.
    with pytest.raises(
        ValueError, match=r"transformer must be one of \('affine', 'spline'\); got 'nsf'"
    ):
        MAFLayer((4,), transformer="nsf").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="num_bins must be an integer >= 1; got 0"):
        MAFLayer((4,), transformer="spline", num_bins=0).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="bound must be finite and > 0; got 0.0"):
        MAFLayer((4,), transformer="spline", bound=0.0).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="num_bins must be an integer >= 1; got 2.5"):
        SplineTransformer(num_bins=2.5)
    with pytest.raises(ValueError, match="bound must be finite and > 0; got -1.0"):
        SplineTransformer(bound=-1.0)
    with pytest.raises(ValueError, match="transformer must have .*; got 'spline'"):
        MaskedAutoregressive(cond, transformer="spline")
    spline = SplineTransformer(num_bins=3)
    with pytest.raises(ValueError, match=r"conditioner .* shape \(2, 3, 8\).*got shape \(2, 3\)"):
        MaskedAutoregressive(lambda v: v, transformer=spline).inverse(x)
    with pytest.raises(ValueError, match="conditioner must return a pair"):
        MaskedAutoregressive(lambda v: jnp.zeros((*v.shape, 2))).inverse(x)
