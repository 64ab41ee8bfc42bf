#!/usr/bin/env python
"""Plant plausible one-line bugs, one at a time, and check that the tests catch each of them.

Every mutant names a file, an exact line fragment of it, what to put in its place, and the test
files (or single tests) that guard that behaviour. For each mutant the working tree is copied to a temporary
folder, the fragment replaced (it must occur exactly once), and only those test files run there
(``python -m pytest -x -q``, with the copy first on ``PYTHONPATH``, under a timeout). A mutant is
*caught* when the tests fail (or time out) and *survives* when they pass.

    python scripts/mutation_check.py            # every mutant (a few minutes on 2 cores)
    python scripts/mutation_check.py --list     # the mutants, without running anything
    python scripts/mutation_check.py -k resume  # only the mutants whose name contains "resume"

The exit status is 0 when every mutant was caught, 1 when one survived, 2 when a fragment was
not found (the code moved on: update the list). It is not run in CI; docs/testing.md records its
last result. Before the mutants, the listed test files run once on the unchanged copy, so that
a test that fails anyway cannot pass for a caught mutant.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: what is not copied: version control, caches and outputs
IGNORE = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", "*.egg-info", "runs", "figures", "build")


@dataclass(frozen=True)
class Mutant:
    """``original`` (a fragment occurring once in ``path``) becomes ``replacement``; ``tests`` should fail."""

    name: str
    path: str
    original: str
    replacement: str
    tests: tuple[str, ...]


#: test_solve.py without its end-to-end accuracy runs (a minute), which no seed bug changes
SEED_TESTS = ("tests/test_solve.py::test_one_seed_drives_the_initial_weights_and_every_point",
              "tests/test_solve.py::test_result_predicts_and_records_history_and_outputs")

MUTANTS = (
    # the optimizer: LAM's single-tensor (ground truth) and foreach paths
    Mutant("lam: second moment decays by 1 - beta", "pinn_lam/optim/lam.py",
           "square_avg.mul_(beta).addcmul_(grad, grad, value=1 - beta)",
           "square_avg.mul_(beta).addcmul_(grad, grad, value=beta)", ("tests/test_optim.py",)),
    Mutant("lam: eps added inside the square root", "pinn_lam/optim/lam.py",
           "denom = (v + eps).sqrt_() if eps_inside_sqrt else v.sqrt().add_(eps)",
           "denom = (v + eps).sqrt_()", ("tests/test_optim.py",)),
    Mutant("lam foreach: bias correction off by one step", "pinn_lam/optim/lam.py",
           "[1 - beta ** _get_value(s) for s in device_steps]",
           "[1 - beta ** (_get_value(s) + 1) for s in device_steps]", ("tests/test_optim.py",)),
    # the residuals
    Mutant("heat: diffusion with the wrong sign", "problems/heat.py",
           'return d["u_t"] - self.alpha * d["u_xx"]', 'return d["u_t"] + self.alpha * d["u_xx"]',
           ("tests/problems/test_heat.py",)),
    Mutant("burgers: linear advection", "problems/burgers.py",
           'return d["u_t"] + d["u"] * d["u_x"] - self.nu * d["u_xx"]', 'return d["u_t"] + d["u_x"] - self.nu * d["u_xx"]',
           ("tests/problems/test_burgers.py",)),
    Mutant("poisson: source with n instead of n^2", "problems/poisson.py",
           "return sum(a * (m * m + n * n) * math.pi ** 2", "return sum(a * (m * m + n) * math.pi ** 2",
           ("tests/problems/test_poisson.py",)),
    # the references
    Mutant("crank-nicolson: explicit half step of full size", "pinn_lam/pde/fd.py",
           "explicit = (identity + 0.5 * dt * a).tocsr()", "explicit = (identity + dt * a).tocsr()",
           ("tests/test_fd.py", "tests/problems/test_heat.py")),
    Mutant("poisson reference: x spacing in y", "problems/poisson.py",
           "fd.laplacian_2d(nx - 1, ny - 1, 1.0 / nx, 1.0 / ny)", "fd.laplacian_2d(nx - 1, ny - 1, 1.0 / nx, 1.0 / nx)",
           ("tests/problems/test_poisson.py",)),
    Mutant("reference cache: key ignores the resolution", "pinn_lam/pde/cache.py",
           'payload = json.dumps({"name": name, "parameters": parameters, "resolution": resolution,',
           'payload = json.dumps({"name": name, "parameters": parameters, "resolution": None,',
           ("tests/test_cache.py",)),
    # the fast path
    Mutant("fast path: sigmoid's second derivative", "pinn_lam/nn/taylor.py",
           "return s, d1, d1 * (1 - 2 * s)", "return s, d1, d1 * (1 - s)", ("tests/test_fastpath.py",)),
    Mutant("fast path: product rule drops b' raw", "pinn_lam/nn/fastpath.py",
           'result[key] = c[f"a_{v}"] + c[f"b_{v}"] * raw + c["b"] * row',
           'result[key] = c[f"a_{v}"] + c["b"] * row', ("tests/test_fastpath.py",)),
    # the trainer
    Mutant("trainer: learning rate decays one step early", "pinn_lam/training/trainer.py",
           "self.lr_decay ** (self.phase_iteration / phase.iterations)",
           "self.lr_decay ** ((self.phase_iteration + 1) / phase.iterations)", ("tests/test_train.py",)),
    Mutant("trainer: resampling every n+1 iterations", "pinn_lam/training/trainer.py",
           "self.iteration % self.resample_every == 0", "self.iteration % (self.resample_every + 1) == 0",
           ("tests/test_train.py",)),
    Mutant("loss: the first term's weight ignored", "pinn_lam/training/mean_squares.py",
           "total = means[0] * weights[0] if weights[0] != 1.0 else means[0].clone()", "total = means[0].clone()",
           ("tests/test_losses.py",)),
    # the problem interface
    Mutant("fields: a derivative taken along the wrong variable", "pinn_lam/pde/fields.py",
           "i = self.variables.index(directions[-1])", "i = self.variables.index(directions[0])",
           ("tests/pde/test_fields.py",)),
    Mutant("domains: a low face's normal points inward", "pinn_lam/pde/domains.py",
           'normal[i] = -1.0 if side == "low" else 1.0', "normal[i] = 1.0",
           ("tests/pde/test_domains.py", "tests/pde/test_conditions.py")),
    Mutant("domains: the hole's normal not reversed", "pinn_lam/pde/domains.py",
           "out[on_hole] = -hole.normals(points[on_hole])", "out[on_hole] = hole.normals(points[on_hole])",
           ("tests/pde/test_domains.py",)),
    Mutant("periodic: the partner is the point itself", "pinn_lam/pde/conditions.py",
           "paired[:, i] = domain.bounds[i][1]", "paired[:, i] = domain.bounds[i][0]",
           ("tests/pde/test_conditions.py",)),
    Mutant("spec: a derivative condition counted as value-only", "pinn_lam/pde/spec.py",
           'return condition.partner is None and not self.derivatives(term) and "normal" not in self.reads[term]',
           'return condition.partner is None and "normal" not in self.reads[term]',
           ("tests/test_fastpath_loss.py",)),
    Mutant("reference files: a transposed field left transposed", "pinn_lam/pde/reference.py",
           "values.append(f.T)", "values.append(f)", ("tests/pde/test_reference.py",)),
    Mutant("evaluation: per-output error of the wrong column", "pinn_lam/training/evaluation.py",
           'metrics[f"rel_l2_{name}"] = relative_l2_error(prediction[:, k], self.values[:, k])',
           'metrics[f"rel_l2_{name}"] = relative_l2_error(prediction[:, 0], self.values[:, k])',
           ("tests/pde/test_problem_interface.py",)),
    Mutant("unknowns: not trained", "pinn_lam/training/setup.py",
           "nn.Parameter(torch.tensor(float(v)))", "nn.Parameter(torch.tensor(float(v)), requires_grad=False)",
           ("tests/pde/test_problem_interface.py",)),
    # second-order optimizers
    Mutant("lm: every step accepted whatever its gain", "pinn_lam/optim/lm.py",
           'accepted = ratio > group["accept_ratio"] and math.isfinite(trial_loss)',
           "accepted = math.isfinite(trial_loss)", ("tests/test_lm.py",)),
    Mutant("lm: the residual vector unscaled by its weights", "pinn_lam/training/loss.py",
           "parts.append(r * (self.weights[name] / max(r.numel(), 1)) ** 0.5)",
           "parts.append(r / max(r.numel(), 1) ** 0.5)", ("tests/test_lm_training.py",)),
    # the benchmark problems and their references
    Mutant("helmholtz: k^2 u with the wrong sign", "problems/helmholtz.py",
           'return d["u_xx"] + d["u_yy"] + self.k ** 2 * d["u"] - self.source(d.points)',
           'return d["u_xx"] + d["u_yy"] - self.k ** 2 * d["u"] - self.source(d.points)',
           ("tests/problems/test_helmholtz.py",)),
    Mutant("allen-cahn: the reaction term's sign", "problems/allen_cahn.py",
           'return d["u_t"] - self.epsilon * d["u_xx"] + self.gamma * (u ** 3 - u)',
           'return d["u_t"] - self.epsilon * d["u_xx"] + self.gamma * (u - u ** 3)',
           ("tests/problems/test_allen_cahn.py",)),
    Mutant("etdrk4: the middle stages weighted once", "pinn_lam/pde/spectral.py",
           "v = e * v + f1 * nv + 2 * f2 * (na + nb) + f3 * nc", "v = e * v + f1 * nv + f2 * (na + nb) + f3 * nc",
           ("tests/pde/test_spectral.py",)),
    Mutant("ssbfgs: no self-scaling", "pinn_lam/optim/ssbfgs.py",
           "tau = min(shrink * sigma_n, sigma) if theta <= 0 else shrink * min(sigma_n, 1.0 / theta)",
           "tau = 1.0", ("tests/test_ssbfgs.py",)),
    # resume
    Mutant("resume: points_iteration not restored", "pinn_lam/training/trainer.py",
           '"phase_iteration", "points_iteration", "elapsed", "adaptations"):',
           '"phase_iteration", "elapsed", "adaptations"):', ("tests/test_checkpoint.py",)),
    Mutant("resume: elapsed not restored", "pinn_lam/training/trainer.py",
           '"phase_iteration", "points_iteration", "elapsed", "adaptations"):',
           '"phase_iteration", "points_iteration", "adaptations"):', ("tests/test_checkpoint.py",)),
    Mutant("resume: the checkpoint's own row kept twice", "pinn_lam/training/trainer.py",
           'if row["iteration"] < self.iteration]', 'if row["iteration"] <= self.iteration]',
           ("tests/test_checkpoint.py",)),
    Mutant("resume: sampler state not restored", "pinn_lam/training/trainer.py",
           'if self.sampler is not None and state["sampler"] is not None:',
           'if self.sampler is None and state["sampler"] is not None:', ("tests/test_checkpoint.py",)),
    # seeding
    Mutant("seed: the sampler always seeded with 0", "pinn_lam/training/setup.py",
           'method=config["sampler"], seed=int(config["seed"]))', 'method=config["sampler"], seed=0)', SEED_TESTS),
    Mutant("seed: the initialisation always seeded with 0", "pinn_lam/training/setup.py",
           'generator = torch.Generator().manual_seed(int(config["seed"]))',
           "generator = torch.Generator().manual_seed(0)", SEED_TESTS),
    # metrics and the network's input scaling
    Mutant("metrics: relative to the prediction's norm", "pinn_lam/training/metrics.py",
           "return _norm(u - v) / _reference_norm(v)", "return _norm(u - v) / _reference_norm(u)",
           ("tests/test_metrics.py",)),
    Mutant("mlp: input shift with the wrong sign", "pinn_lam/nn/mlp.py",
           '"input_shift", -(high + low) / (high - low)', '"input_shift", (high + low) / (high - low)',
           ("tests/test_mlp.py",)),
    # L-BFGS diagnosis and recovery
    Mutant("lbfgs: a failed line search diagnosed as convergence", "pinn_lam/optim/lbfgs.py",
           '    return "line search failed"', '    return "converged"', ("tests/test_train.py", "tests/test_lbfgs.py")),
    Mutant("lbfgs: float32 never switches to float64", "pinn_lam/training/closure_phases.py",
           "if self.dtype == torch.float32:", "if self.dtype == torch.float16:", ("tests/test_train.py",)),
    Mutant("reference: the fine-grid Richardson step left out", "problems/_validate.py",
           'u = (4.0 * fine["u"] - interpolator(coarse)(mesh).reshape(fine["u"].shape)) / 3.0',
           'u = fine["u"] + 0.0 * interpolator(coarse)(mesh).reshape(fine["u"].shape)',
           ("tests/problems/test_heat.py::test_the_extrapolated_reference_converges_at_fourth_order",
            "tests/problems/test_poisson.py::test_the_extrapolated_reference_converges_at_fourth_order")),
    Mutant("l-shape: the corner's exponent taken as 3/2", "problems/poisson_lshape.py",
           "CORNER_ORDER, SMOOTH_ORDER = 4.0 / 3.0, 2.0", "CORNER_ORDER, SMOOTH_ORDER = 1.5, 2.0",
           ("tests/problems/test_poisson_lshape.py",)),
    Mutant("auto reference: one-sided end rows for a wave", "pinn_lam/pde/auto_evolution.py",
           "centred = plan.time_order == 2", "centred = False",
           ("tests/pde/test_auto_reference.py::test_the_benchmark_wave_with_a_fast_high_mode_stays_bounded_and_meets_its_target",)),
    Mutant("busy benchmark: either target enough", "pinn_lam/benchmarks/busy.py",
           "met = beside <= TARGET[0] * alone and beside <= TARGET[1] * one",
           "met = beside <= TARGET[0] * alone or beside <= TARGET[1] * one",
           ("tests/test_threads.py::test_the_busy_benchmarks_verdict_follows_its_targets",)),
    Mutant("lm jacobian: a periodic partner read at the point itself", "pinn_lam/training/jacobian.py",
           "_PointFields(value, theta, x, problem), _PointFields(value, theta, partner, problem)",
           "_PointFields(value, theta, x, problem), _PointFields(value, theta, x, problem)",
           ("tests/test_lm_training.py",)),
    Mutant("etdrk4: a wrong weight of the midpoint stages", "pinn_lam/pde/auto_exponential.py",
           "h * (p2 - 2 * p3), h * (4 * p3 - p2)", "h * (p2 - 3 * p3), h * (4 * p3 - p2)",
           ("tests/pde/test_auto_exponential.py",)),
    Mutant("etdrk4: a symbol transposed between outputs", "pinn_lam/pde/auto_exponential.py",
           'return np.einsum("kji,ki->kj", matrix, v)', 'return np.einsum("kij,ki->kj", matrix, v)',
           ("tests/pde/test_auto_exponential.py",)),
    Mutant("constant coefficient: inverse not transposed", "pinn_lam/pde/auto_evolution.py",
           'return -np.einsum("nme,ne->nm", self.inverse_coefficient, b)',
           'return -np.einsum("nem,ne->nm", self.inverse_coefficient, b)',
           ("tests/pde/test_auto_exponential.py",)),
)


def occurrences(mutant: Mutant, tree: Path) -> int:
    """How often the mutant's fragment occurs in its file under ``tree`` (0 for a missing file)."""
    path = tree / mutant.path
    return path.read_text().count(mutant.original) if path.is_file() else 0


