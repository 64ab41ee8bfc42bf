"""``pinn-lam bench train``: a tiny run end to end, the interleaved timer, the memory probe."""
import argparse
import importlib.util
import json

import pytest
import torch

from pinn_lam.benchmarks import deepxde as bench_deepxde
from pinn_lam.benchmarks import train


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine two threads per process oversubscribe it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def parse(*argv):
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.slow
def test_tiny_benchmark_run_reports_every_case(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = parse("burgers", "--iterations", "2", "--rounds", "2", "--warmup", "1", "--no-deepxde",
                 "--device", "cpu", "--profile", "2", "--json", str(out))
    assert train.run(args) == 0
    text = capsys.readouterr().out
    assert "pinn-lam autograd (adam)" in text and "pinn-lam fast path (adam)" in text
    assert "where the time goes, pinn-lam fast path (adam)" in text
    results = json.loads(out.read_text())
    steps = results["steps"]
    assert set(steps) == {"pinn-lam autograd (adam)", "pinn-lam fast path (adam)"}
    base, fast = steps["pinn-lam autograd (adam)"], steps["pinn-lam fast path (adam)"]
    assert base["ratio_wall"] == 1.0  # the base without DeepXDE
    assert fast["ratio_wall"] == pytest.approx(fast["wall_ms"] / base["wall_ms"], rel=1e-12)
    assert fast["ratio_cpu"] == pytest.approx(fast["cpu_ms"] / base["cpu_ms"], rel=1e-12)
    assert f"{fast['wall_ms']:9.3f}" in text and f"{base['cpu_ms']:9.3f}" in text
    memory = results["peak_memory_mb"]
    # both paths hold at least the (2540, 20) float32 activations of three layers
    assert all(mb > 3 * 2540 * 20 * 4 / 1e6 for mb in memory.values())
    assert memory["pinn-lam fast path (adam)"] <= 1.5 * memory["pinn-lam autograd (adam)"]
    assert list(results["profile"]) == ["pinn-lam fast path (adam)"]
    assert any(row["name"] == "aten::mm" for row in results["profile"]["pinn-lam fast path (adam)"])


def test_pinn_lam_step_trains_on_deepxde_configuration():
    import problems

    step, loss = train.pinn_lam_step(problems.get("burgers"), fast=True, optimizer="lam",
                                     device=torch.device("cpu"), dtype=torch.float32, seed=0)
    assert loss.fast
    assert {k: v.shape[0] for k, v in loss.points.items()} == {"pde": 2540, "ic": 160, "bc": 80}
    before = float(loss()[0].detach())
    for _ in range(30):
        step()
    assert float(loss()[0].detach()) < before


class FakeClock:
    """Stands in for the ``time`` module: cases advance it by known amounts (wall and CPU alike)."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now

    process_time = perf_counter


def test_time_steps_interleaves_and_reports_median_milliseconds_per_step(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(train, "time", clock)
    calls = []
    seconds_per_step = {"a": 1e-3, "b": 2e-3, "c": 5e-3}

    def case(name):
        def run(n):
            calls.append((name, n))
            # the third timed call of each case is slow (a busy machine): the median ignores it
            slow = 10.0 if sum(c == name for c, _ in calls) == 4 else 1.0
            clock.now += n * seconds_per_step[name] * slow
        return run

    timings = train.time_steps({name: case(name) for name in "abc"}, iterations=4, rounds=3, warmup=2,
                               device=torch.device("cpu"))
    assert calls[:3] == [("a", 2), ("b", 2), ("c", 2)]  # warm-up
    assert [name for name, _ in calls[3:]] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]  # rotated
    assert all(n == 4 for _, n in calls[3:])
    for name, per_step in seconds_per_step.items():
        assert timings[name]["wall_ms"] == pytest.approx(1e3 * per_step, rel=1e-9)
        assert timings[name]["cpu_ms"] == pytest.approx(1e3 * per_step, rel=1e-9)
        assert timings[name]["wall_ms_min"] == pytest.approx(1e3 * per_step, rel=1e-9)


def test_paired_ratio_compares_cases_within_each_round(monkeypatch):
    """Work that costs twice the base's in most rounds has a paired ratio of 2, however the
    machine's speed drifts between rounds (here it slows down tenfold over the rounds) and although
    one round in five is ten times slower for it (a neighbour's burst)."""
    clock = FakeClock()
    monkeypatch.setattr(train, "time", clock)
    rounds = {"n": 0}

    def busy(units):
        clock.now += units * 1e-3 * (1 + rounds["n"] // 3)

    def base(n):
        rounds["n"] += 1
        busy(n)

    cases = {"base": base, "double": lambda n: busy(2 * n * (10 if rounds["n"] % 5 == 0 else 1))}
    timings = train.time_steps(cases, iterations=3, rounds=30, warmup=0, device=torch.device("cpu"), base="base")
    assert timings["base"]["paired_ratio_cpu"] == 1.0
    assert timings["double"]["paired_ratio_cpu"] == pytest.approx(2.0, rel=1e-9)
    # the ratio of the medians is skewed by the bursts
    assert timings["double"]["cpu_ms"] / timings["base"]["cpu_ms"] > 2.2


def test_peak_memory_sees_a_known_allocation():
    def step():
        block = torch.ones(1_000_000, dtype=torch.float32)  # 4 MB, freed at return
        return float(block[0])

    assert 3.9 <= train.peak_memory_mb(step) <= 4.5


@pytest.mark.parametrize("argv, message", [(["--iterations", "0"], "--iterations"), (["--warmup", "-1"], "--warmup"),
                                           (["--targets", "2"], "--targets"), (["--threads", "0"], "--threads"),
                                           (["--profile", "-1"], "--profile"),
                                           (["--preset", "turbo"], "unknown preset .turbo.; available: quick, sprint")])
def test_bad_options_raise_one_line_errors(argv, message):
    with pytest.raises(ValueError, match=message):
        train.run(parse("burgers", *argv))


@pytest.mark.slow
def test_deepxde_case_runs_when_installed():
    if importlib.util.find_spec("deepxde") is None:  # not importorskip: its import would change the default device
        pytest.skip("DeepXDE is not installed")
    model = bench_deepxde.deepxde_model(0.01 / 3.141592653589793)
    assert torch.get_default_device().type == "cpu"
    with bench_deepxde.deepxde_scope(model.pinn_lam_device):
        model.train(iterations=2, display_every=2, verbose=0)
    assert model.train_state.step == 2


@pytest.mark.slow
def test_deepxde_recipe_measures_its_error_and_stops_at_its_time_limit():
    if importlib.util.find_spec("deepxde") is None:
        pytest.skip("DeepXDE is not installed")
    import problems

    out = bench_deepxde.deepxde_time_to_accuracy(problems.get("burgers"), [0.01, 0.001], time_limit=1e-6, eval_every=5,
                                         seed=0)
    # the first evaluation (after 5 Adam steps) is past the time limit: no L-BFGS, no target reached
    assert out["deepxde_steps"] == 5 and out["seconds_to"] == {"0.01": None, "0.001": None}
    # an almost untrained network: its error against the reference is of order one
    assert 0.5 < out["final_rel_l2"] < 2.0
    assert torch.get_default_device().type == "cpu"


@pytest.fixture
def cpu_default_device():
    """Torch's default device is the CPU during the test, and whatever it was afterwards."""
    prior = torch.get_default_device()
    torch.set_default_device(None)
    yield
    torch.set_default_device(None if prior.type == "cpu" else prior)


def test_deepxde_import_leaves_torchs_default_device_alone(monkeypatch, cpu_default_device):
    """DeepXDE's import sets torch's default device to CUDA where there is one; the benchmark puts
    the default back and hands DeepXDE its device in a scope (simulated here with 'meta')."""
    monkeypatch.setattr(bench_deepxde, "_DEEPXDE_DEVICE", [])

    def importer():
        torch.set_default_device("meta")  # what DeepXDE's backend does with "cuda"
        return "module"

    try:
        module, device = bench_deepxde.import_deepxde(importer)
    finally:
        default = torch.get_default_device()
        torch.set_default_device(None)
    assert module == "module" and device == torch.device("meta")
    assert default == torch.device("cpu") and torch.empty(1).device.type == "cpu"
    with bench_deepxde.deepxde_scope(device):
        assert torch.empty(1).device.type == "meta"
    assert torch.empty(1).device.type == "cpu"
    # a later import (a cached module) reports the device of the first
    module, device = bench_deepxde.import_deepxde(lambda: "module")
    assert device == torch.device("meta") and torch.get_default_device() == torch.device("cpu")
    # and on the CPU no scope (no device mode) is added around DeepXDE's steps
    assert not isinstance(bench_deepxde.deepxde_scope(torch.device("cpu")), torch.device)


def test_a_failed_deepxde_import_still_restores_the_default_device(monkeypatch, cpu_default_device):
    """DeepXDE's backend sets the device before it imports scikit-optimize: a missing dependency
    must not leave that default behind."""
    monkeypatch.setattr(bench_deepxde, "_DEEPXDE_DEVICE", [])

    def importer():
        torch.set_default_device("meta")
        raise ImportError("No module named 'skopt'")

    with pytest.raises(ImportError, match="skopt"):
        bench_deepxde.import_deepxde(importer)
    assert bench_deepxde._default_device() == torch.device("cpu") and torch.empty(1).device.type == "cpu"


def test_deepxde_import_restores_a_default_device_the_user_had_set(monkeypatch, cpu_default_device):
    monkeypatch.setattr(bench_deepxde, "_DEEPXDE_DEVICE", [])
    torch.set_default_device("meta")  # the user's choice before the benchmark imports DeepXDE
    try:
        _, device = bench_deepxde.import_deepxde(lambda: torch.set_default_device("cpu"))
        assert device == torch.device("cpu") and torch.empty(1).device.type == "meta"
    finally:
        torch.set_default_device(None)


def test_same_device_treats_an_index_free_device_as_the_current_one():
    assert bench_deepxde.same_device(torch.device("cpu"), "cpu")
    assert not bench_deepxde.same_device(torch.device("cpu"), torch.device("meta"))
    if torch.cuda.is_available():
        assert bench_deepxde.same_device(torch.device("cuda"), torch.device("cuda", torch.cuda.current_device()))
        assert torch.device("cuda") != torch.device("cuda", torch.cuda.current_device())


def test_torch_func_loss_equals_the_autograd_loss():
    import problems

    device, problem = torch.device("cpu"), problems.get("burgers")
    _, loss = train.pinn_lam_step(problem, fast=False, optimizer="adam", device=device, dtype=torch.float64,
                                  seed=0, points=64)
    total_func, terms_func = train.func_loss(loss)()
    total, terms = loss()
    torch.testing.assert_close(terms_func["pde"], terms["pde"], rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(total_func, total, rtol=1e-10, atol=1e-14)


def test_solve_options_parse_json_values_and_strings():
    assert train.solve_options(["width=20", "dtype=float32", "iterations=[2000, 3000]", "lr=1e-3"]) == {
        "width": 20, "dtype": "float32", "iterations": [2000, 3000], "lr": 1e-3}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        train.solve_options(["width"])


def test_profile_steps_finds_the_operations_a_step_runs():
    weight = torch.randn(64, 64)

    def steps(n):
        for _ in range(n):
            torch.tanh(weight @ weight)

    table = train.profile_steps(steps, 4, rows=5)
    names = [row["name"] for row in table]
    assert "aten::mm" in names and "aten::tanh" in names
    tanh = next(row for row in table if row["name"] == "aten::tanh")
    assert tanh["calls_per_step"] == 1.0 and tanh["ms_per_step"] > 0
    assert 0 < sum(row["share"] for row in table) <= 1.0 + 1e-9
