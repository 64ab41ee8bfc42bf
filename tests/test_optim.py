"""LAM against ground truth: hand computation, a pure-Python transcription of the equations and
the single-tensor path, for every option and implementation; the worked example; errors; CUDA.
(Training machinery, convergence and noise: test_optim_training.py, test_optim_noise.py.)"""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from pinn_lam import LAM, lam
from pinn_lam.optim import lam as optim
from pinn_lam.optim.lam import default_implementation

#: every implementation, as LAM keyword arguments (``None``: the default for the device)
PATHS = {"single": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True), "default": {}}


def unsupported(name, options):
    """fused=True has no element-wise kernel with eps inside the square root."""
    return name == "fused" and options.get("eps_inside_sqrt") and not options.get("layerwise")


def reference_lam(w0, grads, *, lr, beta=0.9, eps=1e-8, weight_decay=0.0, bias_correction=False,
                  layerwise=False, eps_inside_sqrt=False, maximize=False):
    """The equations in plain Python floats, one list of weights; ``lr`` may be a list per step."""
    w, v = list(w0), [0.0] * len(w0)
    for t, g in enumerate(grads, start=1):
        rate = lr[t - 1] if isinstance(lr, list) else lr
        g = [-x for x in g] if maximize else list(g)
        w = [x - rate * weight_decay * x for x in w]
        if layerwise:
            mean_square = sum(x * x for x in g) / len(g)
            v = [(1 - beta) * mean_square + beta * v[0]] * len(w)
        else:
            v = [(1 - beta) * x * x + beta * y for x, y in zip(g, v)]
        v_hat = [y / (1 - beta ** t) for y in v] if bias_correction else v
        denom = [math.sqrt(y + eps) if eps_inside_sqrt else math.sqrt(y) + eps for y in v_hat]
        w = [x - rate * gx / d for x, gx, d in zip(w, g, denom)]
    return w


def gradient_sequence(n_steps, size, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(size, dtype=torch.float64, generator=generator) for _ in range(n_steps)]


def run_lam(w0, grads, **options):
    """Apply LAM to one tensor with the given gradient sequence; returns (weights, optimizer)."""
    w = w0.clone().requires_grad_()
    optimizer = LAM([w], **options)
    for g in grads:
        w.grad = g.clone()
        optimizer.step()
    return w.detach(), optimizer


def test_equations_by_hand_over_four_steps():
    # v1 = 0.1*0.25 = 0.025, w1 = 1 - 0.1*0.5/(sqrt(0.025)+1e-8); v2 = 0.1*1 + 0.9*0.025 = 0.1225 = 0.35**2,
    # w2 = w1 + 0.1/0.35; and so on (values written out from the two equations)
    expected_w = [0.6837722539831608, 0.9694865315341814, 0.6894991346033924, 0.652856067153549]
    expected_v = [0.025, 0.1225, 0.51025, 0.465475]
    w = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    for name, options in PATHS.items():
        w = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
        optimizer = LAM([w], lr=0.1, beta=0.9, eps=1e-8, **options)
        for g, w_t, v_t in zip([0.5, -1.0, 2.0, 0.25], expected_w, expected_v):
            w.grad = torch.tensor([g], dtype=torch.float64)
            optimizer.step()
            assert w.item() == pytest.approx(w_t, abs=1e-14), name
            assert optimizer.state[w]["square_avg"].item() == pytest.approx(v_t, abs=1e-15), name
        assert optimizer.state[w]["step"].item() == 4


OPTION_GRID = [dict(bias_correction=bc, layerwise=lw, eps_inside_sqrt=inside, maximize=mx, weight_decay=wd)
               for bc, lw, inside, mx, wd in itertools.product(*[[False, True]] * 4, [0.0, 0.05])]


@pytest.mark.parametrize("options", OPTION_GRID, ids=lambda o: "-".join(k for k, v in o.items() if v) or "plain")
def test_every_path_follows_the_equations(options):
    w0, grads = torch.linspace(-1, 1, 6, dtype=torch.float64), gradient_sequence(5, 6)
    expected = reference_lam(w0.tolist(), [g.tolist() for g in grads], lr=0.05, **options)
    for name, path in PATHS.items():
        if unsupported(name, options):
            continue
        w, _ = run_lam(w0, grads, lr=0.05, **options, **path)
        torch.testing.assert_close(w, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-13,
                                   msg=f"{name}")


