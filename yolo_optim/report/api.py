"""`yolo-optim report runs=dir1,dir2`: merge benchmark runs from several machines into one report folder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..paths import atomic_dir, run_dir
from .merge import merge_reports, split_runs
from .report import Report

if TYPE_CHECKING:
    from ..config import ReportConfig


def run_report(cfg: "ReportConfig") -> Report:
    """CLI entry: `yolo-optim report runs=dir1,dir2 [metric=end_to_end]`.

    Every input is read and validated before anything is written. A new folder appears whole; with exist_ok an
    existing folder is reused: the report's own files (results.json/csv, report.md/html, pareto.png) replace their
    namesakes and nothing else in it is touched (paths.EXIST_OK).
    """
    paths = split_runs(cfg.runs or "")
    final = run_dir("report", cfg.project, cfg.name, cfg.exist_ok)
    report = merge_reports(paths, metric=cfg.metric)  # every input validated before the output folder exists
    with atomic_dir(final, overwrite=cfg.exist_ok) as tmp:
        report.save(tmp)
    report.save_dir = final
    print(f"Merged {len(paths)} runs: {len(report.rows)} rows on {len(report.groups())} device(s)")
    return report
