"""pinn_lam.optim.lbfgs.LBFGS against PyTorch: its direction against a transcription of PyTorch's
two-loop recursion; whole runs against torch.optim.LBFGS (Rosenbrock, a small MLP; strong Wolfe
and fixed steps; history rings that wrap); state dicts (a round trip resumes bit for bit, a state
of PyTorch's class loads); complex and non-contiguous parameters; CUDA."""
from __future__ import annotations

import io

import pytest
import torch

from pinn_lam.optim.lbfgs import LBFGS, lbfgs_direction, make_lbfgs, push_pair

#: chunks of 10 iterations, as the trainer runs them (see make_lbfgs), and its tolerances
OPTIONS = {"max_iter": 10, "max_eval": 250, "tolerance_grad": 1e-9, "tolerance_change": 0.0}
CHUNKS = 7
#: (line_search_fn, lr): strong Wolfe with pinn-lam's lr, and fixed steps small enough not to diverge
SEARCHES = [("strong_wolfe", 1.0), (None, 0.1)]


def rosenbrock_problem():
    """Rosenbrock's function in 10 dimensions from a start whose L-BFGS path is not chaotic:
    PyTorch's class from a start a few ulps away stays within 1e-10 of its own path."""
    x = torch.nn.Parameter(2 * torch.rand(10, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    return [x], lambda: ((1 - x[:-1]) ** 2).sum() + 100 * ((x[1:] - x[:-1] ** 2) ** 2).sum()


def mlp_problem(device="cpu", dtype=torch.float64):
    """Least squares fit of sin on [-1, 1] by a 1-8-8-1 tanh network (6 parameter tensors)."""
    generator = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8), torch.nn.Tanh(),
                              torch.nn.Linear(8, 1)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))
    net.to(device=device, dtype=dtype)
    x = torch.linspace(-1, 1, 32, device=device, dtype=dtype)[:, None]
    return list(net.parameters()), lambda: (net(x) - torch.sin(x)).square().mean()


def flat(params):
    return torch.cat([p.detach().reshape(-1) for p in params])


