"""The exponential integrator of periodic automatic references, against hand calculations."""
import math

import numpy as np
import pytest
import torch

import problems
from pinn_lam import PDE, Box, InitialValue, Periodic
from pinn_lam.errors import ProblemError
from pinn_lam.pde import auto_evolution, auto_exponential
from pinn_lam.pde.auto_reference import _initial, auto_reference, checked_plan


def system_of(problem, n):
    plan = checked_plan(problem)
    system = auto_evolution.Semidiscrete(problem, plan, n, 7)
    return system, auto_evolution.initial_state(system, _initial(problem, plan))


@pytest.mark.parametrize("z", [1e-9, -1e-3, 0.7, -40.0, -1e4, 25j, 3.0 - 200j])
def test_phi_functions_match_their_closed_forms(z):
    e, p1, p2, p3 = (f[0, 0, 0] for f in auto_exponential.phi_functions(np.array([[[z]]], dtype=complex)))
    if abs(z) < 1e-2:  # Taylor series phi_j(z) = sum_m z^m / (m + j)!
        expected = (np.exp(z),) + tuple(sum(z ** m / math.factorial(m + j) for m in range(8)) for j in (1, 2, 3))
    else:
        p1_ = (np.exp(z) - 1) / z
        p2_ = (p1_ - 1) / z
        expected = (np.exp(z), p1_, p2_, (p2_ - 0.5) / z)
    for got, want in zip((e, p1, p2, p3), expected):
        assert abs(got - want) <= 1e-12 * max(1.0, abs(want))


def test_phi_functions_of_a_defective_block():
    # z = [[0, a], [0, 0]] (nilpotent): e^z = I + z, phi_1 = I + z/2, phi_2 = I/2 + z/6, phi_3 = I/6 + z/24
    z = np.array([[[0.0, 3.0], [0.0, 0.0]]], dtype=complex)
    e, p1, p2, p3 = (f[0] for f in auto_exponential.phi_functions(z))
    eye = np.eye(2)
    for got, want in ((e, eye + z[0]), (p1, eye + z[0] / 2), (p2, eye / 2 + z[0] / 6), (p3, eye / 6 + z[0] / 24)):
        assert np.allclose(got, want, atol=1e-13)


