"""The dSprites-like shapes: the grid, the geometry against scikit-image's rasteriser, symmetries,
scale and position behaviour, determinism."""

import itertools

import jax
import numpy as np
import pytest
import scipy.stats
import skimage.draw

from jgen.data import shapes

CANVAS = shapes.IMAGE_SHAPE[0]


@pytest.fixture(scope="module")
def grid():
    """The full grid as an array indexed [shape, scale, orientation, pos_x, pos_y, row, col]."""
    images, _ = shapes.load()
    return images.reshape(*shapes.FACTOR_SIZES, *shapes.IMAGE_SHAPE)


def test_grid_order_shapes_and_dtypes():
    images, factors = shapes.load()
    assert images.shape == (6144, CANVAS, CANVAS) and images.dtype == np.float32
    assert factors.shape == (6144, 5) and factors.dtype == np.int32
    assert set(np.unique(images)) == {0.0, 1.0}
    # Row-major over the factors, as itertools.product enumerates them.
    expected = np.array(list(itertools.product(*(range(s) for s in shapes.FACTOR_SIZES))))
    np.testing.assert_array_equal(factors, expected)
    np.testing.assert_array_equal(shapes.all_factors(), expected)
    np.testing.assert_array_equal(shapes.index_of(expected), np.arange(6144))
    assert shapes.load() is shapes.load()  # cached
    with pytest.raises(ValueError, match="read-only"):
        images[0, 0, 0] = 1.0


def test_render_matches_the_cached_grid_and_is_deterministic():
    images, _ = shapes.load()
    factors = shapes.sample_factors(jax.random.key(0), 300)
    rendered = shapes.render(factors)
    np.testing.assert_array_equal(rendered, images[shapes.index_of(factors)])
    np.testing.assert_array_equal(shapes.render(factors), rendered)
    np.testing.assert_allclose(
        shapes.factor_values(factors)[:, 2], 2 * np.pi * factors[:, 2] / 8, rtol=1e-15
    )


def test_every_shape_is_non_empty_and_clear_of_the_border():
    images, _ = shapes.load()
    assert images.sum(axis=(1, 2)).min() >= 16  # the smallest square is 4 x 4
    # The largest shape (circumradius 7) centred 9 pixels from an edge leaves two empty pixels.
    border = np.ones(shapes.IMAGE_SHAPE, bool)
    border[2:-2, 2:-2] = False
    assert images[:, border].sum() == 0


def _edge_distances(points_x, points_y, vx, vy):
    """Max over the edges of a counter-clockwise convex polygon of the signed distance of each
    point to the edge's line: <= 0 inside, 0 on the boundary."""
    dist = []
    for i in range(len(vx)):
        x0, y0, x1, y1 = vx[i], vy[i], vx[(i + 1) % len(vx)], vy[(i + 1) % len(vy)]
        nx, ny = y1 - y0, x0 - x1
        dist.append(((points_x - x0) * nx + (points_y - y0) * ny) / np.hypot(nx, ny))
    return np.max(dist, axis=0)


def _reference(shape, radius, theta, centre):
    """(mask, on_boundary) from scikit-image's polygon / ellipse / disk rasterisers; the shapes are
    built from their vertices and circles, not from the inequalities of the module."""
    rows, cols = np.mgrid[0:CANVAS, 0:CANVAS] + 0.5
    px, py = cols - centre, centre - rows  # offsets of pixel centres, y up
    cos, sin = np.cos(theta), np.sin(theta)

    def turn(x, y):
        return cos * x - sin * y, sin * x + cos * y

    def polygon(vx, vy):
        mask = np.zeros(shapes.IMAGE_SHAPE, bool)
        # scikit-image indexes pixels by their centres: (row, col) = (centre - y, centre + x) - 1/2
        rr, cc = skimage.draw.polygon(centre - vy - 0.5, centre + vx - 0.5, shapes.IMAGE_SHAPE)
        mask[rr, cc] = True
        return mask, np.abs(_edge_distances(px, py, vx, vy)) < 1e-6

    def disk(x, y, rho):
        mask = np.zeros(shapes.IMAGE_SHAPE, bool)
        rr, cc = skimage.draw.disk((centre - y - 0.5, centre + x - 0.5), rho, shape=mask.shape)
        mask[rr, cc] = True
        return mask, np.abs(np.hypot(px - x, py - y) - rho) < 1e-6

    if shape == 0:  # square: vertices at the circumradius, at 45 + 90 k degrees
        angles = theta + np.pi / 4 + np.arange(4) * np.pi / 2
        return polygon(radius * np.cos(angles), radius * np.sin(angles))
    if shape == 1:  # ellipse with semi-axes radius (along theta) and radius / 2
        mask = np.zeros(shapes.IMAGE_SHAPE, bool)
        rr, cc = skimage.draw.ellipse(
            centre - 0.5, centre - 0.5, radius / 2, radius, shapes.IMAGE_SHAPE, rotation=theta
        )
        mask[rr, cc] = True
        return mask, np.zeros_like(mask)
    # heart: a diamond of half-diagonal d and discs of radius r/2 on its two upper edges
    d = radius / np.sqrt(2)
    diamond, on_diamond = polygon(*turn(np.array([d, 0, -d, 0]), np.array([0, d, 0, -d])))
    left, on_left = disk(*turn(-d / 2, d / 2), radius / 2)
    right, on_right = disk(*turn(d / 2, d / 2), radius / 2)
    return diamond | left | right, on_diamond | on_left | on_right


