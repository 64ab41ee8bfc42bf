"""``pinn-lam tune``: the search space, pruning by the error history, a study shared through its
storage, and a best.toml that reproduces the best trial through ``solve --config`` (trials on Dask:
tests/test_executors.py)."""
from __future__ import annotations

import csv
import json
import math
import sys

import pytest

from pinn_lam.cli.main import build_parser, main
from pinn_lam.cli.solve import load_config, options_from
from pinn_lam.studies.tune import SPACE, Search, TrialTask, run_trial, spread, tune
from pinn_lam.studies.tune_outputs import best_config, to_toml

#: every trial shares these: a tiny heat run, errors evaluated every 10 iterations
FIXED = (("iterations", 30), ("seed", 0), ("preset", "quick"), ("eval_every", 10))


@pytest.fixture
def one_thread(monkeypatch):
    """Trials in this process set its torch threads: put them back; no kernels to compile."""
    import torch

    monkeypatch.setenv("PINN_LAM_KERNELS", "0")
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# -- no Optuna needed ------------------------------------------------------------------------

def test_search_rejects_what_it_cannot_search():
    with pytest.raises(ValueError, match="cannot search momentum; searchable: lr, decay"):
        Search("heat", "lam", ("lr", "momentum"))
    with pytest.raises(ValueError, match="always includes the learning rate"):
        Search("heat", "lam", ("width",))
    with pytest.raises(ValueError, match="0 < low < high"):
        Search("heat", "lam", ("lr",), (("lr", (1e-2, 1e-3)),))
    with pytest.raises(ValueError, match="takes integers"):
        Search("heat", "lam", ("lr", "width"), (("width", (16.5, 64)),))
    with pytest.raises(ValueError, match="not searched"):
        Search("heat", "lam", ("lr",), (("depth", (2, 4)),))
    with pytest.raises(ValueError, match="--soft-constraints"):
        Search("heat", "lam", ("lr", "weighting"))


