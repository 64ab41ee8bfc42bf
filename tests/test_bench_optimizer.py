"""``pinn-lam bench optimizer`` on a tiny problem: every optimizer is timed, the table is complete,
and LAM's paths, timed side by side, end at the same parameters."""
from __future__ import annotations

import argparse

import pytest
import torch

from pinn_lam.benchmarks import optimizer as bench


def test_measure_times_every_optimizer_and_lam_paths_agree():
    result = bench.measure(n_params=6000, n_tensors=3, repeats=2)
    names = [row["name"] for row in result["rows"]]
    assert names == list(bench.cases(torch.device("cpu")))
    for row in result["rows"]:
        assert 0 < row["best_ms"] <= row["ms"]
        assert row["gbps"] == pytest.approx(row["bytes"] / row["ms"] / 1e6)
    by_name = {row["name"]: row for row in result["rows"]}
    assert by_name["LAM default"]["bytes"] == 5 * 6000 * 4 and by_name["Adam fused"]["bytes"] == 7 * 6000 * 4
    assert by_name["LAM default"]["state_mb"] == pytest.approx(6000 * 4 / 2**20)
    assert by_name["LAM layerwise default"]["state_mb"] == pytest.approx(3 * 4 / 2**20)  # one float per tensor
    assert result["copy_gbps"] > 0
    assert result["max_lam_difference"] < 1e-5  # 4 float32 steps of lr 1e-3 on the same gradients


def test_run_prints_the_table(capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--params", "4000", "--tensors", "2", "--repeats", "1", "--device", "cpu"])
    assert bench.run(args) == 0
    out = capsys.readouterr().out
    assert "4,000 float32 parameters in 2 tensors" in out and "LAM default path here: fused" in out
    assert "| RMSprop foreach |" in out and "| 1.00 |" in out and "| copy_ of a buffer of the same size |" in out


def test_bad_sizes_and_devices_are_refused():
    with pytest.raises(ValueError, match="need params >= tensors >= 1"):
        bench.measure(n_params=3, n_tensors=5)
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    with pytest.raises(ValueError, match="'gpu0' is not a torch device"):
        bench.run(parser.parse_args(["--device", "gpu0"]))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            bench.run(parser.parse_args(["--device", "cuda"]))