@pytest.mark.parametrize("shape", [0, 1, 2], ids=shapes.SHAPE_NAMES)
def test_geometry_matches_scikit_image(grid, shape):
    # At position index 3 the centre is the pixel corner (15, 15); every scale and orientation.
    for scale, orientation in itertools.product(range(4), range(8)):
        radius = 7 * shapes.FACTOR_VALUES[1][scale]
        theta = shapes.FACTOR_VALUES[2][orientation]
        expected, on_boundary = _reference(shape, radius, theta, 15.0)
        image = grid[shape, scale, orientation, 3, 3].astype(bool)
        # Pixel centres exactly on an edge (a square at 45 degrees) are inside: closed shapes.
        # scikit-image's polygon fill is not consistent on them, so they are compared separately.
        np.testing.assert_array_equal(image[~on_boundary], expected[~on_boundary])
        assert image[on_boundary].all()


def test_only_the_symmetric_orientations_coincide(grid):
    # A square is invariant under a quarter turn (2 orientation steps), an ellipse under a half
    # turn (4 steps), a heart under none.
    for shape, period in zip(range(3), (2, 4, 8), strict=True):
        for a, b in itertools.combinations(range(8), 2):
            same = np.array_equal(grid[shape, :, a], grid[shape, :, b])
            assert same == ((b - a) % period == 0), (shapes.SHAPE_NAMES[shape], a, b)
    # Every other change of one factor changes the image, and images of different factors differ
    # unless related by those symmetries: 4 scales * 64 positions * (2 + 4 + 8) orientations.
    flat = grid.reshape(6144, -1)
    assert len(np.unique(flat, axis=0)) == 4 * 64 * (2 + 4 + 8)


def test_shapes_grow_with_scale(grid):
    counts = grid.sum(axis=(-2, -1))
    assert np.all(np.diff(counts, axis=1) > 0)
    # Each shape is star-shaped about its centre, so a larger scale contains the smaller one.
    assert np.all(grid[:, 1:] >= grid[:, :-1])


def test_centroid_moves_with_position(grid):
    rows, cols = np.mgrid[0:CANVAS, 0:CANVAS]
    mass = grid.sum(axis=(-2, -1))
    centroid_x = (grid * cols).sum(axis=(-2, -1)) / mass
    centroid_y = (grid * rows).sum(axis=(-2, -1)) / mass
    values = shapes.FACTOR_VALUES[3]
    # Positions are 2 pixels apart and the pixels translate exactly: the centroid is linear in the
    # position value with slope 14 pixels, x left to right, y top to bottom.
    np.testing.assert_allclose(np.diff(centroid_x, axis=3), 2.0, atol=1e-12)
    np.testing.assert_allclose(np.diff(centroid_y, axis=4), 2.0, atol=1e-12)
    np.testing.assert_allclose(np.diff(centroid_x, axis=4), 0.0, atol=1e-12)
    one = centroid_x[2, 1, 3, :, 5]
    assert np.corrcoef(one, values)[0, 1] == pytest.approx(1.0, abs=1e-12)


def test_sample_factors_is_uniform_and_deterministic():
    n = 4000
    factors = shapes.sample_factors(jax.random.key(1), n)
    assert factors.shape == (n, 5) and factors.dtype == np.int32
    np.testing.assert_array_equal(factors, shapes.sample_factors(jax.random.key(1), n))
    for k, size in enumerate(shapes.FACTOR_SIZES):
        counts = np.bincount(factors[:, k], minlength=size)
        assert len(counts) == size
        # Chi-square goodness of fit to the uniform law; 1e-4 fails one seed in 10^4.
        assert scipy.stats.chisquare(counts).pvalue > 1e-4


def test_bad_factors_raise():
    with pytest.raises(ValueError, match=r"factors must have shape \(n, 5\).*got shape \(3,\)"):
        shapes.render(np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="integer indices; got dtype float64"):
        shapes.render(np.zeros((2, 5)))
    bad = np.zeros((2, 5), np.int32)
    bad[1, 2] = 8
    with pytest.raises(ValueError, match=r"factors\[:, 2\] \(orientation\) must lie in \[0, 7\]"):
        shapes.index_of(bad)
    with pytest.raises(ValueError, match="n must be an integer >= 1; got 0"):
        shapes.sample_factors(jax.random.key(0), 0)
