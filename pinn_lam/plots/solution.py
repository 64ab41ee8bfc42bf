"""The solution figure of a run: network, reference and pointwise error on the reference grid,
and for time-dependent problems the network against the reference at a few times.

Written as PNG and PDF through :func:`pinn_lam.plots.style.save_figure`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pinn_lam.plots.style import TEXT_WIDTH, paper_style, save_figure

#: at most this many grid lines per axis in the colour maps (keeps the PDF small)
MAX_LINES = 201


def _thin(grid: np.ndarray) -> np.ndarray:
    """Indices of at most :data:`MAX_LINES` evenly spread grid lines, ends included."""
    return np.unique(np.linspace(0, len(grid) - 1, min(len(grid), MAX_LINES)).round().astype(int))


def solution_figure(predict, problem, reference, stem: str | Path, title: str | None = None) -> list[Path]:
    """Plot ``predict`` (``(N, d)`` array -> ``(N,)``) against ``reference`` for a 2-variable
    problem; write ``stem.png`` and ``stem.pdf`` and return their paths."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if len(reference.grid) != 2:
        raise ValueError(f"solution figures need a problem in 2 variables, got {len(reference.grid)}")
    first, second = (np.asarray(g) for g in reference.grid)
    i, j = _thin(first), _thin(second)
    a, b = first[i], second[j]
    mesh = np.stack(np.meshgrid(a, b, indexing="ij"), axis=-1).reshape(-1, 2)
    net = np.asarray(predict(mesh)).reshape(len(a), len(b))
    ref = np.asarray(reference.u)[np.ix_(i, j)]
    names = problem.variables
    time_dependent = names[-1] == "t"
    with paper_style():
        rows = 2 if time_dependent else 1
        fig, axes = plt.subplots(rows, 3, figsize=(TEXT_WIDTH, 2.1 * rows), squeeze=False)
        low, high = float(min(net.min(), ref.min())), float(max(net.max(), ref.max()))
        panels = [(net, "network", "viridis", (low, high)), (ref, "reference", "viridis", (low, high)),
                  (np.abs(net - ref), "|network - reference|", "magma", (None, None))]
        for ax, (values, label, cmap, (vmin, vmax)) in zip(axes[0], panels):
            # time on the horizontal axis, space vertical (the usual picture for Burgers)
            x_axis, y_axis, image = (b, a, values) if time_dependent else (a, b, values.T)
            im = ax.pcolormesh(x_axis, y_axis, image, shading="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                               rasterized=True)
            ax.set_title(label)
            ax.set_xlabel(names[1] if time_dependent else names[0])
            ax.set_ylabel(names[0] if time_dependent else names[1])
            ax.grid(False)
            fig.colorbar(im, ax=ax, shrink=0.9)
        if time_dependent:
            for ax, fraction in zip(axes[1], (0.25, 0.5, 0.75)):
                k = int(np.argmin(np.abs(second - (second[0] + fraction * (second[-1] - second[0])))))
                line = np.stack([first, np.full_like(first, second[k])], axis=1)
                ax.plot(first, np.asarray(reference.u)[:, k], color="black", linewidth=2.0, label="reference")
                ax.plot(first, np.asarray(predict(line)).reshape(-1), color="#d62728", linestyle="--",
                        label="network")
                ax.set_title(f"{names[1]} = {second[k]:.3g}")
                ax.set_xlabel(names[0])
                ax.set_ylabel("u")
            axes[1][0].legend(loc="best")
        if title:
            fig.suptitle(title)
        return save_figure(fig, stem)
