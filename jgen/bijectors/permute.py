"""A fixed permutation of the last axis, placed between autoregressive layers so that each
variable is conditioned on different predecessors in successive layers.

    y[..., j] = x[..., perm[j]],    x[..., perm[j]] = y[..., j],    log|det dy/dx| = 0.

Papamakarios, Pavlakou & Murray 2017, "Masked Autoregressive Flow for Density Estimation".
"""

from collections.abc import Sequence

import distrax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_int
from jgen.types import Array


def reverse_permutation(dim: int) -> np.ndarray:
    """``(d - 1, ..., 1, 0)``: the permutation that reverses ``dim`` variables."""
    check_int("dim", dim)
    return np.arange(dim)[::-1].copy()


class Permute(distrax.Bijector):
    """``y = x[..., perm]``: a volume-preserving permutation of the last axis.

    Args:
      permutation: a permutation of ``range(d)``; output ``j`` is input ``permutation[j]``.

    Raises:
      ValueError: naming ``permutation`` when it is not a permutation of ``range(d)``.
    """

    def __init__(self, permutation: Sequence[int]):
        perm = np.asarray(permutation)
        if (
            perm.ndim != 1
            or perm.size == 0
            or not np.issubdtype(perm.dtype, np.integer)
            or not np.array_equal(np.sort(perm), np.arange(perm.size))
        ):
            raise ValueError(f"permutation must be a permutation of range(d); got {permutation!r}")
        super().__init__(event_ndims_in=1, is_constant_jacobian=True)
        self._perm = perm
        self._inverse_perm = np.argsort(perm)

    @property
    def permutation(self) -> np.ndarray:
        return self._perm

    def _check(self, name: str, x: Array) -> None:
        if x.ndim < 1 or x.shape[-1] != self._perm.size:
            raise ValueError(
                f"{name} must have last axis of size {self._perm.size}; got shape {x.shape}"
            )

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        self._check("x", x)
        return x[..., self._perm], jnp.zeros(x.shape[:-1], x.dtype)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        self._check("y", y)
        return y[..., self._inverse_perm], jnp.zeros(y.shape[:-1], y.dtype)
