"""The fast path inside the loss: value points in the same pass, the cached plan, value-only
conditions, and the malloc setting that keeps a step's memory in the process."""
import os
import platform
import subprocess
import sys

import pytest
import torch

from pinn_lam.nn import fastpath
from pinn_lam.training.loss import PINNLoss
from pinn_lam.machine import tune_malloc
from pinn_lam.pde.conditions import Condition, Dirichlet, Neumann
from pinn_lam.pde.spec import describe
from problems import Burgers, Heat
from test_fastpath import CONSTRAINT, VARIABLES, nested, network, parameter_gradients, points


@pytest.mark.parametrize("transform", [None, CONSTRAINT], ids=["raw", "hard"])
@pytest.mark.parametrize("activation", ["tanh", "gelu"])
def test_value_points_ride_in_the_same_pass(transform, activation):
    model, x = network(activation, transform), points(40)
    extra = [points(7, seed=5), points(3, seed=6)]
    keys = ("t", "x", "xx")
    u, d, values = fastpath.evaluate(model, x, VARIABLES, keys, values=extra)
    u_ref, d_ref = nested(model, x, VARIABLES, keys)
    torch.testing.assert_close(u, u_ref, rtol=1e-10, atol=1e-12)
    for key in keys:
        torch.testing.assert_close(d[key], d_ref[key], rtol=1e-9, atol=1e-10)
    assert [v.shape for v in values] == [(7, 1), (3, 1)]
    for v, p in zip(values, extra):
        torch.testing.assert_close(v, model(p), rtol=1e-10, atol=1e-12)
    # a loss mixing everything: gradients equal those of nested autograd plus plain forwards
    fast = sum((k + 1) * (t * t).sum() for k, t in enumerate([u, *d.values(), *values]))
    ref = sum((k + 1) * (t * t).sum() for k, t in enumerate([u_ref, *d_ref.values(), *(model(p) for p in extra)]))
    for g, g_ref in zip(parameter_gradients(model, fast), parameter_gradients(model, ref)):
        torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-10)


def test_a_prepared_plan_gives_nested_autograd_values_for_the_current_parameters():
    model, x = network("tanh", CONSTRAINT), points(30)
    extra = [points(5, seed=9)]
    keys = ("x", "xx", "t")
    plan = fastpath.prepare(model, x, VARIABLES, keys, values=extra)
    for _ in range(2):  # the plan holds the points, not the parameters: it follows an update
        u, d, v = fastpath.run(model, plan)
        u_ref, d_ref = nested(model, x, VARIABLES, keys)
        torch.testing.assert_close(u, u_ref, rtol=1e-10, atol=1e-12)
        for key in keys:
            torch.testing.assert_close(d[key], d_ref[key], rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(v[0], model(extra[0]), rtol=1e-10, atol=1e-12)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.mul_(1.1).add_(0.01)
    # only d["xx"] is used: the other pieces' gradients are zero, as in nested autograd
    _, d, _ = fastpath.run(model, plan)
    _, d_ref = nested(model, x, VARIABLES, ("xx",))
    for g, g_ref in zip(parameter_gradients(model, d["xx"].sum()), parameter_gradients(model, d_ref["xx"].sum())):
        torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-10)


def test_bad_value_points_raise_one_line_errors():
    model, x = network("tanh"), points()
    with pytest.raises(ValueError, match=r"values\[0\] must have shape \(N, 2\)"):
        fastpath.evaluate(model, x, VARIABLES, ("x",), values=[x[:, :1]])
    with pytest.raises(ValueError, match="one entry per values entry"):
        fastpath.evaluate(model, x, VARIABLES, ("x",), values=[x], value_terms=[])


