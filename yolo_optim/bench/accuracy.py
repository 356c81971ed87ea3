"""Accuracy of every row through Ultralytics' own validator, run the way the row is timed.

The PyTorch row is `YOLO(model).val(rect=False, ...)`. An exported artifact is validated through its backend's
Runner wrapped for Ultralytics' validator (yolo_optim.export.validate): `YOLO(artifact).val()` would compile an
OpenVINO fp32 model with the runtime's defaults, i.e. in bf16 on a bf16-capable CPU, and report the accuracy of a
precision the row does not claim. Pre-processing, NMS, matching and mAP stay Ultralytics' own for every row, and
every row is letterboxed square (rect=False) like the static-shape exports, so mAP differences come from
precision and runtime alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..export.base import Target


@dataclass(frozen=True)
class AccuracyResult:
    map50_95: float  # COCO mAP@0.50:0.95
    map50: float  # mAP@0.50
    seconds: float  # wall time of the validation


def torch_device(target: Target, configured: str = "cpu") -> str:
    """The torch device of a PyTorch row: `cpu`, or the configured GPU (GPU 0 when the config says cpu)."""
    if target.device == "cpu":
        return "cpu"
    return configured if configured not in ("cpu", "") else "0"


def validate_row(artifact: str | Path, target: Target, data: str | Path, imgsz: int, batch: int = 16,
                 device: str = "cpu", threads: int = 0, workers: int = 0) -> AccuracyResult:
    """mAP50-95 and mAP50 of the artifact a row measured, on the val split of `data`."""
    from ..export.validate import val_artifact, val_checkpoint

    t0 = time.perf_counter()
    if target.backend == "torch" and target.precision == "fp32" and Path(artifact).suffix == ".pt":
        m = val_checkpoint(artifact, data, imgsz, batch=batch, device=torch_device(target, device), workers=workers)
    else:
        m = val_artifact(artifact, data, threads=threads, workers=workers)
    return AccuracyResult(map50_95=m.map50_95, map50=m.map50, seconds=time.perf_counter() - t0)
