"""Measure one (model, target) pair: export if needed, time it, validate it, size it -> one BenchRow."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..core.deploy import time_artifact
from ..core.results import BenchRow
from ..core.timing import TimingPlan
from ..errors import OptimError, describe
from ..export.base import Target, read_artifact_metadata
from .accuracy import validate_row
from .artifacts import ExportSettings, cached_export, model_complexity, size_on_disk_mb

# Metadata an artifact carries that is worth keeping beside its row (how it was calibrated, what the guard saw).
KEPT_METADATA = ("calibration", "quantization", "inference_precision_hint", "session_config", "accuracy_guard",
                 "fallback")


@dataclass(frozen=True)
class Variant:
    """One model to benchmark."""

    label: str  # short unique name in tables
    path: Path  # .pt checkpoint
    sha256: str  # content hash


@dataclass(frozen=True)
class MeasureSettings:
    """How every variant of a run is measured."""

    imgsz: int
    data: str
    plan: TimingPlan
    threads: int
    throughput_batch: int
    accuracy: bool
    batch: int  # validation batch for models that take any batch
    device: str  # torch device for the PyTorch rows, validation and export
    workers: int
    seed: int
    val_images: int | None = None  # images in the val split
    calib_images: int = 300  # INT8 calibration images (the export mode's default)


def row_key(variant: Variant, target: Target, imgsz: int) -> str:
    return f"{variant.label}@{variant.sha256[:12]}|{target.name}|{imgsz}"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def base_row(variant: Variant, target: Target, s: MeasureSettings, run_id: str, hardware: str | None,
             status: str, **fields: Any) -> BenchRow:
    return BenchRow(key=row_key(variant, target, s.imgsz), run_id=run_id, model=variant.label,
                    model_path=str(variant.path), model_sha256=variant.sha256, target=target.name,
                    backend=target.backend, device=target.device, precision=target.precision, imgsz=s.imgsz,
                    status=status, hardware=hardware, threads=s.threads, finished=now(), **fields)


def failed_row(variant: Variant, target: Target, s: MeasureSettings, run_id: str, hardware: str | None,
               error: BaseException) -> BenchRow:
    """The row of a variant whose export, timing or validation raised: the error on one plain line."""
    # runtimes such as OpenVINO put the cause on later lines, Ultralytics colours it
    return base_row(variant, target, s, run_id, hardware, "failed", error=describe(error, 400, all_lines=True))


def measure_variant(variant: Variant, target: Target, s: MeasureSettings, run_id: str, hardware: str,
                    image: np.ndarray, complexity: tuple[int, float | None] | None = None) -> BenchRow:
    """Export (or reuse) the artifact, time raw and end-to-end inference at batch 1, then validate for mAP.

    Timing runs before validation, with only this artifact loaded (core.deploy.time_artifact frees the runtime when
    it returns), so the validator's model and data do not share memory or caches with the timed runtime.
    """
    t0 = time.perf_counter()
    artifact, reused = cached_export(variant.path, variant.sha256, target,
                                     ExportSettings(imgsz=s.imgsz, data=s.data, device=s.device, seed=s.seed,
                                                    workers=s.workers, hardware=hardware,
                                                    calib_images=s.calib_images))
    meta = read_artifact_metadata(artifact)
    if meta.get("source_sha256") not in (None, variant.sha256):
        raise OptimError(f"{artifact} was exported from another model (source sha256 {meta['source_sha256'][:12]}, "
                         f"expected {variant.sha256[:12]}); delete it and rerun")
    timing = time_artifact(artifact, target, s.imgsz, s.plan, s.threads, image=image, end_to_end=True,
                           throughput_batch=s.throughput_batch, end2end=meta.get("end2end"))
    acc = validate_row(artifact, target, s.data, s.imgsz, batch=s.batch, device=s.device, threads=s.threads,
                       workers=s.workers) if s.accuracy else None
    params, gflops = complexity or model_complexity(variant.path, s.imgsz)
    extra = {k: meta[k] for k in KEPT_METADATA if k in meta}
    return base_row(variant, target, s, run_id, hardware, "ok", executed_precision=timing.executed_precision,
                    threads_used=timing.threads_used, artifact=str(artifact), artifact_reused=reused,
                    map50_95=acc.map50_95 if acc else None, map50=acc.map50 if acc else None,
                    val_images=s.val_images if acc else None, inference=timing.inference,
                    end_to_end=timing.end_to_end, throughput=timing.throughput,
                    throughput_error=timing.throughput_error, size_mb=size_on_disk_mb(artifact), params=params,
                    gflops=gflops, seconds=time.perf_counter() - t0, extra=extra)
