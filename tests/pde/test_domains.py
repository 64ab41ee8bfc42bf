"""Domains: points where they belong, boundaries with their outward normals, measures."""
import math

import numpy as np
import pytest

from pinn_lam.errors import ProblemError
from pinn_lam.pde.domains import Box, Disk, SpaceTime


def unit(seed=0):
    rng = np.random.default_rng(seed)
    return lambda n, k: rng.random((n, k))


def test_box_interior_faces_and_normals():
    box = Box(x=(-1.0, 1.0), t=(0.0, 2.0))
    assert box.variables == ("x", "t") and box.time == "t" and box.bounds == ((-1.0, 1.0), (0.0, 2.0))
    inside = box.sample(500, unit())
    assert box.contains(inside).all()
    assert not box.contains(np.array([[1.5, 1.0], [0.0, -0.1]])).any()
    # the boundary of a space-time box is the boundary of space at every time: x = -1 and x = 1
    edge = box.boundary().sample(400, unit(1))
    assert set(np.unique(edge[:, 0])) == {-1.0, 1.0} and edge[:, 1].min() >= 0 and edge[:, 1].max() <= 2
    assert np.array_equal(box.boundary().normals(edge)[:, 0], edge[:, 0]) and not box.boundary().normals(edge)[:, 1].any()
    start = box.initial().sample(50, unit(2))
    assert np.all(start[:, 1] == 0) and np.array_equal(box.initial().normals(start), np.tile([0.0, -1.0], (50, 1)))


def test_a_steady_box_has_four_sides_sampled_by_length():
    box = Box(x=(0.0, 3.0), y=(0.0, 1.0))
    assert box.time is None
    edge = box.boundary().sample(4000, unit(3))
    sides = [edge[:, 0] == 0, edge[:, 0] == 3, edge[:, 1] == 0, edge[:, 1] == 1]
    assert np.all(np.any(sides, axis=0))
    # the long sides (length 3) get three times the points of the short ones
    counts = [s.sum() for s in sides]
    assert counts[2] / counts[0] == pytest.approx(3.0, rel=0.15) and counts[3] / counts[1] == pytest.approx(3.0, rel=0.15)
    normals = box.boundary().normals(edge)
    assert np.array_equal(normals[sides[1]], np.tile([1.0, 0.0], (counts[1], 1)))
    assert np.array_equal(normals[sides[2]], np.tile([0.0, -1.0], (counts[2], 1)))


def test_disk_is_area_uniform_with_radial_normals():
    disk = Disk(center=(1.0, -1.0), radius=2.0)
    inside = disk.sample(20000, unit(4))
    r = np.linalg.norm(inside - [1.0, -1.0], axis=1)
    assert r.max() <= 2.0 and np.mean(r < 1.0) == pytest.approx(0.25, abs=0.01)  # a quarter of the area
    edge = disk.boundary().sample(100, unit(5))
    np.testing.assert_allclose(np.linalg.norm(edge - [1.0, -1.0], axis=1), 2.0, rtol=1e-14)
    np.testing.assert_allclose(disk.boundary().normals(edge), (edge - [1.0, -1.0]) / 2.0, rtol=1e-14)
    assert disk.boundary().measure == pytest.approx(4 * math.pi)


def test_an_l_shape_samples_its_six_sides_with_outward_normals():
    shape = Box(x=(-1.0, 1.0), y=(-1.0, 1.0)) - Box(x=(0.0, 1.0), y=(0.0, 1.0))
    inside = shape.sample(3000, unit(6))
    assert shape.contains(inside).all() and not ((inside[:, 0] > 0) & (inside[:, 1] > 0)).any()
    assert np.mean(inside[:, 0] < 0) == pytest.approx(2 / 3, abs=0.03)  # two of its three unit squares
    edge = shape.boundary().sample(4000, unit(7))
    normals = shape.boundary().normals(edge)
    # the re-entrant sides x = 0 (0 < y < 1) and y = 0 (0 < x < 1) face into the removed square
    reentrant_x = (np.abs(edge[:, 0]) < 1e-12) & (edge[:, 1] > 0)
    reentrant_y = (np.abs(edge[:, 1]) < 1e-12) & (edge[:, 0] > 0)
    assert reentrant_x.sum() > 300 and reentrant_y.sum() > 300
    assert np.array_equal(normals[reentrant_x], np.tile([1.0, 0.0], (reentrant_x.sum(), 1)))
    assert np.array_equal(normals[reentrant_y], np.tile([0.0, 1.0], (reentrant_y.sum(), 1)))
    # nothing on the removed square's outer sides, and every point on the L's boundary
    assert not ((edge[:, 0] == 1.0) & (edge[:, 1] > 0)).any() and not ((edge[:, 1] == 1.0) & (edge[:, 0] > 0)).any()
    assert shape.on_boundary(edge).all()
    # the total length is 8: six sides of lengths 2, 2, 1, 1, 1, 1
    share = np.mean(reentrant_x)
    assert share == pytest.approx(1 / 8, abs=0.02)


def test_a_plate_with_a_hole_and_space_time():
    plate = Box(x=(-1.0, 1.0), y=(-1.0, 1.0)) - Disk(radius=0.5)
    edge = plate.boundary().sample(2000, unit(8))
    on_hole = np.abs(np.linalg.norm(edge, axis=1) - 0.5) < 1e-12
    np.testing.assert_allclose(plate.boundary().normals(edge)[on_hole], -edge[on_hole] / 0.5, rtol=1e-12)
    cylinder = SpaceTime(Disk(), t=(0.0, 3.0))
    assert cylinder.variables == ("x", "y", "t") and cylinder.time == "t"
    side = cylinder.boundary().sample(100, unit(9))
    np.testing.assert_allclose(np.linalg.norm(side[:, :2], axis=1), 1.0, rtol=1e-14)
    assert (cylinder.boundary().normals(side)[:, 2] == 0).all()
    assert (cylinder.initial().sample(10, unit(10))[:, 2] == 0).all()


@pytest.mark.parametrize("make, message", [
    (lambda: Box(x=(1.0, 0.0)), "finite low < high"),
    (lambda: Box(x=(0.0,)), r"must be a pair \(low, high\)"),
    (lambda: Disk(radius=-1), "radius of a disk must be a finite number > 0"),
    (lambda: Box(x=(0, 1)).initial(), "has no time variable"),
    (lambda: Box(x=(0, 1), t=(0, 1)).face("y", "low"), "no variable 'y'"),
    (lambda: Box(x=(0, 1)) - Disk(), "same variables"),
])
def test_bad_domains_fail_in_one_line(make, message):
    with pytest.raises(ProblemError, match=message):
        make()
