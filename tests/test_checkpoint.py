"""Checkpoints: atomic, weights_only, and a killed run resumes bit-identically (CPU)."""
import copy
import os

import pytest
import torch

from pinn_lam.training.checkpoint import load_checkpoint, save_checkpoint
from pinn_lam.training.solve import solve

TINY = dict(width=10, depth=2, n_collocation=128, n_boundary=16, eval_every=10, figure=False,
            reference_resolution=(32, 32), device="cpu", dtype="float64", params={"modes": [[1, 1.0]]})


def test_save_and_load_round_trip_with_weights_only(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "history": [{"iteration": 0, "loss": 1.5}], "rng": {"state": 2**100}}
    path = save_checkpoint(state, tmp_path / "sub" / "checkpoint.pt")
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], torch.arange(3.0)) and loaded["history"] == state["history"]
    assert loaded["rng"]["state"] == 2**100
    assert os.listdir(tmp_path / "sub") == ["checkpoint.pt"]  # no temporary file left behind


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path):
    path = save_checkpoint({"iteration": 1}, tmp_path / "checkpoint.pt")

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint({"iteration": 2, "bad": Unpicklable()}, path)
    assert load_checkpoint(path)["iteration"] == 1
    assert os.listdir(tmp_path) == ["checkpoint.pt"]


def test_loading_garbage_or_nothing_gives_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(OSError, match="cannot read checkpoint"):
        load_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(1)}, other)
    with pytest.raises(OSError, match="not a pinn-lam checkpoint"):
        load_checkpoint(other)


class Kill(Exception):
    pass


def _kill_at(iteration):
    def callback(state):
        if state.iteration >= iteration:
            raise Kill()
    return callback


