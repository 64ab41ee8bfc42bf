"""The fused CPU kernels of the tanh Taylor pass (pinn_lam/taylor_kernels.cpp) against the eager
path, in float64 to rounding and float32 to its precision; building, turning off and failing."""
import ctypes
import os
import warnings

import pytest
import torch

from pinn_lam.nn import fastpath
from pinn_lam.nn import kernels
from pinn_lam.nn.mlp import MLP

pytestmark = pytest.mark.skipif(not kernels.available(), reason="no C++ compiler to build the kernels")


def setup(variables, depth, width, seed, dtype=torch.float64):
    bounds = tuple((-1.0, 1.0 + 0.5 * i) for i in range(len(variables)))
    generator = torch.Generator().manual_seed(seed)
    model = MLP(len(variables), 1, width=width, depth=depth, activation="tanh", bounds=bounds,
                generator=generator).to(dtype)
    with torch.no_grad():  # non-zero biases
        for layer in model.layers:
            layer.bias.copy_(0.3 * torch.randn(layer.bias.shape, generator=generator, dtype=dtype))
    low = torch.tensor([b[0] for b in bounds], dtype=dtype)
    high = torch.tensor([b[1] for b in bounds], dtype=dtype)

    def draw(n):
        return low + (high - low) * torch.rand(n, len(variables), generator=generator, dtype=dtype)

    return model, draw(37), [draw(11), draw(5)]


def outputs_and_gradients(model, x, values, variables, keys):
    u, d, extra = fastpath.evaluate(model, x, variables, keys, values=values)
    outs = [u, *d.values(), *extra]
    weights = [torch.linspace(-1.0, 2.0, o.numel(), dtype=o.dtype).view_as(o) for o in outs]
    value = sum((w * o).sum() + (o ** 2).sum() for w, o in zip(weights, outs))
    return [o.detach() for o in outs], torch.autograd.grad(value, list(model.parameters()))


def both_paths(monkeypatch, *args):
    fused = outputs_and_gradients(*args)
    with monkeypatch.context() as patch:
        patch.setattr(kernels, "use_for", lambda *args: None)
        eager = outputs_and_gradients(*args)
    return fused, eager


# (variables, keys): every (n1, n2) pair the kernels are compiled for
CASES = [
    (("x",), ("x",)), (("x",), ("xx",)), (("x", "t"), ("t", "x")), (("x", "t"), ("t", "x", "xx")),
    (("x", "y"), ("xx", "yy")), (("x", "y", "z"), ("x", "y", "z")), (("x", "y", "t"), ("t", "x", "xx", "y")),
    (("x", "y", "z"), ("xx", "yy", "z")), (("x", "y", "z"), ("xx", "yy", "zz")),
]


def test_the_cases_cover_every_compiled_pair():
    covered = set()
    for variables, keys in CASES:
        cols, n2 = fastpath._parse_keys(variables, keys)
        covered.add((len(cols), n2))
    assert covered == kernels.PAIRS


@pytest.mark.parametrize("variables,keys", CASES, ids=["-".join(k) for _, k in CASES])
@pytest.mark.parametrize("depth", [1, 3])
def test_fused_kernels_match_the_eager_path_in_float64(monkeypatch, variables, keys, depth):
    model, x, values = setup(variables, depth, width=9, seed=len(keys) + depth)
    (outs, grads), (outs_ref, grads_ref) = both_paths(monkeypatch, model, x, values, variables, keys)
    for a, b in zip(outs + list(grads), outs_ref + list(grads_ref)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


def test_fused_kernels_match_the_eager_path_in_float32(monkeypatch):
    variables, keys = ("x", "t"), ("t", "x", "xx")
    model, x, values = setup(variables, 3, width=20, seed=5, dtype=torch.float32)
    (outs, grads), (outs_ref, grads_ref) = both_paths(monkeypatch, model, x, values, variables, keys)
    for a, b in zip(outs + list(grads), outs_ref + list(grads_ref)):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-5)


def test_turned_off_by_the_environment(monkeypatch):
    monkeypatch.setenv(kernels.ENV_VAR, "0")
    assert kernels.library() is None and kernels.use_for(torch.zeros(1), 2, 1) is None


