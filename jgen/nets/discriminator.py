"""What every GAN discriminator shares, and the fully connected players for 2-D toy data.

- :func:`minibatch_stddev`: the between-example spread of features appended as one more feature
  (Karras, Aila, Laine & Lehtinen 2018, "Progressive growing of GANs for improved quality,
  stability, and variation"), which lets the discriminator see a collapsed batch.
- :class:`ProjectionHead`: the logit of the features ``phi = phi(x)`` of a discriminator,
  ``psi(phi) + <V y, phi>`` for a one-hot class ``y`` (Miyato & Koyama 2018, "cGANs with
  projection discriminator").
- :class:`MLPDiscriminator` and :class:`MLPGenerator`, the players for 2-D data.

Class conditioning follows the project convention (:func:`jgen.data.labels.class_context`): the
context is the one-hot class ``(n, C)``, None when ``num_classes = 0``. Spectral normalisation
(``spectral_norm=True``) uses :class:`~jgen.nets.spectral_norm.SNDense` with ``clip=False``,
``coeff = 1``, ``n_iter = 1`` (Miyato et al. 2018), its vectors in the ``"spectral"`` collection:
train with ``mutable=["spectral"]``.

The discriminators ``sow`` their features ``phi`` (the input of the head) as
``("intermediates", "features")``: ``apply(..., mutable=["intermediates"])`` returns them, e.g.
for feature matching (Salimans et al. 2016).
"""

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.checks import check_int
from jgen.nets.spectral_norm import SNDense
from jgen.types import Array


def leaky_relu(x: Array) -> Array:
    """``max(x, 0.2 x)``: the discriminator activation of Radford et al. 2016."""
    return nn.leaky_relu(x, negative_slope=0.2)


