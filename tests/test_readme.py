"""The README's Quickstart commands are the ones CI runs."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line and not line.startswith("#")]


def test_quickstart_has_two_commands_one_for_the_main_job_and_one_for_the_tests():
    install_and_solve, install_and_test = quickstart_commands()
    assert "pip install" in install_and_solve and "pinn-lam solve" in install_and_solve
    assert "pip install" in install_and_test and "pytest" in install_and_test


def test_ci_installs_cpu_torch_then_runs_exactly_the_readme_test_command():
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-2] == "pip install torch==2.13.0"
    assert ci[-1] == quickstart_commands()[1]
