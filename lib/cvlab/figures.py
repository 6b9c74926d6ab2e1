"""Figures the library draws (curves, comparisons, montages) without pyplot.

Library code must not touch pyplot's backend: `matplotlib.use("Agg")` inside a notebook's kernel
would silently stop the notebook's own `plt.show()` from displaying anything. A bare
`matplotlib.figure.Figure` needs no backend and saves to PNG by itself.
"""

from __future__ import annotations

from pathlib import Path

from cvlab.atomic_io import write_atomic


def new_figure(rows: int = 1, columns: int = 1, *, figsize: tuple[float, float]):
    """A figure and its grid of axes (always 2-D), detached from pyplot."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, columns, squeeze=False)


def save_png(fig, path: str | Path, *, dpi: int = 90) -> Path:
    """Lay out `fig` and write it to `path` atomically as PNG."""
    fig.tight_layout()
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
