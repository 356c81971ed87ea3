"""What a finished search leaves in its run folder: the report with the budget and the chosen variant marked, and
deploy/ with the chosen artifact (loadable by plain `YOLO(path)`) and its model card."""

from __future__ import annotations

import html
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.plotting import save_png
from ..paths import atomic_dir, write_json_atomic, write_text_atomic
from .select import BenchRow, Choice, map_change, speedup

if TYPE_CHECKING:
    from ..report.report import Report


def summary_lines(choice: Choice, notes: list[str], stages: list[dict[str, Any]], metric: str,
                  budget_ms: float | None, runtime: str, wall_s: float) -> list[str]:
    """The optimize section of report.md (markdown)."""
    ref = choice.reference
    lines = [f"Target **{runtime}**, latency = median batch-1 {metric.replace('_', '-')} time; "
             + (f"budget **{budget_ms:g} ms**." if budget_ms is not None else "no budget: the fastest variant "
                "within max_drop of the source's mAP50-95."), ""]
    if choice.row is not None:
        r = choice.row
        lines += [(f"**Chosen: {r.model} at {r.precision_label()}, {r.imgsz} px**: {r.latency(metric):.2f} ms "
                  f"({speedup(r, ref, metric):.2f}x the source's {ref.precision} {ref.latency(metric):.2f} ms), "
                  f"mAP50-95 {r.map50_95:.4f} ({map_change(r, ref):+.4f}); {choice.message}.")]
    else:
        lines += [f"**Budget not met.** {choice.message}."]
    lines += ["", "![mAP versus latency](pareto.png)", ""]
    if notes:
        lines += ["Search notes:", ""] + [f"- {n}" for n in notes] + [""]
    took = sum(s["seconds"] for s in stages)
    reused = sum(1 for s in stages if s["reused"])
    lines += [(f"{len(stages)} tasks ({reused} reused from an earlier run), {took / 60:.1f} min of work, "
              f"{wall_s / 60:.1f} min wall time."), ""]
    return lines


def write_report(report: Report, folder: Path, lines: list[str], choice: Choice, budget_ms: float | None) -> None:
    """results.json/.csv (benchmark schema), pareto.png with the budget and the choice, report.md, report.html."""
    from ..report.html import report_html
    from ..report.tables import report_markdown

    report.save_results(folder)
    png = plot_search(report, folder / "pareto.png", choice, budget_ms)
    body = report_markdown(report, plot=None).replace("# Benchmark report", "## Every candidate", 1)
    write_text_atomic(folder / "report.md", "\n".join(["# Optimize report", "", *lines, body]))
    page = report_html(report, png)
    summary = "".join(f"<p>{_md_to_html(line)}</p>" for line in lines if line and not line.startswith("!["))
    page = page.replace("<h1>Benchmark report</h1>", f"<h1>Optimize report</h1>{summary}<h2>Every candidate</h2>", 1)
    write_text_atomic(folder / "report.html", page)
    report.save_dir = folder


