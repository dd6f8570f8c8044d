"""Dequantization: continuous densities on discrete data without degenerate spikes.

Data with ``K`` levels stored as lower cell corners ``x = k / K`` become ``y = x + u / K`` with
noise ``u`` in ``(0, 1)^D``, fresh at every step (noise fixed once per example would let the
model memorise it). For any density ``q(u | x)`` on the unit cube, Jensen's inequality gives

    log P(k) >= E_{u ~ q(.|x)} [log p(y) - log q(u | x)] - D log K,

with equality when ``q(u | x)`` is ``p`` restricted to the cell and renormalised (the gap is
``KL(q(.|x) || p(.|cell))``).

* **Uniform** dequantization (``uniform_dequantize``) takes ``q = U[0, 1)^D``, ``log q = 0``
  (Theis, van den Oord & Bethge 2016, "A note on the evaluation of generative models").
* **Variational** dequantization (``VariationalDequantizer``) learns ``q(u | x)`` as a
  conditional flow and maximises the bound jointly with ``p`` (Ho, Chen, Srinivas, Duan &
  Abbeel 2019, "Flow++", section 3.1).

Usage, with ``p`` any density model on ``[0, 1)^D``::

    y, log_q = variational_dequantize(dequantizer, variables, key, x, num_levels)
    bound = dequantization_bound(log_p(y), log_q, num_dims, num_levels)  # nats, (n,)
    loss = -jnp.mean(bound)  # gradients reach both p's and q's parameters
"""

from collections.abc import Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.bijectors.coupling import AffineCoupling, parity_mask
from jgen.checks import check_int
from jgen.gaussian import standard_normal_log_prob
from jgen.losses.likelihood import dequantized_nll
from jgen.nets.mlp import MLP
from jgen.types import Array, PRNGKey


def uniform_dequantize(key: PRNGKey, x: Array, num_levels: int) -> Array:
    """``x + u / K`` with ``u ~ U[0, 1)`` of the shape of ``x`` (``x`` holds the corners ``k / K``).

    Args:
      key: the noise key.
      x: a batch ``(n, *event)`` of values on the grid ``{0, 1/K, ..., (K-1)/K}``.
      num_levels: ``K``.
    """
    return x + jax.random.uniform(key, x.shape, x.dtype) / num_levels


def _check_data(name: str, x) -> None:
    """``x`` must be a floating-point batch ``(n, *event)`` with at least one event axis."""
    shape = tuple(np.shape(x))
    if len(shape) < 2:
        raise ValueError(f"{name} must be a batch of shape (n, *event); got shape {shape}")
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise ValueError(f"{name} must have a floating-point dtype; got dtype {jnp.result_type(x)}")


def _check_like(name: str, a, x) -> None:
    """``a`` (noise or ``u``) must have the shape of the data ``x``."""
    if tuple(np.shape(a)) != tuple(np.shape(x)):
        raise ValueError(
            f"{name} must have the shape of x, {tuple(np.shape(x))}; got shape {tuple(np.shape(a))}"
        )


def _sum_event(a: Array) -> Array:
    return jnp.sum(a.reshape(a.shape[0], -1), axis=-1)


def _log_sigmoid_derivative(a: Array) -> Array:
    """``log sigmoid'(a) = log sigmoid(a) + log sigmoid(-a) = -softplus(-a) - softplus(a)``,
    finite for every finite ``a`` even where ``sigmoid(a)`` rounds to 0 or 1."""
    return -jax.nn.softplus(-a) - jax.nn.softplus(a)


