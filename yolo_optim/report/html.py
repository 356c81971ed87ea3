"""report.html: the report's tables and the Pareto plot (embedded as base64) in one page readable offline."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING

from .tables import (COLUMNS, METRIC_TITLE, environment_summary, settings_summary, shown_columns, table_cells,
                     unmeasured_line, versions_summary)

if TYPE_CHECKING:
    from .report import Report

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1300px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f0f0f0} td:nth-child(2),td:nth-child(3),td:nth-child(4){text-align:left}
tr.pareto{background:#eef7ee} tr.base td:first-child{font-weight:bold}
img{max-width:100%;border:1px solid #ddd} code{background:#f6f6f6;padding:1px 4px}
.note{color:#555} .warn{color:#a40}
"""


def report_html(report: "Report", png: Path | None) -> str:
    e = html.escape
    metric = METRIC_TITLE[report.metric]
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             "<title>yolo-optim benchmark report</title>", f"<style>{_STYLE}</style></head><body>",
             "<h1>Benchmark report</h1>",
             f"<p class='note'>mAP on the validation split against batch-1 latency, tables sorted by median {metric} "
             "latency (ms). ★ marks the Pareto-optimal variants of a device (highlighted); ΔmAP50-95 and speed-up "
             "compare each row with the row marked <i>base</i>; <i>precision</i> is what the runtime executed "
             "(with the requested one when they differ).</p>"]
    if not report.complete:
        parts.append("<p class='warn'><b>This run is incomplete</b>; rerun the same command to resume.</p>")
    if png is not None and Path(png).is_file():
        data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
        parts.append(f"<img alt='mAP versus latency' src='data:image/png;base64,{data}'>")
    pareto = {id(r) for r in report.pareto()}
    for group in report.groups():
        base = report.baseline(group)
        rows = report.table_rows(group)
        measured = report.measured(rows)
        parts.append(f"<h2>{e(group)}</h2>")
        if measured:
            cells = [table_cells(report, row, base, pareto) for row in measured]
            keep = shown_columns(cells)
            parts.append("<table><tr>" + "".join(f"<th>{e(COLUMNS[i])}</th>" for i in keep) + "</tr>")
            for row, c in zip(measured, cells):
                cls = " ".join(k for k, on in (("pareto", id(row) in pareto), ("base", row is base)) if on)
                parts.append(f"<tr class='{cls}'>" + "".join(f"<td>{e(c[i])}</td>" for i in keep) + "</tr>")
            parts.append("</table>")
        notes = [r for r in measured if r.throughput_error]
        if notes:
            parts.append("<p>No throughput:</p><ul>" + "".join(
                f"<li>{e(f'{r.model} on {r.target}: {r.throughput_error}')}</li>" for r in notes) + "</ul>")
        others = [r for r in rows if r not in measured]
        if others:
            parts.append("<p>Not measured:</p><ul>" + "".join(f"<li>{e(unmeasured_line(r))}</li>" for r in others)
                         + "</ul>")
    parts.append("<h2>Runs</h2>")
    for run in report.runs:
        env = run.get("environment", {})
        parts += [f"<h3>{e(run['run_id'])}</h3><ul>", f"<li>command: <code>{e(run['command'])}</code></li>",
                  f"<li>started: {e(run['created'])}, seed {e(str(run['seed']))}</li>",
                  f"<li>settings: {e(settings_summary(run.get('settings', {})))}</li>",
                  f"<li>machine: {e(environment_summary(env))}</li>",
                  f"<li>versions: {e(versions_summary(env))}</li></ul>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
