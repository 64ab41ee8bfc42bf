"""The forward-mode fast path against nested autograd (the ground truth) in float64."""
import math

import pytest
import torch
from torch import nn

from pinn_lam.nn import fastpath
from pinn_lam.training.loss import PINNLoss
from pinn_lam.nn.mlp import ACTIVATIONS, MLP
from pinn_lam.pde.operators import derivatives as autograd_derivatives
from pinn_lam.pde.problem import HardConstraint
from problems import Burgers, Heat, Poisson

VARIABLES = ("x", "t")
# a constraint with non-trivial first and second derivatives in both variables
CONSTRAINT = HardConstraint(offset=lambda p: -torch.sin(math.pi * p[:, :1]) + p[:, 1:2] ** 2 * p[:, :1],
                            factor=lambda p: p[:, 1:2] * (1.0 - p[:, :1] ** 2) * torch.exp(p[:, 1:2]),
                            covers=("ic", "bc"))


def network(activation="tanh", transform=None, depth=3, width=12, seed=0, bounds=((-1.0, 1.0), (0.0, 1.0))):
    generator = torch.Generator().manual_seed(seed)
    model = MLP(len(bounds), 1, width=width, depth=depth, activation=activation, bounds=bounds,
                output_transform=transform, generator=generator).double()
    with torch.no_grad():  # non-zero biases, so every term of the Taylor rules is exercised
        for layer in model.layers:
            layer.bias.copy_(0.3 * torch.randn(layer.bias.shape, generator=generator, dtype=torch.float64))
    return model


def points(n=40, seed=1, bounds=((-1.0, 1.0), (0.0, 1.0))):
    unit = torch.rand(n, len(bounds), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    low = torch.tensor([b[0] for b in bounds], dtype=torch.float64)
    high = torch.tensor([b[1] for b in bounds], dtype=torch.float64)
    return low + (high - low) * unit


def nested(model, x, variables, keys):
    x = x.detach().requires_grad_(True)
    u = model(x)
    return u, autograd_derivatives(u, x, variables, keys)


def scalar(u, d):
    """A loss-like scalar that mixes every returned tensor non-linearly."""
    return (u ** 2).sum() + sum((k + 1) * (v * u).sum() + v.pow(2).sum() for k, v in enumerate(d.values()))


def parameter_gradients(model, value):
    return torch.autograd.grad(value, list(model.parameters()))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("transform", [None, CONSTRAINT], ids=["raw", "hard"])
@pytest.mark.parametrize("keys", [("t", "x", "xx"), ("xx", "tt"), ("x",), ("tt", "x")])
def test_values_and_parameter_gradients_match_nested_autograd(activation, transform, keys):
    model, x = network(activation, transform), points()
    u_ref, d_ref = nested(model, x, VARIABLES, keys)
    u, d = fastpath.derivatives(model, x, VARIABLES, keys)
    assert set(d) == set(keys)
    torch.testing.assert_close(u, u_ref, rtol=1e-10, atol=1e-12)
    for key in keys:
        assert d[key].shape == (x.shape[0], 1)
        torch.testing.assert_close(d[key], d_ref[key], rtol=1e-9, atol=1e-10)
    for g, g_ref in zip(parameter_gradients(model, scalar(u, d)), parameter_gradients(model, scalar(u_ref, d_ref))):
        torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("activation", ["sin", "tanh"])
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_any_depth_and_three_inputs(depth, activation):
    bounds = ((0.0, 2.0), (-1.0, 1.0), (0.0, 0.5))
    model, x = network(activation, depth=depth, bounds=bounds), points(bounds=bounds)
    keys = ("zz", "x", "yy", "xx")
    u_ref, d_ref = nested(model, x, ("x", "y", "z"), keys)
    u, d = fastpath.derivatives(model, x, ("x", "y", "z"), keys)
    for key in keys:
        torch.testing.assert_close(d[key], d_ref[key], rtol=1e-9, atol=1e-10)
    for g, g_ref in zip(parameter_gradients(model, scalar(u, d)), parameter_gradients(model, scalar(u_ref, d_ref))):
        torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-10)


def test_gradient_with_respect_to_the_points_matches_autograd():
    model, x = network("tanh"), points()
    x1 = x.clone().requires_grad_(True)
    u, d = fastpath.derivatives(model, x1, VARIABLES, ("t", "x", "xx"))
    (g_fast,) = torch.autograd.grad(scalar(u, d), x1)
    x2 = x.clone().requires_grad_(True)
    u2 = model(x2)
    (g_ref,) = torch.autograd.grad(scalar(u2, autograd_derivatives(u2, x2, VARIABLES, ("t", "x", "xx"))), x2)
    torch.testing.assert_close(g_fast, g_ref, rtol=1e-9, atol=1e-10)


def test_precomputed_constraint_terms_give_the_same_result():
    model, x = network("tanh", CONSTRAINT), points()
    keys = ("t", "x", "xx")
    terms = fastpath.constraint_terms(CONSTRAINT, x, VARIABLES, keys)
    # hand-computed: a = -sin(pi x) + t^2 x, so a_xx = pi^2 sin(pi x) and a_t = 2 t x
    torch.testing.assert_close(terms["a_xx"], math.pi ** 2 * torch.sin(math.pi * x[:, :1]))
    torch.testing.assert_close(terms["a_t"], 2 * x[:, 1:2] * x[:, :1])
    u1, d1 = fastpath.derivatives(model, x, VARIABLES, keys)
    u2, d2 = fastpath.derivatives(model, x, VARIABLES, keys, terms=terms)
    torch.testing.assert_close(u1, u2, rtol=0, atol=0)
    for key in keys:
        torch.testing.assert_close(d1[key], d2[key], rtol=0, atol=0)


