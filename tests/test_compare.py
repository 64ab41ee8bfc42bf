"""The comparison runner: plans, resumable parallel runs, tables, and a tiny comparison end to end."""
from __future__ import annotations

import argparse
import dataclasses
import csv
import json
import math
import os

import pytest

from pinn_lam.studies.compare import (RunSpec, correct_history_times, load_result, plan, resolve_label, result_path,
                              run_comparison)
from pinn_lam.training import presets
from pinn_lam.studies.tables import COLUMNS, summarize, time_to


#: the learning rate a run gets when none is given (the preset's, shared by every problem)
DEFAULT_LR = presets.resolve("heat")["lr"]

def fake_record(spec: RunSpec, error: float = 1e-3) -> dict:
    history = [{"iteration": i, "time": 0.5 * i, "loss": 10.0 ** -i, "rel_l2": 10.0 ** -i} for i in range(4)]
    return {"spec": spec.to_json(), "key": spec.key, "status": "ok", "error": None, "history": history,
            "metrics": {"rel_l2": error, "seconds": 2.0, "iterations": 3}, "stiffness": [], "train_seconds": 1.5}


def test_resolve_label_maps_variants_to_lam_options():
    assert resolve_label("lam-bc") == ("lam", {"bias_correction": True})
    assert resolve_label("lam-layerwise") == ("lam", {"layerwise": True})
    assert resolve_label("lam+lbfgs") == ("lam+lbfgs", {})
    with pytest.raises(ValueError, match="unknown optimizer 'adagrad'"):
        resolve_label("adagrad")


def test_run_spec_rejects_bad_budgets():
    with pytest.raises(ValueError, match="iterations"):
        RunSpec("heat", "lam", iterations=0)
    with pytest.raises(ValueError, match="time limit"):
        RunSpec("heat", "lam", time_limit=-1.0)
    with pytest.raises(ValueError, match="learning rate"):
        RunSpec("heat", "lam", lr=0.0)


def test_plan_shares_runs_between_studies_and_diagnoses_first_seed_only():
    p = plan("heat", optimizers=("lam", "adam", "lbfgs"), seeds=2, iterations=300, lrs=(1e-3, 1e-2), variants=True)
    assert len(p.main) == 6 and len(p.lr) == 8 and len(p.variants) == 6
    # lam/adam at the preset's default lr (one of the grid's) are main runs (4), lam in variants too (2):
    # 6 + 4 + 4 = 14 distinct
    assert DEFAULT_LR in (1e-3, 1e-2)
    assert len(p.runs) == 14
    lam0 = next(s for s in p.main if s.label == "lam" and s.seed == 0)
    assert lam0.lr == DEFAULT_LR and lam0 in p.lr and lam0 in p.variants
    assert lam0.hessian_at == (0, 100, 200) and lam0.stiffness_every == 6
    assert all(not s.hessian_at for s in p.main if s.seed == 1)
    assert next(s for s in p.main if s.label == "lbfgs").lr is None
    timed = plan("heat", optimizers=("lam",), seeds=1, time_limit=30.0)
    assert timed.main[0].iterations is None and timed.main[0].hessian_times == (0.0, 10.0, 20.0)
    # about 50 error evaluations per curve unless asked otherwise (the heat default would be every 250)
    assert lam0.eval_every == 6 and timed.main[0].eval_every == 25
    assert plan("heat", optimizers=("lam",), seeds=1, iterations=300, eval_every=7).main[0].eval_every == 7


def test_key_depends_on_every_field():
    a = RunSpec("heat", "lam", seed=0, iterations=10)
    assert a.key == RunSpec("heat", "lam", seed=0, iterations=10).key
    assert len({a.key, RunSpec("heat", "lam", seed=1, iterations=10).key, RunSpec("heat", "lam", iterations=11).key,
                RunSpec("heat", "lam", iterations=10, params=(("alpha", 0.2),)).key}) == 4


