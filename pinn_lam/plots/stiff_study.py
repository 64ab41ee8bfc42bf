"""Figures of the stiff-loss study (:mod:`pinn_lam.studies.stiff_study`), in the style of
:mod:`pinn_lam.plots.comparison`: the weighting x optimizer heat map of median final errors, and
convergence curves of each optimizer with its best weighting.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from pinn_lam.optim.registry import display_name
from pinn_lam.plots.comparison import AXIS_LABELS, band, curve
from pinn_lam.plots.style import COLUMN_WIDTH, TEXT_WIDTH, optimizer_style


def heatmap_figure(median: np.ndarray, failed: np.ndarray, present: np.ndarray, optimizers: Sequence[str],
                   weightings: Sequence[str], *, runs: int | None = None, title: str | None = None):
    """Median final error per (weighting, optimizer) cell on a log colour scale, the number in
    each cell; a cell where some runs failed gets ``(k failed)``, one where every run failed is
    hatched and reads ``failed``, one that was not run reads ``n/a``."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    finite = median[np.isfinite(median)]
    low, high = (float(finite.min()), float(finite.max())) if len(finite) else (1e-3, 1.0)
    if high < 10 * low:  # at least a decade, so that close errors get close colours
        centre = math.sqrt(low * high)
        low, high = centre / math.sqrt(10), centre * math.sqrt(10)
    fig, ax = plt.subplots(figsize=(min(TEXT_WIDTH, 1.2 + 0.85 * len(optimizers)), 0.9 + 0.45 * len(weightings)))
    image = ax.imshow(np.ma.masked_invalid(median), norm=LogNorm(low, high), cmap="viridis_r", aspect="auto")
    ax.set_facecolor("#dddddd")
    for i in range(len(weightings)):
        for j in range(len(optimizers)):
            value = median[i, j]
            if not present[i, j]:
                text, color = "n/a", "black"
            elif not math.isfinite(value):
                text, color = "failed", "#b22222"
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="xx", edgecolor="#e8a0a0",
                                           linewidth=0))
            else:
                text = f"{value:.1e}" + (f"\n({failed[i, j]} failed)" if failed[i, j] else "")
                # viridis_r is light at low errors and dark at high ones
                color = "black" if math.log(value / low) < 0.5 * math.log(high / low) else "white"
            ax.text(j, i, text, ha="center", va="center", fontsize=6, color=color)
    ax.set_xticks(range(len(optimizers)), [display_name(o) for o in optimizers], rotation=30, ha="right")
    ax.set_yticks(range(len(weightings)), list(weightings))
    ax.grid(False)
    fig.colorbar(image, ax=ax, label="median final rel. $L^2$ error" + (f" ({runs} seed{'s' if runs > 1 else ''})" if runs else ""))
    if title:
        ax.set_title(title)
    return fig


def best_weighting_figure(groups: Sequence[tuple[str, str, Sequence[dict[str, Any]]]], *, x: str = "iteration",
                          title: str | None = None, mark: float | None = None):
    """Relative error against ``x`` ("iteration" or "time"): one median line with a min--max band
    per ``(optimizer, weighting, records)`` group, labelled with both; a dotted vertical line at
    ``mark`` (the equal time of the tables)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.8))
    for label, weighting, records in groups:
        grid, median, low, high = band([curve(r.get("history", []), x, "rel_l2") for r in records
                                        if r.get("status") == "ok"])
        if not len(grid) or np.all(np.isnan(median)):
            continue
        style = optimizer_style(label)
        ax.plot(grid, median, label=f"{display_name(label)}, {weighting}", **style)
        ax.fill_between(grid, low, high, color=style["color"], alpha=0.2, linewidth=0)
    if mark is not None and math.isfinite(mark):
        ax.axvline(mark, color="black", linestyle=":", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel(AXIS_LABELS.get(x, x))
    ax.set_ylabel(AXIS_LABELS["rel_l2"])
    if ax.get_lines():
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", frameon=False, ncol=2)
    else:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center")
    if title:
        ax.set_title(title)
    return fig
