"""Figures saved as PNG without a display: one place for how minift draws and writes a plot.

    fig, axes = figure(width, height, cols)   a matplotlib Figure on the Agg canvas (no window, no global pyplot
                                              state: safe in tests, scripts and servers) and its `cols` axes
    save(fig, path)                           written atomically (a crash never leaves half a PNG)

matplotlib is imported inside the functions, so importing minift stays fast.
"""

from __future__ import annotations

from minift.files import PathLike, atomic_path


def figure(width: float = 7, height: float = 4.5, cols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, cols, i + 1) for i in range(cols)]


def save(fig, path: PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