@pytest.mark.parametrize("options", OPTION_GRID, ids=lambda o: "-".join(k for k, v in o.items() if v) or "plain")
def test_foreach_and_fused_match_single_tensor_in_float64(options):
    """Many tensors of mixed shapes, a complex one, a non-contiguous one and one without a gradient."""
    def run(path):
        generator = torch.Generator().manual_seed(3)
        params = [torch.randn(7, 5, dtype=torch.float64, generator=generator),
                  torch.randn(3, dtype=torch.complex128, generator=generator),
                  torch.randn(6, 4, dtype=torch.float64, generator=generator).t(),
                  torch.randn(2, dtype=torch.float64, generator=generator)]
        params = [p.requires_grad_() for p in params]
        optimizer = LAM(params, lr=0.01, **options, **path)
        for _ in range(6):
            for p in params[:3]:
                p.grad = torch.randn(p.shape, dtype=p.dtype, generator=generator)
            optimizer.step()
        assert len(optimizer.state) == 3 and params[3] not in optimizer.state
        return [p.detach() for p in params] + [optimizer.state[p]["square_avg"] for p in params[:3]]

    reference = run(PATHS["single"])
    for name, path in PATHS.items():
        if unsupported(name, options):
            continue
        for a, b in zip(reference, run(path)):
            torch.testing.assert_close(b, a, rtol=0, atol=1e-12, msg=name)


def test_worked_example_as_written_steps_lr_over_sqrt_one_minus_beta():
    # the description: g = (0.5, 1.5), v0 = 0, eta = 0.1, beta = 0.9, eps = 1e-8
    g = torch.tensor([0.5, 1.5], dtype=torch.float64)
    for name, path in PATHS.items():
        w, optimizer = run_lam(torch.zeros(2, dtype=torch.float64), [g], lr=0.1, beta=0.9, eps=1e-8, **path)
        step = -w
        # eta*g/(sqrt((1-beta) g^2) + eps) = eta/sqrt(0.1) = 0.316... (to 1e-7), the same for both weights
        exact = [0.1 * x / (math.sqrt(0.1 * x * x) + 1e-8) for x in (0.5, 1.5)]
        torch.testing.assert_close(step, torch.tensor(exact, dtype=torch.float64), rtol=0, atol=1e-15, msg=name)
        torch.testing.assert_close(step, torch.full((2,), 0.1 / math.sqrt(0.1), dtype=torch.float64),
                                   rtol=0, atol=1e-7, msg=name)
        assert step[0].item() == pytest.approx(0.316, abs=5e-4)
        # v2 = (1 - 0.9) * 1.5**2 = 0.225; the description's 0.2025 is a slip
        state = optimizer.state[optimizer.param_groups[0]["params"][0]]
        torch.testing.assert_close(state["square_avg"], torch.tensor([0.025, 0.225], dtype=torch.float64),
                                   rtol=0, atol=1e-15)


def test_worked_example_with_bias_correction_steps_lr_times_sign():
    g = torch.tensor([0.5, 1.5], dtype=torch.float64)
    for name, path in PATHS.items():
        w, optimizer = run_lam(torch.zeros(2, dtype=torch.float64), [g], lr=0.1, bias_correction=True, **path)
        step = -w
        # v_hat = v / (1 - 0.9) = g^2, so the step is eta * g / (|g| + eps) = 0.1 (to 1e-8 relative)
        torch.testing.assert_close(step, torch.full((2,), 0.1, dtype=torch.float64), rtol=0, atol=1e-8, msg=name)
        # the description's "~0.0997" and "~0.1": 0.1 within the description's rounding
        assert abs(step[0].item() - 0.0997) < 5e-4 and round(step[1].item(), 3) == 0.1
        state = optimizer.state[optimizer.param_groups[0]["params"][0]]
        torch.testing.assert_close(state["square_avg"], torch.tensor([0.025, 0.225], dtype=torch.float64),
                                   rtol=0, atol=1e-15)


def test_layerwise_keeps_one_scalar_per_tensor_and_scales_each_tensor_uniformly():
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
    optimizer = LAM(model.parameters(), lr=0.01, layerwise=True)
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.randn(8, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))).square().mean().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    optimizer.step()
    states = [optimizer.state[p]["square_avg"] for p in model.parameters()]
    assert all(s.shape == () for s in states)
    assert sum(s.numel() for s in states) == len(before) == 4  # the whole state: one number per tensor
    for p, w0, g, v in zip(model.parameters(), before, grads, states):
        assert v.item() == pytest.approx(0.1 * g.square().mean().item(), rel=1e-14)
        # every element of a tensor moves by the same multiple of its gradient
        torch.testing.assert_close(w0 - p.detach(), 0.01 * g / (v.sqrt() + 1e-8), rtol=1e-12, atol=1e-15)


