"""``pinn-lam solve PROBLEM``: train a PINN, compare it with the reference, write the results."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from pinn_lam.cli.params import param
from pinn_lam.errors import TrainingInterrupted
from pinn_lam.training.guards import StopSignals, exit_status

HELP = "train a PINN on a problem (burgers, poisson, heat) and validate it against the reference"
DESCRIPTION = (
    "Train a physics-informed neural network on PROBLEM with LAM (then L-BFGS, by default), "
    "measure its error against the problem's finite-difference reference (and exact solution, "
    "where there is one), and write metrics.json, history.csv, checkpoint.pt and "
    "solution.png/.pdf to the output folder. Options left out take the problem's defaults "
    "(see docs/solve.md); a TOML file given with --config sets defaults for any option, and "
    "options on the command line override it. Example: pinn-lam solve burgers --seed 1"
)

#: option name -> (type for TOML checking) of the settings a --config file may set
CONFIG_KEYS = {"optimizer": str, "iterations": (int, list), "lr": (float, int), "lr_decay": (float, int),
               "width": int, "depth": int, "activation": str, "points": int, "boundary_points": int,
               "sampler": str, "resample_every": int, "seed": int, "device": str, "dtype": str, "output": str,
               "quick": bool, "preset": str, "checkpoint_every": int, "eval_every": int, "time_limit": (float, int),
               "hard_constraints": bool, "param": dict, "weights": dict, "fast": bool,
               "adaptive_every": int, "threads": int, "network": str, "weighting": str}


def _iterations(text: str) -> int | list[int]:
    parts = [p for p in text.replace("+", ",").split(",") if p.strip()]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or one per phase like 3000,2000, got {text!r}") from None
    return values[0] if len(values) == 1 else values


def _defaults(key: str) -> str:
    """``"burgers 3000,4000; heat ..."``: the per-problem default of a setting, for --help."""
    import problems
    from pinn_lam.training import presets

    values = {}
    for name in problems.available():
        value = presets.resolve(name)[key]
        values[name] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    if len(set(values.values())) == 1:
        return f"default {next(iter(values.values()))}"
    return "default " + "; ".join(f"{k} {v}" for k, v in values.items())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    import problems
    from pinn_lam.nn.mlp import ACTIVATIONS
    from pinn_lam.training.presets import PRESETS
    from pinn_lam.training.sampling import METHODS
    from pinn_lam.optim.registry import REGISTRY as OPTIMIZERS

    # SUPPRESS: unset options stay absent, so the problem's defaults (named in each help) apply
    hide = argparse.SUPPRESS
    parser.add_argument("problem", metavar="PROBLEM", help=f"a library problem ({', '.join(problems.available())}) "
                        "or a problem of your own as path/to/script.py:NAME")
    train = parser.add_argument_group("training")
    train.add_argument("--optimizer", default=hide, help=f"an optimizer ({', '.join(OPTIMIZERS)}) or phases "
                       f"joined by '+' ({_defaults('optimizer')})")
    train.add_argument("--iterations", type=_iterations, metavar="N[,N...]", default=hide,
                       help="iterations per phase, or one total split evenly over the phases; L-BFGS may "
                            f"stop earlier when converged ({_defaults('iterations')})")
    train.add_argument("--lr", type=float, default=hide,
                       help=f"initial learning rate of first-order phases; L-BFGS uses 1 ({_defaults('lr')})")
    train.add_argument("--lr-decay", type=float, default=hide, help="learning-rate ratio final/initial, "
                       f"exponential decay within each first-order phase ({_defaults('lr_decay')})")
    train.add_argument("--quick", action="store_true", default=hide,
                       help="the small 'quick' preset: under a minute, relative error of a few 1e-3")
    train.add_argument("--preset", choices=sorted(PRESETS), default=hide,
                       help="a named preset: 'quick' (= --quick), or 'sprint' (float32, tuned for the time "
                            "to a relative error of 1e-3; see docs/solve.md)")
    train.add_argument("--time-limit", type=float, metavar="SECONDS", default=hide,
                       help="stop training cleanly after this many seconds")
    train.add_argument("--weighting", metavar="SPEC", default=hide,
                       help="loss weights: fixed (default), grad-norm[:every=K,alpha=A], "
                            "ntk[:every=K,alpha=A,points=P], causal[:eps=E,chunks=M], or one balance "
                            "plus causal, e.g. grad-norm+causal:eps=1 (see docs/stiff-methods.md)")
    train.add_argument("--seed", type=int, default=hide,
                       help="the one seed of the run: network initialisation and points (default 0)")
    net = parser.add_argument_group("network")
    net.add_argument("--width", type=int, default=hide, help=f"neurons per hidden layer ({_defaults('width')})")
    net.add_argument("--depth", type=int, default=hide, help=f"number of hidden layers ({_defaults('depth')})")
    net.add_argument("--activation", choices=sorted(ACTIVATIONS), default=hide,
                     help=f"activation function ({_defaults('activation')})")
    net.add_argument("--network", metavar="SPEC", default=hide,
                     help="mlp (default) or modified-mlp, then any of +periodic (exact periodic embedding), "
                          "+fourier[:SIGMA] (random Fourier features), +rwf[:MU,SIGMA] (random weight "
                          "factorization); e.g. modified-mlp+periodic+fourier:1 (see docs/stiff-methods.md)")
    net.add_argument("--hard-constraints", dest="hard_constraints", action="store_true", default=hide,
                     help="build the initial/boundary conditions the problem's output transform covers into "
                          "the network's output (the default of most problems; wave and convection default to "
                          "loss terms)")
    net.add_argument("--no-hard-constraints", dest="hard_constraints", action="store_false", default=hide,
                     help="learn the initial/boundary conditions as loss terms instead of building them "
                          "into the network's output")
    pts = parser.add_argument_group("points")
    pts.add_argument("--points", type=int, default=hide,
                     help=f"number of collocation points ({_defaults('n_collocation')})")
    pts.add_argument("--boundary-points", type=int, default=hide,
                     help=f"points per initial/boundary loss term ({_defaults('n_boundary')})")
    pts.add_argument("--sampler", choices=sorted(METHODS), default=hide,
                     help=f"how points are drawn ({_defaults('sampler')})")
    pts.add_argument("--resample-every", type=int, metavar="N", default=hide,
                     help="draw new points every N first-order iterations (default: never)")
    pts.add_argument("--adaptive-every", type=int, metavar="N", default=hide,
                     help="every N iterations redraw the collocation points where the PDE residual is "
                          f"large (RAD); L-BFGS keeps its curvature pairs across a redraw ({_defaults('adaptive_every')})")
    run = parser.add_argument_group("problem, machine and output")
    run.add_argument("--param", type=param, action="append", metavar="NAME=VALUE", default=hide,
                     help="a problem parameter, repeatable, e.g. --param nu=0.001 (see 'pinn-lam list')")
    run.add_argument("--device", default=hide, help="cpu, cuda or cuda:N (default: cuda when available)")
    run.add_argument("--dtype", choices=("float32", "float64"), default=hide,
                     help=f"floating-point precision ({_defaults('dtype')})")
    run.add_argument("--output", "-o", default=hide,
                     help="output folder (default: runs/PROBLEM, or runs/PROBLEM-2, -3, ... when it holds another run)")
    run.add_argument("--config", metavar="FILE.toml", default=hide,
                     help="TOML file of option defaults: keys as the long options with _ for -, "
                          "and a [param] table for problem parameters")
    run.add_argument("--resume", action="store_true", default=hide,
                     help="continue the run checkpointed in the output folder (same settings)")
    run.add_argument("--overwrite", action="store_true", default=hide,
                     help="replace the files of another run in the output folder (without it, or --resume, "
                          "such a folder is refused)")
    run.add_argument("--checkpoint-every", type=int, metavar="N", default=hide,
                     help=f"checkpoint every N iterations and at the end ({_defaults('checkpoint_every')})")
    run.add_argument("--eval-every", type=int, metavar="N", default=hide,
                     help=f"measure the error every N iterations ({_defaults('eval_every')})")
    run.add_argument("--threads", type=int, metavar="N", default=hide,
                     help="CPU threads for PyTorch (default: one fewer than the cores, at least 1, which keeps a run fast "
                          "when other processes share the machine)")
    run.add_argument("--no-progress", dest="progress", action="store_false", default=hide,
                     help="no progress bar")
    run.add_argument("--no-figure", dest="figure", action="store_false", default=hide,
                     help="write no solution figure")


def load_config(path: str) -> dict[str, Any]:
    """The settings of a TOML ``--config`` file, checked against :data:`CONFIG_KEYS`."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"cannot parse config {path}: {error}") from None
    except OSError as error:
        raise OSError(f"cannot read config {path}: {error.strerror or error}") from None
    settings = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in CONFIG_KEYS:
            raise ValueError(f"unknown key {key!r} in {path}; allowed: {', '.join(sorted(CONFIG_KEYS))}")
        if not isinstance(value, CONFIG_KEYS[name]) or isinstance(value, bool) != (CONFIG_KEYS[name] is bool):
            raise ValueError(f"{key} in {path} has the wrong type: {value!r}")
        settings[name] = value
    return settings


