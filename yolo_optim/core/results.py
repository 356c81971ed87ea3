"""Result dataclasses: latency statistics and the benchmark row.

The benchmark writes them and the report reads them; they live here, below both, so neither imports the other.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def plain_text(text: str) -> str:
    """`text` on one line without terminal colour codes (Ultralytics colours its messages)."""
    return " ".join(_ANSI.sub("", str(text)).split())

@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency in milliseconds over `runs` timed calls."""

    runs: int  # calls timed
    median_ms: float  # 50th percentile
    p90_ms: float  # 90th percentile
    p99_ms: float  # 99th percentile
    mean_ms: float  # arithmetic mean
    std_ms: float  # sample standard deviation (0 for one run)
    min_ms: float  # fastest call
    max_ms: float  # slowest call

    @classmethod
    def from_samples(cls, samples_ms: Any) -> "LatencyStats":
        a = np.asarray(samples_ms, dtype=np.float64)
        if a.ndim != 1 or a.size == 0:
            raise ValueError("latency statistics need at least one timed sample")
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        return cls(runs=int(a.size), median_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99),
                   mean_ms=float(a.mean()), std_ms=float(a.std(ddof=1)) if a.size > 1 else 0.0,
                   min_ms=float(a.min()), max_ms=float(a.max()))

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class ThroughputStats:
    """Images per second at a fixed batch size."""

    batch: int  # images per call
    images_per_s: float  # batch / median call time
    batch_latency: LatencyStats  # per-call (whole batch) latency

    def to_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "images_per_s": self.images_per_s, "batch_latency": self.batch_latency.to_dict()}


METRICS = ("inference", "end_to_end")  # which latency sorts tables, draws the Pareto front and bounds best()
MAP_DECIMALS = 4  # mAP shown and compared at this precision; smaller differences are numerical noise


@dataclass(frozen=True)
class BenchRow:
    """Everything measured for one model on one target; `None` where not measured."""

    key: str  # identity within a run: model hash + target + imgsz (what resume matches on)
    run_id: str  # the run (results.json `runs[]`) that measured the row; its environment is there
    model: str  # short label of the model variant
    model_path: str  # the model file as given
    model_sha256: str | None  # content hash of the model file
    target: str  # <backend>-<device>:<precision> as requested
    backend: str  # torch, onnxruntime, openvino, tensorrt
    device: str  # cpu, gpu, npu
    precision: str  # requested precision
    imgsz: int  # square input size in pixels
    status: str  # ok, failed or skipped
    hardware: str | None = None  # the CPU or GPU model that `device` is on this machine
    threads: int = 0  # inference threads asked for (0 = runtime default)
    threads_used: int | None = None  # threads the runtime reports it runs with (None: it does not say)
    executed_precision: str | None = None  # precision the runtime really ran at (e.g. bf16 for an fp32 request)
    artifact: str | None = None  # exported file or folder that was measured
    artifact_reused: bool | None = None  # True when a cached export of the same source and settings was reused
    map50_95: float | None = None  # COCO mAP@0.50:0.95 on the val split (Ultralytics validator)
    map50: float | None = None  # mAP@0.50
    val_images: int | None = None  # images validated
    inference: LatencyStats | None = None  # batch-1 raw inference latency
    end_to_end: LatencyStats | None = None  # batch-1 latency of letterbox + inference + NMS
    throughput: ThroughputStats | None = None  # images/s at a larger batch, when asked
    throughput_error: str | None = None  # why throughput could not be measured (e.g. a static batch-1 artifact)
    size_mb: float | None = None  # artifact size on disk, MiB
    params: int | None = None  # parameters of the source model
    gflops: float | None = None  # GFLOPs of the source model at imgsz
    seconds: float | None = None  # wall time spent producing the row
    finished: str | None = None  # ISO-8601 time the row was written
    error: str | None = None  # what went wrong, for a failed row
    reason: str | None = None  # why a target was not measured, for a skipped row
    extra: dict[str, Any] = field(default_factory=dict)  # artifact metadata worth keeping (calibration, guard)

    @property
    def runtime(self) -> str:
        return self.target.partition(":")[0]

    @property
    def group(self) -> str:
        """The device table the row belongs to: the device kind and the hardware it is."""
        return f"{self.device} ({self.hardware})" if self.hardware else self.device

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def latency(self, metric: str = "inference") -> float | None:
        """Median latency in ms of `metric` (inference or end_to_end), None when not measured."""
        stats = self.inference if metric == "inference" else self.end_to_end
        return stats.median_ms if stats else None

    def precision_label(self) -> str:
        """`fp32`, or `bf16 (asked fp32)` when the runtime ran at another precision than requested."""
        ex = self.executed_precision
        return self.precision if not ex or ex == self.precision else f"{ex} (asked {self.precision})"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, (LatencyStats, ThroughputStats)) else v
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BenchRow":
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        for name in ("inference", "end_to_end"):
            if kw.get(name) is not None:
                kw[name] = LatencyStats(**kw[name])
        if kw.get("throughput") is not None:
            t = kw["throughput"]
            kw["throughput"] = ThroughputStats(batch=t["batch"], images_per_s=t["images_per_s"],
                                               batch_latency=LatencyStats(**t["batch_latency"]))
        return cls(**kw)


CSV_COLUMNS = (
    "model", "target", "backend", "device", "hardware", "precision", "executed_precision", "status", "imgsz",
    "threads", "threads_used", "map50_95", "map50", "val_images",
    "inference_median_ms", "inference_p90_ms", "inference_p99_ms", "inference_mean_ms", "inference_std_ms",
    "inference_runs", "e2e_median_ms", "e2e_p90_ms", "e2e_p99_ms", "e2e_mean_ms", "e2e_std_ms", "e2e_runs",
    "throughput_batch", "throughput_images_per_s", "size_mb", "params", "gflops", "artifact", "artifact_reused",
    "model_path", "model_sha256", "run_id", "finished", "seconds", "error", "reason",
)


def row_to_flat(row: BenchRow) -> dict[str, Any]:
    """The row as one flat CSV record (latency statistics spread over columns)."""
    d = row.to_dict()
    out = {k: d.get(k) for k in CSV_COLUMNS if k in d}
    for prefix, stats in (("inference", row.inference), ("e2e", row.end_to_end)):
        for stat in ("median", "p90", "p99", "mean", "std"):
            out[f"{prefix}_{stat}_ms"] = getattr(stats, f"{stat}_ms") if stats else None
        out[f"{prefix}_runs"] = stats.runs if stats else None
    out["throughput_batch"] = row.throughput.batch if row.throughput else None
    out["throughput_images_per_s"] = row.throughput.images_per_s if row.throughput else None
    return {k: out.get(k) for k in CSV_COLUMNS}
