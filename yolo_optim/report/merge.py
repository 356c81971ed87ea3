"""Merge benchmark runs made on several machines (a Jetson, a GPU server, a laptop) into one report."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..core.results import BenchRow
from ..errors import OptimError
from .report import Report


def split_runs(runs: str | Path | Iterable[str | Path]) -> list[Path]:
    items = runs.split(",") if isinstance(runs, str) else [runs] if isinstance(runs, Path) else list(runs)
    paths = [Path(str(p).strip()) for p in items if str(p).strip()]
    if not paths:
        raise OptimError("runs is empty; pass runs=dir1,dir2 (benchmark run folders or their results.json)")
    return paths


def merge_reports(runs: str | Path | Iterable[str | Path], out: str | Path | None = None,
                  metric: str | None = None) -> Report:
    """One Report from several run folders; written to `out` (results.json/csv, report.md/html, pareto.png)
    when given.

    Rows are matched on their key and device table: when two runs measured the same variant on the same hardware,
    the later measured row is kept (a measured row over a failed or skipped one), so rerunning a variant on one
    machine updates the merged report instead of duplicating it. The input folders are only read.
    """
    reports = [Report.load(p) for p in split_runs(runs)]
    merged_runs = list({run["run_id"]: run for rep in reports for run in rep.runs}.values())
    chosen: dict[tuple[str, str], BenchRow] = {}
    for row in (r for rep in reports for r in rep.rows):
        k = (row.key, row.group)
        old = chosen.get(k)
        if old is None or (row.ok, row.finished or "") >= (old.ok, old.finished or ""):
            chosen[k] = row
    report = Report(rows=list(chosen.values()), runs=merged_runs, metric=metric or reports[0].metric,
                    complete=all(rep.complete for rep in reports))
    if out is not None:
        report.save(out)
    return report
