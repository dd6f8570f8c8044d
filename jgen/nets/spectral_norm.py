"""Spectral normalisation of dense and convolution kernels by power iteration.

    v <- normalize(W u),  u <- normalize(W^T v),  sigma = v^T W u  ~  ||W||_2

for a kernel ``W`` of shape ``(d_in, d_out)`` (the layer computes ``x @ W``). ``u`` and ``v`` are
held constant under differentiation, so ``d sigma / d W = v u^T``, the gradient of the largest
singular value once the iteration has converged.

Two rescalings of the kernel use the estimate (the ``clip`` attribute of the layers):

    clip=True:   W_hat = W min(1, coeff / sigma)   norm min(||W||_2, coeff): only shrinks
    clip=False:  W_hat = W coeff / sigma            norm exactly coeff

The first keeps an invertible residual block contractive without shrinking layers that already
are (Behrmann, Grathwohl, Chen, Duvenaud & Jacobsen 2019, "Invertible residual networks"); the
second is the GAN discriminator's normalisation (Miyato, Kataoka, Koyama & Yoshida 2018,
"Spectral normalization for generative adversarial networks").

:class:`SNConv` normalises a convolution kernel ``K`` of shape ``(kh, kw, c_in, c_out)`` by the
spectral norm of its reshape ``W = K.reshape(kh kw c_in, c_out)``, as Miyato et al. do. That is
not the operator norm of the convolution ``x -> K * x``; with strides ``(s_h, s_w)``

    ||W||_2  <=  ||K *||_2  <=  sqrt(ceil(kh / s_h) ceil(kw / s_w)) ||W||_2.

Lower bound (for inputs large enough to hold one whole patch at a strided position): an input
equal to the top left singular vector of ``W`` laid out as that patch gives an output of norm
``||W||_2`` at that position alone. Upper bound: every output position is a
patch times ``W``, and every input pixel lies in at most ``ceil(kh / s_h) ceil(kw / s_w)`` patches.
A normalised ``3 x 3`` stride-1 layer is therefore ``L``-Lipschitz with ``coeff <= L <= 3 coeff``.
"""

import numbers
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.checks import check_int
from jgen.types import Array


def _normalize(a: Array) -> Array:
    return a / jnp.maximum(jnp.linalg.norm(a), jnp.finfo(a.dtype).tiny)


def spectral_normalize(kernel: Array, u: Array, n_iter: int) -> tuple[Array, Array, Array]:
    """``(W / sigma, u_new, sigma)`` with ``sigma`` the power-iteration estimate of ``||W||_2``.

    The estimate is a lower bound of ``||W||_2`` whose error decays like
    ``(sigma_2 / sigma_1)^(2 n_iter)`` (ratio of the two largest singular values); warm-starting
    ``u`` from the previous call (Miyato et al.: one iteration per training step) keeps it
    converged while ``W`` changes slowly.

    Args:
      kernel: ``(d_in, d_out)`` the dense kernel ``W``.
      u: ``(d_out,)`` the current estimate of the top right singular vector (any nonzero start).
      n_iter: number of power iterations, ``>= 1``.

    Returns:
      ``kernel / sigma`` of shape ``(d_in, d_out)``, the updated ``u`` of shape ``(d_out,)``
      (gradient stopped), and ``sigma`` of shape ``()``.
    """
    kernel, u = jnp.asarray(kernel), jnp.asarray(u)
    if kernel.ndim != 2:
        raise ValueError(f"kernel must have shape (d_in, d_out); got shape {kernel.shape}")
    if u.shape != kernel.shape[1:]:
        raise ValueError(f"u must have shape ({kernel.shape[1]},); got shape {u.shape}")
    check_int("n_iter", n_iter)
    w = jax.lax.stop_gradient(kernel)

    def step(_, uv):
        u, _ = uv
        v = _normalize(w @ u)
        return _normalize(w.T @ v), v

    u, v = jax.lax.fori_loop(0, n_iter, step, (_normalize(u), jnp.zeros(kernel.shape[0], w.dtype)))
    u, v = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
    sigma = v @ kernel @ u
    return kernel / sigma, u, sigma


def _normalized_kernel(module: nn.Module, kernel: Array) -> Array:
    """The kernel ``(d_in, d_out)`` rescaled by ``module``'s spectral normalisation.

    Owns the power-iteration vector ``u`` ``(d_out,)``: the variable ``("spectral", "u")`` of
    ``module``, drawn from the ``params`` key at ``init``, iterated ``module.n_iter`` times from
    its stored value at every call and written back only where ``"spectral"`` is mutable. Returns
    ``W min(1, coeff / sigma)`` when ``module.clip``, else ``W coeff / sigma``. Call it from a
    compact method of ``module``, which must have the attributes ``coeff``, ``clip`` and
    ``n_iter``.
    """
    check_int("n_iter", module.n_iter)
    if not 0.0 < module.coeff:
        raise ValueError(f"coeff must be > 0; got {module.coeff!r}")
    if not isinstance(module.clip, bool):
        raise ValueError(f"clip must be a bool; got {module.clip!r}")
    u_var = module.variable(
        "spectral",
        "u",
        lambda: jax.random.normal(module.make_rng("params"), kernel.shape[1:], kernel.dtype),
    )
    _, u_new, sigma = spectral_normalize(kernel, u_var.value, module.n_iter)
    if module.is_mutable_collection("spectral"):
        u_var.value = u_new
    scale = module.coeff / sigma
    return kernel * (jnp.minimum(1.0, scale) if module.clip else scale)


