"""GAN losses and penalties against independent ground truth: every loss pair against its formula
written in numpy; the minimax value at the optimal discriminator against ``-log 4 + 2 JSD`` and the
least-squares generator against the Pearson chi^2, both by quadrature; gradient penalties against
critics with known input gradients and against per-example ``jacrev`` of a Flax MLP; the GMMN,
InfoGAN and cycle-consistency objectives against numpy and scipy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats

from jgen.losses import gan
from jgen.nets.mlp import MLP
from tests.params import random_params


def sigmoid(t):
    return 1.0 / (1.0 + np.exp(-t))


def softplus(t):
    return np.logaddexp(0.0, t)


# The papers' formulas, in numpy: (discriminator, generator) of (real, fake) -> (B,).
NUMPY_LOSSES = {
    "minimax": (
        lambda r, f: -np.log(sigmoid(r)) - np.log(1.0 - sigmoid(f)),
        lambda r, f: np.log(1.0 - sigmoid(f)),
    ),
    "non_saturating": (
        lambda r, f: -np.log(sigmoid(r)) - np.log(1.0 - sigmoid(f)),
        lambda r, f: -np.log(sigmoid(f)),
    ),
    "wasserstein": (lambda r, f: f - r, lambda r, f: -f),
    "least_squares": (
        lambda r, f: 0.5 * (r - 1.0) ** 2 + 0.5 * f**2,
        lambda r, f: 0.5 * (f - 1.0) ** 2,
    ),
    "hinge": (
        lambda r, f: np.maximum(0.0, 1.0 - r) + np.maximum(0.0, 1.0 + f),
        lambda r, f: -f,
    ),
    "relativistic_average": (
        lambda r, f: -np.log(sigmoid(r - f.mean())) - np.log(1.0 - sigmoid(f - r.mean())),
        lambda r, f: -np.log(sigmoid(f - r.mean())) - np.log(1.0 - sigmoid(r - f.mean())),
    ),
}
PLAYERS = ("discriminator", "generator")


def scores(batch, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0.3, 2.0, batch), rng.normal(-0.5, 2.0, batch)


def test_losses_dict_and_get_loss():
    assert set(gan.LOSSES) == set(NUMPY_LOSSES)
    for name, loss in gan.LOSSES.items():
        assert isinstance(loss, gan.GanLoss)
        assert gan.get_loss(name) is loss
    with pytest.raises(ValueError, match="name must be one of .*'hinge'.*; got 'wgan'"):
        gan.get_loss("wgan")


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("name", sorted(NUMPY_LOSSES))
def test_loss_pairs_match_their_formulas(x64, name, batch):
    real, fake = scores(batch)
    loss = gan.get_loss(name)
    for player, expected in zip(PLAYERS, NUMPY_LOSSES[name], strict=True):
        got = getattr(loss, player)(jnp.asarray(real), jnp.asarray(fake))
        assert got.shape == (batch,), (player, got.shape)
        np.testing.assert_allclose(got, expected(real, fake), rtol=1e-12, atol=1e-12)


def test_least_squares_codes_match_the_formula(x64):
    real, fake = scores(6, seed=1)
    loss = gan.least_squares(a=-1.0, b=1.0, c=0.0)
    np.testing.assert_allclose(
        loss.discriminator(real, fake), 0.5 * (real - 1) ** 2 + 0.5 * (fake + 1) ** 2, rtol=1e-13
    )
    np.testing.assert_allclose(loss.generator(real, fake), 0.5 * fake**2, rtol=1e-13)
    with pytest.raises(ValueError, match="b .*must differ from a"):
        gan.least_squares(a=1.0, b=1.0)
    with pytest.raises(ValueError, match="c must be a finite real number"):
        gan.least_squares(c=float("nan"))


def test_losses_under_jit_float32_and_saturated_logits():
    # Confident logits: the softplus forms stay finite where log(sigmoid) would give -inf.
    real = jnp.array([60.0, 1e3, -1e3], jnp.float32)
    fake = jnp.array([-60.0, -1e3, 1e3], jnp.float32)

    @jax.jit  # one compilation for every loss, its values and its gradients
    def values_and_grads(r, f):
        out = {}
        for name, loss in gan.LOSSES.items():
            for player in PLAYERS:
                fn = getattr(loss, player)
                grads = jax.grad(lambda r, f, fn=fn: jnp.sum(fn(r, f)), argnums=(0, 1))(r, f)
                out[name, player] = (fn(r, f), *grads)
        return out

    for key, arrays in values_and_grads(real, fake).items():
        assert arrays[0].shape == (3,) and arrays[0].dtype == jnp.float32, key
        assert all(np.all(np.isfinite(a)) for a in arrays), (key, arrays)
    d = gan.get_loss("minimax").discriminator(real, fake)
    np.testing.assert_allclose(d[:2], [2 * np.exp(-60.0), 0.0], rtol=1e-5, atol=0)
    np.testing.assert_allclose(d[2], 2e3, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(NUMPY_LOSSES))
def test_loss_input_errors_name_the_argument(name):
    loss = gan.get_loss(name)
    good = jnp.zeros(4)
    for fn in loss:
        with pytest.raises(
            ValueError, match=r"fake must have the shape of real, \(4,\); got .*\(5,\)"
        ):
            fn(good, jnp.zeros(5))
        with pytest.raises(ValueError, match=r"real must be .*shape \(B,\).*got shape \(4, 1\)"):
            fn(jnp.zeros((4, 1)), jnp.zeros((4, 1)))
        with pytest.raises(ValueError, match=r"fake must be .*shape \(B,\).*got shape \(4, 1\)"):
            fn(good, jnp.zeros((4, 1)))
        with pytest.raises(ValueError, match=r"real must be .*got shape \(\)"):
            fn(jnp.zeros(()), jnp.zeros(()))
        with pytest.raises(ValueError, match="fake must have a floating-point dtype"):
            fn(good, jnp.zeros(4, jnp.int32))


# --------------------------------------------------------------------------------------------
# The optimal discriminator, by quadrature on a fine grid.

P_DATA = scipy.stats.norm(0.0, 1.0)
P_GEN = scipy.stats.norm(1.0, 1.5)
GRID = np.linspace(-16.0, 17.0, 40001)
# softplus(-800) = exp(-800) underflows to exactly 0 in float64: a perfectly confident score
# switches off one of the discriminator's two terms.
CONFIDENT = 800.0


def integrate(values):
    return scipy.integrate.simpson(values, x=GRID)


def quad(integrand):
    """Adaptive quadrature over [-30, 30] (both densities are below 1e-85 outside), where the
    densities do not underflow to 0/0."""
    return scipy.integrate.quad(integrand, -30.0, 30.0, points=[0.0, 1.0], limit=200)[0]


def test_minimax_value_at_optimal_discriminator_is_minus_log4_plus_2jsd(x64):
    p_d, p_g = P_DATA.pdf(GRID), P_GEN.pdf(GRID)
    logit = jnp.asarray(P_DATA.logpdf(GRID) - P_GEN.logpdf(GRID))  # logit of D* = p_d/(p_d+p_g)
    ones = jnp.ones_like(logit)
    loss = gan.get_loss("minimax")
    # V(D*, G) = E_pd log D* + E_pg log(1 - D*): each expectation through one discriminator term.
    e_real = integrate(p_d * np.asarray(loss.discriminator(logit, -CONFIDENT * ones)))
    e_fake = integrate(p_g * np.asarray(loss.discriminator(CONFIDENT * ones, logit)))
    value = -e_real - e_fake
    # The saturating generator loss is E_pg log(1 - D*) itself.
    np.testing.assert_allclose(
        integrate(p_g * np.asarray(loss.generator(ones, logit))), -e_fake, rtol=0, atol=1e-10
    )

    def kl_to_mixture(p, q):
        def integrand(x):
            log_m = np.logaddexp(p.logpdf(x), q.logpdf(x)) - np.log(2.0)
            return p.pdf(x) * (p.logpdf(x) - log_m)

        return quad(integrand)

    jsd = 0.5 * kl_to_mixture(P_DATA, P_GEN) + 0.5 * kl_to_mixture(P_GEN, P_DATA)
    assert 0.05 < jsd < np.log(2)  # the two densities differ: the check is not 0 = 0
    np.testing.assert_allclose(value, -np.log(4.0) + 2.0 * jsd, rtol=0, atol=1e-8)


@pytest.mark.parametrize(
    "name, optimum",
    [
        ("minimax", lambda p_d, p_g: np.log(p_d) - np.log(p_g)),
        ("least_squares", lambda p_d, p_g: p_d / (p_d + p_g)),  # (b p_d + a p_g)/(p_d + p_g)
    ],
)
def test_discriminator_loss_is_stationary_at_its_known_optimum(x64, name, optimum):
    # The expected loss is p_d(x) l(D(x), .) + p_g(x) l(., D(x)) pointwise in x; its derivative
    # with respect to D(x) must vanish at D*(x), and not at a perturbed D.
    x = np.linspace(-4.0, 5.0, 101)
    p_d, p_g = P_DATA.pdf(x), P_GEN.pdf(x)
    loss = gan.get_loss(name)
    # Each term alone: the other side gets a score at which its term is constant in the argument.
    other = jnp.full(x.shape, 0.0)

    def expected_loss(d):
        real_term = loss.discriminator(d, other) - loss.discriminator(other, other)
        fake_term = loss.discriminator(other, d) - loss.discriminator(other, other)
        return jnp.sum(p_d * real_term + p_g * fake_term)

    d_star = jnp.asarray(optimum(p_d, p_g))
    grad = jax.jit(jax.grad(expected_loss))
    np.testing.assert_allclose(grad(d_star), 0.0, atol=1e-14)
    # Perturbed by 0.1, the derivative is at least 0.1 p_d p_g / (p_d + p_g) for both losses.
    perturbed = np.abs(grad(d_star + 0.1))
    assert np.all(perturbed > 0.05 * p_d * p_g / (p_d + p_g))


def test_least_squares_generator_minimises_pearson_chi2(x64):
    # Mao et al. 2017, Theorem 1: with b - c = 1 and b - a = 2 (a=-1, b=1, c=0) and the optimal
    # D* = (b p_d + a p_g) / (p_d + p_g), 2 C(G) = chi^2_Pearson(p_d + p_g || 2 p_g), where
    # C(G) = E_pd (D* - c)^2 / 2 + E_pg (D* - c)^2 / 2.
    p_d, p_g = P_DATA.pdf(GRID), P_GEN.pdf(GRID)
    d_star = jnp.asarray((p_d - p_g) / (p_d + p_g))
    per_point = gan.least_squares(a=-1.0, b=1.0, c=0.0).generator(d_star, d_star)
    c_g = integrate((p_d + p_g) * np.asarray(per_point))

    def integrand(x):
        pd, pg = P_DATA.pdf(x), P_GEN.pdf(x)
        return (2 * pg - (pd + pg)) ** 2 / (pd + pg)

    chi2 = quad(integrand)
    assert chi2 > 0.05
    np.testing.assert_allclose(2.0 * c_g, chi2, rtol=0, atol=1e-8)


def test_clip_weights(x64):
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(0, 1, (3, 4)), "b": [rng.normal(0, 0.01, 5)]}
    clipped = gan.clip_weights(params, 0.5)
    np.testing.assert_array_equal(clipped["w"], np.clip(params["w"], -0.5, 0.5))
    np.testing.assert_array_equal(clipped["b"][0], params["b"][0])  # inside: unchanged
    assert np.any(np.abs(params["w"]) > 0.5) and np.max(np.abs(clipped["w"])) == 0.5
    for bad in (0.0, -0.01):
        with pytest.raises(ValueError, match="bound must be finite and > 0"):
            gan.clip_weights(params, bad)


# --------------------------------------------------------------------------------------------
# Gradient penalties.


def linear_critic(w):
    w = jnp.asarray(w)
    return lambda x: jnp.sum(x * w, axis=tuple(range(1, x.ndim)))


def test_gradient_penalty_of_unit_gradient_critics_is_zero(x64):
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(9, 2, 3)), rng.normal(size=(9, 2, 3))
    key = jax.random.key(0)
    u = rng.normal(size=(2, 3))
    u /= np.linalg.norm(u)
    gp = jax.jit(lambda r, f: gan.gradient_penalty(linear_critic(u), r, f, key))(real, fake)
    assert gp.shape == (9,)
    np.testing.assert_allclose(gp, 0.0, atol=1e-12)
    centre = np.full((2, 3), 30.0)  # far from every interpolate

    def distance(x):
        return jnp.sqrt(jnp.sum((x - centre) ** 2, axis=(1, 2)))

    gp = jax.jit(lambda r, f: gan.gradient_penalty(distance, r, f, key))(real, fake)
    np.testing.assert_allclose(gp, 0.0, atol=1e-12)


@pytest.mark.parametrize("norm_w", [0.4, 2.5])
def test_gradient_penalty_of_a_linear_critic(x64, norm_w):
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    w = rng.normal(size=4)
    w *= norm_w / np.linalg.norm(w)
    critic, key = linear_critic(w), jax.random.key(1)

    @jax.jit
    def penalties(r, f):
        return (
            gan.gradient_penalty(critic, r, f, key),
            gan.gradient_penalty(critic, r, f, key, one_sided=True),
            gan.gradient_penalty(critic, r, f, key, target=2.0),
        )

    two_sided, one_sided, target_two = penalties(real, fake)
    expected = np.full(5, (norm_w - 1.0) ** 2)
    np.testing.assert_allclose(two_sided, expected, rtol=1e-12)
    np.testing.assert_allclose(one_sided, expected if norm_w > 1 else 0.0, rtol=1e-12, atol=0)
    np.testing.assert_allclose(target_two, (norm_w - 2.0) ** 2, rtol=1e-12)


def test_gradient_penalty_interpolates_lie_on_the_segment_with_uniform_eps(x64):
    # With D(x)_i = |x_i - c_i|^2 / 2 the gradient norm at x^ is |x^_i - c_i|. Centred on fake_i
    # it is eps_i |real_i - fake_i|, centred on real_i (1 - eps_i) |real_i - fake_i|: the two add
    # up to |real_i - fake_i| only when x^_i is on the segment.
    n = 2000
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    key = jax.random.key(2)

    def centred(c):
        return lambda x: 0.5 * jnp.sum((x - c) ** 2, axis=-1)

    @jax.jit  # one compilation for the three penalties
    def gradient_norms(real, fake):
        def norm(centre, k):
            return jnp.sqrt(gan.gradient_penalty(centred(centre), real, fake, k, target=0.0))

        return norm(fake, key), norm(real, key), norm(fake, jax.random.key(3))

    to_fake, to_real, other = map(np.asarray, gradient_norms(real, fake))
    length = np.linalg.norm(real - fake, axis=-1)
    np.testing.assert_allclose(to_fake + to_real, length, rtol=1e-10)
    eps = to_fake / length
    assert scipy.stats.kstest(eps, "uniform").pvalue > 1e-3
    # A different key draws different eps.
    assert np.mean(np.abs(other / length - eps)) > 0.1
    # real == fake: x^ is known exactly, the gradient norm of |x|^2 / 2 there is |real|.
    half_square = centred(np.zeros(3))
    np.testing.assert_allclose(
        gan.gradient_penalty(half_square, real[:5], real[:5], key),
        (np.linalg.norm(real[:5], axis=-1) - 1.0) ** 2,
        rtol=1e-12,
    )


def test_gradient_penalty_gradient_is_finite_at_a_zero_input_gradient(x64):
    real, fake = jnp.ones((3, 2)), jnp.zeros((3, 2))

    def mean_penalty(theta):
        return jnp.mean(gan.gradient_penalty(linear_critic(theta), real, fake, jax.random.key(0)))

    value, grad = jax.jit(jax.value_and_grad(mean_penalty))(jnp.zeros(2))
    np.testing.assert_allclose(value, 1.0)
    assert np.all(np.isfinite(grad)), grad


def test_gradient_penalty_input_errors():
    critic, key = linear_critic(np.ones(2)), jax.random.key(0)
    with pytest.raises(ValueError, match=r"fake must have the shape of real, \(3, 2\)"):
        gan.gradient_penalty(critic, jnp.zeros((3, 2)), jnp.zeros((4, 2)), key)
    with pytest.raises(ValueError, match="target must be finite and >= 0"):
        gan.gradient_penalty(critic, jnp.zeros((3, 2)), jnp.zeros((3, 2)), key, target=-1.0)
    with pytest.raises(ValueError, match=r"critic_fn must map .* to shape \(B,\) = \(3,\); got "):
        gan.gradient_penalty(lambda x: x, jnp.zeros((3, 2)), jnp.zeros((3, 2)), key)
    with pytest.raises(ValueError, match="real must have a floating-point dtype"):
        gan.gradient_penalty(critic, jnp.zeros((3, 2), int), jnp.zeros((3, 2)), key)


def test_r1_and_r2_of_a_quadratic_critic(x64):
    rng = np.random.default_rng(3)
    m = rng.normal(size=(4, 4))
    a, b = m + m.T, rng.normal(size=4)  # symmetric A: grad (x^T A x / 2 + b^T x) = A x + b

    def critic(x):
        return 0.5 * jnp.einsum("bi,ij,bj->b", x, a, x) + x @ b

    real, fake = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))

    @jax.jit
    def penalties(r, f):
        return gan.r1_penalty(critic, r), gan.r2_penalty(critic, f)

    for got, x in zip(penalties(real, fake), (real, fake), strict=True):
        np.testing.assert_allclose(got, np.sum((x @ a.T + b) ** 2, axis=-1), rtol=1e-12)
    one = jax.jit(lambda x: gan.squared_gradient_norm(critic, x))(real[:1])
    np.testing.assert_allclose(one, [np.sum((a @ real[0] + b) ** 2)], rtol=1e-12)
    with pytest.raises(ValueError, match="real must be a batch of shape"):
        gan.r1_penalty(critic, jnp.zeros(()))
    with pytest.raises(ValueError, match="fake must have a floating-point dtype"):
        gan.r2_penalty(critic, jnp.zeros((2, 4), jnp.int32))


def test_r1_matches_per_example_jacobian_of_an_mlp_critic(x64):
    module = MLP(hidden_sizes=(8, 8), out_size=1, activation=jnp.tanh)
    params = random_params(module, jnp.zeros((1, 4)), seed=4)
    x = jnp.asarray(np.random.default_rng(4).normal(size=(5, 2, 2)))

    def critic(p, v):  # (B, 2, 2) -> (B,), each example alone
        return module.apply(p, v.reshape(v.shape[0], -1))[:, 0]

    def independent(p):  # one example at a time, no batch sum
        jac = jax.vmap(jax.jacrev(lambda xi: critic(p, xi[None])[0]))(x)
        return jnp.sum(jac**2, axis=(1, 2))

    def r1(p):
        return gan.r1_penalty(lambda v: critic(p, v), x)

    @jax.jit  # one compilation: op-by-op double backpropagation is slower
    def values_and_grads(p):
        grad_r1 = jax.grad(lambda q: jnp.sum(r1(q)))(p)
        grad_ind = jax.grad(lambda q: jnp.sum(independent(q)))(p)
        return r1(p), independent(p), grad_r1, grad_ind

    got, expected, grad_r1, grad_ind = values_and_grads(params)
    assert got.shape == (5,) and np.all(got > 0)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # Double backpropagation reaches the critic's parameters.
    jax.tree.map(lambda g, h: np.testing.assert_allclose(g, h, rtol=1e-10), grad_r1, grad_ind)


def test_penalized_value(x64):
    rng = np.random.default_rng(5)
    w, x, value = rng.normal(size=3), rng.normal(size=(4, 3)), rng.normal(size=4)
    got = gan.penalized_value(jnp.asarray(value), linear_critic(w), jnp.asarray(x), 0.7)
    np.testing.assert_allclose(got, value - 0.7 * np.sum(w**2), rtol=1e-12)
    with pytest.raises(ValueError, match=r"value must have shape \(B,\) = \(4,\)"):
        gan.penalized_value(jnp.zeros(3), linear_critic(w), jnp.asarray(x), 0.7)
    with pytest.raises(ValueError, match="weight must be finite and >= 0"):
        gan.penalized_value(jnp.asarray(value), linear_critic(w), jnp.asarray(x), -1.0)


# --------------------------------------------------------------------------------------------
# GMMN, InfoGAN, CycleGAN.


def test_gmmn_loss_matches_numpy_unbiased_mmd2(x64):
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(20, 2, 2)), rng.normal(0.5, 1.2, size=(15, 2, 2))
    bandwidths = (0.5, 1.0, 3.0)

    def gram(a, b):
        d2 = np.sum((a[:, None] - b[None]) ** 2, axis=(2, 3))
        return sum(np.exp(-d2 / (2 * h**2)) for h in bandwidths)

    def off_diagonal_mean(k):
        n = len(k)
        return (k.sum() - np.trace(k)) / (n * (n - 1))

    expected = off_diagonal_mean(gram(x, x)) + off_diagonal_mean(gram(y, y)) - 2 * gram(x, y).mean()
    got = jax.jit(gan.gmmn_loss, static_argnums=2)(jnp.asarray(x), jnp.asarray(y), bandwidths)
    assert got.shape == () and expected > 0.01
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="bandwidths must hold at least one"):
        gan.gmmn_loss(jnp.asarray(x), jnp.asarray(y), ())
    with pytest.raises(ValueError, match="bandwidth must be finite and > 0"):
        gan.gmmn_loss(jnp.asarray(x), jnp.asarray(y), (1.0, -1.0))


def test_infogan_categorical_loss(x64):
    rng = np.random.default_rng(7)
    logits, codes = rng.normal(size=(6, 4)), rng.integers(0, 4, 6)
    expected = -scipy.special.log_softmax(logits, axis=-1)[np.arange(6), codes]
    got = gan.infogan_categorical_loss(jnp.asarray(logits), jnp.asarray(codes))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    jitted = jax.jit(gan.infogan_categorical_loss)(jnp.asarray(logits), jnp.asarray(codes))
    np.testing.assert_allclose(jitted, expected, rtol=1e-12)
    with pytest.raises(ValueError, match=r"codes must lie in \[0, K\) = \[0, 4\); got .* to 4"):
        gan.infogan_categorical_loss(jnp.asarray(logits), jnp.asarray(codes.clip(max=3) + 1))
    with pytest.raises(ValueError, match="codes must have an integer dtype"):
        gan.infogan_categorical_loss(jnp.asarray(logits), jnp.zeros(6))
    with pytest.raises(ValueError, match=r"codes must have shape \(B,\) = \(6,\)"):
        gan.infogan_categorical_loss(jnp.asarray(logits), jnp.zeros(5, int))
    with pytest.raises(ValueError, match=r"code_logits must have shape \(B, K\)"):
        gan.infogan_categorical_loss(jnp.zeros(6), jnp.zeros(6, int))


def test_infogan_gaussian_loss(x64):
    rng = np.random.default_rng(8)
    mean, log_std, codes = (
        rng.normal(size=(5, 3)),
        rng.normal(0, 0.5, (5, 3)),
        rng.normal(size=(5, 3)),
    )
    expected = -scipy.stats.norm.logpdf(codes, mean, np.exp(log_std)).sum(-1)
    got = gan.infogan_gaussian_loss(jnp.asarray(mean), jnp.asarray(log_std), jnp.asarray(codes))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    with pytest.raises(ValueError, match=r"log_std must have the shape of mean, \(5, 3\)"):
        gan.infogan_gaussian_loss(jnp.asarray(mean), jnp.zeros((5, 2)), jnp.asarray(codes))
    with pytest.raises(ValueError, match=r"codes must have the shape of mean"):
        gan.infogan_gaussian_loss(jnp.asarray(mean), jnp.asarray(log_std), jnp.zeros(5))
    with pytest.raises(ValueError, match=r"mean must have shape \(B, d\)"):
        gan.infogan_gaussian_loss(jnp.zeros(5), jnp.zeros(5), jnp.zeros(5))


def test_cycle_consistency_loss(x64):
    rng = np.random.default_rng(9)
    x, x_cycled = rng.normal(size=(3, 4, 4, 2)), rng.normal(size=(3, 4, 4, 2))
    l1 = gan.cycle_consistency_loss(jnp.asarray(x), jnp.asarray(x_cycled))
    l2 = gan.cycle_consistency_loss(jnp.asarray(x), jnp.asarray(x_cycled), norm="l2")
    np.testing.assert_allclose(l1, np.abs(x_cycled - x).reshape(3, -1).mean(-1), rtol=1e-12)
    np.testing.assert_allclose(l2, ((x_cycled - x) ** 2).reshape(3, -1).mean(-1), rtol=1e-12)
    with pytest.raises(ValueError, match=r"x_cycled must have the shape of x, \(3, 4, 4, 2\)"):
        gan.cycle_consistency_loss(jnp.asarray(x), jnp.asarray(x_cycled[:2]))
    with pytest.raises(ValueError, match="norm must be one of"):
        gan.cycle_consistency_loss(jnp.asarray(x), jnp.asarray(x_cycled), norm="l3")
