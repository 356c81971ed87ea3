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
    rows = _rows(save_dir)
    if rows is None:
        return None
    total, last = 0.0, 0.0
    for row in rows:
        if not row.get("time"):
            continue
        t = float(row["time"])
        total += t - last if t >= last else t
        last = t
    return total


def epoch_rows(save_dir: str | Path) -> list[dict[str, str]]:
    """The rows of the run's results.csv, one per epoch in epoch order (column names stripped); [] without one.

    A resumed run trains again the epoch it was killed in after writing its row: the later row is the one kept.
    """
    by_epoch = {int(float(r["epoch"])): r for r in _rows(save_dir) or [] if r.get("epoch")}
    return [by_epoch[e] for e in sorted(by_epoch)]


def _rows(save_dir: str | Path) -> list[dict[str, str]] | None:
    """Every row of the run's results.csv as written (Ultralytics pads its column names: stripped); None without it."""
    path = Path(save_dir) / "results.csv"
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as f:
        return [{k.strip(): v for k, v in row.items() if k} for row in csv.DictReader(f)]
