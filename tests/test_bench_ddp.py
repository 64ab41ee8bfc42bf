"""``pinn-lam bench ddp`` on a tiny run: every configuration is timed, and the runs over one and
two processes end at the same loss (they train on the same points)."""
import pytest
import torch

from pinn_lam.benchmarks import ddp
from pinn_lam.cli.main import main


@pytest.mark.slow
def test_one_and_two_processes_are_timed_and_reach_the_same_loss(capsys):
    threads = torch.get_num_threads()
    try:
        rows = ddp.measure("heat", [257], [1, 2], iterations=3, warmup=1)
    finally:
        torch.set_num_threads(threads)
    assert [(row["points"], row["processes"]) for row in rows] == [(257, 1), (257, 2)]
    assert all(row["seconds_per_iteration"] > 0 and row["cpu_seconds_per_iteration"] > 0 and row["fast_path"]
               for row in rows)
    assert rows[1]["loss"] == pytest.approx(rows[0]["loss"], rel=1e-10)
    lines = ddp.table(rows).splitlines()
    assert lines[0].split() == ["points", "processes", "ms/iteration", "speed-up", "CPU", "ms/iteration", "loss"]
    assert lines[1].split()[:4] == ["257", "1", lines[1].split()[2], "1.00"] and len(lines) == 3


@pytest.mark.parametrize("option, value, message", [
    ("--iterations", "0", "--iterations must be a positive integer"),
    ("--warmup", "0", "--warmup must be a positive integer"),
    ("--threads", "0", "--threads must be a positive integer"),
])
def test_bad_options_are_one_line_errors_before_any_timing(option, value, message, capsys):
    assert main(["bench", "ddp", option, value]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_point_and_process_lists_must_be_positive_integers(capsys):
    for text in ("0,2", "a", ""):
        with pytest.raises(SystemExit):
            main(["bench", "ddp", "--processes", text])
        assert "expected" in capsys.readouterr().err
