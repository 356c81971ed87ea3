"""Figures on matplotlib's Agg canvas, attached per figure: no display needed and no process-wide backend switch.

`matplotlib.use("Agg")` would change the backend of the application that imported us (a notebook, a GUI); `plt`
here offers the two pyplot calls the plotting code uses, on a Figure with its own Agg canvas.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


class plt:  # noqa: N801 - stands in for `matplotlib.pyplot` at its call sites
    @staticmethod
    def subplots(nrows: int = 1, ncols: int = 1, *, figsize: Any = None, dpi: float | None = None,
                 **kwargs: Any) -> tuple[Any, Any]:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, dpi=dpi)
        FigureCanvasAgg(fig)
        return fig, fig.subplots(nrows, ncols, **kwargs)

    @staticmethod
    def close(fig: Any) -> None:
        """Nothing to release: the figure belongs to no pyplot registry and is freed with its last reference."""


def save_png(fig: Any, out: Path) -> Path:
    """Write `fig` to `out` through a temporary neighbour and os.replace, so a reader never sees half a PNG; the
    file gets the umask's permissions, not mkstemp's private 0600 (reports sit on shared project folders)."""
    from ..paths import as_new_file

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".png", dir=out.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        as_new_file(tmp)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return out
