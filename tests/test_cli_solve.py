"""`pinn-lam solve` and `pinn-lam list`: a real subprocess run, its files, and one-line errors."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pinn_lam.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--iterations", "30,20", "--points", "256", "--width", "12", "--depth", "2", "--no-progress",
         "--param", "modes=[[1, 1.0]]"]


def run_cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "pinn_lam", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=300)


@pytest.mark.slow
def test_solve_heat_quick_in_a_subprocess_writes_results_and_resumes(tmp_path):
    out = tmp_path / "run"
    done = run_cli("solve", "heat", "--quick", *SMALL, "--output", str(out), "--checkpoint-every", "10")
    assert done.returncode == 0, done.stderr
    assert "relative L2 error vs reference:" in done.stdout and "relative L2 error vs exact:" in done.stdout
    assert "wrote: " in done.stdout and str(out / "metrics.json") in done.stdout
    for name in ("metrics.json", "history.csv", "checkpoint.pt", "solution.png", "solution.pdf"):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["iterations"] == 50 and metrics["rel_l2"] < 0.05
    # resuming a finished run changes nothing and says so
    again = run_cli("solve", "heat", "--quick", *SMALL, "--output", str(out), "--resume")
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "metrics.json").read_text())["metrics"]["rel_l2"] == metrics["rel_l2"]


def test_non_finite_loss_exits_nonzero_with_one_line(tmp_path, capsys):
    code = main(["solve", "heat", *SMALL, "--optimizer", "sgd", "--lr", "1e30", "--iterations", "50",
                 "--output", str(tmp_path), "--dtype", "float32"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith("pinn-lam solve: error: non-finite loss at iteration") and "\n" not in err


@pytest.mark.parametrize("args, message", [
    (["waves"], "unknown problem 'waves'"),
    (["heat", "--optimizer", "lam+adamw"], "unknown optimizer 'adamw'"),
    (["heat", "--iterations", "0"], "iterations must be positive"),
    (["heat", "--points", "-1"], "n_collocation must be a positive integer"),
    (["heat", "--param", "alpha=-2"], "alpha"),
    (["heat", "--config", "/nonexistent/run.toml"], "cannot read config /nonexistent/run.toml"),
    (["heat", "--output", "/proc/pinn-lam-cannot-write"], "cannot write to output folder"),
])
def test_bad_options_give_one_line_errors(args, message, capsys, tmp_path):
    if "--output" not in args:
        args = args + ["--output", str(tmp_path)]
    code = main(["solve", *args, "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and message in err, err


def test_config_file_sets_defaults_and_the_command_line_overrides_them(tmp_path, monkeypatch):
    from pinn_lam.cli import solve as command

    monkeypatch.chdir(tmp_path)  # the default output folder depends on what runs/ holds

    config = tmp_path / "run.toml"
    config.write_text('optimizer = "adam"\niterations = 7\nwidth = 9\n[param]\nalpha = 0.2\n')
    parser = __import__("argparse").ArgumentParser()
    command.add_arguments(parser)
    options = command.options_from(parser.parse_args(["heat", "--config", str(config), "--width", "11"]))
    assert options["optimizer"] == "adam" and options["iterations"] == 7 and options["width"] == 11
    assert options["params"] == {"alpha": 0.2} and options["output_dir"] == str(Path("runs") / "heat")
    config.write_text("widht = 3\n")
    with pytest.raises(ValueError, match="unknown key 'widht'"):
        command.options_from(parser.parse_args(["heat", "--config", str(config)]))
    config.write_text("width = [\n")
    with pytest.raises(ValueError, match="cannot parse config"):
        command.options_from(parser.parse_args(["heat", "--config", str(config)]))


def test_list_names_problems_and_optimizers(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("burgers", "heat", "poisson", "lam", "adam", "rmsprop", "sgd", "lbfgs", "sobol", "--quick"):
        assert word in out


def test_param_values_take_arithmetic_with_pi_like_the_other_commands():
    from pinn_lam.cli.params import param

    name, value = param("nu=0.01/pi")
    assert name == "nu" and value == pytest.approx(0.01 / math.pi)
    assert param("modes=[[1, 1.0], [3, 0.2]]")[1] == ((1, 1.0), (3, 0.2))


def test_preset_option_names_any_preset_and_conflicts_with_quick(tmp_path):
    from pinn_lam.cli import solve as command

    parser = __import__("argparse").ArgumentParser()
    command.add_arguments(parser)
    assert command.options_from(parser.parse_args(["burgers", "--preset", "sprint"]))["preset"] == "sprint"
    assert command.options_from(parser.parse_args(["burgers", "--quick"]))["preset"] == "quick"
    assert command.options_from(parser.parse_args(["burgers", "--quick", "--preset", "quick"]))["preset"] == "quick"
    assert command.options_from(parser.parse_args(["burgers"]))["preset"] is None
    with pytest.raises(ValueError, match="--quick and --preset sprint name two presets"):
        command.options_from(parser.parse_args(["burgers", "--quick", "--preset", "sprint"]))
    config = tmp_path / "run.toml"
    config.write_text('preset = "sprint"\n')
    assert command.options_from(parser.parse_args(["heat", "--config", str(config)]))["preset"] == "sprint"
    with pytest.raises(SystemExit):
        parser.parse_args(["burgers", "--preset", "turbo"])


def test_progress_bar_on_stderr_counts_iterations_and_shows_the_latest_loss_error_and_time_left(
        tmp_path, capsys, monkeypatch):
    import csv

    monkeypatch.setattr("pinn_lam.plots.solution.solution_figure", lambda *args, **kwargs: [])  # seconds of drawing
    code = main(["solve", "heat", *[a for a in SMALL if a != "--no-progress"], "--eval-every", "10",
                 "--time-limit", "1e5", "--output", str(tmp_path), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0 and "it/s" not in captured.out
    frames = [frame.strip() for frame in captured.err.split("\r") if frame.strip()]
    assert frames[0].startswith("0%") and "0/50" in frames[0]
    last = frames[-1]
    assert last.startswith("100%") and "| 50/50 [" in last, last
    with open(tmp_path / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    # the last callback follows the last L-BFGS chunk, whose loss (and the error there) the bar shows
    before = rows[-2]
    assert before["optimizer"] == "lbfgs" and before["rel_l2"]
    postfix = last[last.index("phase="):].rstrip("]")
    left = int(postfix.split("limit=")[1].rstrip("s"))
    assert postfix == (f"phase=lbfgs, loss={float(before['loss']):.2e}, rel_l2_subset={float(before['rel_l2']):.2e}, "
                       f"limit={left}s") and 99000 <= left <= 100000  # seconds left of the limit
