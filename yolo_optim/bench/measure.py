"""Measure one (model, target) pair: export if needed, time it, validate it, size it -> one BenchRow."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OptimError
from ..export.base import Target, get_backend, read_artifact_metadata
from ..report.rows import BenchRow
from .accuracy import validate_row
from .artifacts import ExportSettings, cached_export, model_complexity, size_on_disk_mb
from .latency import LatencyStats, TimingPlan, time_callable, time_throughput, torch_threads
from .pipeline import end_to_end_callable, preprocess

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


def _input_hw(runner: Any, imgsz: int) -> tuple[int, int]:
    """The artifact's own input size when it is fixed, else imgsz."""
    shape = tuple(getattr(runner, "input_shape", ()) or ())
    if len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[2:]):
        return int(shape[2]), int(shape[3])
    return imgsz, imgsz


def _sync_for(target: Target) -> Any:
    """A device synchronisation for runtimes whose calls may return before the GPU is done."""
    if target.device == "gpu" and target.backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.synchronize
    return None


def _throughput(runner: Any, x1: np.ndarray, s: MeasureSettings, sync: Any) -> tuple[Any, str | None]:
    batch = s.throughput_batch
    static = (getattr(runner, "input_shape", None) or (None,))[0]
    if isinstance(static, int) and static > 0 and static != batch:
        return None, f"the artifact has a fixed batch of {static}; export it with a dynamic batch for throughput"
    xb = np.ascontiguousarray(np.repeat(x1, batch, axis=0))
    try:
        return time_throughput(lambda: runner(xb), batch, s.plan, sync), None
    except Exception as e:  # a runtime refusing the batch is a fact to report, not a failed row
        return None, f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


def time_inference(runner: Any, image: np.ndarray, imgsz: int, plan: TimingPlan, sync: Any = None) -> LatencyStats:
    """Batch-1 latency of raw inference on the pre-processed real frame, prepared once outside the timed calls."""
    x = preprocess(image, _input_hw(runner, imgsz))
    return time_callable(lambda: runner(x), plan, sync)


def time_runner(runner: Any, image: np.ndarray, imgsz: int, plan: TimingPlan, sync: Any = None,
                end2end: bool | None = None) -> tuple[LatencyStats, LatencyStats]:
    """Batch-1 latency of raw inference, then of a whole frame (letterbox + inference + NMS).

    The two loops run one after the other, not alternated: alternating measurably slowed the inference calls (the
    frame's pre/post-processing evicts caches and leaves PyTorch's worker threads spinning), and "inference alone"
    must match what the vendors' own tools (benchmark_app, trtexec) measure.
    """
    inference = time_inference(runner, image, imgsz, plan, sync)
    end_to_end = end_to_end_callable(runner, image, _input_hw(runner, imgsz), end2end)
    return inference, time_callable(end_to_end, plan, sync)


def _time_artifact(backend: Any, artifact: Path, target: Target, s: MeasureSettings, image: np.ndarray,
                   end2end: bool | None) -> tuple[Any, Any, Any, str | None, str]:
    """Inference-only and end-to-end batch-1 latency (and throughput when asked) of one loaded artifact."""
    sync = _sync_for(target)
    throughput = throughput_error = None
    with torch_threads(s.threads):
        runner = backend.load_runner(artifact, threads=s.threads)
        inference, end_to_end = time_runner(runner, image, s.imgsz, s.plan, sync, end2end)
        if s.throughput_batch > 1:
            throughput, throughput_error = _throughput(runner, preprocess(image, _input_hw(runner, s.imgsz)), s,
                                                       sync)
        return inference, end_to_end, throughput, throughput_error, str(runner.executed_precision)


def measure_variant(variant: Variant, target: Target, s: MeasureSettings, run_id: str, hardware: str,
                    image: np.ndarray, complexity: tuple[int, float | None] | None = None) -> BenchRow:
    """Export (or reuse) the artifact, time raw and end-to-end inference at batch 1, then validate for mAP.

    Timing runs before validation, with only this artifact loaded, so the validator's model and data do not
    share memory or caches with the timed runtime.
    """
    t0 = time.perf_counter()
    backend = get_backend(target.backend)
    artifact, reused = cached_export(variant.path, variant.sha256, target,
                                     ExportSettings(imgsz=s.imgsz, data=s.data, device=s.device, seed=s.seed,
                                                    workers=s.workers, hardware=hardware))
    meta = read_artifact_metadata(artifact)
    if meta.get("source_sha256") not in (None, variant.sha256):
        raise OptimError(f"{artifact} was exported from another model (source sha256 {meta['source_sha256'][:12]}, "
                         f"expected {variant.sha256[:12]}); delete it and rerun")
    # the runtime is loaded inside _time_artifact and freed when it returns, before the validator loads its copy
    inference, end_to_end, throughput, throughput_error, executed = _time_artifact(
        backend, artifact, target, s, image, meta.get("end2end"))
    acc = validate_row(artifact, target, s.data, s.imgsz, batch=s.batch, device=s.device, threads=s.threads,
                       workers=s.workers) if s.accuracy else None
    params, gflops = complexity or model_complexity(variant.path, s.imgsz)
    extra = {k: meta[k] for k in KEPT_METADATA if k in meta}
    return base_row(variant, target, s, run_id, hardware, "ok", executed_precision=executed,
                    artifact=str(artifact), artifact_reused=reused,
                    map50_95=acc.map50_95 if acc else None, map50=acc.map50 if acc else None,
                    val_images=s.val_images if acc else None, inference=inference, end_to_end=end_to_end,
                    throughput=throughput, throughput_error=throughput_error, size_mb=size_on_disk_mb(artifact),
                    params=params, gflops=gflops, seconds=time.perf_counter() - t0, extra=extra)
