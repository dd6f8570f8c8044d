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

Order- and connectivity-agnostic training (Germain et al. 2015, section 3.2; Uria, Murray &
Larochelle 2014 for NADE) trains one set of weights under ``M`` masks at once: mask ``m`` has its
own random ordering and hidden degrees drawn uniformly from
``[min m_{l-1}, d - 1]``, and each minibatch uses one of them (``OrderAgnosticMADE``, whose mask
index may be traced under ``jit``). Mask 0 is always the natural ordering with the deterministic
degrees, so a set of one mask is the plain MADE. Averaging the ``M`` conditionals at test time is
an ensemble over orderings.

Germain, Gregor, Murray & Larochelle 2015, "MADE: Masked Autoencoder for Distribution
Estimation"; Uria, Murray & Larochelle 2014, "A Deep and Tractable Density Estimator";
Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling 2016, "Improved Variational
Inference with Inverse Autoregressive Flow" (the context).
"""

from collections.abc import Callable, Sequence
from itertools import pairwise

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_choice, check_int, is_traced

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
    return _masks_from_degrees(made_degrees(ordering, hidden_sizes))


def _masks_from_degrees(degrees: Sequence[np.ndarray]) -> list[np.ndarray]:
    """MADE's masks from the degrees ``[m_0, ..., m_L]``, each ``(..., width)``: any leading
    axes (a stack of mask sets) broadcast."""
    masks = [later[..., None, :] >= earlier[..., :, None] for earlier, later in pairwise(degrees)]
    masks.append(degrees[0][..., None, :] > degrees[-1][..., :, None])
    return [m.astype(np.float32) for m in masks]


def mask_set_orderings(
    dim: int, num_masks: int, seed: int, order_agnostic: bool = True
) -> np.ndarray:
    """The orderings of a set of MADE masks (what an autoregressive sampler follows).

    ``ordering_0 = (0, 1, ..., d - 1)``; for ``m >= 1`` a uniformly random permutation of
    ``range(d)`` when ``order_agnostic`` (else the natural ordering). Mask ``m`` draws from its
    own stream ``default_rng((seed, m, 0))``, so a set of ``M`` masks is a prefix of a set of
    ``M' > M`` masks with the same seed.

    Germain, Gregor, Murray & Larochelle 2015, section 3.2 (order-agnostic training); Uria,
    Murray & Larochelle 2014.

    Args:
      dim: the number of variables ``d``.
      num_masks: the number of masks ``M``.
      seed: a non-negative integer seeding the draw.
      order_agnostic: whether masks after the first get random orderings.

    Returns:
      ``(M, d)`` integer array; row ``m`` lists the variables in the order mask ``m``
      generates them.

    Raises:
      ValueError: naming ``dim``, ``num_masks``, ``seed`` or ``order_agnostic`` when it is not
        a positive integer, a positive integer, a non-negative integer or a bool.
    """
    check_int("dim", dim)
    check_int("num_masks", num_masks)
    check_int("seed", seed, minimum=0)
    check_choice("order_agnostic", order_agnostic, (True, False))
    orderings = np.tile(np.arange(dim), (num_masks, 1))
    if order_agnostic:
        for m in range(1, num_masks):
            orderings[m] = np.random.default_rng((seed, m, 0)).permutation(dim)
    return orderings


def _random_hidden_degrees(
    dim: int, hidden_sizes: Sequence[int], rng: np.random.Generator
) -> list[np.ndarray]:
    """Hidden degrees ``m_l[k] ~ U{min m_{l-1}, ..., d - 1}`` (``min m_0 = 1``): a degree below
    the previous layer's minimum would leave the unit with no inputs."""
    top = max(dim - 1, 1)  # d = 1: the single degree 1, as in the deterministic cycling
    low, degrees = 1, []
    for width in hidden_sizes:
        layer = rng.integers(low, top + 1, size=width)
        degrees.append(layer)
        low = int(layer.min())
    return degrees


def made_mask_set_degrees(
    dim: int,
    hidden_sizes: Sequence[int],
    num_masks: int,
    seed: int,
    order_agnostic: bool = True,
    connectivity_agnostic: bool = True,
) -> list[np.ndarray]:
    """The degrees of every unit under each of ``M`` MADE masks.

    Mask ``m`` has the input degrees of ``ordering_m`` (``mask_set_orderings``). Mask 0 has the
    deterministic hidden degrees of ``made_degrees``; for ``m >= 1`` with
    ``connectivity_agnostic`` hidden layer ``l`` draws ``m_l[k]`` uniformly from
    ``{min_k' m_{l-1}[k'], ..., d - 1}`` (stream ``default_rng((seed, m, 1))``), else it keeps the
    deterministic cycling.

    Germain, Gregor, Murray & Larochelle 2015, section 3.2 (connectivity-agnostic training).

    Args:
      dim: the number of variables ``d``.
      hidden_sizes: the widths of the hidden layers.
      num_masks: the number of masks ``M``.
      seed: a non-negative integer seeding the draws.
      order_agnostic: whether masks after the first get random orderings.
      connectivity_agnostic: whether masks after the first get random hidden degrees.

    Returns:
      ``[m_0 (M, d), m_1 (M, h_1), ..., m_L (M, h_L)]`` as integer arrays.

    Raises:
      ValueError: naming the argument when ``dim``, ``num_masks`` or a hidden width is not a
        positive integer, ``seed`` not a non-negative one, or a flag not a bool.
    """
    orderings = mask_set_orderings(dim, num_masks, seed, order_agnostic)
    check_choice("connectivity_agnostic", connectivity_agnostic, (True, False))
    per_mask = []
    for m, ordering in enumerate(orderings):
        degrees = made_degrees(ordering, hidden_sizes)
        if m > 0 and connectivity_agnostic:
            degrees[1:] = _random_hidden_degrees(
                dim, hidden_sizes, np.random.default_rng((seed, m, 1))
            )
        per_mask.append(degrees)
    return [np.stack(layer) for layer in zip(*per_mask, strict=True)]


