"""Stiffness diagnostics against dense and hand computations."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.func import functional_call

from pinn_lam.studies.stiffness import StiffnessMonitor, gradient_norms, hessian_top_eigenvalue


def tiny_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)  # test-local model init only
    return nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1)).double()


def data(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(16, 2, generator=g, dtype=torch.float64)
    y = torch.sin(3 * x[:, :1]) * x[:, 1:]
    return x, y


def test_hessian_top_eigenvalue_matches_dense_eigendecomposition():
    model = tiny_mlp()
    x, y = data()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss_of(flat):
        tensors, i = {}, 0
        for name, shape in zip(names, shapes):
            n = math.prod(shape)
            tensors[name] = flat[i:i + n].reshape(shape)
            i += n
        return ((functional_call(model, tensors, (x,)) - y) ** 2).mean()

    dense = torch.autograd.functional.hessian(loss_of, flat0)
    eigs = torch.linalg.eigvalsh(dense)
    dominant = float(eigs[eigs.abs().argmax()])
    assert flat0.numel() == 31

    fn = lambda: ((model(x) - y) ** 2).mean()  # noqa: E731
    result = hessian_top_eigenvalue(fn, model.parameters(), iterations=2000, tol=1e-13, seed=3)
    assert result.converged
    assert result.value == pytest.approx(float(eigs.max()), rel=1e-8)
    magnitude = hessian_top_eigenvalue(fn, model.parameters(), iterations=2000, tol=1e-13, seed=3, which="magnitude")
    assert magnitude.value == pytest.approx(dominant, rel=1e-8)


def test_largest_eigenvalue_is_found_behind_a_negative_dominant_one():
    # L = 1/2 w^T A w with eigenvalues {-5, 1, 2}: the dominant one is -5, the largest 2
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    a = q @ torch.diag(torch.tensor([-5.0, 1.0, 2.0], dtype=torch.float64)) @ q.T
    w = torch.ones(3, dtype=torch.float64, requires_grad=True)
    result = hessian_top_eigenvalue(lambda: 0.5 * w @ a @ w, [w], iterations=500, tol=1e-13)
    assert result.dominant == pytest.approx(-5.0, rel=1e-9)
    assert result.value == pytest.approx(2.0, rel=1e-9) and result.converged
    magnitude = hessian_top_eigenvalue(lambda: 0.5 * w @ a @ w, [w], iterations=500, tol=1e-13, which="magnitude")
    assert magnitude.value == pytest.approx(-5.0, rel=1e-9)


def test_hessian_start_vector_is_seeded():
    model = tiny_mlp()
    x, y = data()
    fn = lambda: ((model(x) - y) ** 2).mean()  # noqa: E731
    a = hessian_top_eigenvalue(fn, model.parameters(), iterations=3, tol=0.0, seed=5)
    b = hessian_top_eigenvalue(fn, model.parameters(), iterations=3, tol=0.0, seed=5)
    # the dominant eigenvalue here is negative: 3 steps for it, 3 for the shifted iteration
    assert a == b and a.iterations == 6 and not a.converged and a.dominant < 0


def test_linear_loss_has_zero_hessian():
    w = torch.ones(4, dtype=torch.float64, requires_grad=True)
    assert hessian_top_eigenvalue(lambda: w.sum() * 3.0, [w]).value == 0.0


def test_gradient_norms_match_hand_computation():
    # term "fit": mean((X w - y)^2) has gradient 2/N X^T (X w - y); term "reg": |w|^2 has 2 w
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 3, generator=g, dtype=torch.float64)
    y = torch.randn(10, 1, generator=g, dtype=torch.float64)
    w = torch.randn(3, 1, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)  # unused by both terms
    terms = {"fit": ((x @ w - y) ** 2).mean(), "reg": (w ** 2).sum(), "const": torch.tensor(2.0)}
    norms = gradient_norms(terms, [w, b])
    with torch.no_grad():
        fit = torch.linalg.norm(2.0 / 10 * x.T @ (x @ w - y))
        reg = torch.linalg.norm(2 * w)
    assert norms["fit"] == pytest.approx(float(fit), rel=1e-12)
    assert norms["reg"] == pytest.approx(float(reg), rel=1e-12)
    assert norms["const"] == 0.0
    assert w.grad is None


def test_gradient_norms_of_terms_sharing_one_graph_match_separate_backward_passes():
    model = tiny_mlp()
    x, y = data()
    params = list(model.parameters())
    out = model(x)
    terms = {"a": ((out - y) ** 2).mean(), "b": (out[:4] ** 2).mean()}
    norms = gradient_norms(terms, params)
    for name, fn in {"a": lambda o: ((o - y) ** 2).mean(), "b": lambda o: (o[:4] ** 2).mean()}.items():
        model.zero_grad()
        fn(model(x)).backward()
        manual = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in params))
        assert norms[name] == pytest.approx(manual, rel=1e-12)


def test_bad_inputs_raise():
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="iterations"):
        hessian_top_eigenvalue(lambda: (w ** 2).sum(), [w], iterations=0)
    with pytest.raises(ValueError, match="requires grad"):
        gradient_norms({"a": (w ** 2).sum()}, [torch.ones(2)])
    with pytest.raises(ValueError, match="scalar"):
        gradient_norms({"a": w ** 2}, [w])


class FakeLoss:
    """Stands in for PINNLoss: ``loss() -> (total, terms)``."""

    def __init__(self, model, x, y):
        self.model, self.x, self.y = model, x, y

    def loss(self):
        out = self.model(self.x)
        terms = {"pde": ((out - self.y) ** 2).mean(), "bc": (out[:2] ** 2).mean()}
        return terms["pde"] + terms["bc"], terms


def test_monitor_records_every_n_iterations_and_hessian_at_checkpoints():
    model = tiny_mlp()
    x, y = data()
    loss = FakeLoss(model, x, y)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    monitor = StiffnessMonitor(every=5, hessian_at=(0, 10), power_iterations=2000, tol=1e-13)
    for it in range(12):
        opt.zero_grad()
        loss.loss()[0].backward()
        opt.step()
        assert monitor(SimpleNamespace(iteration=it, elapsed=0.1 * (it + 1) + monitor.seconds,
                                       model=model, loss=loss)) is False
    monitor.finish()
    assert [r["iteration"] for r in monitor.rows] == [0, 5, 10, 11]
    assert [("hessian_top" in r) for r in monitor.rows] == [True, False, True, True]
    assert all(r["grad_norm_pde"] > 0 and r["grad_norm_bc"] > 0 for r in monitor.rows)
    # diagnostics time is taken out of the training clock
    assert monitor.rows[1]["time"] == pytest.approx(0.6, abs=1e-9)
    # the last row against separate backward passes and the dense Hessian's largest eigenvalue
    final = monitor.rows[-1]
    params = list(model.parameters())
    for index, name in enumerate(("pde", "bc")):
        model.zero_grad()
        loss.loss()[1][name].backward()
        by_hand = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in params))
        assert final[f"grad_norm_{name}"] == pytest.approx(by_hand, rel=1e-10)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in params]

    def total_of(flat):
        tensors, start = {}, 0
        for name, shape in zip(names, shapes):
            tensors[name] = flat[start:start + shape.numel()].view(shape)
            start += shape.numel()
        out = functional_call(model, tensors, (x,))
        return ((out - y) ** 2).mean() + (out[:2] ** 2).mean()

    dense = torch.autograd.functional.hessian(total_of, torch.cat([p.detach().reshape(-1) for p in params]))
    assert final["hessian_converged"]
    assert final["hessian_top"] == pytest.approx(float(torch.linalg.eigvalsh(dense).max()), rel=1e-8)


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad


def test_once_differentiable_loss_is_refused_not_reported_as_zero_curvature():
    w = torch.ones(3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="twice differentiable"):
        # the upstream gradient 2 x^2 requires grad, so the gradient gets a graph that cannot be walked
        hessian_top_eigenvalue(lambda: (Square.apply(w) ** 2).sum(), [w])
