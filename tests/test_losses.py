"""PINNLoss against hand-computed residuals, the exact solution, and between its two derivative paths."""
import math

import pytest
import torch
from torch import nn

from pinn_lam.training.loss import PINNLoss, loss_terms
from pinn_lam.nn.mlp import MLP
from problems import Heat, Poisson


class Formula(nn.Module):
    """A 'network' that is a fixed formula of the points (with one dummy parameter)."""

    def __init__(self, formula):
        super().__init__()
        self.formula = formula
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, points):
        return self.formula(points) + self.dummy


def grid(n=9):
    s = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    x, t = torch.meshgrid(s, s, indexing="ij")
    return torch.stack([x.reshape(-1), t.reshape(-1)], dim=1)


def heat_points():
    p = grid()
    return {"pde": p, "ic": p[p[:, 1] == 0], "bc": p[(p[:, 0] == 0) | (p[:, 0] == 1)]}


def test_loss_of_a_polynomial_matches_the_hand_computed_residuals():
    # u = x^2 t: u_t - alpha u_xx = x^2 - 2 alpha t; ic residual u(x,0) - sum a_k sin(k pi x) = -u0(x);
    # bc residual u(0,t) = 0 and u(1,t) = t
    problem = Heat(alpha=0.1)
    points = heat_points()
    loss = PINNLoss(problem, Formula(lambda p: p[:, :1] ** 2 * p[:, 1:]), points, weights={"pde": 0.5, "bc": 2.0},
                    fast=False)
    total, terms = loss()
    x, t = points["pde"][:, 0], points["pde"][:, 1]
    pde = ((x ** 2 - 0.2 * t) ** 2).mean()
    x0 = points["ic"][:, 0]
    ic = ((torch.sin(math.pi * x0) + 0.5 * torch.sin(4 * math.pi * x0)) ** 2).mean()
    b = points["bc"]
    bc = ((b[:, 0] ** 2 * b[:, 1]) ** 2).mean()
    assert loss.terms() == ("pde", "ic", "bc")
    torch.testing.assert_close(terms["pde"], pde, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(terms["ic"], ic, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(terms["bc"], bc, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(total, 0.5 * pde + ic + 2.0 * bc, rtol=1e-12, atol=1e-14)


def test_exact_solution_has_zero_loss():
    problem = Heat()
    _, terms = PINNLoss(problem, Formula(problem.exact_torch), heat_points(), fast=False)()
    for name, value in terms.items():
        assert value.item() < 1e-24, name


def test_hard_constraint_drops_the_terms_it_covers():
    problem = Heat()
    model = MLP(2, width=8, depth=2, bounds=problem.bounds, output_transform=problem.output_transform())
    assert loss_terms(problem, model) == ("pde",)
    free = MLP(2, width=8, depth=2, bounds=problem.bounds)
    assert loss_terms(problem, free) == ("pde", "ic", "bc")


@pytest.mark.parametrize("problem", [Heat(), Poisson()])
def test_fast_path_gives_the_autograd_loss_and_gradient(problem):
    torch.manual_seed(0)
    model = MLP(2, width=16, depth=3, bounds=problem.bounds, output_transform=problem.output_transform(),
                generator=torch.Generator().manual_seed(0)).double()
    points = {"pde": torch.rand(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))}
    fast, slow = PINNLoss(problem, model, points, fast=None), PINNLoss(problem, model, points, fast=False)
    assert fast.fast and not slow.fast
    grads = []
    for loss in (fast, slow):
        model.zero_grad()
        total, _ = loss()
        total.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(fast()[0], slow()[0], rtol=1e-12, atol=0)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_bad_arguments_raise_value_errors():
    problem = Heat()
    points = heat_points()
    model = Formula(problem.exact_torch)
    with pytest.raises(ValueError, match="unknown loss weight"):
        PINNLoss(problem, model, points, weights={"data": 1.0})
    with pytest.raises(ValueError, match="must be finite and non-negative"):
        PINNLoss(problem, model, points, weights={"ic": -1.0})
    with pytest.raises(ValueError, match="missing \\['bc'\\]"):
        PINNLoss(problem, model, {"pde": points["pde"], "ic": points["ic"]})
    with pytest.raises(ValueError, match="fast path does not support"):
        PINNLoss(problem, model, points, fast=True)
    loss = PINNLoss(problem, model, points, fast=False)
    with pytest.raises(ValueError, match=r"\(N, 2\) tensor"):
        loss.set_points({**points, "pde": torch.zeros(4, 3)})


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_one_node_mean_squares_match_square_mean_and_their_gradients(dtype):
    from pinn_lam.training.mean_squares import _MeanSquares

    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(n, 1, generator=g, dtype=torch.float64).to(dtype).requires_grad_(True) for n in (7, 3, 5)]
    targets = (None, torch.randn(3, 1, generator=g, dtype=torch.float64).to(dtype), None)
    weights = (0.7, 2.5, 0.0)
    total, *means = _MeanSquares.apply(weights, targets, *xs)
    residuals = [x if t is None else x - t for x, t in zip(xs, targets)]
    ref_means = [r.square().mean() for r in residuals]
    ref_total = sum(w * m for w, m in zip(weights, ref_means))
    tol = {torch.float64: 1e-14, torch.float32: 1e-6, torch.bfloat16: 1e-2}[dtype]
    for a, b in zip([total, *means], [ref_total, *ref_means]):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    # the total's gradient, one term's gradient, and a mix of both (each output is differentiable)
    for pick in (lambda t, m: t, lambda t, m: m[1], lambda t, m: 3 * t - m[0] + m[2]):
        grads = torch.autograd.grad(pick(total, means), xs, retain_graph=True, allow_unused=True)
        refs = torch.autograd.grad(pick(ref_total, ref_means), xs, retain_graph=True, allow_unused=True)
        for a, b in zip(grads, refs):
            if b is None or not b.abs().max():  # no dependence (or a zero weight): zero or None
                assert a is None or not a.abs().max()
            else:
                torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_the_loss_is_twice_differentiable_on_the_autograd_path():
    """Hessian-vector products through PINNLoss(fast=False) equal those of the plain weighted
    sum of square().mean() terms (the one-node loss must not drop the Gauss-Newton part)."""
    from problems import Burgers

    problem = Burgers()
    model = MLP(2, 1, width=6, depth=2, activation="tanh", bounds=problem.bounds,
                generator=torch.Generator().manual_seed(0)).double()
    g = torch.Generator().manual_seed(1)
    points = {"pde": torch.rand(30, 2, generator=g, dtype=torch.float64) * torch.tensor([2.0, 1.0]) - torch.tensor([1.0, 0.0]),
              "ic": torch.cat([torch.rand(8, 1, generator=g, dtype=torch.float64) * 2 - 1, torch.zeros(8, 1, dtype=torch.float64)], 1),
              "bc": torch.cat([torch.tensor([[-1.0], [1.0]], dtype=torch.float64).repeat(3, 1),
                               torch.rand(6, 1, generator=g, dtype=torch.float64)], 1)}
    weights = {"pde": 1.0, "ic": 3.0, "bc": 0.5}
    loss = PINNLoss(problem, model, points, weights=weights, fast=False)
    params = list(model.parameters())
    v = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]

    def hvp(total):
        grads = torch.autograd.grad(total, params, create_graph=True)
        return torch.autograd.grad(grads, params, grad_outputs=v)

    ours = hvp(loss()[0])
    plain = sum(weights[name] * (loss.pde_residual() if name == "pde" else loss.condition_residual(name)).square().mean()
                for name in loss.terms())
    for a, b in zip(ours, hvp(plain)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
