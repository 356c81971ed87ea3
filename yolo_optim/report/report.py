"""`Report`: the rows of one or more benchmark runs, the questions asked of them, and the files written from them."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import OptimError
from ..paths import write_json_atomic, write_text_atomic
from .pareto import pareto_front
from ..core.results import CSV_COLUMNS, MAP_DECIMALS, METRICS, BenchRow, row_to_flat
from .schema import SCHEMA_ID, SCHEMA_VERSION, load_results, validate_results


@dataclass
class Report:
    """Benchmark rows with the runs (environment, settings, command) that produced them."""

    rows: list[BenchRow]
    runs: list[dict[str, Any]] = field(default_factory=list)
    metric: str = "inference"  # latency that sorts, draws the Pareto front and bounds best(): inference, end_to_end
    complete: bool = True  # False while a run is in progress or was interrupted
    save_dir: Path | None = None  # where the files were written

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise OptimError(f"metric={self.metric} is not allowed; choose one of {', '.join(METRICS)}")

    # ------------------------------------------------------------------------------------------------ queries
    def groups(self) -> list[str]:
        """Device tables in first-seen order: `cpu (Intel Xeon ...)`, `gpu (NVIDIA ...)`."""
        return list(dict.fromkeys(r.group for r in self.rows))

    def select(self, device: str | None = None) -> list[BenchRow]:
        """Rows of one device: matched on the device kind (cpu), the runtime (openvino-cpu), the table name
        (`cpu (Intel ...)`) or a part of the hardware name; all rows when device is None."""
        if device is None:
            return list(self.rows)
        d = str(device).lower()
        return [r for r in self.rows if d in (r.device, r.runtime, r.group.lower())
                or (r.hardware and d in r.hardware.lower())]

    def measured(self, rows: Iterable[BenchRow] | None = None) -> list[BenchRow]:
        """Rows with status ok and a latency for the report's metric."""
        return [r for r in (self.rows if rows is None else rows) if r.ok and r.latency(self.metric) is not None]

    def pareto(self, device: str | None = None) -> list[BenchRow]:
        """Pareto-optimal rows (latency vs mAP50-95) of each device table, fastest first.

        mAP is compared at the four decimals the tables show: an exported fp32 model that differs from PyTorch in
        the sixth decimal is a tie, not a more accurate variant.
        """
        out: list[BenchRow] = []
        for group in self.groups():
            rows = [r for r in self.measured(self.select(device)) if r.group == group and r.map50_95 is not None]
            out += [rows[i] for i in pareto_front([(r.latency(self.metric), round(r.map50_95, MAP_DECIMALS))
                                                   for r in rows])]
        return out

    def best(self, device: str | None = None, max_latency_ms: float | None = None) -> BenchRow | None:
        """The most accurate measured variant on `device` whose latency is within `max_latency_ms` (mAP50-95
        compared at four decimals; ties go to the faster); None when nothing fits the budget."""
        if device is not None and not self.select(device):
            raise OptimError(f"device={device} matches no row; devices in this report: {', '.join(self.groups())}")
        rows = [r for r in self.measured(self.select(device)) if r.map50_95 is not None]
        if max_latency_ms is not None:
            rows = [r for r in rows if r.latency(self.metric) <= max_latency_ms]
        return min(rows, key=lambda r: (-round(r.map50_95, MAP_DECIMALS), r.latency(self.metric)), default=None)

    def baseline(self, group: str) -> BenchRow | None:
        """The row a device table is compared against: the first model's torch fp32 row on that device; failing
        that, the first model's first measured fp32 row, then the first measured row."""
        rows = [r for r in self.measured() if r.group == group]
        if not rows:
            return None
        first_model = next(r.model for r in self.rows)
        for test in (lambda r: r.model == first_model and r.backend == "torch" and r.precision == "fp32",
                     lambda r: r.model == first_model and r.precision == "fp32",
                     lambda r: r.backend == "torch" and r.precision == "fp32"):
            hit = next((r for r in rows if test(r)), None)
            if hit:
                return hit
        return rows[0]

    def table_rows(self, group: str) -> list[BenchRow]:
        """One device table: measured rows by increasing latency, then failed and skipped rows."""
        rows = [r for r in self.rows if r.group == group]
        measured = sorted(self.measured(rows), key=lambda r: r.latency(self.metric))
        done = {id(r) for r in measured}
        return measured + [r for r in rows if id(r) not in done]

    # ------------------------------------------------------------------------------------------------- files
    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA_ID, "schema_version": SCHEMA_VERSION, "complete": self.complete,
                "metric": self.metric, "runs": self.runs, "rows": [r.to_dict() for r in self.rows]}

    @classmethod
    def from_json(cls, obj: dict[str, Any], source: str = "results.json") -> "Report":
        validate_results(obj, source)
        return cls(rows=[BenchRow.from_dict(r) for r in obj["rows"]], runs=list(obj["runs"]), metric=obj["metric"],
                   complete=obj["complete"])

    @classmethod
    def load(cls, path: str | Path) -> "Report":
        """Read a run folder or its results.json."""
        p = Path(path)
        report = cls.from_json(load_results(p), source=str(p))
        report.save_dir = p if p.is_dir() else p.parent
        return report

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: "" if v is None else v for k, v in row_to_flat(r).items()})
        return buf.getvalue()

    def save_results(self, out: str | Path) -> None:
        """Write results.json (validated first) and results.csv, each atomically: after a kill both stay whole."""
        out = Path(out)
        obj = self.to_json()
        validate_results(obj, source=str(out / "results.json"))
        write_json_atomic(out / "results.json", obj)
        write_text_atomic(out / "results.csv", self.to_csv())

    def save(self, out: str | Path | None = None) -> Path:
        """Write results.json, results.csv, report.md, pareto.png and report.html into `out` (or save_dir)."""
        from .html import report_html
        from .plots import plot_pareto
        from .tables import report_markdown

        target = Path(out) if out is not None else self.save_dir
        if target is None:
            raise OptimError("Report.save() needs a folder; pass out=path/to/folder")
        self.save_results(target)
        png = plot_pareto(self, target / "pareto.png")
        write_text_atomic(target / "report.md", report_markdown(self, plot=png.name))
        write_text_atomic(target / "report.html", report_html(self, png))
        self.save_dir = target
        return target

    def __repr__(self) -> str:
        ok = sum(r.ok for r in self.rows)
        return (f"Report({len(self.rows)} rows, {ok} measured, devices: {', '.join(self.groups()) or 'none'}, "
                f"save_dir={self.save_dir})")
