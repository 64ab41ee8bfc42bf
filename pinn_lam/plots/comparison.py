"""Figures of optimizer comparisons, sized for one journal column (see :mod:`pinn_lam.plots.style`).

Every function takes run records as written by :mod:`pinn_lam.studies.compare` and returns a matplotlib
figure; :func:`pinn_lam.plots.style.save_figure` writes it as PNG and vector PDF. Curves over seeds
are summarised by their median with a shaded min--max band: each seed's curve is held constant
between its recorded points (the value last observed) and sampled on a common grid, so seeds
that stop early (a wall-time budget, a divergence) simply drop out of the statistics beyond
their last point. Colours and line styles come from :func:`pinn_lam.plots.style.optimizer_style` and
are the same in every figure.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Iterable, Sequence

import numpy as np

from pinn_lam.optim.registry import display_name
from pinn_lam.plots.style import COLUMN_WIDTH, optimizer_style

#: axis labels of history columns
AXIS_LABELS = {
    "iteration": "iteration", "time": "wall time [s]", "loss": "training loss",
    "rel_l2": "relative $L^2$ error",
}
#: line styles of loss terms in the stiffness figure
TERM_STYLES = {"pde": "-", "ic": "--", "bc": ":"}


def _by_label(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(record["spec"]["label"], []).append(record)
    return groups


def curve(rows: Sequence[dict[str, Any]], x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` arrays of the rows that have a finite ``y``, in row order."""
    pairs = [(float(r[x]), float(r[y])) for r in rows
             if r.get(y) is not None and r.get(x) is not None and math.isfinite(float(r[y]))]
    if not pairs:
        return np.empty(0), np.empty(0)
    xs, ys = zip(*pairs)
    return np.asarray(xs), np.asarray(ys)


def band(curves: Sequence[tuple[np.ndarray, np.ndarray]], points: int = 200
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Median, min and max over curves on a common grid of ``points`` x values.

    Each curve ``(x, y)`` (x increasing) is held at its last observed value between its points,
    and is missing (NaN) before its first and after its last point. Returns ``(grid, median,
    low, high)``; entries where no curve is present are NaN.
    """
    curves = [(x, y) for x, y in curves if len(x)]
    if not curves:
        empty = np.empty(0)
        return empty, empty, empty, empty
    lo = min(float(x[0]) for x, _ in curves)
    hi = max(float(x[-1]) for x, _ in curves)
    grid = np.linspace(lo, hi, points) if hi > lo else np.array([lo])
    values = np.full((len(curves), len(grid)), np.nan)
    for i, (x, y) in enumerate(curves):
        index = np.searchsorted(x, grid, side="right") - 1
        inside = (index >= 0) & (grid <= x[-1])
        values[i, inside] = y[index[inside]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        return grid, np.nanmedian(values, axis=0), np.nanmin(values, axis=0), np.nanmax(values, axis=0)


def plot_band(ax, records: Sequence[dict[str, Any]], x: str, y: str, label: str) -> bool:
    """Median line and min--max band of ``y`` against ``x`` over the records; False if no data."""
    grid, median, low, high = band([curve(r.get("history", []), x, y) for r in records])
    if not len(grid) or np.all(np.isnan(median)):
        return False
    style = optimizer_style(label)
    n = len(records)
    ax.plot(grid, median, label=f"{display_name(label)}" + (f" ({n} seeds)" if n > 1 else ""), **style)
    ax.fill_between(grid, low, high, color=style["color"], alpha=0.2, linewidth=0)
    return True


def convergence_figure(records: Iterable[dict[str, Any]], *, x: str = "iteration",
                       metrics: Sequence[str] = ("loss", "rel_l2"), title: str | None = None):
    """Training loss and relative error (one panel each, log scale) against ``x`` ("iteration"
    or "time"), one median line with a min--max band per optimizer."""
    import matplotlib.pyplot as plt

    groups = _by_label(r for r in records if r.get("status") == "ok")
    fig, axes = plt.subplots(len(metrics), 1, figsize=(COLUMN_WIDTH, 1.5 + 1.25 * len(metrics)), sharex=True,
                             squeeze=False)
    for ax, metric in zip(axes[:, 0], metrics):
        drawn = [plot_band(ax, runs, x, metric, label) for label, runs in groups.items()]
        ax.set_yscale("log")
        ax.set_ylabel(AXIS_LABELS.get(metric, metric))
        if not any(drawn):
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center")
    axes[-1, 0].set_xlabel(AXIS_LABELS.get(x, x))
    if groups:  # below the panels, where it hides no curve
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", frameon=False,
                   ncol=2 if len(groups) > 1 else 1)
    if title:
        fig.suptitle(title)
    return fig


def final_error(record: dict[str, Any]) -> float:
    """The run's final relative L2 error; NaN for a failed (diverged) run."""
    if record.get("status") != "ok":
        return math.nan
    return float(record.get("metrics", {}).get("rel_l2", math.nan))


def lr_sensitivity_figure(records: Iterable[dict[str, Any]], *, title: str | None = None):
    """Final relative error against learning rate (log--log), median and min--max bars over seeds
    per optimizer; a learning rate where some seed diverged gets an ``x`` on the top axis edge."""
    import matplotlib.pyplot as plt
    from matplotlib.transforms import blended_transform_factory

    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.4))
    top = blended_transform_factory(ax.transData, ax.transAxes)
    for label, runs in _by_label(r for r in records if r["spec"].get("lr") is not None).items():
        lrs = sorted({float(r["spec"]["lr"]) for r in runs})
        med, low, high, diverged = [], [], [], []
        for lr in lrs:
            errors = np.array([final_error(r) for r in runs if float(r["spec"]["lr"]) == lr])
            finite = errors[np.isfinite(errors)]
            med.append(np.median(finite) if len(finite) else np.nan)
            low.append(finite.min() if len(finite) else np.nan)
            high.append(finite.max() if len(finite) else np.nan)
            if len(finite) < len(errors):
                diverged.append(lr)
        style = optimizer_style(label)
        med, low, high = map(np.asarray, (med, low, high))
        ax.errorbar(lrs, med, yerr=[med - low, high - med], marker="o", markersize=3, capsize=2,
                    label=display_name(label), **style)
        if diverged:
            ax.plot(diverged, [0.97] * len(diverged), "x", color=style["color"], transform=top, clip_on=False)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate $\\eta$")
    ax.set_ylabel("final relative $L^2$ error")
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return fig


