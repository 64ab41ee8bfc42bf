"""``pinn-lam bench auto-reference`` prints a table row per problem with its agreement and time."""
from pinn_lam.cli.main import main


def test_the_table_has_a_row_that_meets_the_target_and_one_refused(capsys):
    assert main(["bench", "auto-reference", "--only", "periodic_system", "inverse_diffusion"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| examples/")]
    assert len(rows) == 2
    periodic, inverse = rows
    cells = [c.strip() for c in periodic.split("|")[1:-1]]
    assert cells[0] == "examples/periodic_system.py" and cells[-1] == "yes"
    assert float(cells[4]) <= 1e-5  # vs exact
    assert "refused: the solution depends on the unknowns kappa" in inverse
