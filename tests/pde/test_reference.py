"""References from files, functions and grids: the values land on the right points."""
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from pinn_lam import Box, Disk, PointReference, Reference, load_reference
from pinn_lam.errors import ProblemError
from pinn_lam.pde.reference import load_arrays, tabulate

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
X, T = np.linspace(-1, 1, 5), np.linspace(0, 1, 3)


def field(x, t):
    return x ** 2 + 10 * t


def test_a_mat_file_grid_in_either_axis_order(tmp_path):
    u = field(*np.meshgrid(X, T, indexing="ij"))
    savemat(tmp_path / "a.mat", {"x": X[:, None], "t": T[None, :], "usol": u})
    savemat(tmp_path / "b.mat", {"x": X, "t": T, "usol": u.T})  # stored (t, x)
    for name in ("a.mat", "b.mat"):
        ref = load_reference(tmp_path / name, ("x", "t"), keys={"u": "usol"})
        assert isinstance(ref, Reference) and ref.u.shape == (5, 3)
        np.testing.assert_array_equal(ref.values(), field(ref.points()[:, 0], ref.points()[:, 1]))
        assert ref(np.array([[0.5, 0.25]]))[0] == pytest.approx(0.25 + 2.5, abs=1e-12)


def test_npz_points_dat_columns_and_complex_parts(tmp_path):
    rng = np.random.default_rng(0)
    p = rng.random((50, 2))
    np.savez(tmp_path / "p.npz", x=p[:, 0], t=p[:, 1], u=field(p[:, 0], p[:, 1]))
    ref = load_reference(tmp_path / "p.npz", ("x", "t"))
    assert isinstance(ref, PointReference) and ref.points().shape == (50, 2)
    np.testing.assert_array_equal(ref.values(), field(p[:, 0], p[:, 1]))
    (tmp_path / "p.dat").write_text("% x t u v\n" + "\n".join(f"{a} {b} {field(a, b)} {-a}" for a, b in p[:7]))
    points, values = load_arrays(tmp_path / "p.dat", ("x", "t"), ("u", "v"))
    np.testing.assert_array_equal(points, p[:7])
    np.testing.assert_array_equal(values[:, 1], -p[:7, 0])
    h = np.exp(1j * X)[:, None] * np.ones((1, 3))
    savemat(tmp_path / "c.mat", {"x": X, "t": T, "h": h})
    ref = load_reference(tmp_path / "c.mat", ("x", "t"), ("u", "v"), keys={"u": "h.real", "v": "h.imag"})
    assert ref.u.shape == (5, 3, 2)
    np.testing.assert_allclose(ref.values()[:, 1], np.sin(ref.points()[:, 0]), rtol=1e-15)


@pytest.mark.parametrize("write, kwargs, message", [
    (lambda d: savemat(d / "f.mat", {"x": X, "t": T}), {}, "has no array 'u' for u .*keys=\\{'u': 'ARRAY'\\}"),
    (lambda d: savemat(d / "f.mat", {"x": X, "t": T, "u": np.zeros((4, 3))}), {}, "matches neither the grid"),
    (lambda d: savemat(d / "f.mat", {"x": X, "t": T, "u": np.zeros((5, 3)) + 0j}), {}, "complex values"),
    (lambda d: (d / "f.dat").write_text("1 2\n3 4 5\n"), {}, "must have 3 columns"),
    (lambda d: (d / "f.csv").write_text("1,2,a\n"), {}, "line 1: not numbers"),
    (lambda d: (d / "f.txt").write_text("1 2 3\n"), {"keys": {"y": "x"}}, "neither variables"),
    (lambda d: (d / "f.xls").write_text(""), {}, "unknown format '.xls'"),
])
def test_bad_files_fail_in_one_line_naming_the_file(tmp_path, write, kwargs, message):
    write(tmp_path)
    path = next(tmp_path.iterdir())
    with pytest.raises(ProblemError, match=message):
        load_reference(path, ("x", "t"), **kwargs)
    with pytest.raises(ProblemError, match="does not exist"):
        load_reference(tmp_path / "missing.mat", ("x", "t"))


def test_tabulate_a_function_on_a_box_and_on_a_disk():
    ref = tabulate(lambda p: p[:, 0] * p[:, 1], Box(x=(0, 1), y=(0, 2)), ("u",), points_per_axis=11)
    assert isinstance(ref, Reference) and ref.u.shape == (11, 11) and ref.u[-1, -1] == 2.0
    disk = tabulate(lambda p: np.column_stack([p[:, 0], p[:, 1]]), Disk(), ("u", "v"), points_per_axis=21)
    assert isinstance(disk, PointReference) and (np.linalg.norm(disk.points(), axis=1) <= 1 + 1e-9).all()
    np.testing.assert_array_equal(disk.values(), disk.points())
    np.testing.assert_allclose(disk(np.array([[0.1, -0.2]])), [[0.1, -0.2]], atol=1e-12)  # linear: exact
    with pytest.raises(ProblemError, match=r"returned shape \(121, 3\)"):
        tabulate(lambda p: np.zeros((len(p), 3)), Box(x=(0, 1), y=(0, 1)), ("u", "v"), points_per_axis=11)


@pytest.mark.skipif(not (SHARED / "burgers_shock.mat").exists(), reason="../shared/data is not here")
def test_the_published_burgers_data_loads_as_the_standard_grid():
    mat = load_reference(SHARED / "burgers_shock.mat", ("x", "t"), keys={"u": "usol"})
    npz = load_reference(SHARED / "Burgers.npz", ("x", "t"), keys={"u": "usol"})
    assert mat.u.shape == npz.u.shape == (256, 100)
    np.testing.assert_allclose(mat.u, npz.u, atol=1e-12)
    at_start = mat.u[:, 0]
    np.testing.assert_allclose(at_start, -np.sin(np.pi * mat.grid[0]), atol=1e-6)
