"""The public API: what `import pinn_lam` promises."""
import importlib
import subprocess
import sys


def test_public_names_are_the_functions_and_classes_not_submodules():
    import pinn_lam

    importlib.import_module("pinn_lam.training.solve")  # importing the submodule must not shadow the function
    from pinn_lam import LAM, solve

    assert callable(solve) and solve.__name__ == "solve"
    assert pinn_lam.solve is solve
    assert issubclass(LAM, importlib.import_module("torch").optim.Optimizer)
    assert set(pinn_lam.__all__) >= {"LAM", "lam", "solve", "Result", "MLP", "Problem"}


def test_from_import_of_solve_in_a_fresh_interpreter():
    code = "from pinn_lam import solve; import pinn_lam.training.solve; from pinn_lam import solve as s; print(callable(s))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
