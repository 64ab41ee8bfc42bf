"""``pinn-lam reference PROBLEM``: compute (or load) a problem's finite-difference reference,
draw it, and print its time and estimated error; ``--table`` prints the Markdown table of all
problems with reference errors and times measured from scratch."""
from __future__ import annotations

import argparse
import contextlib
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from pinn_lam.cli.params import param, parse_value
from pinn_lam.pde.auto_reference import INTEGRATORS

HELP = "compute and draw a problem's finite-difference reference; --table: the table of all problems"
DESCRIPTION = (
    "Compute PROBLEM's SciPy finite-difference reference (or load it from the cache), draw it to "
    "PNG and PDF, and print how long it took and its estimated relative L2 error. With --table, "
    "print the Markdown table of every problem: equation, parameters, reference method, and the "
    "reference error and time measured from scratch. With --auto, compute the automatic reference from the "
    "problem's own residual instead and print its agreement with the hand-written one. "
    "Example: pinn-lam reference burgers --param nu=0.003/pi"
)

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("problem", nargs="?", metavar="PROBLEM", help="a library problem (see 'pinn-lam list')")
    parser.add_argument("--param", action="append", default=[], type=param, metavar="NAME=VALUE",
                        help="a problem parameter, e.g. nu=0.003/pi or 'modes=((1, 1.0),)' (repeatable)")
    parser.add_argument("--resolution", type=parse_value, default=None,
                        help="the solver's resolution (burgers: x-intervals; heat: NX,NT; poisson: N or NX,NY); "
                             "none: chosen from the parameters")
    parser.add_argument("--output", "-o", default="runs/reference", help="folder for the figure")
    parser.add_argument("--cache-dir", default=None,
                        help="reference cache folder (none: $PINN_LAM_CACHE, else ~/.cache/pinn-lam)")
    parser.add_argument("--fresh", action="store_true",
                        help="compute from scratch in a temporary cache (times the solver itself)")
    parser.add_argument("--no-plot", action="store_true", help="do not draw the figure")
    parser.add_argument("--auto", action="store_true",
                        help="compute the automatic finite-difference reference (from the problem's residual) and "
                             "print its agreement with the hand-written one")
    parser.add_argument("--target", type=float, default=1e-5, help="--auto: the error the refinement aims at")
    parser.add_argument("--budget", type=float, default=30.0, help="--auto: seconds the refinement may take")
    parser.add_argument("--integrator", default="auto", choices=INTEGRATORS,
                        help="--auto, evolution problems: ETDRK4 (periodic, coefficients free of x and t), the method "
                             "of lines with BDF, or auto: the first where it applies")
    parser.add_argument("--table", action="store_true",
                        help="print the Markdown table of all problems (computed from scratch) and exit")


def run(args: argparse.Namespace) -> int:
    if args.table:
        print(markdown_table())
        return 0
    if args.problem is None:
        raise ValueError("give a PROBLEM (see 'pinn-lam list') or --table")
    import problems

    problem = problems.get(args.problem, **dict(args.param))
    with tempfile.TemporaryDirectory() if args.fresh else contextlib.nullcontext() as temporary:
        start = time.perf_counter()
        if args.auto:
            from pinn_lam.pde.auto_reference import auto_reference

            ref = auto_reference(problem, target=args.target, budget=args.budget, integrator=args.integrator,
                                 cache_dir=temporary or args.cache_dir)
        else:
            ref = problem.reference(args.resolution, cache_dir=temporary or args.cache_dir)
        wall = time.perf_counter() - start
        checks = _agreement(problem, ref, args.resolution, temporary or args.cache_dir) if args.auto else []
    source = "loaded from cache" if ref.info.get("cached") else "computed"
    print(f"{problem!r}: reference {source} in {wall:.3f} s (solver time {ref.seconds:.3f} s)")
    print(f"  method: {ref.method}")
    print(f"  estimated relative L2 error: {ref.error_estimate:.2e} ({ref.info.get('error_kind', '')})")
    if ref.grid is None:
        print(f"  points: {len(ref.points())} ({', '.join(problem.variables)})")
    else:
        print(f"  grid: {' x '.join(str(len(g)) for g in ref.grid)} ({', '.join(problem.variables)})")
    if ref.info.get("changes"):
        print("  changes between levels: " + ", ".join(f"{c:.2e}" for c in ref.info["changes"]))
    for line in checks:
        print(line)
    if not args.no_plot:
        paths = draw(problem, ref, Path(args.output) / _stem(problem))
        print("  figure: " + ", ".join(str(p) for p in paths))
    return 0


def _agreement(problem, ref, resolution, cache_dir) -> list[str]:
    """Lines comparing the automatic reference with the problem's hand-written one and its exact solution."""
    import numpy as np

    from pinn_lam.pde.auto_reference import agreement

    lines = []
    hand = problem.reference(resolution, cache_dir=cache_dir)
    if hand is not None:
        lines.append(f"  agreement with the hand-written reference ({hand.method}): "
                     f"relative L2 {agreement(ref, hand):.2e} (its own estimated error {hand.error_estimate:.1e})")
    if problem.has_exact:
        points = ref.points()
        exact = np.asarray(problem.exact_values(points)).reshape(np.asarray(ref.values()).shape)
        error = float(np.linalg.norm(ref.values() - exact) / np.linalg.norm(exact))
        lines.append(f"  agreement with the exact solution: relative L2 {error:.2e}")
    return lines