def options_from(args: argparse.Namespace) -> dict[str, Any]:
    """``solve`` keyword arguments from the command line and the optional config file."""
    config = getattr(args, "config", None)
    settings = load_config(config) if config else {}
    params = dict(settings.pop("param", {}))
    params.update(dict(getattr(args, "param", None) or []))
    for name in ("optimizer", "iterations", "lr", "lr_decay", "width", "depth", "activation", "sampler",
                 "resample_every", "seed", "device", "dtype", "output", "checkpoint_every", "eval_every",
                 "time_limit", "hard_constraints", "adaptive_every", "threads", "network", "weighting"):
        if getattr(args, name, None) is not None:
            settings[name] = getattr(args, name)
    for name in ("quick", "preset", "points", "boundary_points"):
        if getattr(args, name, None) is not None:
            settings[name] = getattr(args, name)
    preset = settings.get("preset")
    if settings.get("quick") and preset not in (None, "quick"):
        raise ValueError(f"--quick and --preset {preset} name two presets; give one")
    preset = preset or ("quick" if settings.get("quick") else None)
    output = settings.pop("output", None)
    if output is None:  # the default folder: a new run goes beside earlier ones, a resumed one into it
        from pinn_lam.training.rundir import unused_folder

        default = Path("runs") / default_folder(args.problem)
        output = str(default if getattr(args, "resume", False) else unused_folder(default))
    return dict(
        optimizer=settings.get("optimizer"), iterations=settings.get("iterations"), lr=settings.get("lr"),
        lr_decay=settings.get("lr_decay"), width=settings.get("width"), depth=settings.get("depth"),
        activation=settings.get("activation"), n_collocation=settings.get("points"),
        n_boundary=settings.get("boundary_points"), sampler=settings.get("sampler"),
        resample_every=settings.get("resample_every"), seed=settings.get("seed", 0), device=settings.get("device"),
        dtype=settings.get("dtype"), preset=preset,
        checkpoint_every=settings.get("checkpoint_every"), eval_every=settings.get("eval_every"),
        time_limit=settings.get("time_limit"), hard_constraints=settings.get("hard_constraints"),
        weights=settings.get("weights"), fast=settings.get("fast"), params=params or None,
        adaptive_every=settings.get("adaptive_every"), threads=settings.get("threads"),
        output_dir=output, resume=bool(getattr(args, "resume", False)), figure=getattr(args, "figure", True),
        overwrite=bool(getattr(args, "overwrite", False)), network=settings.get("network"),
        weighting=settings.get("weighting"),
    )