def test_not_used_for_other_dtypes_or_uncompiled_pairs():
    assert kernels.use_for(torch.zeros(1, dtype=torch.float64), 2, 1) is not None
    assert kernels.use_for(torch.zeros(1, dtype=torch.float16), 2, 1) is None
    assert kernels.use_for(torch.zeros(1, dtype=torch.bfloat16), 2, 1) is None
    assert kernels.use_for(torch.zeros(1), 4, 3) is None  # four inputs: the eager path


def test_an_uncompiled_pair_is_refused_by_the_library_too():
    lib = kernels.library()
    block, w0, scale = torch.zeros(10, 3), torch.zeros(3, 4), torch.ones(4)
    with pytest.raises(ValueError, match="not compiled for these derivative counts"):
        kernels.first_forward(lib, block, w0, (0, 1, 2, 3), scale, 2, 2, 4, 3)


def test_a_failed_build_warns_once_and_the_eager_path_still_works(monkeypatch, tmp_path):
    monkeypatch.setenv("PINN_LAM_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setattr(kernels, "_state", {})
    with pytest.warns(RuntimeWarning, match="fused CPU kernels unavailable"):
        assert kernels.library() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        assert kernels.library() is None
        model, x, values = setup(("x", "t"), 2, width=6, seed=0)
        u, _, _ = fastpath.evaluate(model, x, ("x", "t"), ("t", "x", "xx"), values=values)
    torch.testing.assert_close(u, model(x))


def test_a_fresh_build_in_an_empty_cache_loads(monkeypatch, tmp_path):
    monkeypatch.setenv("PINN_LAM_CACHE", str(tmp_path))
    monkeypatch.setattr(kernels, "_state", {})
    assert kernels.library() is not None
    assert len(list((tmp_path / "kernels").glob("taylor-*"))) == 1


def test_building_a_trainer_builds_nothing_and_solve_builds_the_kernels_before_its_clock(monkeypatch, tmp_path):
    """No side effect at a distance: a Trainer compiles nothing; solve builds the fused loops
    before the training clock starts, so the first step's time is the step's."""
    from pinn_lam import solve
    from pinn_lam.training import trainer as trainer_module
    from pinn_lam.training.loss import PINNLoss
    from pinn_lam.training.trainer import Phase, Trainer
    from problems import Heat

    monkeypatch.setenv("PINN_LAM_CACHE", str(tmp_path))
    monkeypatch.setattr(kernels, "_state", {})
    problem = Heat()
    model = MLP(2, 1, width=6, depth=2, activation="tanh", bounds=problem.bounds,
                output_transform=problem.output_transform(), generator=torch.Generator().manual_seed(0))
    loss = PINNLoss(problem, model, {"pde": torch.rand(16, 2)})
    Trainer(model, loss, [Phase("lam", 1, 1e-3)])
    assert loss.fast and "lib" not in kernels._state
    built_at_start = []
    run = trainer_module.Trainer.run
    monkeypatch.setattr(trainer_module.Trainer, "run",
                        lambda self: built_at_start.append(kernels._state.get("lib") is not None) or run(self))
    solve("heat", optimizer="lam", iterations=1, width=6, depth=2, n_collocation=16, reference_resolution=(16, 16))
    assert built_at_start == [kernels.library() is not None]


def test_fused_kernels_match_the_eager_path_over_many_chunks(monkeypatch):
    """Enough points for several chunks of CHUNK (128) points, one of them holding both points with
    derivative rows and points with values only, so the loops and sums run split across threads."""
    variables, keys = ("x", "t"), ("t", "x", "xx")
    model, _, _ = setup(variables, 3, width=9, seed=3)
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(700, 2, generator=generator, dtype=torch.float64)
    values = [torch.rand(150, 2, generator=generator, dtype=torch.float64)]
    (outs, grads), (outs_ref, grads_ref) = both_paths(monkeypatch, model, x, values, variables, keys)
    for a, b in zip(outs + list(grads), outs_ref + list(grads_ref)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def kernel_results(threads, monkeypatch):
    """Every kernel once on fixed random blocks (700 points with slabs, 850 in all), run with
    ``threads`` threads; the arrays they write."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    lib = kernels.library()
    generator = torch.Generator().manual_seed(0)
    nv, n, w, n1, n2, din = 850, 700, 20, 2, 1, 3
    rows = nv + (n1 + n2) * n

    def rand(*shape):
        return torch.rand(*shape, generator=generator, dtype=torch.float32) - 0.5

    block, pre, up, g, wout = rand(rows, w), rand(rows, w), rand(rows, w), rand(rows, 1), rand(1, w)
    w0, scale, z, cols = rand(w, din), rand(n1), rand(nv, din), (2, 0)
    first, hidden = block.clone(), block.clone()
    kernels.first_forward(lib, first, w0, cols, scale, nv, n, n1, n2)
    kernels.hidden_forward(lib, pre, hidden, nv, n, n1, n2)
    out = torch.empty(nv, w)
    kernels.first_affine(lib, out, z, w0, rand(w))
    inner, bias, g_weight = up.clone(), torch.empty(w), torch.empty(w, din)
    kernels.rows_backward(lib, inner, block, bias, nv, n, n1, n2, z=z, cols=cols, scale=scale, g_weight=g_weight)
    outer, bias_outer, g_wout, g_bout = torch.empty_like(up), torch.empty(w), torch.empty(1, w), torch.empty(1)
    kernels.rows_backward(lib, outer, block, bias_outer, nv, n, n1, n2, g=g, wout=wout, g_wout=g_wout, g_bout=g_bout)
    return [first, hidden, out, inner, bias, g_weight, outer, bias_outer, g_wout, g_bout]


def test_every_kernel_gives_the_same_bits_on_any_number_of_threads(monkeypatch):
    """Sums over points are formed per fixed chunk and added in chunk order, so a run does not
    depend on the thread count (as the eager reductions would)."""
    one = kernel_results(1, monkeypatch)
    for threads in (2, 3):
        for a, b in zip(kernel_results(threads, monkeypatch), one):
            assert torch.equal(a, b)
    assert all(one[i].abs().sum() > 0 for i in (4, 5, 7, 8, 9))  # the sums were formed


def test_the_kernels_use_pytorchs_openmp_runtime():
    """Their parallel regions go to the runtime libtorch_cpu uses (one thread pool), even when
    another package has loaded an OpenMP runtime of its own first."""
    runtime = kernels.openmp_runtime()
    if runtime is None:
        pytest.skip("PyTorch has no OpenMP runtime here: the kernels are built without threads")
    assert os.path.basename(runtime).startswith(("libgomp", "libiomp5", "libomp"))
    lib = kernels.library()
    assert lib.pinn_lam_openmp() == 1
    address = ctypes.cast(lib.GOMP_parallel, ctypes.c_void_p).value  # as the kernels' calls resolve it
    info = kernels._DlInfo()
    assert ctypes.CDLL(None).dladdr(ctypes.c_void_p(address), ctypes.byref(info))
    assert os.path.realpath(info.dli_fname.decode()) == runtime


def test_a_compiler_without_openmp_gives_serial_kernels(monkeypatch, tmp_path):
    """A compiler that rejects -fopenmp (e.g. Apple clang) still builds the kernels, without threads."""
    real = kernels.shutil.which("c++") or kernels.shutil.which("g++")
    if real is None:
        pytest.skip("no c++ on PATH")
    wrapper = tmp_path / "cxx-no-openmp"
    wrapper.write_text(f'#!/bin/sh\nfor a in "$@"; do [ "$a" = -fopenmp ] && exit 1; done\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PINN_LAM_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", str(wrapper))
    monkeypatch.setattr(kernels, "_state", {})
    lib = kernels.library()
    assert lib is not None and lib.pinn_lam_openmp() == 0
    model, x, values = setup(("x", "t"), 2, width=6, seed=0)
    u, _, _ = fastpath.evaluate(model, x, ("x", "t"), ("t", "x", "xx"), values=values)
    torch.testing.assert_close(u, model(x))


def test_the_first_layer_affine_kernel_is_the_matrix_product():
    lib = kernels.library()
    generator = torch.Generator().manual_seed(2)
    for din in (1, 2, 3, 5):
        z = torch.rand(700, din, generator=generator, dtype=torch.float64)
        w0 = torch.randn(13, din, generator=generator, dtype=torch.float64)
        b = torch.randn(13, generator=generator, dtype=torch.float64)
        out = torch.empty(700, 13, dtype=torch.float64)
        kernels.first_affine(lib, out, z, w0, b)
        torch.testing.assert_close(out, torch.addmm(b, z, w0.T), rtol=1e-14, atol=1e-14)