def test_tune_without_optuna_is_a_one_line_error_naming_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)
    assert main(["tune", "heat", "-o", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "pip install 'pinn-lam[tune]'" in error


def test_best_settings_round_trip_through_solve_config(tmp_path):
    search = Search("heat", "lam", ("lr", "decay", "width", "depth", "points", "weighting"),
                    conditions=("initial", "boundary"),
                    fixed=FIXED + (("params", {"alpha": 0.05}), ("hard_constraints", False)))
    params = {"lr": 0.0123, "decay": 0.05, "width": 48, "depth": 3, "points": 777,
              "weight_initial": 12.5, "weight_boundary": 0.25}
    path = tmp_path / "best.toml"
    path.write_text(to_toml(best_config(search, params), comment="best of 3 trials\nsecond line"))
    assert load_config(str(path)) == {"optimizer": "lam", "iterations": 30, "seed": 0, "preset": "quick",
                                      "eval_every": 10, "param": {"alpha": 0.05}, "hard_constraints": False,
                                      "lr": 0.0123, "lr_decay": 0.05, "width": 48, "depth": 3, "points": 777,
                                      "weights": {"initial": 12.5, "boundary": 0.25}}
    options = options_from(build_parser().parse_args(["solve", "heat", "--config", str(path), "-o", str(tmp_path)]))
    expected = {"optimizer": "lam", "iterations": 30, "lr": 0.0123, "lr_decay": 0.05, "width": 48, "depth": 3,
                "n_collocation": 777, "seed": 0, "preset": "quick", "eval_every": 10, "hard_constraints": False,
                "weights": {"initial": 12.5, "boundary": 0.25}, "params": {"alpha": 0.05}}
    assert {k: options[k] for k in expected} == expected


def test_spread_of_final_errors():
    assert spread([4.0, 1.0, 2.0]) == {"min": 1.0, "median": 2.0, "max": 4.0, "ratio": 4.0}
    assert spread([1.0, 3.0])["median"] == 2.0
    assert math.isnan(spread([])["ratio"])


# -- with Optuna -----------------------------------------------------------------------------

def test_suggestions_stay_in_their_log_ranges():
    optuna = pytest.importorskip("optuna")
    search = Search("heat", "lam", ("lr", "width", "points", "weighting"), (("lr", (1e-3, 1e-2)),),
                    conditions=("initial",))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    drawn = [search.suggest(study.ask()) for _ in range(200)]
    lrs = [d["lr"] for d in drawn]
    assert 1e-3 <= min(lrs) and max(lrs) <= 1e-2
    # log scale: about half the draws below the geometric mean sqrt(1e-3 * 1e-2)
    assert 0.4 < sum(lr < math.sqrt(1e-5) for lr in lrs) / len(lrs) < 0.6
    assert all(isinstance(d["width"], int) and SPACE["width"][2] <= d["width"] <= SPACE["width"][3] for d in drawn)
    assert all(set(d["weights"]) == {"initial"} and 0.1 <= d["weights"]["initial"] <= 100 for d in drawn)
    assert {k for d in drawn for k in d} == {"lr", "width", "n_collocation", "weights"}


def test_a_trial_behind_the_median_is_pruned_at_its_first_evaluation(tmp_path, one_thread):
    optuna = pytest.importorskip("optuna")
    from pinn_lam.studies.tune import make_pruner, make_storage

    storage = str(tmp_path / "study.journal")
    study = optuna.create_study(study_name="s", storage=make_storage(storage), pruner=make_pruner(1, 0))
    distribution = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}
    for lr in (1e-2, 2e-2):  # two earlier trials that reached an error of 1e-9 at every evaluation
        study.add_trial(optuna.trial.create_trial(params={"lr": lr}, distributions=distribution, value=1e-9,
                                                  intermediate_values={i: 1e-9 for i in range(0, 31)}))
    search = Search("heat", "adam", fixed=FIXED)
    trial = study.ask()
    record = run_trial(TrialTask(storage, "s", trial._trial_id, (("lr", 1e-3),), search, 1, 0))
    assert record["status"] == "pruned" and 0 < record["value"] < 10
    assert record["iterations"] < 30  # stopped after its first error evaluation
    frozen = study.get_trials()[-1]
    assert list(frozen.intermediate_values.values()) == [record["value"]]
    # the same trial with no pruner runs to the end and ends with the solve's error
    search_all = Search("heat", "adam", fixed=FIXED)
    other = study.ask()
    full = run_trial(TrialTask(storage, "s", other._trial_id, (("lr", 1e-3),), search_all, 1, 0, prune=False))
    assert full["status"] == "ok" and full["iterations"] == 30
    assert sorted(study.get_trials()[-1].intermediate_values) == [1, 11, 21]  # evaluated at 0, 10, 20


@pytest.mark.parametrize("storage", ["shared.journal", "sqlite:///{folder}/shared.db"])
def test_processes_sharing_a_study_add_up_to_the_trials_asked_for(storage, tmp_path, one_thread):
    pytest.importorskip("optuna")
    if storage.startswith("sqlite"):
        pytest.importorskip("sqlalchemy")
    search = Search("heat", "lam", fixed=(("iterations", 10),) + FIXED[1:])
    storage = storage.format(folder=tmp_path) if "://" in storage else str(tmp_path / storage)
    first = tune(search, trials=2, storage=storage, study_name="shared", startup_trials=1, threads=1, log=None)
    assert len(first.trials) == 2
    # a second process on the same storage continues the study up to 3 finished trials
    second = tune(search, trials=3, storage=storage, study_name="shared", startup_trials=1, seed=5, threads=1,
                  log=None)
    assert [t.number for t in second.trials] == [0, 1, 2]
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in second.trials)
    assert all(1e-4 <= t.params["lr"] <= 1e-1 for t in second.trials)


def test_tune_command_writes_a_best_toml_that_reproduces_its_best_trial(tmp_path, one_thread, capsys):
    pytest.importorskip("optuna")
    out = tmp_path / "tune"
    assert main(["tune", "heat", "--optimizer", "adam", "--preset", "quick", "--iterations", "20", "--eval-every",
                 "10", "--trials", "3", "--startup-trials", "2", "--threads", "1", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 trials:" in printed and "best: trial" in printed
    assert sorted(p.name for p in out.iterdir()) == ["best.toml", "history.pdf", "history.png", "importance.pdf",
                                                     "importance.png", "study.journal", "trials.csv"]
    with open(out / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["number"]) for r in rows] == [0, 1, 2]
    complete = [r for r in rows if r["state"] == "complete"]
    best = min(complete, key=lambda r: float(r["rel_l2"]))
    assert load_config(str(out / "best.toml"))["lr"] == float(best["lr"])
    # the settings train to the best trial's error
    assert main(["solve", "heat", "--config", str(out / "best.toml"), "--threads", "1", "-o", str(tmp_path / "solve"),
                 "--no-progress", "--no-figure"]) == 0
    metrics = json.loads((tmp_path / "solve" / "metrics.json").read_text())["metrics"]
    assert metrics["iterations"] == 20
    assert metrics["rel_l2"] == pytest.approx(float(best["rel_l2"]), rel=1e-9)
