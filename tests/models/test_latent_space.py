"""Interpolations and traversals against their definitions."""

import jax
import numpy as np
import pytest

from jgen.models import latent_space


def test_slerp_stays_on_the_great_circle_at_constant_angular_speed(x64):
    rng = np.random.default_rng(0)
    z0, z1 = rng.normal(size=8), rng.normal(size=8)
    z1 = z1 / np.linalg.norm(z1) * np.linalg.norm(z0)  # equal norms: the path is on a sphere
    path = np.asarray(latent_space.interpolate(z0, z1, 11))
    np.testing.assert_allclose(path[[0, -1]], [z0, z1], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(z0), rtol=1e-12)
    angles = np.arccos(np.clip(path[:-1] @ path[1:].T / np.linalg.norm(z0) ** 2, -1, 1))
    np.testing.assert_allclose(np.diag(angles), np.diag(angles)[0], rtol=1e-9)
    # in the plane of z0 and z1
    basis, _ = np.linalg.qr(np.stack([z0, z1], 1))
    np.testing.assert_allclose(path - path @ basis @ basis.T, 0.0, atol=1e-12)


def test_lerp_is_linear_and_slerp_of_parallel_vectors_falls_back_to_it(x64):
    z0 = np.arange(4.0)
    path = np.asarray(latent_space.interpolate(z0, 3 * z0, 5, kind="linear"))
    np.testing.assert_allclose(path, [(1 + 2 * t) * z0 for t in np.linspace(0, 1, 5)])
    np.testing.assert_allclose(latent_space.interpolate(z0, 3 * z0, 5), path, atol=1e-9)
    assert np.all(
        np.isfinite(jax.grad(lambda a: latent_space.slerp(a * z0, z0, np.ones(1)).sum())(1.0))
    )


def test_traversal_varies_one_coordinate_per_row():
    z = np.array([0.5, -1.0, 2.0])
    values = np.array([-2.0, 0.0, 2.0, 4.0])
    grid = np.asarray(latent_space.traversal(z, values))
    assert grid.shape == (3, 4, 3)
    for i in range(3):
        expected = np.tile(z, (4, 1))
        expected[:, i] = values
        np.testing.assert_array_equal(grid[i], expected)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="kind"):
        latent_space.interpolate(np.zeros(2), np.ones(2), 3, kind="cubic")
    with pytest.raises(ValueError, match="z0 and z1 must have one shape"):
        latent_space.interpolate(np.zeros(2), np.ones(3), 3)
    with pytest.raises(ValueError, match="num"):
        latent_space.interpolate(np.zeros(2), np.ones(2), 1)
