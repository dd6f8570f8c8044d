"""Spectral normalisation of dense kernels by power iteration.

    v <- normalize(W u),  u <- normalize(W^T v),  sigma = v^T W u  ~  ||W||_2

for a kernel ``W`` of shape ``(d_in, d_out)`` (the layer computes ``x @ W``). ``u`` and ``v`` are
held constant under differentiation, so ``d sigma / d W = v u^T``, the gradient of the largest
singular value once the iteration has converged.

Miyato, Kataoka, Koyama & Yoshida 2018, "Spectral normalization for generative adversarial
networks"; the soft rescale ``W * min(1, coeff / sigma)`` of :class:`SNDense` is from Behrmann,
Grathwohl, Chen, Duvenaud & Jacobsen 2019, "Invertible residual networks".
"""

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


class SNDense(nn.Module):
    """A dense layer ``x @ W_hat + b`` with ``W_hat = W min(1, coeff / sigma(W))``, so that its
    Lipschitz constant (in the Euclidean norm) is at most ``coeff`` once ``sigma`` has converged.

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
    """

    features: int
    coeff: float = 0.9
    n_iter: int = 5

    def _check(self) -> None:
        check_int("features", self.features)
        check_int("n_iter", self.n_iter)
        if not 0.0 < self.coeff:
            raise ValueError(f"coeff must be > 0; got {self.coeff!r}")

    @nn.compact
    def weights(self, in_features: int) -> tuple[Array, Array]:
        """``(W_hat, b)`` of shapes ``(in_features, features)`` and ``(features,)``."""
        self._check()
        check_int("in_features", in_features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (in_features, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        u_var = self.variable(
            "spectral",
            "u",
            lambda: jax.random.normal(self.make_rng("params"), (self.features,), kernel.dtype),
        )
        _, u_new, sigma = spectral_normalize(kernel, u_var.value, self.n_iter)
        if self.is_mutable_collection("spectral"):
            u_var.value = u_new
        return kernel * jnp.minimum(1.0, self.coeff / sigma), bias

    def __call__(self, x: Array) -> Array:
        """``x @ W_hat + b`` for ``x`` of shape ``(..., in_features)``."""
        kernel, bias = self.weights(x.shape[-1])
        return x @ kernel + bias