def test_the_symbol_of_convection_is_the_stencils_symbol():
    beta, n = 30.0, 64
    system, y0 = system_of(problems.get("convection", beta=beta), n)
    symbol = auto_exponential.linear_symbol(system, y0, (0.0, 1.0))
    h = 2 * math.pi / n
    stencil = auto_evolution.periodic_difference_matrix(n, h, 1, 7).toarray()[:, 0]
    assert symbol.shape == (n // 2 + 1, 1, 1)
    assert np.allclose(symbol[:, 0, 0], np.fft.rfft(-beta * stencil), atol=1e-8 * beta / h)
    # sixth order: the symbol of d/dx at k = 3 is 3i to about (3h)^6
    assert abs(symbol[3, 0, 0] - (-beta * 3j)) < beta * 3 * (3 * h) ** 6


def test_an_x_dependent_coefficient_has_no_circulant_symbol():
    problem = PDE(Box(x=(0.0, 2 * math.pi), t=(0.0, 1.0)), lambda d: d["u_t"] - (1.5 + torch.sin(d["x"])) * d["u_xx"],
                  [InitialValue(lambda d: torch.cos(d["x"])), Periodic("x")], name="variable")
    system, y0 = system_of(problem, 32)
    assert auto_exponential.linear_symbol(system, y0, (0.0, 1.0)) is None
    with pytest.raises(ProblemError, match="block-circulant"):
        auto_reference(problem, integrator="etdrk4", target=1e-4, cache_dir=None)


def logistic(u0=0.5):
    """u_t = u_xx + u - u^3 from a constant: the ODE u' = u - u^3, u = (1 + (u0^-2 - 1) e^(-2t))^(-1/2)."""
    problem = PDE(Box(x=(0.0, 1.0), t=(0.0, 2.0)), lambda d: d["u_t"] - d["u_xx"] - d["u"] + d["u"] ** 3,
                  [InitialValue(u0), Periodic("x")], name="logistic")
    exact = 1.0 / math.sqrt(1.0 + (u0 ** -2 - 1.0) * math.exp(-4.0))
    return problem, exact


def test_etdrk4_converges_with_order_four_on_a_nonlinear_ode():
    problem, exact = logistic()
    system, y0 = system_of(problem, 16)
    symbol = auto_exponential.linear_symbol(system, y0, (0.0, 2.0))
    errors = [abs(auto_exponential.etdrk4(system, symbol, y0, 0.0, 2.0, steps, steps)[-1, 0] - exact)
              for steps in (4, 8, 16)]
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(orders > 3.7), orders


def test_solve_reports_a_time_error_above_the_actual_one():
    problem, exact = logistic()
    plan = checked_plan(problem)
    times = np.linspace(0.0, 2.0, 11)
    run = auto_exponential.solve(problem, plan, 16, 7, times, _initial(problem, plan), 1e-9, 0)
    actual = abs(run.u[0, -1, 0] - exact) / exact
    assert run.steps % 40 == 0 and run.time_error <= 1e-9
    assert actual <= 1.5 * run.time_error + 1e-14
    assert run.dense.shape[1] == len(run.dense_times) and np.allclose(run.dense[:, ::len(run.dense_times) // 10],
                                                                      run.u)


def test_a_constant_time_coefficient_is_inverted_once_and_gives_the_same_rates():
    schrodinger = problems.get("schrodinger")
    system, y0 = system_of(schrodinger, 32)
    assert system.inverse_coefficient is not None
    state = system.full(0.3, y0 * 1.7)
    fast = system.highest_derivative(0.3, state)
    system.inverse_coefficient = None
    assert np.allclose(fast, system.highest_derivative(0.3, state), rtol=1e-13, atol=1e-12)
    # (1 + u^2) u_t = u_xx: the coefficient depends on the solution, solved node by node
    problem = PDE(Box(x=(0.0, 1.0), t=(0.0, 1.0)), lambda d: (1 + d["u"] ** 2) * d["u_t"] - d["u_xx"],
                  [InitialValue(lambda d: torch.sin(2 * math.pi * d["x"])), Periodic("x")], name="quasilinear")
    system, _ = system_of(problem, 32)
    assert system.inverse_coefficient is None


def test_periodic_references_take_the_exponential_integrator_and_agree_with_bdf(tmp_path):
    problem = PDE(Box(x=(0.0, 2 * math.pi), t=(0.0, 1.0)), lambda d: d["u_t"] - 0.1 * d["u_xx"] + d["u"] * d["u_x"],
                  [InitialValue(lambda d: torch.sin(d["x"])), Periodic("x")], name="viscous-burgers")
    etd = auto_reference(problem, target=1e-6, cache_dir=tmp_path)
    bdf = auto_reference(problem, target=1e-6, integrator="bdf", cache_dir=tmp_path)
    assert "ETDRK4" in etd.method and "BDF" in bdf.method
    assert np.linalg.norm(etd.u - bdf(etd.points()).reshape(etd.u.shape)) / np.linalg.norm(etd.u) < 2e-6
    with pytest.raises(ValueError, match="integrator must be one of auto, etdrk4, bdf"):
        auto_reference(problem, integrator="rk4")


def test_a_two_output_system_takes_its_coupling_the_right_way_round(tmp_path):
    # u_t + v_xx = 0, v_t - u_xx = 0: h = u + iv solves h_t = i h_xx, so cos(x - t) + i sin(x - t);
    # the symbol couples u and v antisymmetrically: transposed, the phase would run backwards
    problem = PDE(Box(x=(0.0, 2 * math.pi), t=(0.0, 1.0)),
                  lambda d: {"real": d["u_t"] + d["v_xx"], "imaginary": d["v_t"] - d["u_xx"]},
                  [InitialValue(lambda d: torch.cat([torch.cos(d["x"]), torch.sin(d["x"])], dim=1), output=("u", "v")),
                   Periodic("x")], outputs=("u", "v"), name="rotation")
    ref = auto_reference(problem, target=1e-6, integrator="etdrk4", cache_dir=tmp_path)
    x, t = np.meshgrid(*ref.grid, indexing="ij")
    exact = np.stack([np.cos(x - t), np.sin(x - t)], axis=-1)
    assert "ETDRK4" in ref.method and np.linalg.norm(ref.u - exact) / np.linalg.norm(exact) < 1e-6
    # linear: the linear part is the whole equation, so 10 steps with h |L| up to 60 are exact in time
    system, y0 = system_of(problem, 64)
    symbol = auto_exponential.linear_symbol(system, y0, (0.0, 1.0))
    final = auto_exponential.etdrk4(system, symbol, y0, 0.0, 1.0, 10, 10)[-1]
    assert np.abs(final - np.r_[np.cos(system.x - 1.0), np.sin(system.x - 1.0)]).max() < 1e-8


def test_a_run_that_keeps_blowing_up_gives_up_the_grid_instead_of_doubling_the_steps():
    # inviscid Burgers past its shock time 1/pi: 64 nodes do not resolve it, and more steps do not help
    problem = PDE(Box(x=(0.0, 2.0), t=(0.0, 1.0)), lambda d: d["u_t"] + d["u"] * d["u_x"],
                  [InitialValue(lambda d: torch.sin(math.pi * d["x"])), Periodic("x")], name="inviscid")
    plan = checked_plan(problem)
    with pytest.raises(RuntimeError, match="blew up with up to 1600 steps"):
        auto_exponential.solve(problem, plan, 64, 7, np.linspace(0.0, 1.0, 101), _initial(problem, plan), 2.5e-6, 0)
