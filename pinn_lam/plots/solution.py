"""The solution figure of a run: for each output, the network, the reference and the pointwise
error as colour maps, and for a problem in one space variable and time the network against the
reference at three times.

Any number of outputs; two variables are drawn as they are, one as curves, and three or more as
the slice through the middle of the others (named in the title). Without a reference the network
alone is drawn. Written as PNG and PDF through :func:`pinn_lam.plots.style.save_figure`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pinn_lam.plots.style import TEXT_WIDTH, paper_style, save_figure

#: at most this many grid lines per axis in the colour maps (keeps the PDF small)
MAX_LINES = 201
#: colour maps: one for every field (network and reference share limits), one for errors
FIELD_MAP, ERROR_MAP = "viridis", "magma"
#: the times of the slices, as fractions of the time interval
SLICE_FRACTIONS = (0.25, 0.5, 0.75)


def _thin(grid: np.ndarray) -> np.ndarray:
    """Indices of at most :data:`MAX_LINES` evenly spread grid lines, ends included."""
    return np.unique(np.linspace(0, len(grid) - 1, min(len(grid), MAX_LINES)).round().astype(int))


def _columns(values, n: int, m: int) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(n, m)


def _plane(problem, reference):
    """``(axes a, b, points (A*B, d), inside mask, note)``: the plotting plane in the first two
    variables (others fixed at their middle), on the reference's grid where it has one."""
    bounds = problem.bounds
    d = len(bounds)
    grid = getattr(reference, "grid", None) if reference is not None else None
    if grid is not None and d == 2:
        a, b = (np.asarray(g)[_thin(np.asarray(g))] for g in grid)
    else:
        a, b = (np.linspace(low, high, 161) for low, high in bounds[:2])
    mesh = np.stack(np.meshgrid(a, b, indexing="ij"), axis=-1).reshape(-1, 2)
    fixed = [(k, 0.5 * (bounds[k][0] + bounds[k][1])) for k in range(2, d)]
    points = np.column_stack([mesh] + [np.full(len(mesh), value) for _, value in fixed]) if fixed else mesh
    inside = problem.domain.contains(points)
    note = ", ".join(f"{problem.variables[k]} = {value:.3g}" for k, value in fixed)
    return a, b, points, inside, note


def solution_figure(predict, problem, reference, stem: str | Path, title: str | None = None) -> list[Path]:
    """Plot ``predict`` (``(N, d)`` array -> ``(N,)`` or ``(N, m)``) against ``reference`` (a
    grid or point reference, or ``None``); write ``stem.png`` and ``stem.pdf`` and return them."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    with paper_style():
        if len(problem.variables) == 1:
            fig = _curves(plt, predict, problem, reference)
        else:
            fig = _maps(plt, predict, problem, reference)
        if title:
            fig.suptitle(title)
        return save_figure(fig, stem)


def _curves(plt, predict, problem, reference):
    """One variable: network and reference as curves, one panel per output."""
    outputs = problem.outputs
    x = np.linspace(*problem.bounds[0], 801)[:, None]
    net = _columns(predict(x), len(x), len(outputs))
    ref = None if reference is None else _columns(reference(x), len(x), len(outputs))
    fig, axes = plt.subplots(1, len(outputs), figsize=(TEXT_WIDTH / 2 * min(len(outputs), 2), 2.2), squeeze=False)
    for k, (ax, name) in enumerate(zip(axes[0], outputs)):
        if ref is not None:
            ax.plot(x[:, 0], ref[:, k], color="black", linewidth=2.0, label="reference")
        ax.plot(x[:, 0], net[:, k], color="#d62728", linestyle="--", label="network")
        ax.set_xlabel(problem.variables[0])
        ax.set_ylabel(name)
    axes[0][0].legend(loc="best", frameon=False)
    return fig


def _maps(plt, predict, problem, reference):
    outputs, names = problem.outputs, problem.variables
    m = len(outputs)
    a, b, points, inside, note = _plane(problem, reference)
    net = np.full((len(points), m), np.nan)
    if inside.any():
        net[inside] = _columns(predict(points[inside]), int(inside.sum()), m)
    ref = None
    if reference is not None and inside.any():
        ref = np.full((len(points), m), np.nan)
        ref[inside] = _columns(reference(points[inside]), int(inside.sum()), m)
    time_dependent = len(names) == 2 and problem.domain.time == names[1]
    columns = 3 if ref is not None else 1
    rows = m + (m if time_dependent and ref is not None else 0)
    fig, axes = plt.subplots(rows, columns, figsize=(TEXT_WIDTH if columns == 3 else TEXT_WIDTH / 2.2, 2.1 * rows),
                             squeeze=False)
    shape = (len(a), len(b))
    for k, name in enumerate(outputs):
        fields = [net[:, k]] + ([] if ref is None else [ref[:, k]])
        low = float(np.nanmin([np.nanmin(f) for f in fields]))
        high = float(np.nanmax([np.nanmax(f) for f in fields]))
        panels = [(net[:, k], f"network {name}", FIELD_MAP, (low, high), name)]
        if ref is not None:
            panels += [(ref[:, k], f"reference {name}", FIELD_MAP, (low, high), name),
                       (np.abs(net[:, k] - ref[:, k]), f"|network - reference| of {name}", ERROR_MAP,
                        (None, None), f"|error| of {name}")]
        for ax, (values, label, cmap, (vmin, vmax), bar) in zip(axes[k], panels):
            image = values.reshape(shape)
            # time on the horizontal axis, space vertical (the usual picture for Burgers)
            x_axis, y_axis, z = (b, a, image) if time_dependent else (a, b, image.T)
            im = ax.pcolormesh(x_axis, y_axis, z, shading="auto", cmap=cmap, vmin=vmin, vmax=vmax, rasterized=True)
            ax.set_title(label + (f" ({note})" if note else ""))
            ax.set_xlabel(names[1] if time_dependent else names[0])
            ax.set_ylabel(names[0] if time_dependent else names[1])
            ax.grid(False)
            fig.colorbar(im, ax=ax, shrink=0.9, label=bar)
    if time_dependent and ref is not None:
        _slices(axes[m:], predict, problem, reference)
    return fig


def _slices(axes, predict, problem, reference) -> None:
    """Network against reference along space at the times of :data:`SLICE_FRACTIONS`."""
    (x0, x1), (t0, t1) = problem.bounds
    x = np.linspace(x0, x1, 401)
    outputs, names = problem.outputs, problem.variables
    times = [t0 + f * (t1 - t0) for f in SLICE_FRACTIONS]
    grid = getattr(reference, "grid", None)
    for k, name in enumerate(outputs):
        for ax, wanted in zip(axes[k], times):
            # on a grid reference, the nearest stored time (the title says which)
            t = float(grid[1][np.argmin(np.abs(np.asarray(grid[1]) - wanted))]) if grid is not None else wanted
            line = np.column_stack([x, np.full_like(x, t)])
            ax.plot(x, _columns(reference(line), len(x), len(outputs))[:, k], color="black", linewidth=2.0,
                    label="reference")
            ax.plot(x, _columns(predict(line), len(x), len(outputs))[:, k], color="#d62728", linestyle="--",
                    label="network")
            ax.set_title(f"{names[1]} = {t:.3g}" + ("" if abs(t - wanted) < 1e-12 else f" (nearest to {wanted:.3g})"))
            ax.set_xlabel(names[0])
            ax.set_ylabel(name)
    axes[0][0].legend(loc="best", frameon=False)
