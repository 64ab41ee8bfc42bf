"""Options that every command spells the same way, and listings that the parser accepts."""
import json

import pytest
import torch

from pinn_lam.cli.main import COMMANDS, build_parser, main


def _actions(command):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {option: action for action in sub._actions for option in action.option_strings}


def test_every_command_with_an_output_folder_takes_o_and_output():
    with_output = [c for c in COMMANDS if "--output" in _actions(c)]
    assert set(with_output) >= {"solve", "compare", "figures", "reference"}
    for command in with_output:
        actions = _actions(command)
        assert actions["-o"] is actions["--output"], command


def test_every_preset_that_list_shows_is_accepted_by_solve(capsys):
    assert main(["list"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("presets"))
    names = [n.strip() for n in line.split(":", 1)[1].split(",")]
    assert names and "--quick" in line and not any(n.startswith("--") for n in names)
    parser = build_parser()
    for name in names:
        assert parser.parse_args(["solve", "heat", "--preset", name]).preset == name


def test_overwrite_is_an_option_of_solve_and_excludes_resume(tmp_path, capsys):
    code = main(["solve", "heat", "--resume", "--overwrite", "--output", str(tmp_path / "x"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "resume and overwrite exclude each other" in err and "\n" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_the_python_api_speaks_of_python_arguments():
    from pinn_lam.training.solve import solve

    with pytest.raises(ValueError, match="CUDA is not available; use device='cpu'"):
        solve("heat", device="cuda")


TINY = ["--optimizer", "adam", "--iterations", "400", "--points", "64", "--width", "8", "--depth", "2",
        "--no-progress", "--device", "cpu", "--param", "modes=[[1, 1.0]]"]


def test_a_time_limit_that_cuts_the_budget_short_is_a_warning_in_the_summary(tmp_path, capsys):

    assert main(["solve", "heat", *TINY, "--time-limit", "0.001", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    done = metrics["iterations"]
    assert 0 < done < 400
    warning = next(line for line in out.splitlines() if line.startswith("warning:"))
    assert warning.startswith(f"warning: the time limit of 0.001 s cut the run short: {done} of 400 iterations "
                              f"done, relative L2 error {metrics['rel_l2']:.3e}")


def test_a_run_that_spends_its_budget_prints_no_warning(tmp_path, capsys):
    assert main(["solve", "heat", *TINY[:3], "20", *TINY[4:], "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "trained 20 iterations" in out and "warning" not in out


def test_a_new_run_in_the_default_folder_goes_beside_an_earlier_one(tmp_path, monkeypatch):
    import argparse

    from pinn_lam.cli import solve as command

    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    output = lambda *words: command.options_from(parser.parse_args(["heat", *words]))["output_dir"]  # noqa: E731
    assert output() == "runs/heat"
    (tmp_path / "runs" / "heat").mkdir(parents=True)
    assert output() == "runs/heat"  # an empty folder holds no run
    (tmp_path / "runs" / "heat" / "checkpoint.pt").write_bytes(b"")
    assert output() == "runs/heat-2" and output("--resume") == "runs/heat"
    (tmp_path / "runs" / "heat-2").mkdir()
    (tmp_path / "runs" / "heat-2" / "metrics.json").write_text("{}")
    assert output() == "runs/heat-3" and output("-o", "runs/heat") == "runs/heat"


def test_the_resume_command_names_the_folder_when_the_arguments_do_not():
    from pinn_lam.cli.solve import resume_command

    assert resume_command(["solve", "heat", "--quick"], "runs/heat-2").endswith(
        "solve heat --quick --output runs/heat-2 --resume")
    assert resume_command(["solve", "heat", "-o", "x"], "x").endswith("solve heat -o x --resume")


def test_hard_constraints_can_be_asked_for_where_the_problem_defaults_to_soft_conditions(tmp_path):
    terms = {}
    for flag in ("--hard-constraints", "--no-hard-constraints"):
        out = tmp_path / flag.strip("-")
        assert main(["solve", "wave", "--iterations", "2,1", "--points", "64", "--threads", "1", "--no-progress",
                     "--no-figure", flag, "-o", str(out)]) == 0
        terms[flag] = sorted(json.loads((out / "metrics.json").read_text())["metrics"]["derivative_paths"])
    # the wave's output transform covers ic, ic_rate and bc; soft, they are loss terms
    assert terms == {"--hard-constraints": ["pde"], "--no-hard-constraints": ["bc", "ic", "ic_rate", "pde"]}
