"""Autograd operators against hand-computed derivatives of u = sin(2x) y^3 + exp(x y), float64."""
import pytest
import torch

from pinn_lam.pde import operators


def _points(n=64, d=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=generator, dtype=torch.float64).requires_grad_()


def _u(p):
    x, y = p[:, :1], p[:, 1:2]
    return torch.sin(2 * x) * y ** 3 + torch.exp(x * y)


def _analytic(p):
    x, y = p[:, :1].detach(), p[:, 1:2].detach()
    e = torch.exp(x * y)
    return {
        "x": 2 * torch.cos(2 * x) * y ** 3 + y * e,
        "y": 3 * torch.sin(2 * x) * y ** 2 + x * e,
        "xx": -4 * torch.sin(2 * x) * y ** 3 + y ** 2 * e,
        "yy": 6 * torch.sin(2 * x) * y + x ** 2 * e,
        "xy": 6 * torch.cos(2 * x) * y ** 2 + e + x * y * e,
        "yx": 6 * torch.cos(2 * x) * y ** 2 + e + x * y * e,
        "xxx": -8 * torch.cos(2 * x) * y ** 3 + y ** 3 * e,
    }


def test_gradient_matches_analytic():
    p = _points()
    grad = operators.gradient(_u(p), p)
    want = _analytic(p)
    torch.testing.assert_close(grad, torch.cat([want["x"], want["y"]], dim=1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("index, order, key", [(0, 1, "x"), (1, 1, "y"), (0, 2, "xx"), (1, 2, "yy"),
                                               (0, 3, "xxx"), (-1, 2, "yy")])
def test_partial_of_any_order(index, order, key):
    p = _points()
    torch.testing.assert_close(operators.partial(_u(p), p, index, order), _analytic(p)[key],
                               rtol=1e-11, atol=1e-11)


def test_laplacian_and_divergence_agree_with_hand_computation():
    p = _points()
    u = _u(p)
    want = _analytic(p)
    torch.testing.assert_close(operators.laplacian(u, p), want["xx"] + want["yy"], rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(operators.laplacian(u, p, dims=[1]), want["yy"], rtol=1e-11, atol=1e-11)
    # div(grad u) is the Laplacian
    torch.testing.assert_close(operators.divergence(operators.gradient(u, p), p), want["xx"] + want["yy"],
                               rtol=1e-11, atol=1e-11)


def test_derivatives_by_name_including_mixed():
    p = _points()
    d = operators.derivatives(_u(p), p, ("x", "y"), ("x", "xx", "yy", "xy", "yx", "xxx"))
    want = _analytic(p)
    assert list(d) == ["x", "xx", "yy", "xy", "yx", "xxx"]
    for key, value in d.items():
        torch.testing.assert_close(value, want[key], rtol=1e-11, atol=1e-11)


def test_derivatives_share_first_gradient():
    p = _points()
    calls = []
    original = torch.autograd.grad

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    torch.autograd.grad, saved = counting, torch.autograd.grad
    try:
        operators.derivatives(_u(p), p, ("x", "t"), ("t", "x", "xx"))
    finally:
        torch.autograd.grad = saved
    assert len(calls) == 2  # grad of u, then grad of u_x


def test_results_are_differentiable_again():
    w = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    p = _points()
    u = torch.sin(w * p[:, :1])
    uxx = operators.partial(u, p, 0, 2)
    (dw,) = torch.autograd.grad(uxx.sum(), w)
    x = p[:, :1].detach()
    # d/dw (-w^2 sin(w x)) = -2w sin(wx) - w^2 x cos(wx)
    want = (-2 * w * torch.sin(w * x) - w ** 2 * x * torch.cos(w * x)).sum().detach()
    torch.testing.assert_close(dw, want, rtol=1e-11, atol=1e-11)


def test_derivative_of_linear_function_is_zero_not_an_error():
    p = _points()
    u = 3 * p[:, :1] + p[:, 1:2]
    assert torch.equal(operators.partial(u, p, 0, 2), torch.zeros_like(u))
    assert torch.equal(operators.derivatives(u, p, ("x", "y"), ("xx",))["xx"], torch.zeros_like(u))


@pytest.mark.parametrize("call, message", [
    (lambda p: operators.gradient(_u(p), p.detach()), "require grad"),
    (lambda p: operators.gradient(torch.cat([_u(p), _u(p)], 1), p), "shape"),
    (lambda p: operators.partial(_u(p), p, 2), "out of range"),
    (lambda p: operators.partial(_u(p), p, 0, 0), "positive integer"),
    (lambda p: operators.derivatives(_u(p), p, ("x", "y"), ("xz",)), "made of the variables"),
    (lambda p: operators.derivatives(_u(p), p, ("x", "x"), ("x",)), "distinct"),
    (lambda p: operators.divergence(_u(p), p), "field must have shape"),
])
def test_bad_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call(_points())