def test_complex_parameters_behave_like_their_view_as_real():
    generator = torch.Generator().manual_seed(1)
    z0 = torch.randn(5, dtype=torch.complex128, generator=generator)
    grads = [torch.randn(5, dtype=torch.complex128, generator=generator) for _ in range(4)]
    for layerwise, (name, path) in itertools.product([False, True], PATHS.items()):
        z, _ = run_lam(z0, grads, lr=0.1, layerwise=layerwise, **path)
        r, _ = run_lam(torch.view_as_real(z0), [torch.view_as_real(g) for g in grads], lr=0.1,
                       layerwise=layerwise, foreach=False)
        torch.testing.assert_close(torch.view_as_real(z), r, rtol=0, atol=1e-15, msg=name)


def test_fused_path_leaves_the_gradient_unchanged():
    for maximize in (False, True):
        w = torch.randn(1000, requires_grad=True)
        w.grad = torch.randn(1000)
        grad = w.grad.clone()
        LAM([w], lr=0.1, fused=True, maximize=maximize, weight_decay=0.1).step()
        assert torch.equal(w.grad, grad)


@pytest.mark.parametrize("threads", [1, 2])
def test_fused_path_takes_every_contiguous_tensor_and_sends_the_rest_to_foreach(monkeypatch, threads):
    """Small tensors are fused whatever the thread count; a non-contiguous one takes the foreach path."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    calls = []
    monkeypatch.setattr(torch, "_fused_adamw_", lambda params, *a, _k=torch._fused_adamw_, **kw: (
        calls.append([p.numel() for p in params]), _k(params, *a, **kw)))
    foreach = []
    monkeypatch.setattr(optim, "_multi_tensor_lam", lambda params, *a, _f=optim._multi_tensor_lam, **kw: (
        foreach.append([p.numel() for p in params]), _f(params, *a, **kw)))
    generator = torch.Generator().manual_seed(0)
    sizes = (5000, 10, 1000, 1, 12)
    w0 = [torch.randn(n, dtype=torch.float64, generator=generator) for n in sizes]
    grads = [gradient_sequence(3, n, seed=i) for i, n in enumerate(sizes)]

    def run(**path):
        params = [w.clone().requires_grad_() for w in w0[:4]]
        strided = torch.zeros(2 * sizes[4], dtype=torch.float64)
        strided[::2] = w0[4]
        params.append(strided[::2].requires_grad_())  # a non-contiguous leaf view: not fusable
        optimizer = LAM(params, lr=0.1, bias_correction=True, **path)
        for step in range(3):
            for p, g in zip(params, grads):
                p.grad = g[step].clone()
            optimizer.step()
        return params

    reference = run(foreach=False)
    calls.clear()
    foreach.clear()
    for a, b in zip(reference, run()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-12)
    assert calls == [[5000, 10, 1000, 1]] * 3
    assert foreach == [[12]] * 3  # the strided one, through the foreach path


def test_default_path_on_cpu_is_fused_except_elementwise_with_eps_inside_the_root():
    params = [torch.zeros(3)]
    assert default_implementation(params) == "fused"
    assert default_implementation(params, layerwise=True) == "fused"
    assert default_implementation(params, layerwise=True, eps_inside_sqrt=True) == "fused"
    assert default_implementation(params, eps_inside_sqrt=True) == "single"


@pytest.mark.parametrize("options, expected", [
    (dict(), "_fused_lam"), (dict(fused=False), "_single_tensor_lam"), (dict(foreach=False), "_single_tensor_lam"),
    (dict(fused=False, foreach=True), "_multi_tensor_lam"), (dict(layerwise=True), "_layerwise_lam"),
    (dict(eps_inside_sqrt=True), "_single_tensor_lam")], ids=str)
def test_options_choose_the_implementation_on_cpu(monkeypatch, options, expected):
    called = []
    for name in ("_single_tensor_lam", "_multi_tensor_lam", "_fused_lam", "_layerwise_lam"):
        monkeypatch.setattr(optim, name, lambda *args, _name=name, **kwargs: called.append(_name))
    w = torch.zeros(3, requires_grad=True)
    w.grad = torch.ones(3)
    LAM([w], **options).step()
    assert called == [expected]


def test_functional_lam_updates_in_place_and_counts_steps():
    w, g = torch.tensor([1.0], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)
    v, step = torch.zeros(1, dtype=torch.float64), torch.tensor(0.0)
    lam([w], [g], [v], [step], lr=0.1, beta=0.9, eps=1e-8)
    assert w.item() == pytest.approx(0.6837722539831608, abs=1e-15)
    assert (v.item(), step.item()) == (pytest.approx(0.025, abs=1e-17), 1.0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(lr=-0.1), "Invalid learning rate: -0.1"),
    (dict(lr=float("nan")), "Invalid learning rate: nan"),
    (dict(eps=-1e-8), "Invalid eps: -1e-08"),
    (dict(weight_decay=-0.01), "Invalid weight_decay: -0.01"),
    (dict(beta=1.0), r"Invalid beta: 1.0 \(must be in \[0, 1\)\)"),
    (dict(beta=-0.5), "Invalid beta: -0.5"),
    (dict(lr="fast"), "Invalid learning rate: 'fast'"),
    (dict(foreach=True, fused=True), "foreach=True and fused=True"),
    (dict(fused=True, eps_inside_sqrt=True), "fused=True needs eps outside the square root"),
])
def test_invalid_options_raise_value_error_naming_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LAM([torch.zeros(1, requires_grad=True)], **kwargs)
    optimizer = LAM([torch.zeros(1, requires_grad=True)])
    with pytest.raises(ValueError, match=message):  # a group's own options are checked too
        optimizer.add_param_group({"params": [torch.zeros(1, requires_grad=True)], **kwargs})


def test_sparse_gradients_raise_a_clear_error():
    embedding = torch.nn.Embedding(10, 3, sparse=True)
    embedding(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="LAM does not support sparse gradients"):
        LAM(embedding.parameters()).step()


def test_changing_layerwise_on_existing_state_raises():
    w = torch.zeros(3, requires_grad=True)
    optimizer = LAM([w])
    w.grad = torch.ones(3)
    optimizer.step()
    optimizer.param_groups[0]["layerwise"] = True
    with pytest.raises(ValueError, match="layerwise=True does not match the saved state"):
        optimizer.step()


def test_default_choice_for_cuda_tensors_without_a_gpu():
    """The CUDA branch of the default choice, on stand-ins that only carry a CUDA device (the
    choice reads nothing else), so that CPU-only CI runs it too; TestCuda runs it on real tensors."""
    from types import SimpleNamespace

    params = [SimpleNamespace(device=torch.device("cuda"))]
    assert default_implementation(params) == "fused"
    assert default_implementation(params, layerwise=True) == "foreach"
    assert default_implementation(params, eps_inside_sqrt=True) == "foreach"
    mixed = params + [torch.zeros(2)]
    assert default_implementation(mixed) == default_implementation([torch.zeros(2)])
    # fused=False keeps the rest of the choice: foreach on CUDA, the for-loop on CPU
    assert default_implementation(params, fused=False) == "foreach"
    assert default_implementation([torch.zeros(2)], fused=False) == "single"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
class TestCuda:
    @pytest.mark.parametrize("options", OPTION_GRID[::3], ids=str)
    def test_cuda_paths_match_cpu_single_tensor_in_float64(self, options):
        w0, grads = torch.linspace(-1, 1, 1000, dtype=torch.float64), gradient_sequence(5, 1000)
        reference, _ = run_lam(w0, grads, lr=0.05, **options, foreach=False)
        for name, path in PATHS.items():
            if unsupported(name, options):
                continue
            w, optimizer = run_lam(w0.cuda(), [g.cuda() for g in grads], lr=0.05, **options, **path)
            assert w.is_cuda
            torch.testing.assert_close(w.cpu(), reference, rtol=0, atol=1e-12, msg=name)

    def test_default_path_on_cuda_is_fused_element_wise_and_foreach_layerwise(self, monkeypatch):
        params = [torch.zeros(3, device="cuda")]
        assert default_implementation(params) == "fused"
        assert default_implementation(params, layerwise=True) == "foreach"
        assert default_implementation(params, eps_inside_sqrt=True) == "foreach"
        # fused=False keeps the rest of the default choice: foreach on CUDA (the same update)
        calls = []
        original = optim._multi_tensor_lam
        monkeypatch.setattr(optim, "_multi_tensor_lam", lambda *a, **k: (calls.append(1), original(*a, **k)))
        weights = {}
        for device, options in (("cuda", {"fused": False}), ("cpu", {"foreach": False})):
            w = torch.ones(3, device=device, requires_grad=True)
            optimizer = LAM([w], lr=0.1, **options)
            w.grad = torch.ones(3, device=device)
            optimizer.step()
            weights[device] = w.detach().cpu()
        assert len(calls) == 1
        torch.testing.assert_close(weights["cuda"], weights["cpu"], rtol=0, atol=1e-7)