class _Conditioner(nn.Module):
    """``(m * eps, x) -> (shift, log_scale)``: an MLP on ``concat(flat(m * eps), flat(2x - 1))``
    with a zero-initialised output layer (each coupling starts as the identity) and
    ``log_scale = s * tanh(raw)`` (bounded; ``s`` learned per dimension, as in the RealNVP
    conditioner of ``jgen.models.flow``)."""

    hidden_sizes: Sequence[int]

    @nn.compact
    def __call__(self, eps_masked: Array, x: Array) -> tuple[Array, Array]:
        n = eps_masked.shape[0]
        flat = eps_masked.reshape(n, -1)
        dim = flat.shape[-1]
        features = jnp.concatenate([flat, (2 * x - 1).reshape(n, -1).astype(flat.dtype)], -1)
        out = MLP(tuple(self.hidden_sizes), 2 * dim, zero_init_output=True)(features)
        shift, raw = jnp.split(out, 2, axis=-1)
        scale = self.param("tanh_scale", nn.initializers.ones, (dim,))
        log_scale = scale * jnp.tanh(raw)
        return shift.reshape(eps_masked.shape), log_scale.reshape(eps_masked.shape)


class VariationalDequantizer(nn.Module):
    """The learned dequantization noise ``q(u | x)`` of Flow++ (Ho et al. 2019, section 3.1).

    A conditional flow on the noise: ``eps ~ N(0, I)`` of the event shape, then ``num_layers``
    affine couplings ``eps -> a`` (alternating checkerboard masks, ``jgen.bijectors.coupling``)
    whose conditioners see the masked ``eps`` and ``x``, then ``u = sigmoid(a)`` in ``(0, 1)^D``.
    The change of variables gives

        log q(u | x) = log N(eps; 0, I) - sum_l log|det d a_l / d a_{l-1}|
                       - sum_i log sigmoid'(a_i),

    with ``log sigmoid'(a) = -softplus(-a) - softplus(a)``. Couplings start as the identity
    (zero-initialised output layers), so a fresh dequantizer is the logistic-normal
    ``u = sigmoid(eps)`` for every ``x``.

    The first coupling transforms the odd-parity coordinates (mask parity 1): with a
    one-dimensional event a parity-0 mask passes the only coordinate through, so the 1st, 3rd, ...
    layers are the ones that act there (and ``q(. | x)`` is a logistic-normal whose mean and scale
    depend on ``x``, since affine maps compose to one). ``u`` is clipped to
    ``[tiny, 1 - epsneg]`` of its dtype so that it stays strictly inside ``(0, 1)`` where
    ``sigmoid`` rounds; ``log q`` is computed from ``a`` and stays exact.

    Methods (call through ``apply``, e.g. ``dequantizer.apply(variables, u, x,
    method="log_prob")``):
      ``__call__(x, key) -> (u, log_q)``: a draw and its log-density.
      ``from_noise(eps, x) -> (u, log_q)``: the same with the base noise given (the sampling map).
      ``log_prob(u, x) -> log_q``: the density at given ``u``, by the inverse map.

    Attributes:
      num_layers: number of conditional affine coupling layers.
      hidden_sizes: hidden widths of each conditioner MLP.
    """

    num_layers: int = 2
    hidden_sizes: Sequence[int] = (64, 64)

    def setup(self):
        check_int("num_layers", self.num_layers, minimum=1)
        self.conditioners = [_Conditioner(self.hidden_sizes) for _ in range(self.num_layers)]

    def _couplings(self, x: Array) -> distrax.Bijector:
        """The map ``eps -> a`` given ``x``, as one distrax bijector."""
        event_shape = x.shape[1:]
        layers = []
        for i, conditioner in enumerate(self.conditioners):
            mask = parity_mask(event_shape, (i + 1) % 2)
            layers.append(AffineCoupling(mask, lambda e, c=conditioner: c(e, x), len(event_shape)))
        return distrax.Chain(layers[::-1])  # Chain applies its last element first

    def __call__(self, x: Array, key: PRNGKey) -> tuple[Array, Array]:
        """Draws ``u ~ q(u | x)``.

        Args:
          x: a batch ``(n, *event)`` of cell corners ``k / K`` (floating point).
          key: the noise key; ``eps = jax.random.normal(key, x.shape, x.dtype)``.

        Returns:
          ``u`` of the shape of ``x``, strictly inside ``(0, 1)``, and ``log q(u | x)`` of shape
          ``(n,)`` in nats.
        """
        _check_data("x", x)
        eps = jax.random.normal(key, x.shape, x.dtype)
        return self.from_noise(eps, x)

    def from_noise(self, eps: Array, x: Array) -> tuple[Array, Array]:
        """The sampling map ``eps -> u`` and ``log q(u | x) = log N(eps) - log|det du/deps|``.

        Args:
          eps: base noise of the shape of ``x``.
          x: a batch ``(n, *event)`` of cell corners.

        Returns:
          ``u`` of the shape of ``x`` and ``log q(u | x)`` of shape ``(n,)``.
        """
        _check_data("x", x)
        _check_like("eps", eps, x)
        a, log_det = self._couplings(x).forward_and_log_det(eps)
        log_det = log_det + _sum_event(_log_sigmoid_derivative(a))
        finfo = jnp.finfo(a.dtype)
        u = jnp.clip(jax.nn.sigmoid(a), finfo.tiny, 1 - finfo.epsneg)
        return u, standard_normal_log_prob(eps, eps.ndim - 1) - log_det

    def log_prob(self, u: Array, x: Array) -> Array:
        """``log q(u | x)`` at given ``u`` in ``(0, 1)^D``, through ``a = logit(u)`` and the
        inverse couplings.

        Args:
          u: noise of the shape of ``x``, strictly inside ``(0, 1)``.
          x: a batch ``(n, *event)`` of cell corners.

        Returns:
          ``log q(u | x)`` of shape ``(n,)`` in nats.
        """
        _check_data("x", x)
        _check_like("u", u, x)
        a = jnp.log(u) - jnp.log1p(-u)
        eps, log_det = self._couplings(x).inverse_and_log_det(a)
        log_det = log_det - _sum_event(_log_sigmoid_derivative(a))
        return standard_normal_log_prob(eps, eps.ndim - 1) + log_det


