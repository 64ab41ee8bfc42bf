"""Levenberg-Marquardt on PINNs: the residual vector squares to the loss, the torch.func Jacobian
matches autograd, a LAM+LM run beats LAM on the same iteration budget, resumes bit for bit
through its LM phase, and reports why LM stops."""
from __future__ import annotations

import pytest
import torch

import problems
from pinn_lam.nn.mlp import MLP
from pinn_lam.optim import registry
from pinn_lam.optim.least_squares import autograd_jacobian
from pinn_lam.optim.lm import CONVERGED, LevenbergMarquardt
from pinn_lam.training.checkpoint import load_checkpoint
from pinn_lam.training.jacobian import jacobian_matrix, jacobian_products
from pinn_lam.training.loss import PINNLoss, loss_terms
from pinn_lam.training.sampling import PointSampler
from pinn_lam.training.solve import solve
from pinn_lam.training.trainer import Phase, Trainer

TINY = dict(width=10, depth=2, n_collocation=256, n_boundary=16, eval_every=10, figure=False, preset="quick",
            reference_resolution=(32, 32), device="cpu", dtype="float64", params={"modes": [[1, 1.0]]})


def small_loss(name, hard, fast, seed=0, **params):
    problem = problems.get(name, **params)
    transform = problem.output_transform() if hard else None
    model = MLP(2, len(problem.outputs), width=8, depth=2, bounds=problem.bounds, output_transform=transform,
                generator=torch.Generator().manual_seed(seed)).double()
    conditions = tuple(t for t in loss_terms(problem, model) if t in problem.condition_map())
    sampler = PointSampler(problem, ("pde",) + conditions, n_collocation=64, n_boundary=16, seed=seed)
    points = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in sampler.sample().items()}
    first = loss_terms(problem, model)[0]  # the (first) equation
    weights = {first: 2.0} if hard else {first: 2.0, next(iter(problem.condition_map())): 0.5}
    return PINNLoss(problem, model, points, weights=weights, fast=fast)


CASES = [("heat", True), ("heat", False), ("burgers", True), ("burgers", False), ("poisson", False),
         ("convection", False), ("schrodinger", False), ("wave", False)]  # periodic, two outputs, a rate


@pytest.mark.parametrize("name, hard", CASES)
@pytest.mark.parametrize("fast", [None, False])
def test_residual_vector_squares_to_the_weighted_loss(name, hard, fast):
    loss = small_loss(name, hard, fast)
    total, _ = loss.loss()
    residuals = loss.residual_vector()
    if len(loss.problem.outputs) == 1 and name != "wave":  # one column per point (a rate condition adds none)
        assert residuals.numel() == sum(p.shape[0] for p in loss.points.values())
    assert float(residuals.detach().square().sum()) == pytest.approx(float(total.detach()), rel=1e-12)


@pytest.mark.parametrize("name, hard", CASES)
def test_torch_func_jacobian_and_products_match_autograd(name, hard):
    loss = small_loss(name, hard, fast=False)
    J = jacobian_matrix(loss)
    expected = autograd_jacobian(loss.residual_vector(), list(loss.model.parameters()))
    assert J.shape == expected.shape and torch.allclose(J, expected, rtol=0, atol=1e-12 * float(expected.abs().max()))
    products = jacobian_products(loss)
    generator = torch.Generator().manual_seed(0)
    v = torch.randn(J.shape[1], generator=generator, dtype=torch.float64)
    u = torch.randn(J.shape[0], generator=generator, dtype=torch.float64)
    assert torch.allclose(products.jvp(v), J @ v, rtol=0, atol=1e-12 * float((J @ v).abs().max()))
    assert torch.allclose(products.vjp(u), J.T @ u, rtol=0, atol=1e-12 * float((J.T @ u).abs().max()))


