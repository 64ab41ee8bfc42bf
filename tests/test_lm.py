"""Levenberg-Marquardt: the normal-equation solution of a linear problem in one step, known minima
of nonlinear least squares (Rosenbrock, exponential fit), Nielsen's damping rule against a hand
computation, dense and matrix-free solves against each other, state dicts, bad options."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from pinn_lam.optim.least_squares import autograd_jacobian, autograd_products, conjugate_gradient, damped_solver
from pinn_lam.optim.lm import CONVERGED, NO_DECREASE, LevenbergMarquardt, update_damping


def linear_problem(m=20, n=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    A = torch.randn(m, n, generator=generator, dtype=torch.float64)
    b = torch.randn(m, generator=generator, dtype=torch.float64)
    return A, b


def test_linear_least_squares_is_solved_in_one_step_without_damping():
    A, b = linear_problem()
    x = torch.nn.Parameter(torch.zeros(5, dtype=torch.float64))
    optimizer = LevenbergMarquardt([x], damping=0.0)
    optimizer.step(lambda: A @ x - b)
    expected = torch.linalg.solve(A.T @ A, A.T @ b)
    assert torch.allclose(x.detach(), expected, rtol=0, atol=1e-12)
    assert optimizer.global_state["n_iter"] == 1 and optimizer.global_state["rejected"] == 0
    optimizer.step(lambda: A @ x - b)
    assert optimizer.global_state["stop_reason"] == CONVERGED


def test_rosenbrock_residuals_reach_the_minimum():
    x = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
    optimizer = LevenbergMarquardt([x], max_iter=100, tolerance_grad=1e-14)
    optimizer.step(lambda: torch.stack((10 * (x[1] - x[0] ** 2), 1 - x[0])))
    assert optimizer.global_state["stop_reason"] == CONVERGED
    assert torch.allclose(x.detach(), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-10)
    assert optimizer.global_state["n_iter"] < 40


def test_exponential_fit_recovers_the_parameters_of_exact_data():
    t = torch.linspace(0, 2, 30, dtype=torch.float64)
    y = 2.0 * torch.exp(-1.5 * t)
    theta = torch.nn.Parameter(torch.tensor([1.0, 0.0], dtype=torch.float64))
    optimizer = LevenbergMarquardt([theta], max_iter=100, tolerance_grad=1e-14)
    optimizer.step(lambda: theta[0] * torch.exp(theta[1] * t) - y)
    assert optimizer.global_state["stop_reason"] == CONVERGED
    assert torch.allclose(theta.detach(), torch.tensor([2.0, -1.5], dtype=torch.float64), rtol=0, atol=1e-10)


def test_accepted_step_and_damping_match_a_hand_computation():
    # R(x) = x^2 - 2 at x = 1: J = 2, R = -1; lambda = 1 gives delta = -J R / (J^2 + 1) = 0.4,
    # pred = -(2 J R delta + (J delta)^2) = 0.96, actual = 1 - (1.4^2 - 2)^2 = 0.9984, rho = 1.04
    x = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer = LevenbergMarquardt([x], damping=1.0)
    optimizer.step(lambda: x ** 2 - 2)
    assert x.item() == pytest.approx(1.4, abs=1e-15)
    rho = (1.0 - (1.4 ** 2 - 2) ** 2) / 0.96
    assert rho == pytest.approx(1.04, abs=1e-12)
    # max(1/3, 1 - (2 rho - 1)^3) = 1/3, and nu returns to 2
    assert optimizer.global_state["damping"] == pytest.approx(1.0 / 3.0, rel=1e-15)
    assert optimizer.global_state["nu"] == 2.0


def test_rejected_step_restores_the_parameters_and_raises_the_damping():
    # R(x) = atan(x) at x = 2 with lambda = 0.01: the first trial overshoots (its loss is larger),
    # so lambda doubles to 0.02 (nu = 4 after) and the second trial is accepted with Nielsen's factor
    x0, lam = 2.0, 0.01
    r, j = math.atan(x0), 1.0 / (1.0 + x0 ** 2)
    first = x0 - j * r / (j * j + lam)
    assert math.atan(first) ** 2 > r ** 2
    delta = -j * r / (j * j + 2 * lam)
    predicted = -(2 * j * r * delta + (j * delta) ** 2)
    rho = (r ** 2 - math.atan(x0 + delta) ** 2) / predicted
    x = torch.nn.Parameter(torch.tensor([x0], dtype=torch.float64))
    optimizer = LevenbergMarquardt([x], damping=lam)
    optimizer.step(lambda: torch.atan(x))
    state = optimizer.global_state
    assert state["rejected"] == 1 and state["n_iter"] == 1 and state["func_evals"] == 3
    assert x.item() == pytest.approx(x0 + delta, rel=1e-14)
    assert state["damping"] == pytest.approx(2 * lam * max(1 / 3, 1 - (2 * rho - 1) ** 3), rel=1e-12)
    assert update_damping(0.5, 8.0, -1.0, False) == (4.0, 16.0)


def test_no_possible_decrease_stops_with_its_reason():
    # a Jacobian of the wrong sign: every step the linear model promises raises the loss, so every
    # trial is rejected until the damping passes its maximum
    x = torch.nn.Parameter(torch.tensor([0.5], dtype=torch.float64))
    optimizer = LevenbergMarquardt([x], max_iter=5)
    optimizer.step(lambda: x * 1.0, jacobian=lambda matrix_free: -torch.ones(1, 1, dtype=torch.float64))
    state = optimizer.global_state
    assert state["stop_reason"] == NO_DECREASE and state["n_iter"] == 0
    # lambda = 1e-3 sigma times 2 * 4 * ... * 2^k passes 1e12 sigma after k = 10 rejections
    assert state["rejected"] == 10 and state["damping"] == pytest.approx(1e-3 * 2.0 ** 55)
    assert x.item() == 0.5  # every rejected trial restored the parameters exactly


def small_network(seed=0):
    generator = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(1, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))
    x = torch.linspace(-1, 1, 9, dtype=torch.float64)[:, None]
    return net, lambda: (net(x) - torch.sin(3 * x)).reshape(-1)


def test_dense_and_matrix_free_jacobian_products_and_steps_agree():
    net, residual = small_network()
    params = list(net.parameters())
    R = residual()
    J = autograd_jacobian(R, params, chunk=4)
    products = autograd_products(R, params)
    generator = torch.Generator().manual_seed(1)
    v = torch.randn(J.shape[1], generator=generator, dtype=torch.float64)
    u = torch.randn(J.shape[0], generator=generator, dtype=torch.float64)
    assert torch.allclose(products.jvp(v), J @ v, rtol=0, atol=1e-13)
    assert torch.allclose(products.vjp(u), J.T @ u, rtol=0, atol=1e-13)
    r = R.detach()
    dense = damped_solver(J, r)(1e-2)
    cg = conjugate_gradient(lambda w: products.vjp(products.jvp(w)) + 1e-2 * w, -(J.T @ r), 1e-14, 200)
    assert torch.allclose(cg, dense, rtol=0, atol=1e-9)
    # fewer residuals than parameters (9 < 19): the m x m system gives the n x n system's step
    primal = torch.linalg.solve(J.T @ J + 1e-2 * torch.eye(J.shape[1], dtype=torch.float64), -(J.T @ r))
    assert J.shape[0] < J.shape[1] and torch.allclose(dense, primal, rtol=0, atol=1e-11)


def test_dense_and_matrix_free_runs_follow_the_same_path_from_the_same_damping():
    paths = []
    for matrix_free in (False, True):
        net, residual = small_network()
        optimizer = LevenbergMarquardt(net.parameters(), damping=1e-2, matrix_free=matrix_free, cg_tolerance=1e-13,
                                       max_iter=5)
        optimizer.step(residual)
        paths.append((torch.nn.utils.parameters_to_vector(net.parameters()).detach(), optimizer.global_state["n_iter"]))
    assert paths[0][1] == paths[1][1] == 5
    assert torch.allclose(paths[0][0], paths[1][0], rtol=0, atol=1e-7)


def test_state_dict_round_trip_resumes_bit_for_bit():
    net, residual = small_network()
    optimizer = LevenbergMarquardt(net.parameters(), max_iter=3)
    optimizer.step(residual)
    saved_net, saved_state = copy.deepcopy(net.state_dict()), copy.deepcopy(optimizer.state_dict())
    optimizer.step(residual)
    expected = torch.nn.utils.parameters_to_vector(net.parameters()).detach().clone()
    net.load_state_dict(saved_net)
    resumed = LevenbergMarquardt(net.parameters(), max_iter=3)
    resumed.load_state_dict(saved_state)
    assert resumed.global_state["damping"] == saved_state["state"][0]["damping"]
    resumed.step(residual)
    assert torch.equal(torch.nn.utils.parameters_to_vector(net.parameters()).detach(), expected)


@pytest.mark.parametrize("options, match", [
    ({"damping": -1.0}, "Invalid damping: -1.0"),
    ({"accept_ratio": 1.0}, r"Invalid accept_ratio: 1.0 \(must be in \[0, 1\)\)"),
    ({"max_damping": 0.0}, "Invalid max_damping"),
    ({"matrix_free": "yes"}, "Invalid matrix_free"),
    ({"dense_limit": 0}, "Invalid dense_limit"),
])
def test_bad_options_fail_in_one_line(options, match):
    with pytest.raises(ValueError, match=match):
        LevenbergMarquardt([torch.nn.Parameter(torch.zeros(2))], **options)
    with pytest.raises(TypeError, match="unexpected keyword argument 'history_size'"):
        LevenbergMarquardt([torch.nn.Parameter(torch.zeros(2))], history_size=5)


def test_a_closure_without_a_graph_and_without_a_jacobian_is_refused():
    x = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="must carry an autograd graph"):
        LevenbergMarquardt([x]).step(lambda: (x - 1).detach())