def default_folder(problem: str) -> str:
    """``burgers`` for a library problem, ``robin_heat-problem`` for ``examples/robin_heat.py:problem``."""
    if ".py:" in problem:
        path, _, name = problem.rpartition(":")
        return f"{Path(path).stem}-{name}"
    return problem.lower()


class ProgressBar:
    """A tqdm bar fed by the trainer's callback: loss terms, current error, it/s and time left."""

    def __init__(self, enabled: bool, time_limit: float | None) -> None:
        self.enabled, self.time_limit, self.bar, self.last = enabled, time_limit, None, 0

    def __call__(self, state) -> None:
        if not self.enabled:
            return None
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=state.total, initial=0, unit="it", dynamic_ncols=True, file=sys.stderr,
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]")
        self.bar.update(max(0, state.iteration - self.last))
        self.last = state.iteration
        postfix = {"phase": state.phase, "loss": f"{state.values['loss']:.2e}"}
        postfix.update({k: f"{v:.1e}" for k, v in state.values.items() if k != "loss" and len(state.values) > 2})
        if state.rel_l2 is not None:  # on the evaluation subset; the summary's is on the whole grid
            postfix["rel_l2_subset"] = f"{state.rel_l2:.2e}"
        limit = state.time_limit if state.time_limit is not None else self.time_limit
        if limit is not None and limit != float("inf"):
            postfix["limit"] = f"{max(0.0, limit - state.elapsed):.0f}s"
        self.bar.set_postfix(postfix, refresh=False)
        return None

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    from pinn_lam.training.solve import solve

    options = options_from(args)
    threads = options.pop("threads")
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be a positive integer, got {threads}")
        import torch

        torch.set_num_threads(threads)  # the command owns its process; the library never does this
    from pinn_lam.training.distributed import from_environment

    # under torchrun with several processes: one data-parallel run, rank 0 reports and writes
    with from_environment(options["device"]) as data_parallel, StopSignals() as signals:
        writer = data_parallel is None or data_parallel.is_writer
        bar = ProgressBar(getattr(args, "progress", True) and writer, options["time_limit"])
        try:
            result = solve(args.problem, callback=bar, stop_requested=signals.requested,
                           data_parallel=data_parallel, **options)
        except TrainingInterrupted as stop:
            bar.close()
            if writer:
                print(f"pinn-lam solve: {stop}", file=sys.stderr)
            if stop.checkpoint is not None:
                argv = getattr(args, "_argv", None) or sys.argv[1:]
                print(f"resume with: {resume_command(argv, Path(stop.checkpoint).parent, data_parallel)}",
                      file=sys.stderr)
            return exit_status(stop.signal_number)
        finally:
            bar.close()
    if writer:
        print(summary(result))
    return 0