def _md_to_html(line: str) -> str:
    text = html.escape(line.lstrip("- "))
    parts = text.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def plot_search(report: Report, out: Path, choice: Choice, budget_ms: float | None) -> Path:
    """mAP50-95 against latency: every candidate, the Pareto front, the budget line, the chosen variant ringed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metric = report.metric
    fig = Figure(figsize=(9, 6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    rows = [r for r in report.measured() if r.map50_95 is not None]
    families = list(dict.fromkeys(r.model.split("@")[0].split("-")[0] for r in rows))
    for i, fam in enumerate(families):
        pts = [r for r in rows if r.model.split("@")[0].split("-")[0] == fam]
        ax.scatter([r.latency(metric) for r in pts], [r.map50_95 for r in pts], s=45, zorder=3, color=f"C{i}",
                   marker="osD^v"[i % 5], label=fam)
    for k, r in enumerate(sorted(rows, key=lambda r: r.latency(metric))):
        ax.annotate(f"{r.model}:{r.precision_label()}", (r.latency(metric), r.map50_95), fontsize=7,
                    textcoords="offset points", xytext=(5, 5 if k % 2 == 0 else -11))
    front = report.pareto()
    if front:
        ax.step([r.latency(metric) for r in front], [r.map50_95 for r in front], where="post", color="0.3",
                linestyle="--", linewidth=1, zorder=2, label="Pareto front")
    if budget_ms is not None:
        ax.axvline(budget_ms, color="red", linewidth=1.2, label=f"budget {budget_ms:g} ms")
    marked = choice.row or choice.closest
    if marked is not None:
        ax.scatter([marked.latency(metric)], [marked.map50_95], s=260, facecolors="none", edgecolors="black",
                   linewidths=2, zorder=4, label="chosen" if choice.row is not None else "closest (budget not met)")
    ax.set_xlabel(f"{metric.replace('_', '-')} latency, median ms (batch 1)")
    ax.set_ylabel("mAP50-95")
    ax.set_title("yolo-optim optimize: every candidate measured on the target")
    ax.grid(True, alpha=0.3)
    if rows:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return save_png(fig, out)


def _copy_artifact(src: Path, dest_dir: Path) -> Path:
    """Copy an artifact (a folder, or a file with its external-data neighbours) into dest_dir."""
    if src.is_dir():
        shutil.copytree(src, dest_dir / src.name)
    else:
        shutil.copy2(src, dest_dir / src.name)
        for extra in (src.with_name(src.name + ".data"), src.with_suffix(".bin")):
            if extra.is_file() and extra != src:
                shutil.copy2(extra, dest_dir / extra.name)
    return dest_dir / src.name


def model_card(row: BenchRow, ref: BenchRow, source: str, steps: tuple[str, ...], metric: str,
               versions: dict[str, Any], artifact_name: str, note: str = "") -> str:
    lines = [f"# {Path(source).stem}: {row.model} for {row.runtime}", "",
             f"- artifact: `{artifact_name}` (load with `from ultralytics import YOLO; YOLO('{artifact_name}')`)",
             f"- source: `{source}` (sha256 {ref.model_sha256 or '?'})",
             "- steps applied: " + "; ".join(steps),
             f"- mAP50-95: {row.map50_95:.4f} (source {ref.map50_95:.4f}, {map_change(row, ref):+.4f}); mAP50 "
             f"{row.map50:.4f}" if row.map50 is not None else f"- mAP50-95: {row.map50_95:.4f}",
             (f"- latency: {row.latency(metric):.2f} ms median batch-1 {metric.replace('_', '-')} at {row.imgsz} px "
             f"({speedup(row, ref, metric):.2f}x the source at {ref.precision}, {ref.latency(metric):.2f} ms)"),
             f"- device: {row.runtime} on {row.hardware or row.device}, executed at {row.executed_precision or row.precision}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v)]
    if note:
        lines.append(f"- note: {note}")
    return "\n".join(lines) + "\n"


def write_deploy(folder: Path, row: BenchRow, ref: BenchRow, source: str, steps: tuple[str, ...], metric: str,
                 versions: dict[str, Any], artifact: Path | None = None, note: str = "") -> Path:
    """deploy/ with the chosen artifact and MODEL_CARD.md/model_card.json, written whole or not at all."""
    src = Path(artifact or row.artifact or "")
    with atomic_dir(folder / "deploy", replace=True) as tmp:  # deploy/ holds only the chosen artifact
        copied = _copy_artifact(src, tmp)
        card = model_card(row, ref, source, steps, metric, versions, copied.name, note)
        (tmp / "MODEL_CARD.md").write_text(card, encoding="utf-8")
        write_json_atomic(tmp / "model_card.json", {
            "artifact": copied.name, "source": source, "source_sha256": ref.model_sha256, "steps": list(steps),
            "target": row.target, "imgsz": row.imgsz, "hardware": row.hardware,
            "executed_precision": row.executed_precision, "map50_95": row.map50_95, "map50": row.map50,
            "source_map50_95": ref.map50_95, "latency_ms": row.latency(metric), "metric": metric,
            "source_latency_ms": ref.latency(metric), "speedup": round(speedup(row, ref, metric), 3),
            "versions": versions, "note": note or None})
    return folder / "deploy" / copied.name


def write_plan_deploy(folder: Path, bundle: Path, plan: dict[str, Any]) -> Path:
    """deploy/ for a Jetson plan made from the budget alone: the bundle and a card that says the latency is a plan."""
    g0, g1 = plan["gflops"]
    card = [f"# {Path(plan['source']).stem} for tensorrt-jetson (planned from the budget)", "",
            f"- bundle: `{bundle.name}` (on the Jetson: `./setup.sh`, `./build.sh`, `./bench.sh`; see its README.md)",
            f"- source: `{plan['source']}` (sha256 {plan['source_sha256']})",
            "- steps applied: " + "; ".join(plan["steps"]),
            (f"- mAP50-95: {plan['map50_95']:.4f} of the bundle's graph run here (source "
             f"{plan['source_map50_95']:.4f}, {plan['map50_95'] - plan['source_map50_95']:+.4f})"),
            (f"- latency: not measured. Planned at {plan['budget_fraction']:g}x the source's latency on the device, "
             f"from FLOPs ({g0:.2f} -> {g1:.2f} GFLOPs); run bench.sh on the Jetson to measure it, then "
             "`yolo-optim optimize target=tensorrt-jetson results=<its results.json>` to choose from measurements")]
    with atomic_dir(folder / "deploy", replace=True) as tmp:
        copied = _copy_artifact(bundle, tmp)
        (tmp / "MODEL_CARD.md").write_text("\n".join(card) + "\n", encoding="utf-8")
        write_json_atomic(tmp / "model_card.json", {**plan, "artifact": copied.name, "target": "tensorrt-jetson",
                                                    "latency_ms": None})
    return folder / "deploy" / copied.name