def run(optimizer_class, problem, chunks=CHUNKS, nudge=None, **options):
    """Parameters after each chunk, (n_iter, func_evals) at the end, and the optimizer.

    ``nudge``: a seed; the start is then moved by a random relative 1e-15 (a few ulps) per entry.
    """
    params, objective = problem()
    if nudge is not None:
        generator = torch.Generator().manual_seed(nudge)
        with torch.no_grad():
            for p in params:
                p.add_(1e-15 * p.abs() * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    optimizer = optimizer_class(params, **{**OPTIONS, **options})

    def closure():
        optimizer.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    path = []
    for _ in range(chunks):
        optimizer.step(closure)
        path.append(flat(params))
    state = optimizer.state[params[0]]
    return path, (state["n_iter"], state["func_evals"]), optimizer


def largest_relative_difference(path, other):
    return max(float((a - b).norm() / a.norm()) for a, b in zip(path, other))


def two_loop(pairs, grad, h_diag):
    """PyTorch's recursion (torch/optim/lbfgs.py), transcribed: pairs (s, y), oldest first."""
    ro = [1.0 / y.dot(s) for s, y in pairs]
    al = [None] * len(pairs)
    q = grad.neg()
    for i in range(len(pairs) - 1, -1, -1):
        al[i] = pairs[i][0].dot(q) * ro[i]
        q.add_(pairs[i][1], alpha=-al[i])
    r = torch.mul(q, h_diag)
    for i in range(len(pairs)):
        be_i = pairs[i][1].dot(r) * ro[i]
        r.add_(pairs[i][0], alpha=al[i] - be_i)
    return r


@pytest.mark.parametrize("history_size", [3, 6])
def test_direction_equals_the_two_loop_recursion_with_a_wrapped_ring(history_size):
    generator = torch.Generator().manual_seed(history_size)
    n = 40
    a = torch.randn(n, n, generator=generator, dtype=torch.float64)
    hessian = a @ a.T / n + torch.eye(n, dtype=torch.float64)
    state, pairs = {}, []
    for k in range(history_size + 4):  # wraps: the oldest pair sits in slot 4 % history_size
        s = torch.randn(n, generator=generator, dtype=torch.float64)
        y = hessian @ s
        pairs.append((s, y))
        push_pair(state, s, y, y.dot(s), history_size)
        grad = torch.randn(n, generator=generator, dtype=torch.float64)
        h_diag = y.dot(s) / y.dot(y)
        expected = two_loop(pairs[-history_size:], grad, h_diag)
        torch.testing.assert_close(lbfgs_direction(state, grad, h_diag), expected, rtol=1e-12, atol=0)
    assert state["num_pairs"] == history_size and state["oldest"] == 4 % history_size
    # the products that push_pair returns for the next gradient give the same direction
    s = torch.randn(n, generator=generator, dtype=torch.float64)
    y, grad = hessian @ s, torch.randn(n, generator=generator, dtype=torch.float64)
    _, products = push_pair(state, s, y, y.dot(s), history_size, grad)
    h_diag = y.dot(s) / y.dot(y)
    torch.testing.assert_close(lbfgs_direction(state, grad, h_diag, products),
                               two_loop((pairs + [(s, y)])[-history_size:], grad, h_diag), rtol=1e-12, atol=0)


@pytest.mark.parametrize("history_size", [5, 50])
@pytest.mark.parametrize("line_search_fn, lr", SEARCHES)
def test_rosenbrock_iterates_and_counts_equal_pytorchs(history_size, line_search_fn, lr):
    options = {"history_size": history_size, "line_search_fn": line_search_fn, "lr": lr}
    ours, our_counts, optimizer = run(LBFGS, rosenbrock_problem, **options)
    theirs, their_counts, _ = run(torch.optim.LBFGS, rosenbrock_problem, **options)
    assert our_counts == their_counts
    assert largest_relative_difference(theirs, ours) < 1e-10
    if history_size == 5:  # the ring wrapped
        assert optimizer.state[optimizer._params[0]]["num_pairs"] == 5 and our_counts[0] > 6


@pytest.mark.parametrize("history_size", [5, 50])
@pytest.mark.parametrize("line_search_fn, lr", SEARCHES)
def test_mlp_iterates_and_counts_equal_pytorchs_up_to_its_own_roundoff_sensitivity(history_size, line_search_fn,
                                                                                   lr):
    """A non-convex fit amplifies round-off over 70 iterations: PyTorch's class from a start a few
    ulps away drifts from its own path by up to ~1e-8 here. The sums run in another order than
    PyTorch's, so the bound is 1e-10 or 100 times that drift (two random nudges), whichever is larger."""
    options = {"history_size": history_size, "line_search_fn": line_search_fn, "lr": lr}
    ours, our_counts, optimizer = run(LBFGS, mlp_problem, **options)
    theirs, their_counts, _ = run(torch.optim.LBFGS, mlp_problem, **options)
    assert our_counts == their_counts
    sensitivity = max(largest_relative_difference(theirs, run(torch.optim.LBFGS, mlp_problem, nudge=seed, **options)[0])
                      for seed in (0, 1))
    assert largest_relative_difference(theirs, ours) < max(1e-10, 100 * sensitivity)
    state = optimizer.state[optimizer._params[0]]
    assert state["num_pairs"] == history_size and state["oldest"] != 0  # the ring wrapped


def _serialised(state_dict):
    """Through torch.save / torch.load(weights_only=True), as a checkpoint is."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _resume(saved_params, saved_state, problem, chunks, **options):
    params, objective = problem()
    with torch.no_grad():
        for p, value in zip(params, saved_params):
            p.copy_(value)
    optimizer = LBFGS(params, **{**OPTIONS, **options})
    optimizer.load_state_dict(saved_state)

    def closure():
        optimizer.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    for _ in range(chunks):
        optimizer.step(closure)
    return flat(params), optimizer


def test_state_dict_round_trip_resumes_bit_for_bit():
    options = {"history_size": 5, "line_search_fn": "strong_wolfe", "lr": 1.0}
    uninterrupted, counts, _ = run(LBFGS, mlp_problem, chunks=6, **options)
    _, _, first = run(LBFGS, mlp_problem, chunks=3, **options)
    state = first.state[first._params[0]]
    assert state["oldest"] != 0  # saved with a wrapped ring
    saved = _serialised({"params": [p.detach().clone() for p in first._params], "optimizer": first.state_dict()})
    resumed, second = _resume(saved["params"], saved["optimizer"], mlp_problem, chunks=3, **options)
    assert torch.equal(resumed, uninterrupted[-1])
    state = second.state[second._params[0]]
    assert (state["n_iter"], state["func_evals"]) == counts


def test_a_state_of_torchs_lbfgs_loads_and_continues_like_torchs():
    options = {"history_size": 5, "line_search_fn": "strong_wolfe", "lr": 1.0}
    theirs, their_counts, _ = run(torch.optim.LBFGS, rosenbrock_problem, chunks=6, **options)
    _, _, first = run(torch.optim.LBFGS, rosenbrock_problem, chunks=2, **options)
    assert len(first.state[first._params[0]]["old_dirs"]) == 5
    saved = _serialised({"params": [p.detach().clone() for p in first._params], "optimizer": first.state_dict()})
    resumed, second = _resume(saved["params"], saved["optimizer"], rosenbrock_problem, chunks=4, **options)
    state = second.state[second._params[0]]
    assert "old_dirs" not in state and state["num_pairs"] == 5
    assert (state["n_iter"], state["func_evals"]) == their_counts
    assert float((resumed - theirs[-1]).norm() / theirs[-1].norm()) < 1e-10


def test_complex_parameters_move_like_pytorchs():
    def problem():
        generator = torch.Generator().manual_seed(0)
        z = torch.nn.Parameter(torch.randn(3, generator=generator, dtype=torch.complex128))
        w = torch.nn.Parameter(torch.randn(4, 3, generator=generator, dtype=torch.float64))
        return [z, w], lambda: (z - 1j).abs().pow(4).sum() + (w - 0.5).pow(4).sum() + (w.sum() * z.real.sum()) ** 2

    for line_search_fn, lr in SEARCHES:
        options = {"history_size": 5, "line_search_fn": line_search_fn, "lr": lr}
        ours, our_counts, _ = run(LBFGS, problem, chunks=3, **options)
        theirs, their_counts, _ = run(torch.optim.LBFGS, problem, chunks=3, **options)
        assert our_counts == their_counts
        assert largest_relative_difference(theirs, ours) < 1e-10


def test_make_lbfgs_builds_this_class():
    optimizer = make_lbfgs([torch.nn.Parameter(torch.zeros(2))])
    assert type(optimizer) is LBFGS
    assert optimizer.defaults["history_size"] == 50 and optimizer.defaults["line_search_fn"] == "strong_wolfe"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_runs_like_pytorchs_on_cuda(dtype):
    def problem():
        return mlp_problem("cuda", dtype)

    options = {"history_size": 5, "line_search_fn": "strong_wolfe", "lr": 1.0}
    ours, our_counts, optimizer = run(LBFGS, problem, chunks=2, **options)
    state = optimizer.state[optimizer._params[0]]
    assert state["memory"].device.type == "cuda" and state["memory"].dtype == dtype and state["oldest"] != 0
    params, objective = problem()
    start = float(objective())
    with torch.no_grad():
        for p, value in zip(params, ours[-1].split([p.numel() for p in params])):
            p.copy_(value.view_as(p))
    assert float(objective()) < 0.1 * start
    if dtype == torch.float64:  # float32 paths part after a few iterations, PyTorch's from itself alike
        theirs, their_counts, _ = run(torch.optim.LBFGS, problem, chunks=2, **options)
        assert our_counts == their_counts
        assert largest_relative_difference(theirs, ours) < 1e-10


def test_after_objective_changed_the_next_step_uses_the_kept_pairs_and_forms_none_across():
    """On a quadratic whose minimum then moves: after ``objective_changed`` the next (fixed-length)
    step is the kept pairs' direction for the new gradient, exactly, and no pair mixes the two
    objectives' gradients; a fresh optimizer would take a short steepest-descent step instead."""
    import copy

    n = 6
    g = torch.Generator().manual_seed(3)
    q = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0]
    a = q @ torch.diag(torch.logspace(0, 2, n, dtype=torch.float64)) @ q.T
    center = torch.zeros(n, dtype=torch.float64)
    x = torch.nn.Parameter(torch.randn(n, generator=g, dtype=torch.float64))

    def closure():
        x.grad = None
        loss = 0.5 * (x - center) @ a @ (x - center)
        loss.backward()
        return loss

    opt = LBFGS([x], lr=1.0, history_size=20, line_search_fn=None, max_iter=8, max_eval=100,
                tolerance_grad=1e-300, tolerance_change=0.0)
    opt.step(closure)
    state = opt.state[x]
    pairs = state["num_pairs"]
    assert pairs >= 4
    center = torch.randn(n, generator=g, dtype=torch.float64)  # the objective changes
    start = x.detach().clone()
    closure()
    expected = lbfgs_direction(copy.deepcopy(state), x.grad.detach().clone(), state["H_diag"])
    unaware = copy.deepcopy(opt.state_dict())
    opt.objective_changed()
    opt.param_groups[0]["max_iter"] = 1
    opt.step(closure)
    assert state["num_pairs"] == pairs and "objective_changed" not in state
    torch.testing.assert_close(x.detach(), start + expected, rtol=1e-13, atol=1e-13)
    # without objective_changed the step forms a pair from both objectives' gradients
    with torch.no_grad():
        x.copy_(start)
    other = LBFGS([x], lr=1.0, history_size=20, line_search_fn=None, max_iter=1, max_eval=100,
                  tolerance_grad=1e-300, tolerance_change=0.0)
    other.load_state_dict(unaware)
    other.param_groups[0]["max_iter"] = 1
    other.step(closure)
    assert other.state[x]["num_pairs"] == pairs + 1
    assert not torch.allclose(x.detach(), start + expected)
