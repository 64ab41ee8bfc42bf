"""Poisson on the L-shape: the masked 5-point solution by hand, its observed order below 2, the reference's points."""
import math

import numpy as np
import pytest
import torch

from problems import PoissonLShape
from problems.poisson_lshape import extrapolated, masked_five_point, solve_with_estimate


def test_masked_solution_on_the_coarsest_grid_by_hand():
    """n = 4 (h = 1/2): the five nodes inside the L, (-1/2, -1/2), (-1/2, 0), (0, -1/2), (-1/2, 1/2),
    (1/2, -1/2), solve 4u_c - u_a - u_b = h^2 at the centre c = (-1/2, -1/2) with a = (-1/2, 0),
    b = (0, -1/2) and 4u_a - u_c - u_d = h^2 with d = (-1/2, 1/2), 4u_d - u_a = h^2 (and by symmetry)."""
    u = masked_five_point(4)
    matrix = np.array([[4, -1, -1, 0, 0], [-1, 4, 0, -1, 0], [-1, 0, 4, 0, -1], [0, -1, 0, 4, 0], [0, 0, -1, 0, 4]])
    centre, a, b, d, e = np.linalg.solve(matrix, np.full(5, 0.25))
    assert u[1, 1] == pytest.approx(centre) and u[1, 2] == pytest.approx(a) and u[2, 1] == pytest.approx(b)
    assert u[1, 3] == pytest.approx(d) and u[3, 1] == pytest.approx(e)
    # everything else (the boundary, the cut-out quarter) is zero
    inside = np.zeros_like(u, dtype=bool)
    inside[[1, 1, 2, 1, 3], [1, 2, 1, 3, 1]] = True
    assert np.all(u[~inside] == 0)


def test_solution_is_symmetric_about_the_diagonal_and_satisfies_the_scheme():
    u = masked_five_point(64)
    np.testing.assert_allclose(u, u.T, atol=1e-13)
    h = 2 / 64
    lap = (u[2:, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:] + u[1:-1, :-2] - 4 * u[1:-1, 1:-1]) / h ** 2
    axis = np.linspace(-1, 1, 65)[1:-1]
    x, y = np.meshgrid(axis, axis, indexing="ij")
    inside = ~((x >= 0) & (y >= 0))
    np.testing.assert_allclose(-lap[inside], 1.0, atol=1e-9)


def test_the_raw_order_is_the_corners_and_the_extrapolation_removes_it():
    arrays, meta = solve_with_estimate(256, PoissonLShape().domain, standard=32)
    # the r^(2/3) singularity at the re-entrant corner: about 4/3 in L2, not 2
    assert 1.2 < meta["raw_order"] < 1.5
    # against an extrapolation from grids four times finer, the estimate is an upper one and the
    # extrapolated values are far closer than the single finest solution
    finer = extrapolated({m: masked_five_point(m)[::m // 32, ::m // 32] for m in (256, 512, 1024)}, 1024)
    u = np.zeros((33, 33))
    u.reshape(-1)[np.flatnonzero(_closed_l(33))] = arrays["u"]
    actual = np.linalg.norm(u - finer) / np.linalg.norm(finer)
    assert actual < meta["error_estimate"] < 1e-4
    single = masked_five_point(256)[::8, ::8]
    assert np.linalg.norm(single - finer) / np.linalg.norm(finer) > 20 * actual
    assert arrays["points"].shape[0] == 33 * 33 - 16 * 16


def _closed_l(nodes: int) -> np.ndarray:
    axis = np.linspace(-1.0, 1.0, nodes)
    x, y = np.meshgrid(axis, axis, indexing="ij")
    return (~((x > 0) & (y > 0))).reshape(-1)


def test_reference_points_lie_in_the_closed_l_and_the_pde_reads_the_source():
    problem = PoissonLShape()
    arrays, _ = solve_with_estimate(256, problem.domain, standard=32)
    points = arrays["points"]
    assert not np.any((points[:, 0] > 0) & (points[:, 1] > 0))
    p = torch.rand(50, 2, dtype=torch.float64).mul(-1).requires_grad_()
    quadratic = lambda q: -(q[:, :1] ** 2 + q[:, 1:] ** 2) / 4  # noqa: E731  (-Δ = 1)
    assert problem.residual(p, quadratic(p)).abs().max().item() < 1e-13
    assert math.isclose(problem.residual(p, 2 * quadratic(p)).mean().item(), 1.0)


@pytest.mark.parametrize("resolution", [256, 768, "fine"])
def test_bad_resolution_raises_value_error(resolution, tmp_path):
    with pytest.raises(ValueError, match="resolution"):
        PoissonLShape().reference(resolution, cache_dir=tmp_path)
