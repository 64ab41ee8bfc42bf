"""The default thread setup: one core fewer than the process may use, at least one."""
import subprocess
import sys


from pinn_lam.benchmarks.busy import TARGET, verdict
from pinn_lam.machine import default_threads, usable_cores


def test_default_threads_leave_one_core_to_the_rest_of_the_machine():
    assert [default_threads(c) for c in (1, 2, 3, 16)] == [1, 1, 2, 15]
    assert default_threads() == max(1, usable_cores() - 1)


def test_the_command_line_uses_the_default_and_threads_overrides_it():
    # solve itself is replaced by one that reports the threads the command set up and stops
    code = ("import sys, torch, pinn_lam.training.solve as module\n"
            "def fake(*args, **kwargs):\n    print('threads', torch.get_num_threads()); raise SystemExit(0)\n"
            "module.solve = fake\nfrom pinn_lam.cli.main import main\nmain(sys.argv[1:])")
    seen = []
    for extra in ([], ["--threads", "3"]):
        done = subprocess.run([sys.executable, "-c", code, "solve", "heat", "--no-figure", *extra],
                              capture_output=True, text=True, timeout=120)
        seen.append(next((line for line in done.stdout.splitlines() if line.startswith("threads")), done.stderr))
    assert seen == [f"threads {default_threads()}", "threads 3"]


def test_the_busy_benchmarks_verdict_follows_its_targets():
    busy = [0, 1, 2]
    met = {"default": [2.0, 4.9, 9.0], "1": [2.0, 4.5, 5.0]}
    assert TARGET == (2.5, 1.2)
    assert verdict(met, busy).endswith(": met")
    assert "2.45x its time alone" in verdict(met, busy)
    too_slow = {"default": [2.0, 5.1, 9.0], "1": [2.0, 5.0, 5.0]}        # 2.55x alone
    assert verdict(too_slow, busy).endswith("NOT met")
    behind_one_thread = {"default": [1.0, 2.4, 9.0], "1": [1.5, 1.9, 5.0]}  # 1.26x one thread's
    assert verdict(behind_one_thread, busy).endswith("NOT met")
    assert "not judged" in verdict({"default": [1.0]}, [0])
