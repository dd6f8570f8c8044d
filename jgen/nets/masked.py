"""MADE: masked autoencoders whose outputs are autoregressive in their inputs.

Every unit gets a degree. With an ordering that lists the ``d`` inputs in the order they are
generated, input ``ordering[j]`` has degree ``j + 1``; hidden unit ``k`` of any layer has degree
``1 + (k mod (d - 1))`` (the deterministic variant of the paper's random draw from ``1..d-1``);
output ``i`` has the degree of input ``i``. A connection is kept when

    hidden <- previous layer:  m(hidden) >= m(previous)
    output <- last hidden:     m(output) >  m(hidden)

so output ``i`` depends only on the inputs of degree ``< m(i)``: those generated before ``i``.

An optional context ``c`` (a conditioning vector per example) enters every layer, the output
layer included, through an unmasked dense map: ``a_l = h_{l-1} @ (W_l * M_l) + c @ V_l + b_l``.
``c`` is not one of the ordered variables, so any unit may depend on it and the autoregressive
property in ``x`` is kept; feeding the output layer too makes the first variable in the ordering,
which sees no input, a function of ``c``. The IAF of Kingma et al. 2016 conditions its
autoregressive networks on the encoder's context ``h`` this way (their first layer; every layer
here).

Germain, Gregor, Murray & Larochelle 2015, "MADE: Masked Autoencoder for Distribution
Estimation"; Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling 2016, "Improved Variational
Inference with Inverse Autoregressive Flow" (the context).
"""

from collections.abc import Callable, Sequence
from itertools import pairwise

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_int

Ordering = str | Sequence[int]


def resolve_ordering(ordering: Ordering, dim: int) -> np.ndarray:
    """The ordering as an integer permutation of ``range(dim)``.

    Args:
      ordering: ``'natural'`` for ``0, 1, ..., dim - 1``, or a permutation of ``range(dim)``
        listing the variables in the order they are generated.
      dim: the number of variables ``d``.

    Raises:
      ValueError: naming ``ordering`` when it is not ``'natural'`` or a permutation of
        ``range(dim)``.
    """
    check_int("dim", dim)
    if isinstance(ordering, str):
        if ordering != "natural":
            raise ValueError(
                f"ordering must be 'natural' or a permutation of range({dim}); got {ordering!r}"
            )
        return np.arange(dim)
    order = np.asarray(ordering)
    if (
        order.shape != (dim,)
        or not np.issubdtype(order.dtype, np.integer)
        or not np.array_equal(np.sort(order), np.arange(dim))
    ):
        raise ValueError(f"ordering must be a permutation of range({dim}); got {ordering!r}")
    return order


def made_degrees(ordering: Sequence[int], hidden_sizes: Sequence[int]) -> list[np.ndarray]:
    """The degrees of the input units and of every hidden layer.

    ``m_0[ordering[j]] = j + 1`` and ``m_l[k] = 1 + (k mod max(d - 1, 1))`` for hidden layer
    ``l``; cycling uses every degree ``1..d-1`` once a layer has at least ``d - 1`` units, so
    every allowed dependence is present.

    Args:
      ordering: a permutation of ``range(d)``: the generation order of the variables.
      hidden_sizes: the widths of the hidden layers.

    Returns:
      ``[m_0 (d,), m_1 (h_1,), ..., m_L (h_L,)]`` as integer arrays.
    """
    order = np.asarray(ordering)
    dim = len(order)
    order = resolve_ordering(order, dim)
    for i, width in enumerate(hidden_sizes):
        check_int(f"hidden_sizes[{i}]", width)
    inputs = np.empty(dim, dtype=np.int64)
    inputs[order] = np.arange(1, dim + 1)
    cycle = max(dim - 1, 1)
    return [inputs] + [1 + np.arange(width) % cycle for width in hidden_sizes]


def made_masks(ordering: Sequence[int], hidden_sizes: Sequence[int]) -> list[np.ndarray]:
    """The binary masks of MADE's layers, as ``(fan_in, fan_out)`` kernels.

    ``M_l[a, b] = [m_l[b] >= m_{l-1}[a]]`` for the hidden layers and
    ``M_out[a, i] = [m_0[i] > m_L[a]]`` for the output layer (one output per variable; a layer
    with several parameters per variable repeats its columns).

    Args:
      ordering: a permutation of ``range(d)``: the generation order of the variables.
      hidden_sizes: the widths of the hidden layers (may be empty: a single masked layer).

    Returns:
      ``len(hidden_sizes) + 1`` float32 arrays of shapes ``(d, h_1), ..., (h_L, d)``.
    """
    degrees = made_degrees(ordering, hidden_sizes)
    masks = [(later[None, :] >= earlier[:, None]) for earlier, later in pairwise(degrees)]
    masks.append(degrees[0][None, :] > degrees[-1][:, None])
    return [m.astype(np.float32) for m in masks]