def made_mask_set(
    dim: int,
    hidden_sizes: Sequence[int],
    num_masks: int,
    seed: int,
    order_agnostic: bool = True,
    connectivity_agnostic: bool = True,
) -> tuple[list[np.ndarray], np.ndarray]:
    """``M`` MADE masks for order- and connectivity-agnostic training, stacked.

    Mask ``m`` is ``made_masks``'s rule applied to the degrees of ``made_mask_set_degrees``:
    ``M_l[m, a, b] = [m_l[m, b] >= m_{l-1}[m, a]]`` and
    ``M_out[m, a, i] = [m_0[m, i] > m_L[m, a]]``.
    Mask 0 is ``made_masks('natural', hidden_sizes)``, so ``num_masks=1`` is the plain MADE.

    Germain, Gregor, Murray & Larochelle 2015, section 3.2.

    Args:
      dim: the number of variables ``d``.
      hidden_sizes: the widths of the hidden layers (may be empty).
      num_masks: the number of masks ``M``.
      seed: a non-negative integer seeding the draws.
      order_agnostic: whether masks after the first get random orderings.
      connectivity_agnostic: whether masks after the first get random hidden degrees.

    Returns:
      ``(masks, orderings)``: ``masks`` is ``[(M, d, h_1), (M, h_1, h_2), ..., (M, h_L, d)]``
      float32 arrays of zeros and ones; ``orderings`` is ``(M, d)``, row ``m`` the generation
      order of mask ``m``.

    Raises:
      ValueError: as ``made_mask_set_degrees``.
    """
    degrees = made_mask_set_degrees(
        dim, hidden_sizes, num_masks, seed, order_agnostic, connectivity_agnostic
    )
    # Input degrees are 1 + the position in the ordering, so sorting them recovers it.
    return _masks_from_degrees(degrees), np.argsort(degrees[0], axis=1)


class MaskedDense(nn.Module):
    """``y = x @ (W * M) + b``: a dense layer whose kernel is multiplied by a fixed binary mask.

    Attributes:
      features: output width.
      mask: ``(fan_in, features)`` array of zeros and ones: numpy, or a JAX array (selected
        from a stack of masks by a traced index, as ``OrderAgnosticMADE`` does).
      use_bias: whether to add a bias.
      kernel_init: initializer of the unmasked kernel ``W``.
    """

    features: int
    mask: np.ndarray | jax.Array
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
        _check_made_inputs(x, context, self.num_params_per_dim)
        dim = x.shape[-1]
        masks = made_masks(resolve_ordering(self.ordering, dim), self.hidden_sizes)
        masks[-1] = np.repeat(masks[-1], self.num_params_per_dim, axis=-1)
        h = _masked_mlp(x, context, masks, self.activation, self.zero_init_output)
        return h.reshape(x.shape[0], dim, self.num_params_per_dim)


def _check_made_inputs(x: jax.Array, context: jax.Array | None, num_params_per_dim) -> None:
    """The shape checks of a MADE's ``__call__`` (its Raises section)."""
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d); got shape {x.shape}")
    if context is not None and (context.ndim != 2 or context.shape[0] != x.shape[0]):
        raise ValueError(
            f"context must have shape ({x.shape[0]}, c) (one row per row of x); "
            f"got shape {context.shape}"
        )
    check_int("num_params_per_dim", num_params_per_dim)


def _masked_mlp(
    x: jax.Array,
    context: jax.Array | None,
    layer_masks: Sequence,
    activation: Callable[[jax.Array], jax.Array],
    zero_init_output: bool,
) -> jax.Array:
    """``h_l = act(h_{l-1} @ (W_l * M_l) + c @ V_l + b_l)``, no activation on the last layer.

    Called from a compact ``__call__``: the layers belong to the caller, named
    ``MaskedDense_l`` and ``context_l``, so every MADE variant has the same parameter tree.

    Args:
      x: ``(n, d)``.
      context: ``(n, c)`` or None.
      layer_masks: ``(fan_in, fan_out)`` masks, numpy or traced; the last one's output columns
        already repeated per parameter.
      activation: the nonlinearity between layers.
      zero_init_output: initialise the output layer (and its context map) to zero.

    Returns:
      ``(n, fan_out of the last mask)``.
    """
    out_init = nn.initializers.zeros if zero_init_output else nn.initializers.lecun_normal()
    num_hidden = len(layer_masks) - 1
    h = x
    for layer, mask in enumerate(layer_masks):
        init = out_init if layer == num_hidden else nn.initializers.lecun_normal()
        width = mask.shape[-1]
        a = MaskedDense(width, mask, kernel_init=init)(h)
        if context is not None:
            # Initialised as the layer's kernel, so with zero_init_output the outputs still
            # start at zero.
            a = a + nn.Dense(width, use_bias=False, kernel_init=init, name=f"context_{layer}")(
                context
            )
        h = activation(a) if layer < num_hidden else a
    return h