class SNDense(nn.Module):
    """A dense layer ``x @ W_hat + b`` with a spectrally normalised kernel: ``W_hat = W min(1,
    coeff / sigma(W))`` (``clip=True``, the default: Lipschitz constant at most ``coeff``, for
    invertible residual blocks) or ``W_hat = W coeff / sigma(W)`` (``clip=False``: exactly
    ``coeff``, Miyato et al.'s GAN discriminator layer), once ``sigma`` has converged.

    The power-iteration vector ``u`` lives in the ``"spectral"`` collection, created at ``init``
    from the ``params`` key and already iterated ``n_iter`` times there. Every call runs
    ``n_iter`` iterations from the stored ``u``; it writes the result back only when
    ``"spectral"`` is mutable (``apply(..., mutable=["spectral"])``). So there are two ways to use
    it: training with ``mutable=["spectral"]`` and a small ``n_iter`` (the warm start of Miyato
    et al.), or pure calls with ``n_iter`` large enough to converge from the stored ``u``. Power
    iteration underestimates ``sigma``, so the bound ``coeff`` holds up to that error.

    Attributes:
      features: output width ``d_out``.
      coeff: the Lipschitz bound, in ``(0, 1)`` for invertible residual blocks.
      n_iter: power iterations per call.
      clip: True: ``W min(1, coeff / sigma)``; False: ``W coeff / sigma``.
      use_bias: whether to add the bias ``b``.
    """

    features: int
    coeff: float = 0.9
    n_iter: int = 5
    clip: bool = True
    use_bias: bool = True

    @nn.compact
    def weights(self, in_features: int) -> tuple[Array, Array | None]:
        """``(W_hat, b)`` of shapes ``(in_features, features)`` and ``(features,)`` (``b`` is
        None without ``use_bias``)."""
        check_int("features", self.features)
        check_int("in_features", in_features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (in_features, self.features))
        bias = (
            self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else None
        )
        return _normalized_kernel(self, kernel), bias

    def __call__(self, x: Array) -> Array:
        """``x @ W_hat + b`` for ``x`` of shape ``(..., in_features)``."""
        kernel, bias = self.weights(x.shape[-1])
        y = x @ kernel
        return y if bias is None else y + bias


def _pair(name: str, value: int | Sequence[int]) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, numbers.Integral) else tuple(value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints; got {value!r}")
    for v in pair:
        check_int(name, v)
    return pair


def _padding(padding: str | int | Sequence[tuple[int, int]]):
    if isinstance(padding, str):
        if padding not in ("SAME", "VALID"):
            raise ValueError(f"padding must be 'SAME', 'VALID', an int or pairs; got {padding!r}")
        return padding
    if isinstance(padding, numbers.Integral):
        check_int("padding", padding, minimum=0)
        return ((padding, padding), (padding, padding))
    pairs = tuple(tuple(p) for p in padding)
    if len(pairs) != 2 or any(len(p) != 2 for p in pairs):
        raise ValueError(f"padding must be 'SAME', 'VALID', an int or 2 pairs; got {padding!r}")
    return pairs


class SNConv(nn.Module):
    """A 2-D convolution (cross-correlation, as every deep learning library) ``x * K_hat + b``
    with ``x`` ``(n, H, W, c_in)`` and the kernel ``K`` ``(kh, kw, c_in, c_out)`` normalised by the
    spectral norm of ``W = K.reshape(kh kw c_in, c_out)``: ``K_hat = K coeff / ||W||_2``
    (``clip=False``, the default, Miyato et al. 2018) or ``K min(1, coeff / ||W||_2)``
    (``clip=True``). The convolution's own operator norm then lies between ``coeff`` and
    ``sqrt(ceil(kh / s_h) ceil(kw / s_w)) coeff`` (module docstring): the reshape bounds it, it
    does not fix it.

    ``u`` ``(c_out,)`` lives in the ``"spectral"`` collection and is carried as in
    :class:`SNDense`.

    Attributes:
      features: output channels ``c_out``.
      kernel_size: ``k`` or ``(kh, kw)``.
      strides: ``s`` or ``(s_h, s_w)``.
      padding: ``"SAME"`` (output ``ceil(H / s_h)``), ``"VALID"``, an int ``p`` (``p`` zeros on
        every side) or ``((top, bottom), (left, right))``.
      coeff: the target norm of the reshaped kernel.
      clip: True: ``K min(1, coeff / sigma)``; False: ``K coeff / sigma``.
      n_iter: power iterations per call.
    """

    features: int
    kernel_size: int | Sequence[int]
    strides: int | Sequence[int] = 1
    padding: str | int | Sequence[tuple[int, int]] = "SAME"
    coeff: float = 1.0
    clip: bool = False
    n_iter: int = 1

    @nn.compact
    def weights(self, in_features: int) -> tuple[Array, Array]:
        """``(K_hat, b)`` of shapes ``(kh, kw, in_features, features)`` and ``(features,)``."""
        check_int("features", self.features)
        check_int("in_features", in_features)
        shape = (*_pair("kernel_size", self.kernel_size), in_features, self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        flat = _normalized_kernel(self, kernel.reshape(-1, self.features))
        return flat.reshape(shape), bias

    def __call__(self, x: Array) -> Array:
        """``x * K_hat + b``: ``(n, H, W, in_features) -> (n, H', W', features)``."""
        if jnp.ndim(x) != 4:
            raise ValueError(f"x must have shape (n, H, W, C); got shape {jnp.shape(x)}")
        kernel, bias = self.weights(x.shape[-1])
        dtype = jnp.result_type(x, kernel)
        y = jax.lax.conv_general_dilated(
            x.astype(dtype),
            kernel.astype(dtype),
            window_strides=_pair("strides", self.strides),
            padding=_padding(self.padding),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        return y + bias
