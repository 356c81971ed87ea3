"""pareto.png: mAP50-95 against latency, one series per device and backend, each device's Pareto front drawn."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..core.plotting import save_png
from .tables import METRIC_TITLE

if TYPE_CHECKING:
    from .report import Report

_MARKERS = "osD^vP*Xph"
_FRONT_STYLES = ("--", ":", "-.", (0, (5, 1, 1, 1)))


def plot_pareto(report: "Report", out: str | Path) -> Path:
    """Draw the figure on matplotlib's Agg canvas and write it atomically.

    The Agg canvas is attached to this figure only: no display is needed (a server, a Jetson over SSH) and the
    caller's global matplotlib backend is left alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out)
    fig = Figure(figsize=(9, 6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    groups = report.groups()
    backends = sorted({r.backend for r in report.rows})
    colors = {b: f"C{i % 10}" for i, b in enumerate(backends)}
    lat_all: list[float] = []
    acc_all: list[float] = []
    one_model = len({r.model for r in report.rows}) == 1
    pareto = report.pareto()
    for gi, group in enumerate(groups):
        rows = [r for r in report.measured() if r.group == group and r.map50_95 is not None]
        marker = _MARKERS[gi % len(_MARKERS)]
        for backend in backends:
            pts = [r for r in rows if r.backend == backend]
            if not pts:
                continue
            xs = [r.latency(report.metric) for r in pts]
            ys = [r.map50_95 for r in pts]
            lat_all += xs
            acc_all += ys
            ax.scatter(xs, ys, color=colors[backend], marker=marker, s=50, zorder=3,
                       label=f"{group} · {backend}" if len(groups) > 1 else backend)
        # labels alternate above and below in order of latency, so neighbours with equal mAP stay readable
        for k, r in enumerate(sorted(rows, key=lambda r: r.latency(report.metric))):
            text = r.precision_label() if one_model else f"{r.model}:{r.precision_label()}"
            ax.annotate(text, (r.latency(report.metric), r.map50_95), textcoords="offset points",
                        xytext=(5, 5 if k % 2 == 0 else -11), fontsize=7)
        front = [r for r in pareto if r.group == group]
        if front:
            ax.step([r.latency(report.metric) for r in front], [r.map50_95 for r in front], where="post",
                    linestyle=_FRONT_STYLES[gi % len(_FRONT_STYLES)], color="0.3", linewidth=1, zorder=2,
                    label=f"Pareto front{f' ({group})' if len(groups) > 1 else ''}")
    if not lat_all:
        ax.text(0.5, 0.5, "no variant with both mAP and latency measured", ha="center", va="center",
                transform=ax.transAxes)
    else:
        if max(lat_all) / max(min(lat_all), 1e-9) > 20:
            ax.set_xscale("log")  # CPU and GPU rows together span orders of magnitude
        pad = max(0.02, 0.1 * (max(acc_all) - min(acc_all)))
        ax.set_ylim(max(min(acc_all) - pad, -0.3 * pad), min(max(acc_all) + pad, 1.0 + 0.3 * pad))
    title = METRIC_TITLE[report.metric]
    ax.set_xlabel(f"{title} latency, median ms (batch 1)")
    ax.set_ylabel("mAP50-95")
    ax.set_title(f"mAP50-95 vs {title} latency" + ("" if report.complete else " (incomplete run)"))
    ax.grid(True, alpha=0.3)
    if lat_all:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return save_png(fig, out)