def apply(mutant: Mutant, tree: Path) -> None:
    """Replace the fragment (which occurs exactly once) in the copy ``tree``."""
    path = tree / mutant.path
    path.write_text(path.read_text().replace(mutant.original, mutant.replacement))


def run_tests(tree: Path, tests: tuple[str, ...], timeout: float) -> tuple[str, float]:
    """``"pass"``, ``"fail"`` or ``"timeout"`` for ``tests`` run in ``tree``, and the seconds taken."""
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                              cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start
    return ("pass" if done.returncode == 0 else "fail"), time.perf_counter() - start


def check(mutants: tuple[Mutant, ...], timeout: float) -> int:
    with tempfile.TemporaryDirectory(prefix="pinn-lam-mutants-") as folder:
        clean = Path(folder) / "clean"
        shutil.copytree(ROOT, clean, ignore=IGNORE)
        missing = [f"{m.name}: {m.original!r} occurs {n} times in {m.path} (expected once)"
                   for m in mutants if (n := occurrences(m, clean)) != 1]
        if missing:
            print("fragments not found (update the list):\n  " + "\n  ".join(missing))
            return 2
        tests = tuple(dict.fromkeys(t for m in mutants for t in m.tests))
        outcome, seconds = run_tests(clean, tests, timeout * len(tests))
        print(f"unchanged tree: {outcome} ({seconds:.0f} s, {len(tests)} test files)", flush=True)
        if outcome != "pass":
            print("the tests fail without any mutant; fix them first")
            return 2
        survivors = []
        for number, mutant in enumerate(mutants, 1):
            tree = Path(folder) / f"mutant{number}"
            shutil.copytree(clean, tree)
            apply(mutant, tree)
            outcome, seconds = run_tests(tree, mutant.tests, timeout)
            shutil.rmtree(tree)
            caught = outcome != "pass"
            if not caught:
                survivors.append(mutant)
            verdict = "caught" if caught else "SURVIVED"
            print(f"{number:2d}. {verdict:8s} {mutant.name} ({mutant.path}; {outcome} in {seconds:.0f} s)", flush=True)
    print(f"{len(mutants) - len(survivors)} of {len(mutants)} caught")
    for mutant in survivors:
        print(f"survived: {mutant.name}: {mutant.path}: {mutant.original!r} -> {mutant.replacement!r}")
    return 1 if survivors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", dest="keyword", default="", help="only the mutants whose name contains this text")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant's test run (default 300)")
    args = parser.parse_args(argv)
    mutants = tuple(m for m in MUTANTS if args.keyword.lower() in m.name.lower())
    if not mutants:
        parser.error(f"no mutant name contains {args.keyword!r}")
    if args.list:
        for number, m in enumerate(mutants, 1):
            print(f"{number:2d}. {m.name}: {m.path}: {m.original!r} -> {m.replacement!r} [{' '.join(m.tests)}]")
        return 0
    return check(mutants, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
