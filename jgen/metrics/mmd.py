"""Maximum mean discrepancy between two samples (Gretton, Borgwardt, Rasch, Schölkopf & Smola 2012,
"A kernel two-sample test", JMLR 13).

A kernel is a function ``kernel(x (n, *event), y (m, *event)) -> (n, m)``, the Gram matrix
``K_ij = k(x_i, y_j)``; events are flattened, so images and vectors are handled alike.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_int, check_positive
from jgen.types import Array

Kernel = Callable[[Array, Array], Array]


def _flatten(name: str, x: Array) -> Array:
    if jnp.ndim(x) < 1:
        raise ValueError(f"{name} must be a batch of shape (n, *event); got shape {jnp.shape(x)}")
    x = jnp.asarray(x)
    return x.reshape(x.shape[0], -1)


def _flatten_pair(x: Array, y: Array) -> tuple[Array, Array]:
    x, y = _flatten("x", x), _flatten("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must have the same event size; got {x.shape[1]} and {y.shape[1]}"
        )
    return x, y


def squared_distances(x: Array, y: Array) -> Array:
    """``D_ij = ||x_i - y_j||^2`` for batches ``x (n, *event)``, ``y (m, *event)`` -> ``(n, m)``.

    Uses ``|x|^2 + |y|^2 - 2 x.y`` (one matrix product) and clips the rounding error below zero.
    """
    x, y = _flatten_pair(x, y)
    sq = jnp.sum(x**2, -1)[:, None] + jnp.sum(y**2, -1)[None, :] - 2.0 * x @ y.T
    return jnp.maximum(sq, 0.0)


def gaussian_kernel(bandwidth: float | Array) -> Kernel:
    """The Gaussian (RBF) kernel ``k(x, y) = exp(-||x - y||^2 / (2 h^2))`` with bandwidth ``h``.

    It is characteristic, so the MMD it defines is zero only when the two distributions are equal
    (Gretton et al. 2012, Sec. 2); :func:`median_heuristic` gives the usual ``h``.

    Args:
      bandwidth: ``h > 0`` (a scalar, possibly traced).

    Returns:
      ``kernel(x (n, *event), y (m, *event)) -> (n, m)``.
    """
    check_positive("bandwidth", bandwidth)

    def kernel(x: Array, y: Array) -> Array:
        return jnp.exp(-squared_distances(x, y) / (2.0 * bandwidth**2))

    return kernel


def imq_kernel(c: float | Array = 1.0) -> Kernel:
    """The inverse multiquadric kernel ``k(x, y) = (c^2 + ||x - y||^2)^(-1/2)``.

    Like the Gaussian kernel it is characteristic, so it defines an MMD that separates
    distributions (Gretton et al. 2012); its heavy tails keep it sensitive to distant modes where a
    Gaussian kernel vanishes (Gorham & Mackey 2017, "Measuring sample quality with kernels").

    Args:
      c: ``c > 0``; ``k(x, x) = 1 / c``.

    Returns:
      ``kernel(x (n, *event), y (m, *event)) -> (n, m)``.
    """
    check_positive("c", c)

    def kernel(x: Array, y: Array) -> Array:
        return jax.lax.rsqrt(c**2 + squared_distances(x, y))

    return kernel


def polynomial_kernel(degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> Kernel:
    """The polynomial kernel ``k(x, y) = (gamma x.y + coef0)^degree``, as in scikit-learn.

    With the defaults, ``gamma = 1 / d`` for events of ``d`` (flattened) values, it is the kernel
    of the Kernel Inception Distance, ``(x.y / d + 1)^3`` (Binkowski, Sutherland, Arbel & Gretton
    2018, "Demystifying MMD GANs"): it compares the first three moments of the two distributions,
    is not characteristic, and needs no bandwidth.

    Args:
      degree: an integer ``>= 1``.
      gamma: ``> 0``, or ``None`` for ``1 / d``.
      coef0: the constant ``c >= 0``.

    Returns:
      ``kernel(x (n, *event), y (m, *event)) -> (n, m)``.

    Raises:
      ValueError: when ``degree``, ``gamma`` or ``coef0`` is out of range.
    """
    check_int("degree", degree, minimum=1)
    check_positive("gamma", gamma)
    check_positive("coef0", coef0, allow_zero=True)

    def kernel(x: Array, y: Array) -> Array:
        x, y = _flatten_pair(x, y)
        scale = 1.0 / x.shape[1] if gamma is None else gamma
        return (scale * (x @ y.T) + coef0) ** degree

    return kernel


def median_heuristic(x: Array) -> Array:
    """The median of the pairwise distances ``||x_i - x_j||``, ``i < j``: the usual bandwidth of a
    Gaussian kernel (Gretton et al. 2012, Sec. 8).

    Args:
      x: a batch ``(n, *event)`` with ``n >= 2``.

    Returns:
      A scalar.
    """
    n = jnp.shape(x)[0] if jnp.ndim(x) else 0
    if n < 2:
        raise ValueError(f"x must hold at least 2 examples; got shape {jnp.shape(x)}")
    rows, cols = np.triu_indices(n, k=1)
    return jnp.median(jnp.sqrt(squared_distances(x, x)[rows, cols]))


def mmd2_unbiased(x: Array, y: Array, kernel: Kernel) -> Array:
    """The unbiased estimate of the squared maximum mean discrepancy (Gretton et al. 2012, Eq. 3).

    For ``x_1..x_n ~ p`` and ``y_1..y_m ~ q``::

        MMD_u^2 = 1/(n(n-1)) sum_{i != j} k(x_i, x_j) + 1/(m(m-1)) sum_{i != j} k(y_i, y_j)
                  - 2/(n m) sum_{i, j} k(x_i, y_j),

    whose expectation is ``MMD^2(p, q) = ||mu_p - mu_q||_H^2``, zero when ``p = q``; being
    unbiased, it can be negative.

    Args:
      x: a sample ``(n, *event)``, ``n >= 2``.
      y: a sample ``(m, *event)``, ``m >= 2``, of the same event shape.
      kernel: ``kernel(a, b) -> (len(a), len(b))``, e.g. :func:`gaussian_kernel`.

    Returns:
      A scalar.
    """
    for name, v in (("x", x), ("y", y)):
        if jnp.ndim(v) < 1 or jnp.shape(v)[0] < 2:
            raise ValueError(
                f"{name} must be a batch (n, *event) with n >= 2; got shape {jnp.shape(v)}"
            )
    if jnp.shape(x)[1:] != jnp.shape(y)[1:]:
        raise ValueError(
            f"x and y must have the same event shape; got {jnp.shape(x)[1:]} and {jnp.shape(y)[1:]}"
        )
    n, m = jnp.shape(x)[0], jnp.shape(y)[0]

    def off_diagonal_mean(k: Array, size: int) -> Array:
        return (jnp.sum(k) - jnp.sum(jnp.diagonal(k))) / (size * (size - 1))

    return (
        off_diagonal_mean(kernel(x, x), n)
        + off_diagonal_mean(kernel(y, y), m)
        - 2.0 * jnp.mean(kernel(x, y))
    )
