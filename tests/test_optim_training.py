"""LAM inside torch's training machinery: state_dict resume, __setstate__, schedulers, closures,
param groups, skipped parameters, GradScaler, and convergence on a quadratic and Rosenbrock."""
from __future__ import annotations

import io
import math

import pytest
import torch
from test_optim import gradient_sequence, reference_lam, run_lam

from pinn_lam import LAM


def _train(model, optimizer, steps, data, scheduler=None):
    x, y = data
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))


@pytest.mark.parametrize("options", [dict(foreach=False), dict(foreach=True), {}, dict(layerwise=True),
                                     dict(bias_correction=True, weight_decay=0.01)], ids=str)
def test_resume_from_state_dict_is_bit_identical(options):
    generator = torch.Generator().manual_seed(5)
    data = (torch.randn(32, 3, generator=generator), torch.randn(32, 1, generator=generator))
    model = _model()
    optimizer = LAM(model.parameters(), lr=1e-2, **options)
    _train(model, optimizer, 10, data)

    model = _model()
    optimizer = LAM(model.parameters(), lr=1e-2, **options)
    _train(model, optimizer, 4, data)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    resumed = _model(seed=99)
    resumed.load_state_dict(saved["model"])
    resumed_optimizer = LAM(resumed.parameters(), lr=1e-2, **options)
    resumed_optimizer.load_state_dict(saved["optimizer"])
    _train(resumed, resumed_optimizer, 6, data)
    uninterrupted = _model()
    uninterrupted_optimizer = LAM(uninterrupted.parameters(), lr=1e-2, **options)
    _train(uninterrupted, uninterrupted_optimizer, 10, data)
    for a, b in zip(resumed.parameters(), uninterrupted.parameters()):
        assert torch.equal(a, b)


def test_setstate_fills_options_missing_from_old_state():
    w = torch.zeros(2, requires_grad=True)
    optimizer = LAM([w])
    w.grad = torch.ones(2)
    optimizer.step()
    state = optimizer.__getstate__()
    for key in ("layerwise", "fused", "eps_inside_sqrt", "bias_correction", "maximize", "foreach"):
        del state["param_groups"][0][key]
    state["state"][w]["step"] = 1  # a plain number, as very old torch optimizers stored it
    optimizer.__setstate__(state)
    group = optimizer.param_groups[0]
    assert (group["layerwise"], group["fused"], group["bias_correction"]) == (False, None, False)
    assert torch.is_tensor(optimizer.state[w]["step"])
    optimizer.step()
    assert optimizer.state[w]["step"].item() == 2


