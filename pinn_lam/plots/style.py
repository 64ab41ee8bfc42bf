"""One figure style for every plot: sized for a single journal column, one colour per optimizer
(each optimizer's colour is in its :mod:`pinn_lam.optim.registry` entry).

Use ``with paper_style(): ...`` around figure creation and :func:`save_figure` to write the
PNG and the vector PDF side by side.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from pinn_lam.atomic import atomic_write

#: single-column width in inches (most journals: 3.3-3.5 in)
COLUMN_WIDTH = 3.4
#: full text width in inches
TEXT_WIDTH = 7.0

def optimizer_style(name: str) -> dict[str, str]:
    """``color`` and ``linestyle`` keyword arguments for an optimizer, variant or phase sequence
    (from :mod:`pinn_lam.optim.registry`; grey dashes if unknown)."""
    from pinn_lam.optim.registry import style

    color, linestyle = style(name)
    return {"color": color, "linestyle": linestyle}


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """Matplotlib settings for figures meant to be included in a paper (8 pt text, vector fonts)."""
    import matplotlib

    with matplotlib.rc_context({
        "font.size": 8, "axes.labelsize": 8, "axes.titlesize": 8, "legend.fontsize": 7,
        "xtick.labelsize": 7, "ytick.labelsize": 7, "lines.linewidth": 1.2,
        "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5,
        "savefig.dpi": 300, "savefig.bbox": "tight", "pdf.fonttype": 42, "ps.fonttype": 42,
        "figure.constrained_layout.use": True,
    }):
        yield


def save_figure(fig, stem: str | Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` (creating folders), close the figure, return both paths."""
    import matplotlib.pyplot as plt

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    try:
        for path in paths:  # atomically: a killed run never leaves half a figure
            atomic_write(path, lambda file: fig.savefig(file, format=path.suffix[1:]))
    finally:
        plt.close(fig)
    return paths
