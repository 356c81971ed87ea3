"""report.md: one table per device sorted by latency, Pareto rows starred, compared against a baseline row."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.results import plain_text

if TYPE_CHECKING:
    from ..core.results import BenchRow
    from .report import Report

METRIC_TITLE = {"inference": "inference", "end_to_end": "end-to-end"}
COLUMNS = ("", "model", "runtime", "precision", "mAP50-95", "ΔmAP50-95", "mAP50", "infer. ms", "infer. p90",
           "infer. p99", "e2e ms", "e2e p99", "speed-up", "img/s", "size MB", "params M", "GFLOPs")


def _f(v: float | None, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def table_cells(report: "Report", row: "BenchRow", base: "BenchRow | None", pareto: set[int]) -> list[str]:
    """The cells of one measured row (shared by the markdown and the HTML page)."""
    metric = report.metric
    mark = ("★" if id(row) in pareto else "") + (" base" if row is base else "")
    delta = speed = "–"
    if base is not None and row is not base:
        if row.map50_95 is not None and base.map50_95 is not None:
            d = round(row.map50_95 - base.map50_95, 4)
            delta = f"{d:+.4f}" if d else "0.0000"
        speed = f"{base.latency(metric) / row.latency(metric):.2f}x"
    elif row is base:
        delta, speed = "0.0000", "1.00x"
    inf, e2e, tp = row.inference, row.end_to_end, row.throughput
    return [mark.strip(), row.model, row.runtime, row.precision_label(), _f(row.map50_95, ".4f"), delta,
            _f(row.map50, ".4f"), _f(inf and inf.median_ms, ".2f"), _f(inf and inf.p90_ms, ".2f"),
            _f(inf and inf.p99_ms, ".2f"), _f(e2e and e2e.median_ms, ".2f"), _f(e2e and e2e.p99_ms, ".2f"), speed,
            f"{tp.images_per_s:.1f} @b{tp.batch}" if tp else "–", _f(row.size_mb, ".2f"),
            _f(row.params / 1e6 if row.params is not None else None, ".2f"), _f(row.gflops, ".2f")]


def shown_columns(cells: list[list[str]]) -> list[int]:
    """Column indexes to show: the optional ones (throughput, size, ...) only when some row has a value."""
    optional = {COLUMNS.index(c) for c in ("img/s", "size MB", "params M", "GFLOPs", "mAP50-95", "ΔmAP50-95",
                                           "mAP50", "e2e ms", "e2e p99")}
    return [i for i in range(len(COLUMNS)) if i not in optional or any(c[i] != "–" for c in cells)]


def unmeasured_line(row: "BenchRow") -> str:
    why = row.reason if row.status == "skipped" else row.error
    return f"{row.model} on {row.target}: {row.status}" + (f" ({plain_text(why)})" if why else "")


def report_markdown(report: "Report", plot: str | None = "pareto.png") -> str:
    metric = METRIC_TITLE[report.metric]
    lines = ["# Benchmark report", "",
             f"mAP on the validation split (Ultralytics validator) against batch-1 latency. Tables are sorted by "
             f"median {metric} latency. ★ marks the Pareto-optimal variants of a device (no other variant there is "
             f"both faster and more accurate, mAP compared at the four decimals shown). ΔmAP50-95 and speed-up "
             f"({metric} median) compare each row with the row marked *base*. *precision* is what the runtime "
             f"executed (with the requested one when they differ). Latency in milliseconds.", ""]
    if not report.complete:
        lines += ["**This run is incomplete** (interrupted or in progress); rerun the same command to resume.", ""]
    if plot:
        lines += [f"![mAP versus latency]({plot})", ""]
    pareto = {id(r) for r in report.pareto()}
    for group in report.groups():
        base = report.baseline(group)
        rows = report.table_rows(group)
        measured = report.measured(rows)
        lines += [f"## {group}", ""]
        if measured:
            cells = [table_cells(report, row, base, pareto) for row in measured]
            keep = shown_columns(cells)
            lines += ["| " + " | ".join(COLUMNS[i] for i in keep) + " |", "|" + "---|" * len(keep)]
            lines += ["| " + " | ".join(c[i].replace("|", "\\|") for i in keep) + " |" for c in cells]
        others = [r for r in rows if not (r.ok and r.latency(report.metric) is not None)]
        if others:
            lines += ["", "Not measured:", ""] + [f"- {unmeasured_line(r)}" for r in others]
        notes = [r for r in measured if r.throughput_error]
        if notes:
            lines += ["", "No throughput:", ""] + [f"- {r.model} on {r.target}: {plain_text(r.throughput_error)}"
                                                  for r in notes]
        lines.append("")
    lines += ["## Runs", ""]
    for run in report.runs:
        lines += [f"### {run['run_id']}", "", f"- command: `{run['command']}`",
                  f"- started: {run['created']}, seed {run['seed']}",
                  f"- settings: {settings_summary(run.get('settings', {}))}",
                  f"- machine: {environment_summary(run.get('environment', {}))}",
                  f"- versions: {versions_summary(run.get('environment', {}))}", ""]
    return "\n".join(lines)


def settings_summary(s: dict[str, Any]) -> str:
    keys = ("imgsz", "data", "warmup", "runs", "seconds", "threads", "throughput_batch", "accuracy", "batch")
    return ", ".join(f"{k}={s[k]}" for k in keys if k in s)


def environment_summary(env: dict[str, Any]) -> str:
    cpu = env.get("cpu", {})
    parts = [f"{cpu.get('model', '?')} ({cpu.get('physical_cores', '?')} cores / {cpu.get('logical_cores', '?')} "
             f"threads; {', '.join(cpu.get('isa', [])) or 'no listed ISA extensions'})"]
    for gpu in env.get("gpus", []):
        parts.append(f"{gpu.get('name')} (driver {gpu.get('driver', '?')})")
    if env.get("jetson"):
        j = env["jetson"]
        parts.append(f"Jetson {j.get('model', '')} L4T {j.get('l4t', '?')} JetPack {j.get('jetpack', '?')} "
                     f"power mode {j.get('power_mode', '?')}")
    if env.get("memory_gb"):
        parts.append(f"{env['memory_gb']} GB RAM")
    parts.append(env.get("platform", ""))
    return "; ".join(p for p in parts if p)


def versions_summary(env: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items() if v)
