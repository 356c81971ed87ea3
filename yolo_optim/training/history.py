"""What a finished or interrupted Ultralytics training run took, read back from its results.csv."""

from __future__ import annotations

import csv
from pathlib import Path


def training_seconds(save_dir: str | Path) -> float | None:
    """Wall time of the run's epochs, summed across resumes; None without a results.csv.

    Ultralytics' `time` column counts seconds since the trainer started, so it restarts when a killed run is resumed:
    a value smaller than the one before it is the first epoch of a new start and adds whole. (An epoch cut short by
    the kill is not in the file and is not counted; it was trained again after the resume.)
    """
    path = Path(save_dir) / "results.csv"
    if not path.is_file():
        return None
    total, last = 0.0, 0.0
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            value = {k.strip(): v for k, v in row.items() if k}.get("time")
            if not value:
                continue
            t = float(value)
            total += t - last if t >= last else t
            last = t
    return total


def epoch_rows(save_dir: str | Path) -> list[dict[str, str]]:
    """The rows of the run's results.csv, one per epoch in epoch order (column names stripped); [] without one.

    A resumed run trains again the epoch it was killed in after writing its row: the later row is the one kept.
    """
    path = Path(save_dir) / "results.csv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        rows = [{k.strip(): v for k, v in row.items() if k} for row in csv.DictReader(f)]
    by_epoch = {int(float(r["epoch"])): r for r in rows if r.get("epoch")}
    return [by_epoch[e] for e in sorted(by_epoch)]
