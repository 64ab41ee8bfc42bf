"""Re-entrant corners: their exponent found from the mask, and the extrapolation in the corner's
exponents against the exact corner-singular solution r^(2/3) sin(2 theta/3) on the L-shape."""
import math

import numpy as np
import pytest
import torch

from pinn_lam import PDE, Box, Dirichlet
from pinn_lam.pde import auto_corner, auto_steady
from pinn_lam.pde.auto_reference import checked_plan
from pinn_lam.pde.auto_refine import estimate

L_SHAPE = Box(x=(-1.0, 1.0), y=(-1.0, 1.0)) - Box(x=(0.0, 1.0), y=(0.0, 1.0))


def angle_from_the_upper_edge(x, y):
    """theta in [0, 3 pi/2] from the corner's edge along the positive y axis, through the L."""
    return (np.arctan2(y, x) - math.pi / 2) % (2 * math.pi)


def corner_solution(points):
    x, y = points[:, 0], points[:, 1]
    return np.hypot(x, y) ** (2 / 3) * np.sin(2 * angle_from_the_upper_edge(x, y) / 3)


def corner_solution_torch(d):
    theta = torch.remainder(torch.atan2(d["y"], d["x"]) - math.pi / 2, 2 * math.pi)
    return torch.hypot(d["x"], d["y"]) ** (2 / 3) * torch.sin(2 * theta / 3)


def test_the_l_shapes_reentrant_corner_gives_the_exponent_two_thirds_and_a_square_none():
    assert auto_corner.corner_exponent(L_SHAPE, auto_steady.MaskedGrid(L_SHAPE, 16)) == pytest.approx(2 / 3)
    square = Box(x=(0.0, 1.0), y=(0.0, 1.0))
    assert auto_corner.corner_exponent(square, auto_steady.MaskedGrid(square, 16)) is None
    hole = Box(x=(0.0, 3.0), y=(0.0, 3.0)) - Box(x=(1.0, 2.0), y=(1.0, 2.0))  # four re-entrant corners
    assert auto_corner.corner_exponent(hole, auto_steady.MaskedGrid(hole, 12)) == pytest.approx(2 / 3)


def test_richardson_removes_the_term_of_its_order():
    h = 0.1
    assert auto_corner.richardson(1.0 + h ** (4 / 3), 1.0 + (h / 2) ** (4 / 3), 4 / 3) == pytest.approx(1.0, abs=1e-15)


def test_the_extrapolation_beats_the_plain_solution_on_the_exact_corner_singular_solution():
    problem = PDE(L_SHAPE, lambda d: d["u_xx"] + d["u_yy"], [Dirichlet(corner_solution_torch)], name="corner")
    plan = checked_plan(problem)
    result = auto_corner.refine(lambda n: auto_steady.solve(problem, plan, n, 7), 2 / 3, 1e-12, 1e9, 16, 128,
                                estimate)
    assert result["n"] == 128 and result["stopped"] == "grid limit reached"
    grid, exact = result["grid"], corner_solution(result["grid"].points)
    plain = auto_corner.on_nodes(*auto_steady.solve(problem, plan, 128, 7), grid.axes)[:, 0]
    extrapolated_error = np.linalg.norm(result["u"][:, 0] - exact) / np.linalg.norm(exact)
    plain_error = np.linalg.norm(plain - exact) / np.linalg.norm(exact)
    # measured: 9.8e-6 against 6.2e-4 on 128 intervals, a factor of 63
    assert extrapolated_error < 2e-5 and plain_error / extrapolated_error > 30
    assert extrapolated_error <= result["estimate"]  # the change from the coarser extrapolation is an upper estimate
    # the raw L2 order approaches 2 alpha = 4/3 (1.15, then 1.23 on 32 to 128 intervals)
    assert auto_corner.observed_order(result["raw_changes"]) == pytest.approx(4 / 3, abs=0.15)
