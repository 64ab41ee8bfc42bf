"""``pinn-lam reference``: argument parsing, printed time and error, figure files, the table."""
import argparse
import math

import pytest

from pinn_lam.cli import reference
from pinn_lam.cli.params import parse_value


def _parse(argv):
    parser = argparse.ArgumentParser()
    reference.add_arguments(parser)
    return parser.parse_args(argv)


def test_values_may_use_pi_and_tuples():
    assert parse_value("0.01/pi") == pytest.approx(0.01 / math.pi, rel=1e-15)
    assert parse_value("(64, 32)") == (64, 32)
    assert parse_value("((1, 1.0), (4, 0.5))") == ((1, 1.0), (4, 0.5))
    assert parse_value("-2*pi") == pytest.approx(-2 * math.pi)
    assert parse_value("__import__('os')") == "__import__('os')"  # never evaluated
    assert _parse(["burgers", "--param", "nu=0.1/pi"]).param == [("nu", pytest.approx(0.1 / math.pi))]


@pytest.mark.slow
def test_prints_time_and_error_and_draws_png_and_pdf(tmp_path, capsys):
    args = _parse(["heat", "--resolution", "(16, 16)", "--cache-dir", str(tmp_path / "cache"),
                   "--output", str(tmp_path / "figs"), "--param", "alpha=0.2"])
    assert reference.run(args) == 0
    out = capsys.readouterr().out
    assert "reference computed in" in out and "estimated relative L2 error: " in out
    assert sorted(p.suffix for p in (tmp_path / "figs").iterdir()) == [".pdf", ".png"]
    assert reference.run(args) == 0
    assert "loaded from cache" in capsys.readouterr().out


def test_errors_are_value_errors_for_the_cli(tmp_path):
    with pytest.raises(ValueError, match="give a PROBLEM"):
        reference.run(_parse([]))
    with pytest.raises(ValueError, match="allowed: nu"):
        reference.run(_parse(["burgers", "--param", "alpha=1", "--no-plot"]))
    with pytest.raises(ValueError, match="resolution"):
        reference.run(_parse(["poisson", "--resolution", "2", "--no-plot", "--cache-dir", str(tmp_path)]))


def test_table_lists_each_row_with_measured_numbers(monkeypatch):
    monkeypatch.setattr(reference, "published_burgers_error", lambda cache_dir=None: None)
    rows = reference.table_rows()
    burgers = [params for name, params in rows if name == "burgers"]
    assert burgers == [{"nu": 0.1 / math.pi}, {}, {"nu": 0.003 / math.pi}]
    assert {name for name, _ in rows} == {"allen-cahn", "burgers", "burgers-inverse", "convection", "heat",
                                          "helmholtz", "poisson", "poisson-lshape", "schrodinger", "wave"}
    table = reference.markdown_table([("heat", {})]).splitlines()
    assert table[0].startswith("| Problem | Equation |") and table[1].startswith("|---")
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells[0] == "heat" and "alpha=0.1" in cells[2] and "Crank-Nicolson" in cells[3]
    assert float(cells[5]) < 1e-5 and float(cells[6]) > 0


def test_table_states_the_error_against_the_published_burgers_data_when_it_is_there(tmp_path, monkeypatch):
    """The line under the table: ``burgers_shock.mat`` in ``../shared/data`` beside the checkout
    (here a stand-in with known values, and a reference 0.1% above it) against the default Burgers reference."""
    from types import SimpleNamespace

    import numpy as np
    from scipy.io import savemat

    import problems

    usol = np.random.default_rng(0).standard_normal((256, 100))
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "checkout" / "problems").mkdir(parents=True)
    savemat(tmp_path / "shared" / "data" / "burgers_shock.mat", {"usol": usol})
    monkeypatch.setattr(problems, "__file__", str(tmp_path / "checkout" / "problems" / "__init__.py"))
    monkeypatch.setattr(problems.Burgers, "reference", lambda self, *args, **kwargs: SimpleNamespace(u=usol * 1.001))
    rows = [("heat", {"modes": ((1, 1.0),)})]
    table = reference.markdown_table(rows).splitlines()
    assert table[3:5] == ["", "Burgers (nu=0.01/pi) against the published data set ../shared/data/burgers_shock.mat: "
                              "relative L2 1.0e-03 on its 256 x 100 grid."]
    name, error = reference.published_burgers_error()
    assert name == "../shared/data/burgers_shock.mat" and error == pytest.approx(1e-3, rel=1e-9)
    # without the data set the line is left out
    (tmp_path / "shared" / "data" / "burgers_shock.mat").unlink()
    assert reference.published_burgers_error() is None
    assert "published data" not in reference.markdown_table(rows)


def test_table_and_figure_handle_problems_without_exact_solution_and_scattered_references(tmp_path, monkeypatch):
    import numpy as np

    from pinn_lam.pde.reference import PointReference
    from problems import PoissonLShape

    points = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [-0.9, 0.1]])
    stand_in = PointReference(points, np.array([0.1, 0.05, 0.05, 0.01]), error_estimate=2e-4, method="masked grid",
                              info={"error_kind": "Richardson"})
    monkeypatch.setattr(PoissonLShape, "reference", lambda self, resolution=None, cache_dir=None: stand_in)
    monkeypatch.setattr(reference, "published_burgers_error", lambda cache_dir=None: None)
    cells = [c.strip() for c in reference.markdown_table([("poisson-lshape", {})]).splitlines()[2].strip("|").split("|")]
    assert cells[0] == "poisson-lshape" and cells[3] == "masked grid" and cells[5] == "—"
    paths = reference.draw(PoissonLShape(), stand_in, tmp_path / "lshape")
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"]


def test_auto_prints_the_agreement_with_the_hand_written_reference(tmp_path, capsys):
    args = _parse(["heat", "--auto", "--target", "1e-4", "--resolution", "(64, 64)", "--cache-dir", str(tmp_path),
                   "--no-plot"])
    assert reference.run(args) == 0
    out = capsys.readouterr().out
    assert "automatic method of lines" in out
    # the hand-written reference at 64 x 64 is 2nd order (error ~1e-3 vs exact), the automatic one far closer
    hand = float(out.split("hand-written reference")[1].split("relative L2 ")[1].split()[0])
    exact = float(out.split("exact solution: relative L2 ")[1].split()[0])
    assert 1e-4 < hand < 1e-2 and exact < 1e-4


def test_auto_takes_the_integrator_and_prints_the_changes_between_levels(tmp_path, capsys):
    args = _parse(["convection", "--auto", "--integrator", "bdf", "--target", "1e-4", "--cache-dir", str(tmp_path),
                   "--no-plot"])
    assert reference.run(args) == 0
    out = capsys.readouterr().out
    assert "BDF" in out and "ETDRK4" not in out
    changes = [float(c) for c in out.split("changes between levels: ")[1].splitlines()[0].split(", ")]
    exact = float(out.split("exact solution: relative L2 ")[1].split()[0])
    # the last change bounds the error from above here (sixth-order stencils: the change is the coarser error)
    assert changes and exact <= changes[-1] and exact < 1e-4