def _mask_index(mask_index, num_masks: int):
    """``mask_index`` checked: a concrete integer in ``[0, M)`` or a traced integer scalar."""
    # Python bools are integers to numpy; an index of True is a bug, not mask 1.
    dtype = np.bool_ if isinstance(mask_index, bool) else getattr(mask_index, "dtype", None)
    if dtype is None:
        dtype = np.asarray(mask_index).dtype
    ok = np.shape(mask_index) == () and np.issubdtype(dtype, np.integer)
    if ok and not is_traced(mask_index):
        ok = 0 <= int(mask_index) < num_masks
    if not ok:
        raise ValueError(
            f"mask_index must be an integer scalar in [0, {num_masks}) (num_masks = {num_masks})"
            f"; got {mask_index!r}"
        )
    return mask_index


class OrderAgnosticMADE(nn.Module):
    """A MADE trained under ``num_masks`` masks at once: ``(x (n, d), context, mask_index) ->
    (n, d, num_params_per_dim)`` with output ``[:, i]`` a function of the inputs that mask
    ``mask_index`` generates before ``i`` (and of the context) only.

    The masks are ``made_mask_set(d, hidden_sizes, num_masks, mask_seed, ...)``: fixed by the
    seed, not parameters. A training step draws ``mask_index`` per minibatch (it may be traced:
    the masks are selected with ``jnp.take``); a sampler follows ``orderings(d)[mask_index]``.
    The parameters are those of ``MADE`` with the same widths, and ``num_masks=1`` computes
    exactly what ``MADE(ordering='natural')`` computes.

    Germain, Gregor, Murray & Larochelle 2015, section 3.2; Uria, Murray & Larochelle 2014.

    Attributes:
      hidden_sizes: widths of the masked hidden layers.
      num_params_per_dim: outputs per variable, e.g. 1 for a Bernoulli logit.
      num_masks: the number of masks ``M``.
      mask_seed: the non-negative seed of the masks.
      order_agnostic: whether masks after the first get random orderings.
      connectivity_agnostic: whether masks after the first get random hidden degrees.
      activation: the nonlinearity between layers.
      zero_init_output: initialise the output layer to zero.
    """

    hidden_sizes: Sequence[int]
    num_params_per_dim: int = 2
    num_masks: int = 8
    mask_seed: int = 0
    order_agnostic: bool = True
    connectivity_agnostic: bool = True
    activation: Callable[[jax.Array], jax.Array] = nn.gelu
    zero_init_output: bool = False

    def orderings(self, dim: int) -> np.ndarray:
        """``(num_masks, dim)``: row ``m`` is the generation order of mask ``m``."""
        return mask_set_orderings(dim, self.num_masks, self.mask_seed, self.order_agnostic)

    @nn.compact
    def __call__(
        self, x: jax.Array, context: jax.Array | None = None, mask_index: int | jax.Array = 0
    ) -> jax.Array:
        """The autoregressive outputs of ``x`` under mask ``mask_index``.

        Args:
          x: ``(n, d)`` the ordered variables.
          context: ``(n, c)`` or None; enters every layer as in ``MADE``.
          mask_index: which mask: a Python integer in ``[0, num_masks)`` or a traced integer
            scalar (under ``jit``; a traced index outside ``[-num_masks, num_masks)`` gives NaN
            outputs, ``jnp.take``'s fill mode, rather than a silently clipped mask).

        Returns:
          ``(n, d, num_params_per_dim)``.

        Raises:
          ValueError: naming ``x``, ``context``, ``num_params_per_dim``, ``mask_index`` or an
            argument of ``made_mask_set`` when it is malformed.
        """
        _check_made_inputs(x, context, self.num_params_per_dim)
        dim = x.shape[-1]
        masks, _ = made_mask_set(
            dim,
            self.hidden_sizes,
            self.num_masks,
            self.mask_seed,
            self.order_agnostic,
            self.connectivity_agnostic,
        )
        masks[-1] = np.repeat(masks[-1], self.num_params_per_dim, axis=-1)
        index = _mask_index(mask_index, self.num_masks)
        chosen = [jnp.take(m, index, axis=0, mode="fill") for m in masks]
        h = _masked_mlp(x, context, chosen, self.activation, self.zero_init_output)
        return h.reshape(x.shape[0], dim, self.num_params_per_dim)