def test_value_conditions_are_value_only_and_derivative_ones_are_not():
    problem = Heat()
    spec = describe(problem)
    assert all(spec.value_only(name) for name in spec.conditions)
    problem.conditions = lambda: [Dirichlet(0.0, on="x=low"), Neumann(0.5, on="x=high"),
                                  Condition("flux", lambda d: d["u_t"], on="initial")]
    spec = describe(problem)
    assert spec.value_only("bc") and not spec.value_only("neumann") and not spec.value_only("flux")
    assert spec.derivatives("neumann") == ("x",) and spec.derivatives("flux") == ("t",)


def test_a_condition_on_derivatives_runs_on_the_fast_path_and_matches_autograd():
    """A Neumann condition reads u_x: its own fast pass gives the autograd path's values and
    gradients, and so does the whole loss."""
    problem = Heat()
    problem.conditions = lambda: [Dirichlet(lambda d: torch.sin(d["x"]), on="initial", name="ic"),
                                  Neumann(lambda d: 0.5 + d["t"], on="x=high", name="bc")]
    model, x = network("tanh", bounds=problem.bounds, seed=4), points(48, bounds=problem.bounds)
    right = x[10:20].clone()
    right[:, 0] = 1.0
    pts = {"pde": x, "ic": x[:10], "bc": right}
    fast, slow = PINNLoss(problem, model, pts, fast=True), PINNLoss(problem, model, pts, fast=False)
    assert fast.paths == {"pde": "fast", "ic": "fast", "bc": "fast"} and slow.paths["bc"] == "autograd"
    (total_f, terms_f), (total_s, terms_s) = fast(), slow()
    # the hand-written residual: u_x(1, t) - (0.5 + t), the outward normal being +x
    xr = right.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(xr).sum(), xr, create_graph=True)
    by_hand = (grad[:, :1] - 0.5 - right[:, 1:2]).square().mean()
    torch.testing.assert_close(terms_s["bc"], by_hand, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(terms_f["bc"], terms_s["bc"], rtol=1e-9, atol=1e-12)
    for g, g_ref in zip(parameter_gradients(model, total_f), parameter_gradients(model, total_s)):
        torch.testing.assert_close(g, g_ref, rtol=1e-8, atol=1e-10)


def test_the_cached_plan_follows_new_points_and_a_new_dtype():
    problem = Burgers()
    model = network("tanh", problem.output_transform(), bounds=problem.bounds, seed=2).float()
    first, second = points(32, seed=1, bounds=problem.bounds), points(32, seed=2, bounds=problem.bounds)
    loss = PINNLoss(problem, model, {"pde": first.float()}, fast=True)
    loss()
    loss.set_points({"pde": second.float()})
    value, _ = loss()
    model.double()
    loss.set_points({"pde": second})
    value64, _ = loss()
    reference, _ = PINNLoss(problem, model, {"pde": second}, fast=False)()
    assert value64.dtype == torch.float64
    torch.testing.assert_close(value64, reference, rtol=1e-9, atol=1e-12)
    assert abs(value.item() - reference.item()) <= 1e-4 * reference.item()


def test_tune_malloc_is_idempotent_and_can_be_turned_off():
    expected = tune_malloc()
    assert tune_malloc() is expected
    if platform.libc_ver()[0] == "glibc":
        assert expected is True
    env = dict(os.environ, PINN_LAM_MALLOC="default")
    code = "from pinn_lam.machine import tune_malloc; print(tune_malloc())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_dirichlet_conditions_do_not_call_the_model_on_the_fast_path(monkeypatch):
    """Their values come from the one Taylor pass, not from separate forwards of the model."""
    problem = Burgers()
    model = network("tanh", bounds=problem.bounds, seed=5)
    x = points(40, bounds=problem.bounds)
    pts = {"pde": x, "ic": x[:8], "bc": x[8:16]}
    reference, _ = PINNLoss(problem, model, pts, fast=False)()
    loss = PINNLoss(problem, model, pts, fast=True)

    def no_forward(*args, **kwargs):
        raise AssertionError("the model's forward ran on the fast path")

    monkeypatch.setattr(model, "forward", no_forward)
    total, _ = loss()
    torch.testing.assert_close(total, reference, rtol=1e-9, atol=1e-12)