def variational_dequantize(
    dequantizer: VariationalDequantizer, variables, key: PRNGKey, x: Array, num_levels: int
) -> tuple[Array, Array]:
    """``y = x + u / K`` with ``u ~ q(u | x)`` from a ``VariationalDequantizer`` (Flow++ §3.1).

    Args:
      dequantizer: the module.
      variables: its Flax variables (``{"params": ...}``).
      key: the noise key.
      x: a batch ``(n, *event)`` of cell corners ``k / K``.
      num_levels: ``K >= 2``.

    Returns:
      ``y = x + u / K`` of the shape of ``x``, inside the cell ``[x, x + 1/K)`` (held below
      ``x + 1/K`` where rounding would reach it), and ``log q(u | x)`` of
      shape ``(n,)``; pass both to ``dequantization_bound`` with ``log p(y)``.
    """
    check_int("num_levels", num_levels, minimum=2)
    _check_data("x", x)
    u, log_q = dequantizer.apply(variables, x, key)
    # u just below 1 can round x + u / K up onto the next corner (or onto 1, where a logit
    # pre-processing diverges); keep y below the largest float under x + 1 / K.
    upper = jax.lax.stop_gradient(jnp.nextafter(x + 1.0 / num_levels, x))
    return jnp.minimum(x + u / num_levels, upper), log_q


def dequantization_bound(log_p_y: Array, log_q: Array, num_dims: int, num_levels: int) -> Array:
    """``log p(y) - log q(u | x) - D log K``: a lower bound on ``log P(k)`` in nats per example.

    A single-sample estimate of ``E_q[log p(y) - log q(u | x)] - D log K`` (Ho et al. 2019, eq. 12);
    with uniform noise pass ``log_q = 0``. Its negative divided by ``D ln 2`` is an upper bound on
    bits per dimension (``jgen.losses.likelihood.bits_per_dim``).

    Args:
      log_p_y: ``log p(y)`` of the dequantized batch, shape ``(n,)``.
      log_q: ``log q(u | x)``, shape ``(n,)`` (or a scalar 0 for uniform noise).
      num_dims: ``D``, the number of values per example.
      num_levels: ``K >= 2``.
    """
    check_int("num_dims", num_dims, minimum=1)
    check_int("num_levels", num_levels, minimum=2)
    return -dequantized_nll(log_q - log_p_y, num_dims, num_levels)
