"""The on-disk reference cache: folder choice, hits, keys, atomic writes, damaged entries."""
from pathlib import Path

import numpy as np
import pytest

from pinn_lam.pde import cache
from problems import Heat


def test_folder_is_argument_then_environment_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("PINN_LAM_CACHE", str(tmp_path / "env"))
    assert cache.cache_folder(tmp_path / "arg") == tmp_path / "arg"
    assert cache.cache_folder() == tmp_path / "env"
    monkeypatch.delenv("PINN_LAM_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_folder() == tmp_path / "home" / ".cache" / "pinn-lam"


def test_second_call_loads_identical_arrays_without_computing(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"u": np.arange(6.0).reshape(2, 3)}, {"method": "test", "error_estimate": 1e-3}

    first, meta1 = cache.cached("p", {"a": 1}, 8, "v1", compute, tmp_path)
    second, meta2 = cache.cached("p", {"a": 1}, 8, "v1", compute, tmp_path)
    assert len(calls) == 1 and not meta1["cached"] and meta2["cached"]
    np.testing.assert_array_equal(first["u"], second["u"])
    assert meta2["method"] == "test" and meta2["seconds"] == meta1["seconds"]
    assert [p.suffix for p in tmp_path.iterdir()] == [".npz"]  # no temporary file left behind


def test_key_depends_on_name_parameters_resolution_and_version():
    base = cache.cache_key("p", {"a": 1, "b": [1, 2]}, 8, "v1")
    assert base == cache.cache_key("p", {"b": [1, 2], "a": 1}, 8, "v1")  # order does not matter
    others = [cache.cache_key("q", {"a": 1, "b": [1, 2]}, 8, "v1"),
              cache.cache_key("p", {"a": 2, "b": [1, 2]}, 8, "v1"),
              cache.cache_key("p", {"a": 1, "b": [1, 2]}, 16, "v1"),
              cache.cache_key("p", {"a": 1, "b": [1, 2]}, 8, "v2")]
    assert base not in others and len(set(others)) == 4


def test_damaged_entry_is_recomputed(tmp_path):
    path = cache.cache_path("p", {}, 1, "v", tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a zip file")
    arrays, meta = cache.cached("p", {}, 1, "v", lambda: ({"u": np.ones(2)}, {}), tmp_path)
    assert not meta["cached"] and np.array_equal(arrays["u"], np.ones(2))
    assert cache.load(path) is not None


def test_unwritable_folder_still_returns_the_result(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    arrays, meta = cache.cached("p", {}, 1, "v", lambda: ({"u": np.zeros(1)}, {}), blocker / "sub")
    assert not meta["cached"] and arrays["u"].shape == (1,)


def test_problem_reference_hit_solves_nothing_and_is_identical(tmp_path, monkeypatch):
    heat = Heat()
    first = heat.reference((128, 128), cache_dir=tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(Heat, "_solve", lambda *args: pytest.fail("a cache hit solved the problem again"))
        second = heat.reference((128, 128), cache_dir=tmp_path)
    assert second.info["cached"] and not first.info["cached"]
    np.testing.assert_array_equal(first.u, second.u)
    for a, b in zip(first.grid, second.grid):
        np.testing.assert_array_equal(a, b)
    assert (second.error_estimate, second.seconds, second.method) == (first.error_estimate, first.seconds, first.method)
    points = np.random.default_rng(0).random((10, 2))
    np.testing.assert_array_equal(first(points), second(points))
    assert Path(second.info["path"]).parent == tmp_path
    # another resolution or parameter is another entry
    assert not heat.reference((64, 64), cache_dir=tmp_path).info["cached"]
    assert not Heat(alpha=0.2).reference((128, 128), cache_dir=tmp_path).info["cached"]


def test_an_empty_entry_is_a_miss_and_is_replaced(tmp_path):
    path = cache.cache_path("p", {"a": 1}, 4, "v", tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    arrays, meta = cache.cached("p", {"a": 1}, 4, "v", lambda: ({"u": np.arange(3.0)}, {}), tmp_path)
    assert not meta["cached"] and np.array_equal(arrays["u"], np.arange(3.0))
    assert path.stat().st_size > 0
    again, meta = cache.cached("p", {"a": 1}, 4, "v", lambda: ({"u": np.zeros(3)}, {}), tmp_path)
    assert meta["cached"] and np.array_equal(again["u"], np.arange(3.0)) and "key" not in meta


def test_an_entry_stored_under_another_problems_key_is_a_miss(tmp_path):
    # another problem's entry copied to heat's file name, as a mix-up of files would leave it
    cache.cached("burgers", {"nu": 0.01}, 8, "v", lambda: ({"u": np.full(2, 7.0)}, {}), tmp_path)
    other = cache.cache_path("burgers", {"nu": 0.01}, 8, "v", tmp_path)
    heat = cache.cache_path("heat", {"alpha": 0.1}, 8, "v", tmp_path)
    heat.write_bytes(other.read_bytes())
    arrays, meta = cache.cached("heat", {"alpha": 0.1}, 8, "v", lambda: ({"u": np.ones(2)}, {}), tmp_path)
    assert not meta["cached"] and np.array_equal(arrays["u"], np.ones(2))
    assert cache.stored_key(cache.load(heat)[1]) == cache.cache_key("heat", {"alpha": 0.1}, 8, "v")


def test_an_entry_without_its_key_is_a_miss(tmp_path):
    path = cache.cache_path("p", {}, 1, "v", tmp_path)
    cache.save(path, {"u": np.full(2, 5.0)}, {"method": "old"})
    arrays, meta = cache.cached("p", {}, 1, "v", lambda: ({"u": np.ones(2)}, {}), tmp_path)
    assert not meta["cached"] and np.array_equal(arrays["u"], np.ones(2))


def test_a_real_reference_with_an_empty_cache_file_is_recomputed_and_replaced(tmp_path):
    problem = Heat(modes=((1, 1.0),))
    first = problem.reference((16, 16), cache_dir=tmp_path)
    (entry,) = tmp_path.glob("*.npz")
    entry.write_bytes(b"")
    second = problem.reference((16, 16), cache_dir=tmp_path)
    assert not second.info["cached"] and np.array_equal(second.u, first.u) and entry.stat().st_size > 0
    assert problem.reference((16, 16), cache_dir=tmp_path).info["cached"]


def test_the_tests_use_a_private_cache_not_the_users(private_reference_cache):
    import os

    assert os.environ["PINN_LAM_CACHE"] == str(private_reference_cache)
    assert cache.cache_folder() == private_reference_cache != Path.home() / ".cache" / "pinn-lam"