def test_resumed_comparison_skips_finished_runs(tmp_path):
    specs = [RunSpec("heat", label, seed=seed, iterations=3) for label in ("lam", "adam") for seed in (0, 1)]
    calls = []

    def run(spec):
        calls.append(spec.key)
        return fake_record(spec)

    first = run_comparison(specs, tmp_path, workers=1, run=run, log=None)
    assert sorted(calls) == sorted(s.key for s in specs) and [r["key"] for r in first] == [s.key for s in specs]
    assert not [p for p in (tmp_path / "runs").iterdir() if p.suffix != ".json"]  # no temporary files left
    mtimes = {s.key: os.stat(result_path(tmp_path, s)).st_mtime_ns for s in specs}

    # a killed comparison: one run never finished, another left a truncated file
    result_path(tmp_path, specs[1]).unlink()
    result_path(tmp_path, specs[2]).write_text('{"spec": ')
    calls.clear()
    second = run_comparison(specs, tmp_path, workers=1, run=run, log=None)
    assert sorted(calls) == sorted([specs[1].key, specs[2].key])
    for spec in (specs[0], specs[3]):
        assert os.stat(result_path(tmp_path, spec)).st_mtime_ns == mtimes[spec.key]
    assert [r["key"] for r in second] == [s.key for s in specs]

    # a changed budget is a different run; --no-resume reruns everything
    calls.clear()
    run_comparison([RunSpec("heat", "lam", seed=0, iterations=4)], tmp_path, workers=1, run=run, log=None)
    assert len(calls) == 1
    calls.clear()
    run_comparison(specs, tmp_path, workers=1, run=run, resume=False, log=None)
    assert len(calls) == 4
    assert load_result(tmp_path, specs[0])["metrics"]["rel_l2"] == 1e-3


def test_history_times_lose_the_diagnostics_recorded_before_them():
    history = [{"iteration": i, "time": t} for i, t in ((0, 0.0), (1, 1.0), (2, 3.0), (3, 4.5))]
    # diagnostics after step to iteration 1 took 0.5 s, after iteration 2 another 1 s
    out = correct_history_times(history, [(1, 0.5), (2, 1.5)])
    assert [r["time"] for r in out] == [0.0, 1.0, 2.5, 3.0]


def test_summary_medians_and_time_to_thresholds_by_hand():
    def record(seed, errors, status="ok"):
        history = [{"iteration": 10 * i, "time": float(i), "loss": 1.0, "rel_l2": e} for i, e in enumerate(errors)]
        spec = {"problem": "heat", "case": "heat", "label": "lam", "lr": 1e-3, "seed": seed}
        return {"spec": spec, "status": status, "history": history if status == "ok" else [],
                "metrics": {"rel_l2": errors[-1], "iterations": 10 * (len(errors) - 1), "seconds": 4.0},
                "train_seconds": 2.0}

    records = [record(0, [1.0, 5e-3, 5e-4]), record(1, [1.0, 0.5, 8e-3, 2e-3]), record(2, [1.0, 2e-2]),
               record(3, [1.0], status="failed")]
    assert time_to(records[0]["history"], 1e-2) == 1.0 and time_to(records[2]["history"], 1e-2) == math.inf
    (row,) = summarize(records)
    assert (row["runs"], row["failed"]) == (4, 1)
    assert row["rel_l2_median"] == pytest.approx(2e-3) and row["rel_l2_min"] == 5e-4 and row["rel_l2_max"] == 2e-2
    # time to 1e-2: seeds 1.0, 2.0, inf, inf (failed) -> median inf; 2 of 4 reached
    assert row["time_to_1e-2_s"] == math.inf and row["reached_1e-2"] == "2/4"
    assert row["time_to_1e-3_s"] == math.inf and row["reached_1e-3"] == "1/4"
    # iterations per second from the training seconds: 20/2, 30/2, 10/2 -> median 10
    assert row["iterations_per_s"] == pytest.approx(10.0)
    (row,) = summarize(records[:2])
    assert row["time_to_1e-2_s"] == pytest.approx(1.5)


