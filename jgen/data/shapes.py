"""A small dSprites-like dataset with known generative factors, rendered procedurally.

Modelled on dSprites (Matthey, Higgins, Hassabis & Lerchner 2017, "dSprites: Disentanglement
testing sprites dataset"): one white shape on a black ``32 x 32`` canvas, and every combination of
five discrete factors appears exactly once, so the disentanglement metrics
(:mod:`jgen.metrics.disentanglement`) can fix one factor and resample the others.

* ``shape`` (3 values): 0 square, 1 ellipse (axes 2:1), 2 heart;
* ``scale`` (4): ``linspace(0.5, 1, 4)``, the circumradius is ``7 * scale`` pixels;
* ``orientation`` (8): ``2 pi k / 8``, counter-clockwise as displayed, the full circle for every
  shape;
* ``pos_x`` (8): ``linspace(0, 1, 8)``, the centre lies on the column boundary ``9 + 2 k`` (left
  to right);
* ``pos_y`` (8): ``linspace(0, 1, 8)``, the centre lies on the row boundary ``9 + 2 k`` (top to
  bottom).

``FACTOR_VALUES`` holds these values; functions take and return the integer indices ``k``.

``3 * 4 * 8 * 8 * 8 = 6144`` binary images. As in dSprites, orientation is not identifiable for
every shape: a square turned by ``pi / 2`` and an ellipse turned by ``pi`` give the same image (so
the grid holds ``8 * 8 * 4 * (2 + 4 + 8) = 3584`` distinct images).

Rasterisation tests pixel centres: pixel ``(i, j)`` is on when its centre ``(j + 1/2, i + 1/2)``,
taken relative to the shape's centre with the y axis pointing up, turned by ``-theta`` and divided
by the circumradius, lies in the closed unit shape (circumradius 1 about the centre of rotation):

* square: ``max(|u|, |v|) <= 1 / sqrt(2)``;
* ellipse: ``u^2 + 4 v^2 <= 1``;
* heart: the diamond ``|u| + |v| <= d`` with discs of radius ``1/2`` on its two upper edges,
  centred at ``(+-d/2, d/2)``, ``d = 1 / sqrt(2)``; it is rotated about the diamond's centre.

Centres lie on pixel corners, so the pixel grid is symmetric under quarter turns about every
centre, and positions differ by whole pixels: moving a shape translates its pixels exactly. The
largest shape stays two pixels away from the border.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jgen.checks import check_int
from jgen.types import PRNGKey

IMAGE_SHAPE = (32, 32)
FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "orientation", "pos_x", "pos_y")
FACTOR_SIZES: tuple[int, ...] = (3, 4, 8, 8, 8)
SHAPE_NAMES: tuple[str, ...] = ("square", "ellipse", "heart")
FACTOR_VALUES: tuple[np.ndarray, ...] = (
    np.arange(3.0),
    np.linspace(0.5, 1.0, 4),
    2.0 * np.pi * np.arange(8) / 8,
    np.linspace(0.0, 1.0, 8),
    np.linspace(0.0, 1.0, 8),
)
NUM_IMAGES = math.prod(FACTOR_SIZES)

_MAX_RADIUS = 7.0  # pixels, at scale 1
_FIRST_CENTRE, _CENTRE_STEP = 9, 2  # pixel-corner coordinates of the centres
_PIXEL_CENTRES = np.arange(IMAGE_SHAPE[0]) + 0.5
_HALF_DIAGONAL = 1.0 / math.sqrt(2.0)  # the heart's diamond; its discs then have radius 1/2
_CHUNK = 1024  # images rendered at once: bounds the float64 temporaries to ~10 MB each


# The shapes are closed sets: a pixel centre on the boundary is inside. The slack keeps such
# centres inside whatever the rounding of the rotation (at 45 degrees many lie exactly on a
# square's edge), so symmetric orientations, e.g. a square turned by pi / 2, give equal images.
_SLACK = 1e-9


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= _HALF_DIAGONAL + _SLACK


def _ellipse(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u**2 + 4.0 * v**2 <= 1.0 + _SLACK


def _heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    d = _HALF_DIAGONAL
    lobes = (np.abs(u) - d / 2) ** 2 + (v - d / 2) ** 2 <= 0.25 + _SLACK
    return lobes | (np.abs(u) + np.abs(v) <= d + _SLACK)


_INSIDE = (_square, _ellipse, _heart)


def _check_factors(factors) -> np.ndarray:
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[1] != len(FACTOR_SIZES):
        raise ValueError(
            f"factors must have shape (n, {len(FACTOR_SIZES)}) (columns {FACTOR_NAMES}); "
            f"got shape {factors.shape}"
        )
    if not np.issubdtype(factors.dtype, np.integer):
        raise ValueError(f"factors must be integer indices; got dtype {factors.dtype}")
    for k, (name, size) in enumerate(zip(FACTOR_NAMES, FACTOR_SIZES, strict=True)):
        column = factors[:, k]
        if column.size and (column.min() < 0 or column.max() >= size):
            raise ValueError(
                f"factors[:, {k}] ({name}) must lie in [0, {size - 1}]; got values in "
                f"[{column.min()}, {column.max()}]"
            )
    return factors


def _render_chunk(factors: np.ndarray) -> np.ndarray:
    shape, scale, orientation, pos_x, pos_y = factors.T
    radius = (_MAX_RADIUS * FACTOR_VALUES[1][scale])[:, None, None]
    theta = FACTOR_VALUES[2][orientation]
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    # Offsets from the centre with the y axis pointing up, in pixels (exact half-integers).
    dx = _PIXEL_CENTRES[None, None, :] - (_FIRST_CENTRE + _CENTRE_STEP * pos_x)[:, None, None]
    dy = (_FIRST_CENTRE + _CENTRE_STEP * pos_y)[:, None, None] - _PIXEL_CENTRES[None, :, None]
    u = (cos * dx + sin * dy) / radius
    v = (cos * dy - sin * dx) / radius
    inside = np.zeros((len(factors), *IMAGE_SHAPE), bool)
    for k, is_inside in enumerate(_INSIDE):
        rows = shape == k
        inside[rows] = is_inside(u[rows], v[rows])
    return inside.astype(np.float32)


def render(factors) -> np.ndarray:
    """Renders the images of given factor indices (see the module docstring for the geometry).

    Args:
      factors: ``(n, 5)`` integer indices, column ``k`` in ``[0, FACTOR_SIZES[k])``, in the order
        of ``FACTOR_NAMES``.

    Returns:
      ``(n, 32, 32)`` float32 images with values in ``{0, 1}``; row 0 is the top.

    Raises:
      ValueError: if ``factors`` has the wrong shape or dtype, or an index is out of range.
    """
    factors = _check_factors(factors)
    chunks = [_render_chunk(factors[i : i + _CHUNK]) for i in range(0, len(factors), _CHUNK)]
    if not chunks:
        return np.zeros((0, *IMAGE_SHAPE), np.float32)
    return np.concatenate(chunks)


def all_factors() -> np.ndarray:
    """Every factor combination, ``(6144, 5)`` int32, in row-major order (the last factor,
    ``pos_y``, varies fastest), as in dSprites; row ``i`` has ``index_of(row) == i``."""
    grid = np.unravel_index(np.arange(NUM_IMAGES), FACTOR_SIZES)
    return np.stack(grid, axis=1).astype(np.int32)


def index_of(factors) -> np.ndarray:
    """The rows of :func:`all_factors` (and of :func:`load`) holding the given factors.

    Args:
      factors: ``(n, 5)`` integer indices.

    Returns:
      ``(n,)`` int64 indices into the full grid.

    Raises:
      ValueError: as :func:`render`.
    """
    factors = _check_factors(factors)
    return np.ravel_multi_index(tuple(factors.T), FACTOR_SIZES)


def factor_values(factors) -> np.ndarray:
    """The values of factor indices (``FACTOR_VALUES[k][factors[:, k]]``), ``(n, 5)`` float64:
    shape code, scale, angle in radians, x and y positions in ``[0, 1]``.

    Raises:
      ValueError: as :func:`render`.
    """
    factors = _check_factors(factors)
    return np.stack([values[factors[:, k]] for k, values in enumerate(FACTOR_VALUES)], axis=1)


@functools.lru_cache(maxsize=1)
def load() -> tuple[np.ndarray, np.ndarray]:
    """The full grid: ``(images (6144, 32, 32) float32, factors (6144, 5) int32)``.

    Rendered once per process and cached; the arrays are read-only because every caller shares
    them.
    """
    factors = all_factors()
    images = render(factors)
    images.flags.writeable = False
    factors.flags.writeable = False
    return images, factors


def sample_factors(key: PRNGKey, n: int) -> np.ndarray:
    """``n`` factor combinations drawn uniformly (each factor independent and uniform).

    Args:
      key: a JAX PRNG key.
      n: the number of samples, ``>= 1``.

    Returns:
      ``(n, 5)`` int32 indices, usable with :func:`render` and :func:`index_of`.
    """
    check_int("n", n)
    sizes = jnp.asarray(FACTOR_SIZES)
    return np.asarray(jax.random.randint(key, (n, len(FACTOR_SIZES)), 0, sizes), np.int32)