def draw(problem, ref, stem: Path) -> list[Path]:
    """The reference field as a colour map over its grid, written to ``stem.png`` and ``stem.pdf``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from pinn_lam.plots.style import COLUMN_WIDTH, paper_style, save_figure

    first, second = problem.variables
    with paper_style():
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 0.75 * COLUMN_WIDTH))
        # the first output (u of u, v); scattered points as a triangulated map
        values = ref.values().reshape(len(ref.points()), -1)[:, 0]
        if ref.grid is None:
            from matplotlib.tri import Triangulation

            points = ref.points()
            triangles = Triangulation(points[:, 1], points[:, 0])
            # the hull's triangles over holes and notches of the domain are left blank
            centroids = points[triangles.triangles].mean(axis=1)
            triangles.set_mask(~problem.domain.contains(centroids))
            mesh = ax.tripcolor(triangles, values, shading="gouraud", cmap="RdBu_r", rasterized=True)
        else:
            mesh = ax.pcolormesh(ref.grid[1], ref.grid[0], values.reshape(ref.u.shape[:2]), shading="auto",
                                 cmap="RdBu_r", rasterized=True)
        ax.grid(False)
        ax.set_xlabel(f"${second}$")
        ax.set_ylabel(f"${first}$")
        ax.set_title(f"{problem.name} reference (est. error {ref.error_estimate:.1e})")
        fig.colorbar(mesh, ax=ax, label="$u$")
        return save_figure(fig, stem)


def table_rows() -> list[tuple[str, dict[str, Any]]]:
    """``(problem, parameters)`` for every library problem at each of its ``table_parameters``."""
    import problems

    return [(name, params) for name in problems.available()
            for params in getattr(problems.get(name), "table_parameters", ({},))]


def markdown_table(rows: list[tuple[str, dict[str, Any]]] | None = None) -> str:
    """The table of ``rows`` (default :func:`table_rows`), every reference computed from scratch
    in a temporary cache."""
    import platform

    import numpy as np

    import problems

    lines = ["| Problem | Equation | Parameters | Reference method | Estimated error | "
             "Error vs exact | Time (s) |",
             "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as folder:
        for name, params in table_rows() if rows is None else rows:
            problem = problems.get(name, **params)
            start = time.perf_counter()
            ref = problem.reference(cache_dir=folder)
            seconds = time.perf_counter() - start
            points = ref.points()
            exact = problem.exact_values(points)
            against = ref.values() if ref.grid is None else ref(points)
            error = "—" if exact is None else f"{np.linalg.norm(against - exact) / np.linalg.norm(exact):.1e}"

            shown = ", ".join(f"{k}={_short(v)}" for k, v in problem.parameters().items())
            lines.append(f"| {name} | {problem.equation} | {shown} | {ref.method} | "
                         f"{ref.error_estimate:.1e} ({ref.info.get('error_kind', '')}) | {error} | {seconds:.2f} |")
        data = published_burgers_error(cache_dir=folder)
    lines.append("")
    if data is not None:
        lines.append(f"Burgers (nu=0.01/pi) against the published data set {data[0]}: relative L2 {data[1]:.1e} "
                     f"on its 256 x 100 grid.")
        lines.append("")
    lines.append(f"Relative L2 errors on each reference's output grid; exact = closed form (Cole-Hopf quadrature "
                 f"for Burgers; — where none is known). Times from scratch on {_machine()} "
                 f"(Python {platform.python_version()}).")
    return "\n".join(lines)


def published_burgers_error(cache_dir: str | None = None) -> tuple[str, float] | None:
    """``(path, relative L2)`` of the default Burgers reference against ``burgers_shock.mat`` in
    ``../shared/data`` next to the checkout, or ``None`` when the file is absent."""
    import numpy as np
    from scipy.io import loadmat

    import problems

    path = Path(problems.__file__).resolve().parents[1] / ".." / "shared" / "data" / "burgers_shock.mat"
    if not path.exists():
        return None
    usol = loadmat(path)["usol"]
    ref = problems.get("burgers").reference(cache_dir=cache_dir)
    return "../shared/data/burgers_shock.mat", float(np.linalg.norm(ref.u - usol) / np.linalg.norm(usol))


def _machine() -> str:
    from pinn_lam.machine import cpu_model, usable_cores

    return f"{cpu_model()}, {usable_cores()} cores"


def _short(value: Any) -> str:
    if isinstance(value, float):
        over_pi = value * math.pi
        if value != 0 and abs(over_pi - round(over_pi, 4)) < 1e-12:
            return f"{round(over_pi, 4):g}/pi"
        return f"{value:g}"
    return str(value).replace(" ", "")


def _stem(problem) -> str:
    """A file name from the problem and its parameters, e.g. ``burgers_nu-0p01overpi``."""
    import re

    params = "_".join(f"{k}-{_short(v)}" for k, v in problem.parameters().items())
    params = re.sub(r"[^A-Za-z0-9-]+", "_", params.replace("/", "over").replace(".", "p")).strip("_")
    return f"{problem.name}_{params}"[:120]