def test_scheduler_sets_the_learning_rate_of_each_step():
    w0, grads = torch.linspace(-1, 1, 4, dtype=torch.float64), gradient_sequence(6, 4)
    w = w0.clone().requires_grad_()
    optimizer = LAM([w], lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    for g in grads:
        w.grad = g.clone()
        optimizer.step()
        scheduler.step()
    rates = [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    expected = reference_lam(w0.tolist(), [g.tolist() for g in grads], lr=rates)
    torch.testing.assert_close(w.detach(), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-14)


def test_closure_is_evaluated_with_grad_and_its_loss_returned():
    w = torch.tensor([2.0, -1.0], requires_grad=True)
    optimizer = LAM([w], lr=0.1)
    calls = []

    def closure():
        optimizer.zero_grad()
        loss = w.square().sum()
        loss.backward()
        calls.append(torch.is_grad_enabled())
        return loss

    loss = optimizer.step(closure)
    assert calls == [True] and loss.item() == 5.0
    torch.testing.assert_close(w.detach(), torch.tensor([2.0, -1.0]) - 0.1 / math.sqrt(0.1) * torch.tensor([1.0, -1.0]))


def test_param_groups_behave_like_separate_optimizers():
    a0, b0 = torch.randn(5, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    grads_a, grads_b = gradient_sequence(4, 5, seed=1), gradient_sequence(4, (3, 2), seed=2)
    a, b = a0.clone().requires_grad_(), b0.clone().requires_grad_()
    optimizer = LAM([{"params": [a]}, {"params": [b], "lr": 0.3, "layerwise": True, "bias_correction": True}],
                    lr=0.01, weight_decay=0.1)
    for ga, gb in zip(grads_a, grads_b):
        a.grad, b.grad = ga.clone(), gb.clone()
        optimizer.step()
    separate_a, _ = run_lam(a0, grads_a, lr=0.01, weight_decay=0.1)
    separate_b, _ = run_lam(b0, grads_b, lr=0.3, weight_decay=0.1, layerwise=True, bias_correction=True)
    assert torch.equal(a.detach(), separate_a) and torch.equal(b.detach(), separate_b)


def test_parameters_without_gradient_are_skipped():
    used, unused = torch.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    optimizer = LAM([used, unused], lr=0.1, weight_decay=0.5)
    used.grad = torch.ones(3)
    optimizer.step()
    assert torch.equal(unused.detach(), torch.ones(3)) and unused not in optimizer.state
    assert (used.detach() < 1).all()


def test_grad_scaler_gives_the_unscaled_trajectory_and_skips_inf_steps():
    amp = pytest.importorskip("torch.amp")
    generator = torch.Generator().manual_seed(7)
    data = (torch.randn(16, 3, generator=generator), torch.randn(16, 1, generator=generator))
    plain, scaled = _model(), _model()
    plain_optimizer, scaled_optimizer = LAM(plain.parameters(), lr=1e-2), LAM(scaled.parameters(), lr=1e-2)
    scaler = amp.GradScaler("cpu", init_scale=2.0 ** 10)
    _train(plain, plain_optimizer, 3, data)
    for _ in range(3):
        scaled_optimizer.zero_grad()
        scaler.scale(torch.nn.functional.mse_loss(scaled(data[0]), data[1])).backward()
        scaler.step(scaled_optimizer)
        scaler.update()
    for a, b in zip(plain.parameters(), scaled.parameters()):
        assert torch.equal(a, b)  # scaling by a power of two is exact
    before = [p.detach().clone() for p in scaled.parameters()]
    scaled_optimizer.zero_grad()
    scaler.scale(scaled(data[0]).sum() * float("inf")).backward()
    scaler.step(scaled_optimizer)
    scaler.update()
    assert all(torch.equal(a, b) for a, b in zip(before, scaled.parameters()))
    assert scaler.get_scale() == 2.0 ** 9


@pytest.mark.parametrize("options, steps, tolerance", [
    ({}, 200, 1e-12), (dict(bias_correction=True), 200, 1e-12),
    # one rate for the whole tensor: gradient descent with a normalized step, slowed by h_max / h_min = 100
    (dict(layerwise=True), 600, 1e-3)], ids=str)
def test_converges_on_an_ill_conditioned_quadratic(options, steps, tolerance):
    curvature = torch.logspace(0, 2, 10, dtype=torch.float64)
    x = torch.ones(10, dtype=torch.float64, requires_grad=True)
    optimizer = LAM([x], lr=0.05, **options)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    for _ in range(steps):
        optimizer.zero_grad()
        (0.5 * curvature * x.square()).sum().backward()
        optimizer.step()
        scheduler.step()
    # from f(x0) = 124; measured max |x| = 1e-19, 7e-15 (element-wise) and 3.9e-6 (layer-wise)
    assert x.detach().abs().max().item() < tolerance


def test_converges_on_rosenbrock():
    x = torch.tensor([-1.5, 2.0], dtype=torch.float64, requires_grad=True)
    optimizer = LAM([x], lr=1e-2)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4000)

    def closure():
        optimizer.zero_grad()
        loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        loss.backward()
        return loss

    for _ in range(4000):
        loss = optimizer.step(closure)
        scheduler.step()
    # measured: x = (0.9935, 0.9870), f = 4.2e-5 after 4000 steps from f = 12.5
    assert loss.item() < 1e-3
    torch.testing.assert_close(x.detach(), torch.ones(2, dtype=torch.float64), rtol=0, atol=0.03)


def test_state_saved_by_one_path_resumes_in_another():
    """The state is the same for every implementation: save from fused, resume in the for-loop."""
    generator = torch.Generator().manual_seed(6)
    data = (torch.randn(32, 3, generator=generator).double(), torch.randn(32, 1, generator=generator).double())
    model = _model().double()
    optimizer = LAM(model.parameters(), lr=1e-2, fused=True, bias_correction=True)
    _train(model, optimizer, 3, data)
    resumed_optimizer = LAM(model.parameters(), lr=1e-2, foreach=False, bias_correction=True)
    resumed_optimizer.load_state_dict(optimizer.state_dict())
    _train(model, resumed_optimizer, 3, data)
    reference = _model().double()
    reference_optimizer = LAM(reference.parameters(), lr=1e-2, foreach=False, bias_correction=True)
    _train(reference, reference_optimizer, 6, data)
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("layerwise", [False, True])
def test_scalar_parameters_step_repeatedly_and_match_the_hand_computation(layerwise):
    # a learnable scalar (e.g. an unknown viscosity in an inverse problem) next to a tensor
    nu = torch.nn.Parameter(torch.tensor(0.5, dtype=torch.float64))
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64))
    optimizer = LAM([w, nu], lr=1e-2, layerwise=layerwise)
    v, value = 0.0, 0.5
    for _ in range(3):
        optimizer.zero_grad()
        ((w.sum() - 1) ** 2 + (nu - 1) ** 2).backward()
        g = 2 * (value - 1)
        v = 0.1 * g * g + 0.9 * v
        value -= 1e-2 * g / (v ** 0.5 + 1e-8)
        optimizer.step()
    assert nu.item() == pytest.approx(value, rel=1e-12)
    assert optimizer.state[nu]["square_avg"].shape == ()