@pytest.mark.slow
def test_tiny_comparison_end_to_end_writes_figures_and_tables_and_resumes(tmp_path, capsys):
    from pinn_lam.cli import compare

    parser = argparse.ArgumentParser()
    compare.add_arguments(parser)
    argv = ["heat", "--optimizers", "lam,adam", "--seeds", "2", "--iterations", "6", "--preset", "quick",
            "--eval-every", "2", "--workers", "2", "--n-collocation", "128", "--hessian-points", "1", "--no-warm-up",
            "--output", str(tmp_path)]
    assert compare.run(parser.parse_args(argv)) == 0
    runs = sorted((tmp_path / "runs").glob("*.json"))
    assert len(runs) == 4
    record = json.loads(runs[0].read_text())
    assert record["status"] == "ok" and record["metrics"]["iterations"] == 6
    assert record["history"][-1]["iteration"] == 6 and "rel_l2" in record["history"][-1]
    assert all(row["grad_norm_pde"] > 0 for row in record["stiffness"])
    with open(tmp_path / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == COLUMNS
    assert sorted(r["optimizer"] for r in rows) == ["adam", "lam"] and all(r["runs"] == "2" for r in rows)
    records = [json.loads(p.read_text()) for p in runs]
    for row in rows:  # the table summarises the runs' own final errors (two seeds: two different ones)
        errors = sorted(r["metrics"]["rel_l2"] for r in records if r["spec"]["label"] == row["optimizer"])
        assert len(errors) == 2 and errors[0] < errors[1]
        assert float(row["rel_l2_median"]) == pytest.approx(sum(errors) / 2, rel=1e-12)
        assert (float(row["rel_l2_min"]), float(row["rel_l2_max"])) == pytest.approx(errors, rel=1e-12)
        assert float(row["iterations_median"]) == 6
    assert f"| heat | lam | {DEFAULT_LR:g} |" in (tmp_path / "results.md").read_text()
    for stem in ("convergence_iteration", "convergence_time", "stiffness"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 0 and (tmp_path / f"{stem}.pdf").stat().st_size > 0
    hessians = [json.loads(p.read_text())["stiffness"] for p in runs]
    assert sum(any("hessian_top" in row for row in s) for s in hessians) == 2  # seed 0 of each optimizer
    mtimes = [p.stat().st_mtime_ns for p in runs]
    capsys.readouterr()
    assert compare.run(parser.parse_args(argv)) == 0
    assert "resuming: 4 of 4 runs already finished" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in runs] == mtimes


@pytest.mark.slow
def test_figures_command_makes_every_figure_and_the_results_table(tmp_path, capsys, monkeypatch):
    from pinn_lam.cli.main import main
    from pinn_lam.studies import paper_figures

    # the --quick set has every problem and the suite; one problem and 4 iterations keep this short
    tiny = dataclasses.replace(paper_figures.QUICK, optimizers=("lam", "adam"), compare_seeds=1, compare_iterations=2,
                               lrs=(1e-2,), study=None, solution_iterations=2, problems=("heat",),
                               compare_problem="heat", hessian_points=0)
    monkeypatch.setattr(paper_figures, "QUICK", tiny)
    figures, runs = tmp_path / "figures", tmp_path / "runs"
    assert main(["figures", "--quick", "--scale", "2", "--workers", "1", "--output", str(figures),
                 "--runs", str(runs)]) == 0
    out = capsys.readouterr().out
    names = {str(p.relative_to(figures)) for p in figures.rglob("*.*")}
    for stem in ("solution_heat", "heat/convergence_iteration", "heat/convergence_time", "heat/stiffness",
                 "heat/lr_sensitivity", "heat/variants"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
        assert f"  {figures / stem}.png" in out.splitlines()  # the command lists what it wrote (no PDFs)
    assert f"wrote {len(names)} files into {figures}:" in out
    text = (figures / "results.md").read_text()
    assert "| heat | lam+lbfgs | 4 |" in text  # --scale 2 doubles the solution's 2 iterations
    assert f"| heat | lam-layerwise | {DEFAULT_LR:g} |" in text and "| heat | adam | 0.01 |" in text and "Machine: " in text
    records = [json.loads(p.read_text()) for p in runs.rglob("*.json") if "spec" in p.read_text()[:20]]
    assert records and {r["metrics"]["iterations"] for r in records if r["spec"]["label"] != "lam+lbfgs"} == {4}


def test_parameter_values_parse_numbers_tuples_and_pi():
    from pinn_lam.cli.compare import parse_params

    params = parse_params(["nu=0.01/pi", "modes=((1, 1.0), (8, 0.5))", "alpha=2e-1", "name=abc"])
    assert params["nu"] == pytest.approx(0.01 / math.pi)
    assert params["modes"] == ((1, 1.0), (8, 0.5)) and params["alpha"] == 0.2 and params["name"] == "abc"
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_params(["nu"])


def compare_args(*argv):
    from pinn_lam.cli import compare

    parser = argparse.ArgumentParser()
    compare.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_stiff_suite_plans_every_case_with_its_own_parameters():
    from pinn_lam.cli.compare import plans_from_args

    plans = plans_from_args(compare_args("--suite", "stiff", "--optimizers", "lam,adam", "--seeds", "2",
                                         "--iterations", "50", "--hessian-points", "0"))
    assert [p.case for p in plans] == ["allen-cahn", "helmholtz", "convection-beta30", "convection-beta50", "wave",
                                       "burgers-nu0.01pi"]
    expected = [("allen-cahn", {}), ("helmholtz", {}), ("convection", {"beta": 30.0}), ("convection", {"beta": 50.0}),
                ("wave", {}), ("burgers", {"nu": 0.01 / math.pi})]
    for p, (problem, params) in zip(plans, expected):
        assert sorted((s.label, s.seed) for s in p.runs) == [("adam", 0), ("adam", 1), ("lam", 0), ("lam", 1)]
        for spec in p.runs:
            assert (spec.problem, spec.case, dict(spec.params)) == (problem, p.case, params)
            # each problem's own default rate (convection's is 3e-3)
            assert spec.iterations == 50 and spec.time_limit is None and spec.lr == presets.resolve(problem)["lr"]
    assert len({s.key for p in plans for s in p.runs}) == 24  # the two convection cases are different runs
    with pytest.raises(ValueError, match="not both"):
        plans_from_args(compare_args("heat", "--suite", "stiff"))
    with pytest.raises(ValueError, match="--param cannot be combined with --suite"):
        plans_from_args(compare_args("--suite", "stiff", "--param", "nu=0.1"))
    with pytest.raises(ValueError, match="unknown suite 'soft'; available: stiff"):
        plans_from_args(compare_args("--suite", "soft"))


@pytest.mark.parametrize("plain", [[], ["--no-stiffness"]], ids=["diagnosed", "plain"])
def test_a_time_limited_comparison_stops_each_run_on_its_training_clock(plain):
    """--time-limit alone: no iteration budget, every run ends by the clock; with stiffness
    diagnostics the clock counts training time only (the diagnostics' seconds are taken out)."""
    from pinn_lam.cli.compare import plans_from_args
    from pinn_lam.studies.compare import UNBOUNDED, execute

    (p,) = plans_from_args(compare_args("heat", "--optimizers", "lam,lbfgs", "--seeds", "1", "--time-limit", "0.3",
                                        "--preset", "quick", "--n-collocation", "64", "--width", "8", "--depth",
                                        "2", "--hessian-points", "1", "--param", "modes=((1, 1.0),)", *plain))
    assert [(s.label, s.iterations, s.time_limit) for s in p.runs] == [("lam", None, 0.3), ("lbfgs", None, 0.3)]
    for spec in p.runs:
        record = execute(spec)
        m = record["metrics"]
        assert record["status"] == "ok" and m["stop_reason"] == "time limit of 0.3 s reached", m
        assert 0 < m["iterations"] < UNBOUNDED and record["history"][-1]["iteration"] == m["iterations"]
        assert record["train_seconds"] >= 0.3
        if plain:
            assert record["stiffness"] == [] and record["train_seconds"] == m["seconds"]
        else:  # the diagnostics during training (not the final one) are taken out of the clock
            assert record["stiffness"] and "hessian_top" in record["stiffness"][0]
            assert m["seconds"] - record["diagnostic_seconds"] <= record["train_seconds"] < m["seconds"]
            times = [row["time"] for row in record["history"]]
            assert times == sorted(times) and times[-1] <= record["train_seconds"] + 1e-3


def test_a_warm_up_writes_nothing_into_a_runs_output_folder(tmp_path, monkeypatch):
    """Workers warm up with the specs they will run; a spec's output folder belongs to its real run
    (another worker may be running it and holding its lock)."""
    from pinn_lam.studies import compare as compare_module

    seen = []
    monkeypatch.setattr("pinn_lam.training.solve.solve", lambda *args, **kwargs: seen.append(kwargs))
    spec = RunSpec("heat", "lam", seed=0, iterations=3, case="solution-heat",
                   solve_options=(("output_dir", str(tmp_path / "solve")), ("width", 4)))
    compare_module.warm_up([spec])
    assert len(seen) == 1 and "output_dir" not in seen[0] and seen[0]["width"] == 4 and seen[0]["iterations"] == 2