def minibatch_stddev(x: Array, group_size: int = 4) -> Array:
    """``x`` with one more feature: the mean over features of the within-group standard deviation.

    With ``G = min(group_size, n)`` and ``M = n / G``, example ``i`` belongs to group
    ``i mod M`` (the members ``i mod M, i mod M + M, ...``, Karras et al.'s reshape to
    ``(G, M, ...)``), and gets

        s_i = mean_{positions, features} sqrt(Var_group(x) + 1e-8)

    (population variance over the ``G`` members; the ``1e-8`` keeps the gradient finite when the
    members coincide), appended as a constant feature at every position: ``(n, ..., C) -> (n, ...,
    C + 1)``. The output of example ``i`` depends on the other members of its group, so a
    discriminator using it is not per-example (no per-example gradient penalty).

    Karras, Aila, Laine & Lehtinen 2018, "Progressive growing of GANs for improved quality,
    stability, and variation", section 3.

    Args:
      x: ``(n, ..., C)`` with ``n`` divisible by ``min(group_size, n)``.
      group_size: the group size ``G`` (``>= 1``; clipped to ``n``).

    Returns:
      ``(n, ..., C + 1)``.

    Raises:
      ValueError: when ``x`` has no feature axis, ``group_size`` is not a positive integer, or
        ``n`` is not divisible by the group size.
    """
    check_int("group_size", group_size)
    if jnp.ndim(x) < 2:
        raise ValueError(f"x must have shape (n, ..., C); got shape {jnp.shape(x)}")
    n = x.shape[0]
    g = min(group_size, n)
    if n % g:
        raise ValueError(
            f"the batch size must be divisible by the group size min(group_size, n) = {g}; "
            f"got batch size {n}"
        )
    groups = x.reshape(g, n // g, *x.shape[1:])
    std = jnp.sqrt(jnp.var(groups, axis=0) + 1e-8)  # (M, ..., C)
    s = jnp.mean(std.reshape(n // g, -1), axis=1)  # (M,)
    s = jnp.tile(s, g)  # example i -> group i mod M
    feature = jnp.broadcast_to(s.reshape(n, *[1] * (x.ndim - 1)), (*x.shape[:-1], 1))
    return jnp.concatenate([x, feature.astype(x.dtype)], axis=-1)


def check_context(context: Array | None, num_classes: int, n: int) -> None:
    """Raises ``ValueError`` unless ``context`` is a one-hot-shaped ``(n, num_classes)`` array
    when ``num_classes > 0``, and None when ``num_classes = 0``."""
    check_int("num_classes", num_classes, minimum=0)
    if not num_classes:
        if context is not None:
            raise ValueError(
                f"context must be None when num_classes=0; got shape {jnp.shape(context)}"
            )
        return
    if context is None or jnp.shape(context) != (n, num_classes):
        got = None if context is None else jnp.shape(context)
        raise ValueError(
            f"context must be the one-hot class of shape ({n}, {num_classes}) "
            f"(num_classes={num_classes}); got {'None' if got is None else f'shape {got}'}"
        )


def concat_context(z: Array, context: Array | None, num_classes: int) -> Array:
    """``[z, context]`` ``(n, k + C)`` (``z`` ``(n, k)`` itself when ``num_classes = 0``): the
    class conditioning of the generators."""
    if jnp.ndim(z) != 2:
        raise ValueError(f"z must have shape (n, k); got shape {jnp.shape(z)}")
    check_context(context, num_classes, z.shape[0])
    if not num_classes:
        return z
    return jnp.concatenate([z, context.astype(z.dtype)], axis=-1)


def dense_layer(features: int, spectral_norm: bool, *, use_bias: bool = True, name=None):
    """``nn.Dense``, or with ``spectral_norm`` Miyato et al.'s normalised
    ``SNDense(clip=False, coeff=1, n_iter=1)``."""
    if spectral_norm:
        return SNDense(features, coeff=1.0, n_iter=1, clip=False, use_bias=use_bias, name=name)
    return nn.Dense(features, use_bias=use_bias, name=name)


class ProjectionHead(nn.Module):
    """The logit ``psi(phi) + <V y, phi>`` of features ``phi`` ``(n, F)``.

    ``psi(phi) = phi . w + b`` (submodule ``"psi"``) is the unconditional logit; with
    ``num_classes = C > 0`` the one-hot class ``y`` ``(n, C)`` adds the projection ``<V y, phi>``
    with ``V y`` a bias-free dense map of ``y`` (submodule ``"embed"``, kernel ``(C, F)``: row
    ``c`` is class ``c``'s embedding). The class term is linear in ``y``: ``D(x, y) - D(x, y') =
    <V (y - y'), phi(x)>``. This is the form of the optimal logit ``log q(x, y) / p(x, y) =
    log q(y | x) / p(y | x) + log q(x) / p(x)`` (data ``q``, model ``p``) when both class
    posteriors are log-linear in ``phi(x)``.

    Miyato & Koyama 2018, "cGANs with projection discriminator".

    Attributes:
      num_classes: ``C`` (0: unconditional).
      spectral_norm: normalise ``psi`` and ``V`` too (both ``SNDense(clip=False)``).
    """

    num_classes: int = 0
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, phi: Array, context: Array | None = None) -> Array:
        """``(n, F), (n, C) or None -> (n,)``."""
        if jnp.ndim(phi) != 2:
            raise ValueError(f"phi must have shape (n, F); got shape {jnp.shape(phi)}")
        check_context(context, self.num_classes, phi.shape[0])
        out = dense_layer(1, self.spectral_norm, name="psi")(phi)[:, 0]
        if self.num_classes:
            embed = dense_layer(phi.shape[-1], self.spectral_norm, use_bias=False, name="embed")
            out = out + jnp.sum(embed(context.astype(phi.dtype)) * phi, axis=-1)
        return out


class MLPDiscriminator(nn.Module):
    """``x (n, d) -> logits (n,)``: dense layers with ``activation`` and a :class:`ProjectionHead`.

    With ``minibatch_std`` the statistic of :func:`minibatch_stddev` (group size 4) is appended
    to the input of the last hidden layer (to the features when there is no hidden layer), so it
    reaches the logit through a nonlinearity, as in Karras et al. 2018.

    Attributes:
      hidden_sizes: widths of the hidden layers; the last one is the feature width ``F``.
      spectral_norm: every dense layer, the head included, spectrally normalised.
      minibatch_std: append the minibatch standard deviation.
      num_classes: ``C > 0``: projection discriminator on the one-hot context ``(n, C)``.
      activation: the hidden nonlinearity (default LeakyReLU 0.2).
    """

    hidden_sizes: Sequence[int]
    spectral_norm: bool = False
    minibatch_std: bool = False
    num_classes: int = 0
    activation: Callable[[Array], Array] = leaky_relu

    @nn.compact
    def __call__(self, x: Array, context: Array | None = None) -> Array:
        """``(n, d), (n, C) or None -> (n,)``."""
        if jnp.ndim(x) != 2:
            raise ValueError(f"x must have shape (n, d); got shape {jnp.shape(x)}")
        h, last = x, len(self.hidden_sizes) - 1
        for i, width in enumerate(self.hidden_sizes):
            if self.minibatch_std and i == last:
                h = minibatch_stddev(h)
            h = self.activation(dense_layer(width, self.spectral_norm, name=f"dense_{i}")(h))
        if self.minibatch_std and last < 0:
            h = minibatch_stddev(h)
        self.sow("intermediates", "features", h)
        return ProjectionHead(self.num_classes, self.spectral_norm, name="head")(h, context)


class MLPGenerator(nn.Module):
    """``z (n, k) -> (n, out_size)``: ReLU dense layers and a linear output; with
    ``num_classes = C > 0`` the one-hot context ``(n, C)`` is concatenated to ``z``.

    Attributes:
      hidden_sizes: widths of the hidden layers.
      out_size: the data dimension.
      num_classes: ``C`` (0: unconditional).
    """

    hidden_sizes: Sequence[int]
    out_size: int
    num_classes: int = 0

    @nn.compact
    def __call__(self, z: Array, context: Array | None = None) -> Array:
        """``(n, k), (n, C) or None -> (n, out_size)``."""
        check_int("out_size", self.out_size)
        h = concat_context(z, context, self.num_classes)
        for i, width in enumerate(self.hidden_sizes):
            h = jax.nn.relu(nn.Dense(width, name=f"dense_{i}")(h))
        return nn.Dense(self.out_size, name="out")(h)