def test_float32_agrees_with_float64_autograd():
    model64, x = network("tanh"), points(200)
    model32 = network("tanh").float()
    u_ref, d_ref = nested(model64, x, VARIABLES, ("t", "x", "xx"))
    u, d = fastpath.derivatives(model32, x.float(), VARIABLES, ("t", "x", "xx"))
    assert u.dtype == torch.float32 and d["xx"].dtype == torch.float32
    for key in ("t", "x", "xx"):
        scale = d_ref[key].abs().max()
        assert (d[key].double() - d_ref[key]).abs().max() <= 1e-5 * scale


def test_no_grad_mode_gives_values_without_a_graph():
    model, x = network("tanh"), points()
    with torch.no_grad():
        u, d = fastpath.derivatives(model, x, VARIABLES, ("t", "xx"))
    assert not u.requires_grad and not d["xx"].requires_grad
    _, d_ref = nested(model, x, VARIABLES, ("t", "xx"))
    torch.testing.assert_close(d["xx"], d_ref["xx"].detach(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("problem", [Burgers(), Heat(), Poisson()], ids=lambda p: p.name)
@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_every_problem_loss_and_gradients_match_the_autograd_path(problem, hard):
    transform = problem.output_transform() if hard else None
    model = network("tanh", transform, bounds=problem.bounds, seed=3)
    x = points(64, bounds=problem.bounds)
    names = [n for n in problem.condition_map() if not (hard and n in transform.covers)]
    pts = {"pde": x, **{n: x[:16] for n in names}}
    fast = PINNLoss(problem, model, pts, fast=True)
    slow = PINNLoss(problem, model, pts, fast=False)
    assert fast.fast and not slow.fast
    (total_f, terms_f), (total_s, terms_s) = fast(), slow()
    assert set(terms_f) == set(terms_s)
    for name in terms_s:  # the conditions' values ride in the fast pass
        torch.testing.assert_close(terms_f[name], terms_s[name], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(total_f, total_s, rtol=1e-9, atol=1e-12)
    for g, g_ref in zip(parameter_gradients(model, total_f), parameter_gradients(model, total_s)):
        torch.testing.assert_close(g, g_ref, rtol=1e-8, atol=1e-10)


class NotAnMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x):
        return torch.tanh(self.linear(x))


def test_supports_says_no_for_what_it_cannot_do():
    model = network("tanh")
    assert fastpath.supports(model, ("t", "x", "xx"))
    assert fastpath.supports(network("tanh", CONSTRAINT), ("t", "xx"))
    assert not fastpath.supports(model, ("xt",))  # mixed
    assert not fastpath.supports(model, ("xxx",))  # third order
    assert not fastpath.supports(model, ("",))
    assert not fastpath.supports(NotAnMLP(), ("x",))
    assert not fastpath.supports(network("tanh", lambda p, raw: raw * p[:, :1]), ("x",))  # arbitrary transform


def test_loss_falls_back_to_autograd_when_unsupported():
    problem = Heat()
    model = network("tanh", lambda p, raw: p[:, 1:2] * raw, bounds=problem.bounds)  # not a HardConstraint
    x = points(32, bounds=problem.bounds)
    pts = {"pde": x, "ic": x[:8], "bc": x[8:16]}
    loss = PINNLoss(problem, model, pts)
    assert not loss.fast
    total, terms = loss()
    # by hand: u_t - alpha u_xx from autograd, u - (sin(pi x) + 0.5 sin(4 pi x)) at "ic", u at "bc"
    xp = x.detach().requires_grad_(True)
    u = model(xp)
    (du,) = torch.autograd.grad(u.sum(), xp, create_graph=True)
    (d2u,) = torch.autograd.grad(du[:, 0].sum(), xp, create_graph=True)
    c = x[:8, :1]
    expected = {"pde": (du[:, 1] - 0.1 * d2u[:, 0]).square().mean(),
                "ic": (model(x[:8]) - torch.sin(math.pi * c) - 0.5 * torch.sin(4 * math.pi * c)).square().mean(),
                "bc": model(x[8:16]).square().mean()}
    assert set(terms) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(terms[name], value, rtol=1e-12, atol=0)
    torch.testing.assert_close(total, sum(expected.values()), rtol=1e-12, atol=0)
    for g, g_ref in zip(parameter_gradients(model, total), parameter_gradients(model, sum(expected.values()))):
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="fast path"):
        PINNLoss(problem, model, pts, fast=True)


@pytest.mark.parametrize("keys, match", [(("xt",), "does not support"), (("y",), "names no variable")])
def test_bad_keys_raise_one_line_errors(keys, match):
    with pytest.raises(ValueError, match=match):
        fastpath.derivatives(network("tanh"), points(), VARIABLES, keys)


def test_bad_point_shape_raises():
    with pytest.raises(ValueError, match=r"points must have shape \(N, 2\)"):
        fastpath.derivatives(network("tanh"), points()[:, :1], VARIABLES, ("x",))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    model, x = network("tanh", CONSTRAINT), points(500)
    u_cpu, d_cpu = fastpath.derivatives(model, x, VARIABLES, ("t", "x", "xx"))
    g_cpu = parameter_gradients(model, scalar(u_cpu, d_cpu))
    model_gpu = model.to("cuda")
    u, d = fastpath.derivatives(model_gpu, x.to("cuda"), VARIABLES, ("t", "x", "xx"))
    assert u.device.type == "cuda"
    torch.testing.assert_close(u.cpu(), u_cpu, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(d["xx"].cpu(), d_cpu["xx"], rtol=1e-9, atol=1e-10)
    for g, g_ref in zip(parameter_gradients(model_gpu, scalar(u, d)), g_cpu):
        torch.testing.assert_close(g.cpu(), g_ref, rtol=1e-9, atol=1e-10)