def stiffness_figure(records: Iterable[dict[str, Any]], *, title: str | None = None):
    """(a) per-loss-term gradient norms :math:`\\|\\partial L_k/\\partial\\theta\\|` against iteration
    (median over seeds; colour = optimizer, line style = term); (b) the loss Hessian's largest
    eigenvalue at the checkpoints where it was estimated (first seed of each optimizer; log scale,
    so a negative estimate, possible far from a minimum, is not drawn; an open marker is an
    estimate whose power iteration had not converged)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    groups = _by_label(r for r in records if r.get("status") == "ok" and r.get("stiffness"))
    fig, (ax_g, ax_h) = plt.subplots(2, 1, figsize=(COLUMN_WIDTH, 4.0), sharex=True)
    terms: list[str] = []
    for label, runs in groups.items():
        style = optimizer_style(label)
        names = sorted({k[len("grad_norm_"):] for r in runs for row in r["stiffness"] for k in row
                        if k.startswith("grad_norm_")}, key=lambda t: (t != "pde", t))
        for term in names:
            terms += [term] if term not in terms else []
            grid, median, _, _ = band([curve(r["stiffness"], "iteration", f"grad_norm_{term}") for r in runs])
            ax_g.plot(grid, median, color=style["color"], linestyle=TERM_STYLES.get(term, "-."))
        first = min(runs, key=lambda r: r["spec"]["seed"])
        rows = [row for row in first["stiffness"] if row.get("hessian_top") is not None and row["hessian_top"] > 0]
        x, y = curve(rows, "iteration", "hessian_top")
        if len(x):
            ax_h.plot(x, y, marker="o", markersize=3, label=display_name(label), **style)
            # an estimate whose power iteration did not meet its tolerance: open marker
            loose = np.array([row.get("hessian_converged") is False for row in rows])
            if loose.any():
                ax_h.plot(x[loose], y[loose], "o", markersize=3, markerfacecolor="white",
                          markeredgecolor=style["color"], linestyle="none")
    for ax in (ax_g, ax_h):
        ax.set_yscale("log")
    ax_g.set_ylabel("gradient norm $\\|\\nabla_\\theta L_k\\|$")
    ax_h.set_ylabel("Hessian $\\lambda_{\\max}$")
    ax_h.set_xlabel("iteration")
    handles = [Line2D([], [], color="k", linestyle=TERM_STYLES.get(t, "-."), label=f"$L_{{\\mathrm{{{t}}}}}$")
               for t in terms]
    if handles:
        ax_g.legend(handles=handles, frameon=False, loc="upper right", ncol=len(handles))
    if ax_h.get_lines():
        ax_h.legend(frameon=False, ncol=2 if len(groups) > 3 else 1)
    else:
        ax_h.text(0.5, 0.5, "no Hessian estimates", transform=ax_h.transAxes, ha="center", va="center")
    if title:
        ax_g.set_title(title)
    return fig