class MaskedDense(nn.Module):
    """``y = x @ (W * M) + b``: a dense layer whose kernel is multiplied by a fixed binary mask.

    Attributes:
      features: output width.
      mask: ``(fan_in, features)`` array of zeros and ones.
      use_bias: whether to add a bias.
      kernel_init: initializer of the unmasked kernel ``W``.
    """

    features: int
    mask: np.ndarray
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (x.shape[-1], self.features)
        if np.shape(self.mask) != shape:
            raise ValueError(f"mask must have shape {shape}; got shape {np.shape(self.mask)}")
        kernel = self.param("kernel", self.kernel_init, shape)
        y = x @ (kernel * jnp.asarray(self.mask, kernel.dtype))
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y


def alternating_orderings(dim: int, num_layers: int) -> list:
    """MADE orderings for a stack: natural, reversed, natural, ... (the MAF paper's reversals)."""
    return ["natural" if i % 2 == 0 else tuple(range(dim))[::-1] for i in range(num_layers)]


class MADE(nn.Module):
    """``(x (n, d), context (n, c) | None) -> (n, d, num_params_per_dim)`` with output ``[:, i]``
    a function of the inputs generated before ``i`` (and of the context) only (module
    docstring).

    Attributes:
      hidden_sizes: widths of the masked hidden layers (at least ``d - 1`` each to allow every
        dependence).
      num_params_per_dim: outputs per variable, e.g. 2 for a shift and a log-scale.
      ordering: ``'natural'`` or a permutation of ``range(d)`` listing the generation order.
      activation: the nonlinearity between layers.
      zero_init_output: initialise the output layer to zero, so a flow built on MADE starts at
        the identity.
    """

    hidden_sizes: Sequence[int]
    num_params_per_dim: int = 2
    ordering: Ordering = "natural"
    activation: Callable[[jax.Array], jax.Array] = nn.gelu
    zero_init_output: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, context: jax.Array | None = None) -> jax.Array:
        """The autoregressive outputs of ``x``.

        Args:
          x: ``(n, d)`` the ordered variables.
          context: ``(n, c)`` or None; added to every layer's pre-activation through an
            unmasked dense map without bias (``context_l``, initialised as that layer's kernel,
            so with ``zero_init_output`` the outputs still start at zero). Without it a MADE has
            exactly the parameters and outputs it has without context support.

        Returns:
          ``(n, d, num_params_per_dim)``.

        Raises:
          ValueError: naming ``x`` or ``context`` when their shapes are not ``(n, d)`` and
            ``(n, c)``, or ``num_params_per_dim`` when it is not a positive integer.
        """
        if x.ndim != 2:
            raise ValueError(f"x must have shape (n, d); got shape {x.shape}")
        if context is not None and (context.ndim != 2 or context.shape[0] != x.shape[0]):
            raise ValueError(
                f"context must have shape ({x.shape[0]}, c) (one row per row of x); "
                f"got shape {context.shape}"
            )
        check_int("num_params_per_dim", self.num_params_per_dim)
        dim = x.shape[-1]
        order = resolve_ordering(self.ordering, dim)
        masks = made_masks(order, self.hidden_sizes)
        per_dim = self.num_params_per_dim
        # Output column i * per_dim + p is parameter p of variable i: repeat each mask column.
        out_mask = np.repeat(masks[-1], per_dim, axis=1)
        out_init = (
            nn.initializers.zeros if self.zero_init_output else nn.initializers.lecun_normal()
        )
        widths = [*self.hidden_sizes, dim * per_dim]
        layer_masks = [*masks[:-1], out_mask]
        inits = [nn.initializers.lecun_normal()] * len(self.hidden_sizes) + [out_init]
        h = x
        for layer, (width, mask, init) in enumerate(zip(widths, layer_masks, inits, strict=True)):
            a = MaskedDense(width, mask, kernel_init=init)(h)
            if context is not None:
                context_map = nn.Dense(
                    width, use_bias=False, kernel_init=init, name=f"context_{layer}"
                )
                a = a + context_map(context)
            h = self.activation(a) if layer < len(self.hidden_sizes) else a
        return h.reshape(x.shape[0], dim, per_dim)