def test_fast_path_residuals_give_the_jacobian_row_by_row_and_refuse_double_backward_products():
    loss = small_loss("heat", hard=True, fast=None)
    assert loss.fast  # its backward is a hand-written kernel: no batched rows, no second derivative
    J = autograd_jacobian(loss.residual_vector(), list(loss.model.parameters()), chunk=16)
    assert torch.allclose(J, jacobian_matrix(loss), rtol=0, atol=1e-12 * float(J.abs().max()))
    with pytest.raises(ValueError, match="Jv needs the residuals' backward pass to be differentiable"):
        LevenbergMarquardt(loss.model.parameters(), matrix_free=True).step(loss.residual_vector)


def test_lam_then_lm_beats_lam_alone_on_the_same_iteration_budget():
    lam = solve("heat", optimizer="lam", iterations=68, seed=0, **TINY)
    both = solve("heat", optimizer="lam+lm", iterations=[60, 8], seed=0, **TINY)
    assert both.metrics["iterations"] == lam.metrics["iterations"] == 68
    # measured: LAM 1.8e-2 (loss 2.5e-3), LAM then 8 LM iterations 5.4e-4 (loss 1.2e-6), relative L2
    # against the exact solution
    assert both.metrics["rel_l2_exact"] < 0.1 * lam.metrics["rel_l2_exact"]
    assert both.metrics["loss"] < 1e-3 * lam.metrics["loss"]


class Kill(Exception):
    pass


def test_killed_run_resumes_bit_identical_inside_the_lm_phase(tmp_path):
    settings = dict(TINY, optimizer="lam+lm", iterations=[20, 12], lr=1e-2, seed=3, checkpoint_every=5)
    full = solve("heat", output_dir=tmp_path / "full", **settings)

    def kill(state):
        if state.iteration >= 28:
            raise Kill()

    with pytest.raises(Kill):
        solve("heat", output_dir=tmp_path / "killed", callback=kill, **settings)
    saved = load_checkpoint(tmp_path / "killed" / "checkpoint.pt")
    assert saved["iteration"] == 25 and saved["optimizer"]["state"][0]["n_iter"] == 5
    resumed = solve("heat", output_dir=tmp_path / "killed", resume=True, **settings)
    assert resumed.metrics["iterations"] == full.metrics["iterations"] == 32
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)


def test_an_lm_phase_runs_in_float64_and_ends_with_its_stop_reason():
    loss = small_loss("heat", hard=True, fast=None, modes=((1, 1.0),))
    loss.model.float()
    loss.set_points({k: v.float() for k, v in loss.points.items()})
    trainer = Trainer(loss.model, loss, [Phase("lm", 100, options={"tolerance_grad": 1e-4})])
    reason = trainer.run()
    assert trainer.dtype == torch.float64 and trainer.events[0] == "lm at iteration 0: continuing in float64"
    assert reason == f"lm at iteration {trainer.iteration}: {CONVERGED}" and trainer.iteration < 100


def test_lm_is_a_registered_residual_phase_whose_unknown_options_fail_in_one_line():
    assert registry.parse_phases("lam+LM") == ["lam", "lm"] and registry.get("lm").residuals
    assert registry.split_options(["lam", "lm"], {"damping": 1e-3}) == [{}, {"damping": 1e-3}]
    with pytest.raises(ValueError, match=r"option\(s\) history_size are not accepted by lam\+lm"):
        registry.split_options(["lam", "lm"], {"history_size": 5})


def test_matrix_free_phase_follows_the_dense_phase():
    finals = []
    for matrix_free in (False, True):
        loss = small_loss("heat", hard=True, fast=None, modes=((1, 1.0),))
        options = {"damping": 1e-3, "matrix_free": matrix_free, "cg_tolerance": 1e-10, "cg_max_iter": 105}
        trainer = Trainer(loss.model, loss, [Phase("lm", 2, options=options)])
        trainer.run()
        parameters = torch.nn.utils.parameters_to_vector(loss.model.parameters()).detach()
        finals.append((parameters, trainer.history[-1]["loss"]))
    assert finals[1][1] < 0.05 * trainer.history[0]["loss"]  # measured: 0.94 -> 0.021 in two iterations
    assert finals[1][1] == pytest.approx(finals[0][1], rel=1e-6)
    assert torch.allclose(finals[1][0], finals[0][0], rtol=0, atol=1e-6)
