"""Self-scaled quasi-Newton (SSBFGS, SSBroyden): the secant condition and the BFGS special case
of the update, termination in n steps on a quadratic with exact line searches, Rosenbrock's
minimum, state dicts, a trainer phase, bad options."""
from __future__ import annotations

import copy

import pytest
import torch

from pinn_lam.optim import lbfgs, registry
from pinn_lam.optim.ssbfgs import METHODS, SelfScaledQuasiNewton, make_ssbfgs, scaling, self_scaled_update


def spd_pair(n=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=generator, dtype=torch.float64)
    H = A @ A.T + n * torch.eye(n, dtype=torch.float64)
    s = torch.randn(n, generator=generator, dtype=torch.float64)
    C = torch.randn(n, n, generator=generator, dtype=torch.float64)
    y = (C @ C.T + torch.eye(n, dtype=torch.float64)) @ s  # y^T s > 0
    return H, s, y


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("t", [1.0, 0.3])
def test_update_meets_the_secant_condition_and_stays_symmetric_positive_definite(method, t):
    H, s, y = spd_pair()
    # s = -t H g for the gradient g before the step, so t s^T g = -t^2 g^T H g
    g = -torch.linalg.solve(H, s) / t
    updated = H.clone()
    self_scaled_update(updated, s, y, t * s.dot(g), method)
    assert torch.allclose(updated @ y, s, rtol=0, atol=1e-12 * float(s.abs().max()))
    assert torch.allclose(updated, updated.T, rtol=0, atol=1e-12 * float(updated.abs().max()))
    assert float(torch.linalg.eigvalsh(updated).min()) > 0


def test_ssbfgs_without_rescaling_is_the_textbook_bfgs_update():
    H, s, y = spd_pair(seed=1)
    rho = 1.0 / float(y.dot(s))
    # choose g so that b = s^T B s / y^T s = 0.5 <= 1: tau = min(1, 1/b) = 1, plain BFGS
    b = 0.5
    updated = H.clone()
    self_scaled_update(updated, s, y, torch.tensor(-b / rho, dtype=torch.float64), "ssbfgs")
    V = torch.eye(6, dtype=torch.float64) - rho * torch.outer(y, s)
    assert torch.allclose(updated, V.T @ H @ V + rho * torch.outer(s, s), rtol=0, atol=1e-11)
    assert scaling("ssbfgs", 4.0, 2.0, 6) == (0.25, 1.0)
    # a = b h - 1 = 0: every member coincides, theta = 0, phi = 1 and tau = min(1, 1/b)
    assert scaling("ssbroyden", 2.0, 0.5, 6) == pytest.approx((0.5, 1.0), rel=1e-15)


def quadratic(n=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    A = Q @ torch.diag(torch.logspace(0, 2, n, dtype=torch.float64)) @ Q.T  # condition number 100
    b = torch.randn(n, generator=generator, dtype=torch.float64)
    return A, b


@pytest.mark.parametrize("method", METHODS)
def test_quadratic_terminates_in_n_steps_with_exact_line_searches(method):
    A, b = quadratic()
    x = torch.nn.Parameter(torch.zeros(8, dtype=torch.float64))
    # c2 = 1e-10 (c1 < c2): the curvature condition then asks for the exact minimiser along each line,
    # which the line search's cubic interpolation finds for a quadratic
    optimizer = SelfScaledQuasiNewton([x], method=method, max_iter=1, max_eval=100, tolerance_grad=0.0,
                                     c1=1e-12, c2=1e-10)

    def closure():
        optimizer.zero_grad()
        value = 0.5 * x @ A @ x - b @ x
        value.backward()
        return value

    solution = torch.linalg.solve(A, b)
    errors = []
    for _ in range(8):
        optimizer.step(closure)
        errors.append(float((x.detach() - solution).norm() / solution.norm()))
    assert errors[6] > 1e-6 and errors[7] < 1e-10, errors


@pytest.mark.parametrize("method", METHODS)
def test_rosenbrock_reaches_its_minimum_and_reports_convergence(method):
    x = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
    optimizer = registry.make_optimizer(method, [x], None, {"tolerance_grad": 1e-10})
    lbfgs.set_chunk(optimizer, 200)

    def closure():
        optimizer.zero_grad()
        value = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        value.backward()
        return value

    optimizer.step(closure)
    done = lbfgs.iterations_done(optimizer)
    assert lbfgs.diagnose(optimizer, 200, done) == "converged" and done < 100
    assert torch.allclose(x.detach(), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-8)


def test_state_dict_round_trip_resumes_bit_for_bit():
    A, b = quadratic(seed=1)
    x = torch.nn.Parameter(torch.zeros(8, dtype=torch.float64))

    def make():
        optimizer = make_ssbfgs([x])
        lbfgs.set_chunk(optimizer, 3)
        return optimizer

    def closure():
        x.grad = None
        value = torch.log1p((0.5 * x @ A @ x - b @ x + 10).square())
        value.backward()
        return value

    optimizer = make()
    optimizer.step(closure)
    saved_x, saved_state = x.detach().clone(), copy.deepcopy(optimizer.state_dict())
    optimizer.step(closure)
    expected = x.detach().clone()
    with torch.no_grad():
        x.copy_(saved_x)
    resumed = make()
    resumed.load_state_dict(saved_state)
    resumed.step(closure)
    assert torch.equal(x.detach(), expected)


def test_lam_then_ssbroyden_trains_a_pinn_phase():
    from pinn_lam.nn.mlp import MLP
    from pinn_lam.training.loss import PINNLoss
    from pinn_lam.training.sampling import PointSampler
    from pinn_lam.training.trainer import Phase, Trainer
    from problems import Heat

    problem = Heat(modes=((1, 1.0),))
    model = MLP(2, width=12, depth=2, bounds=problem.bounds, output_transform=problem.output_transform(),
                generator=torch.Generator().manual_seed(0)).double()
    sampler = PointSampler(problem, ("pde",), n_collocation=128, n_boundary=8, seed=0)
    loss = PINNLoss(problem, model, {k: torch.as_tensor(v) for k, v in sampler.sample().items()})
    trainer = Trainer(model, loss, [Phase("lam", 30, 1e-2), Phase("ssbroyden", 30)])
    trainer.run()
    lam_end = next(r["loss"] for r in trainer.history if r["iteration"] == 30)
    assert trainer.history[-1]["loss"] < 1e-2 * lam_end


def test_bad_options_fail_in_one_line():
    x = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="unknown self-scaled method 'ssdfp'; choose from ssbfgs, ssbroyden"):
        SelfScaledQuasiNewton(x, method="ssdfp")
    with pytest.raises(ValueError, match=r"Invalid Wolfe constants c1=0.5, c2=0.1"):
        make_ssbfgs(x, c1=0.5, c2=0.1)
    with pytest.raises(ValueError, match=r"option\(s\) history_size are not accepted by lam\+ssbfgs"):
        registry.split_options(["lam", "ssbfgs"], {"history_size": 5})
    with pytest.raises(ValueError, match="at most 20000 parameters"):
        make_ssbfgs([torch.nn.Parameter(torch.zeros(20001))])