def assert_identical(a, b, where="checkpoint"):
    """Every tensor bit-equal (values and dtype), every other value equal, at every depth."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), (where, list(a), list(b))
        for key in a:
            assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{k}]")
    else:
        assert a == b, (where, a, b)


# inside the LAM phase just after a redraw at 20, inside the L-BFGS phase after the redraw at 50
@pytest.mark.parametrize("kill_at", [27, 52])
def test_killed_run_resumes_bit_identical(tmp_path, kill_at):
    """A run with uniform resampling, residual-based redraws and an L-BFGS phase, killed and
    resumed from its checkpoint, ends with the same parameters, optimizer state, points, sampler
    state, counters and history (its clock continues from the saved ``elapsed``)."""
    settings = dict(TINY, optimizer="lam+lbfgs", iterations=[30, 40], lr=1e-2, seed=3, checkpoint_every=10,
                    resample_every=7, adaptive_every=10, adaptive_pool=512)
    seen = {"full": {}, "resumed": {}}

    def record(run):
        def callback(state):  # everything the loop carries, after every step or L-BFGS chunk
            seen[run][state.iteration] = copy.deepcopy({
                "model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
                "points": state.loss.points})
        return callback

    full = solve("heat", output_dir=tmp_path / "full", callback=record("full"), **settings)
    with pytest.raises(Kill):
        solve("heat", output_dir=tmp_path / "killed", callback=_kill_at(kill_at), **settings)
    saved = load_checkpoint(tmp_path / "killed" / "checkpoint.pt")
    assert saved["iteration"] == 10 * (kill_at // 10) == saved["points_iteration"]
    assert saved["adaptations"] == kill_at // 10 and saved["elapsed"] > 0
    resumed = solve("heat", output_dir=tmp_path / "killed", resume=True, callback=record("resumed"), **settings)
    assert resumed.metrics["iterations"] == full.metrics["iterations"] == 70
    assert resumed.metrics["adaptive_redraws"] == full.metrics["adaptive_redraws"] == 6  # at 10, 20, ..., 60

    assert list(seen["resumed"]) == [k for k in seen["full"] if k > saved["iteration"]]
    for iteration, state in seen["resumed"].items():
        assert_identical(seen["full"][iteration], state, f"iteration {iteration}")
    ends = [load_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("full", "killed")]
    assert ends[0]["sampler"] is not None
    timeless = [{k: v for k, v in end.items() if k not in ("elapsed", "history")} for end in ends]
    assert_identical(*timeless)  # model, optimizer state, points, sampler, counters, events, config

    untimed = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    assert untimed(resumed.history) == untimed(full.history) == untimed(ends[1]["history"])
    # rows before the checkpoint come from it, times and all; later rows continue its clock
    before = [row for row in resumed.history if row["iteration"] < saved["iteration"]]
    assert before == [row for row in saved["history"] if row["iteration"] < saved["iteration"]] and before
    after = [row["time"] for row in resumed.history[len(before):]]
    assert after[0] >= round(saved["elapsed"], 4) and after == sorted(after)
    assert ends[1]["elapsed"] >= saved["elapsed"] and resumed.metrics["seconds"] >= round(saved["elapsed"], 3)


def test_resume_refuses_different_settings(tmp_path):
    settings = dict(TINY, optimizer="adam", iterations=5, checkpoint_every=5)
    solve("heat", output_dir=tmp_path, **settings)
    with pytest.raises(ValueError, match="it was run with width=10"):
        solve("heat", output_dir=tmp_path, resume=True, **dict(settings, width=12))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        solve("heat", output_dir=tmp_path / "empty", resume=True, **settings)


def test_refusal_of_an_unsafe_checkpoint_names_the_object_and_never_suggests_weights_only_false(tmp_path):
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format_version": 2, "thing": Kill()}, unsafe)
    with pytest.raises(OSError) as caught:
        load_checkpoint(unsafe)
    message = str(caught.value)
    assert "Kill" in message and "refusing to unpickle" in message and "\n" not in message
    assert "weights_only" not in message and "False" not in message


def test_changed_tensor_bytes_fail_the_checksum_with_one_line(tmp_path):
    path = save_checkpoint({"model": {"w": torch.arange(64.0)}, "iteration": 3}, tmp_path / "checkpoint.pt")
    data = bytearray(path.read_bytes())
    start = bytes(data).index(torch.arange(64.0).numpy().tobytes())  # the stored tensor, raw
    data[start + 8 * 17] ^= 0x01  # one bit of one float64
    path.write_bytes(bytes(data))
    with pytest.raises(OSError, match="is damaged: its contents do not match the checksum") as caught:
        load_checkpoint(path)
    assert "\n" not in str(caught.value)


def test_checksum_covers_values_keys_and_types():
    from pinn_lam.training.checkpoint import content_digest

    base = {"a": torch.zeros(3), "b": [1, 2.0, "x"], 3: None}
    assert content_digest(base) == content_digest({3: None, "b": [1, 2.0, "x"], "a": torch.zeros(3)})
    for other in ({**base, "a": torch.zeros(3, dtype=torch.float64)}, {**base, "a": torch.zeros(1, 3)},
                  {**base, "b": [1, 2, "x"]}, {**base, "b": (1, 2.0, "x")}, {**base, 3: 0}):
        assert content_digest(other) != content_digest(base)


def test_a_full_disk_is_one_line_naming_the_file_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import errno

    path = save_checkpoint({"iteration": 1}, tmp_path / "checkpoint.pt")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as caught:
        save_checkpoint({"iteration": 2}, path)
    assert str(caught.value) == f"cannot write {path}: No space left on device"
    assert caught.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert load_checkpoint(path)["iteration"] == 1 and os.listdir(tmp_path) == ["checkpoint.pt"]


def test_a_full_disk_during_training_stops_the_command_with_one_line(tmp_path, monkeypatch, capsys):
    import errno

    from pinn_lam.cli.main import main

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    code = main(["solve", "heat", "--optimizer", "adam", "--iterations", "5", "--points", "64", "--width", "8",
                 "--depth", "2", "--no-progress", "--device", "cpu", "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err == f"pinn-lam solve: error: cannot write {tmp_path / 'run' / 'checkpoint.pt'}: No space left on device"
