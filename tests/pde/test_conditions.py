"""Each kind of condition against its residual written by hand."""
import math

import numpy as np
import pytest
import torch

from pinn_lam import PDE, Box, Condition, Data, Dirichlet, Disk, InitialRate, InitialValue, Neumann, Periodic, Robin
from pinn_lam.errors import ProblemError
from pinn_lam.pde.spec import describe


def unit(seed=0):
    rng = np.random.default_rng(seed)
    return lambda n, k: rng.random((n, k))


def problem_with(*conditions, domain=None, outputs=("u",)):
    return PDE(domain or Box(x=(0.0, 2.0), t=(0.0, 1.0)), lambda d: d[outputs[0] + "_t"], list(conditions),
               outputs=outputs)


def points_of(problem, name, n=40):
    return torch.as_tensor(problem.condition_map()[name].sample(problem.domain, n, unit()))


def cubic(p):
    """u = x^2 t + x^3: u_x = 2 x t + 3 x^2, u_t = x^2."""
    x, t = p[:, :1], p[:, 1:2]
    return x ** 2 * t + x ** 3


def test_dirichlet_initial_value_and_rate():
    problem = problem_with(Dirichlet(lambda d: d["t"], on="x=high"), InitialValue(1.0),
                           InitialRate(lambda d: d["x"] ** 2 + 1))
    p = points_of(problem, "bc")
    assert torch.all(p[:, 0] == 2.0)
    torch.testing.assert_close(problem.condition_residual("bc", p, cubic), 4 * p[:, 1:] + 8 - p[:, 1:])
    p = points_of(problem, "ic")
    assert torch.all(p[:, 1] == 0.0)
    torch.testing.assert_close(problem.condition_residual("ic", p, cubic), p[:, :1] ** 3 - 1)
    torch.testing.assert_close(problem.condition_residual("ic_rate", p, cubic), torch.full_like(p[:, :1], -1.0))


def test_neumann_and_robin_use_the_outward_normal():
    problem = problem_with(Neumann(0.0, on="x=low", name="left"), Neumann(0.0, on="x=high", name="right"),
                           Robin(2.0, 3.0, lambda d: d["t"], on="x=high"))
    p = points_of(problem, "left")
    x, t = p[:, :1], p[:, 1:]
    torch.testing.assert_close(problem.condition_residual("left", p, cubic), -(2 * x * t + 3 * x ** 2))  # n = -x
    p = points_of(problem, "right")
    x, t = p[:, :1], p[:, 1:]
    ux = 2 * x * t + 3 * x ** 2
    torch.testing.assert_close(problem.condition_residual("right", p, cubic), ux)
    torch.testing.assert_close(problem.condition_residual("robin", p, cubic), 2 * cubic(p) + 3 * ux - t)


def test_neumann_on_a_circle_is_the_radial_derivative():
    problem = PDE(Disk(radius=2.0), lambda d: d["u_xx"] + d["u_yy"], [Neumann(0.0)])
    p = points_of(problem, "neumann")
    # u = x^2 + y^2 = r^2 has du/dr = 2 r = 4 on the circle of radius 2
    residual = problem.condition_residual("neumann", p, lambda q: (q ** 2).sum(dim=1, keepdim=True))
    torch.testing.assert_close(residual, torch.full((len(p), 1), 4.0, dtype=torch.float64))


def test_periodic_pairs_values_and_derivatives_at_both_ends():
    problem = problem_with(Periodic("x"), domain=Box(x=(0.0, 2 * math.pi), t=(0.0, 1.0)), outputs=("u", "v"))
    p = points_of(problem, "periodic_x")
    assert torch.all(p[:, 0] == 0.0)

    def periodic(q):
        return torch.cat([torch.sin(q[:, :1]) * q[:, 1:], torch.cos(2 * q[:, :1])], dim=1)

    residual = problem.condition_residual("periodic_x", p, periodic)
    assert residual.shape == (len(p), 4)  # u, u_x, v, v_x
    assert residual.abs().max() < 1e-12

    def shifted(q):  # u = x: differs by 2 pi in value, not in slope
        return torch.cat([q[:, :1], q[:, :1] ** 2], dim=1)

    residual = problem.condition_residual("periodic_x", p, shifted)
    torch.testing.assert_close(residual[:, 0], torch.full((len(p),), -2 * math.pi, dtype=torch.float64))
    torch.testing.assert_close(residual[:, 1], torch.zeros(len(p), dtype=torch.float64))
    torch.testing.assert_close(residual[:, 3], torch.full((len(p),), -4 * math.pi, dtype=torch.float64))


def test_data_fits_fixed_points_of_chosen_outputs():
    points = np.array([[0.5, 0.5], [1.0, 0.25]])
    problem = problem_with(Data(points, [[1.0], [2.0]], outputs="v"), outputs=("u", "v"))
    p = points_of(problem, "data")
    assert torch.equal(p, torch.as_tensor(points))
    residual = problem.condition_residual("data", p, lambda q: torch.cat([q[:, :1], 3 * q[:, 1:]], dim=1))
    torch.testing.assert_close(residual, torch.tensor([[0.5], [-1.25]], dtype=torch.float64))
    assert describe(problem).value_only("data")


@pytest.mark.parametrize("make, message", [
    (lambda: Data(np.zeros((3, 2)), np.zeros(4)), r"values must have shape \(3, 1\)"),
    (lambda: Data(np.zeros((0, 2)), np.zeros(0)), "points must be a non-empty"),
    (lambda: Dirichlet("zero"), "must be a finite number or a function"),
    (lambda: Periodic("x", derivatives=3), "derivatives must be 0, 1 or 2"),
])
def test_bad_conditions_fail_where_they_are_made(make, message):
    with pytest.raises(ProblemError, match=message):
        make()


@pytest.mark.parametrize("condition, message", [
    (Dirichlet(0.0, on="y=low"), "condition 'bc' is on 'y=low', but the problem has no variable 'y'"),
    (Periodic("z"), "condition 'periodic_z' is on 'z=low', but the problem has no variable 'z'"),
    (Dirichlet(0.0, on="x=middle"), "a face's side is 'low' or 'high'"),
    (Dirichlet(0.0, output="w"), "reads unknown name 'w'"),
    (Condition("flux", lambda d: d["u"][:3], on="x=low"), r"condition 'flux' gives \(3, 1\); a residual has one row per point"),
])
def test_conditions_on_what_the_problem_lacks_fail_before_training(condition, message):
    with pytest.raises(ProblemError, match=message):
        describe(problem_with(condition))


def test_initial_conditions_need_a_time_variable():
    with pytest.raises(ProblemError, match="condition 'ic' is an initial condition, but the domain has no time"):
        describe(PDE(Box(x=(0, 1), y=(0, 1)), lambda d: d["u_xx"], [InitialValue(0.0)]))
