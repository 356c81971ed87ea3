"""Merge benchmark runs made on several machines (a Jetson, a GPU server, a laptop) into one report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from ..errors import OptimError
from ..paths import atomic_dir, run_dir
from .report import Report
from .rows import BenchRow

if TYPE_CHECKING:
    from ..config import ReportConfig


def _split(runs: str | Path | Iterable[str | Path]) -> list[Path]:
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
    reports = [Report.load(p) for p in _split(runs)]
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


def run_report(cfg: "ReportConfig") -> Report:
    """CLI entry: `yolo-optim report runs=dir1,dir2 [metric=end_to_end]`."""
    paths = _split(cfg.runs or "")
    final = run_dir("report", cfg.project, cfg.name, cfg.exist_ok)
    report = merge_reports(paths, metric=cfg.metric)  # validate every input before creating the output folder
    with atomic_dir(final, overwrite=cfg.exist_ok) as tmp:
        report.save(tmp)
    report.save_dir = final
    print(f"Merged {len(paths)} runs: {len(report.rows)} rows on {len(report.groups())} device(s)")
    return report