def summary(result) -> str:
    """What the command prints at the end: the run, its errors (per output, for several), the
    unknowns of an inverse problem, the reference, and the files."""
    m = result.metrics
    lines = [f"{result.problem!r}: trained {m['iterations']} iterations in {m['seconds']:.1f} s ({m['stop_reason']})"]
    lines += [f"  {event}" for event in m["events"][:-1]]
    if m.get("network", "mlp") != "mlp" or m.get("weighting", "fixed") != "fixed":
        exact = f" (exact by construction: {', '.join(m['exact_conditions'])})" if m.get("exact_conditions") else ""
        lines.append(f"network {m.get('network', 'mlp')}{exact}; weighting {m.get('weighting', 'fixed')}")
    planned = sum(result.config["iterations"])
    if m["stop_reason"].startswith("time limit") and m["iterations"] < planned:
        reached = "" if m["rel_l2"] is None else f", relative L2 error {m['rel_l2']:.3e}"
        lines.append(f"warning: the time limit of {result.config['time_limit']:g} s cut the run short: "
                     f"{m['iterations']} of {planned} iterations done{reached}; raise --time-limit or lower "
                     "--iterations, or --resume to continue")
    if m["rel_l2"] is None:
        lines.append(f"no reference: {m['reference']}")
        lines.append(f"root mean square of the PDE residual: {m['residual_rms']:.3e}")
    else:
        lines.append(f"relative L2 error vs reference: {m['rel_l2']:.3e}   max abs error: {m['max_abs']:.3e}")
        for name in result.problem.outputs if len(result.problem.outputs) > 1 else ():
            lines.append(f"  {name}: relative L2 error {m[f'rel_l2_{name}']:.3e}   max abs error {m[f'max_abs_{name}']:.3e}")
        if "rel_l2_abs" in m:
            lines.append(f"  |{'+i'.join(result.problem.complex_outputs)}|: relative L2 error {m['rel_l2_abs']:.3e}   "
                         f"max abs error {m['max_abs_abs']:.3e}")
        if "rel_l2_exact" in m:
            lines.append(f"relative L2 error vs exact:     {m['rel_l2_exact']:.3e}   max abs error: {m['max_abs_exact']:.3e}")
    errors = m.get("unknown_errors", {})
    for name, value in m.get("unknowns", {}).items():
        lines.append(f"unknown {name} = {value:.6g}" + (f" (relative error {errors[name]:.2e})" if name in errors else ""))
    reference = "" if m["rel_l2"] is None else (f"; reference: {m['reference']} "
                                               f"(estimated error {_format(m['reference_error_estimate'])})")
    lines.append(f"final loss {m['loss']:.3e}{reference}")
    if "figure" in m:
        lines.append(f"figure {m['figure']}")
    lines.append("wrote: " + ", ".join(str(p) for p in result.files))
    return "\n".join(lines)


def resume_command(argv: list[str], folder: str | Path | None = None, data_parallel=None) -> str:
    """The shell command that resumes the run started by ``pinn-lam solve`` with arguments ``argv``
    in ``folder`` (added as ``--output`` when ``argv`` names no output folder); under ``torchrun``
    (``data_parallel``) with as many processes."""
    import os
    import shlex

    words = [word for word in argv if word != "--overwrite"]
    named = any(word in ("-o", "--output") or word.startswith(("--output=", "-o")) for word in words)
    if folder is not None and not named:
        words += ["--output", str(folder)]
    if "--resume" not in words:
        words.append("--resume")
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    prefix = ["pinn-lam"] if program == "pinn-lam" else [sys.executable, "-m", "pinn_lam"]
    if data_parallel is not None:
        prefix = ["torchrun", "--nproc-per-node", str(data_parallel.world_size), "-m", "pinn_lam"]
    return shlex.join(prefix + words)


def _format(value) -> str:
    return "unknown" if value is None or not math.isfinite(value) else f"{value:.1e}"
