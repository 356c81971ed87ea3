"""Accuracy of any artifact through Ultralytics' own validator, so every row's mAP is computed the same way."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..export.base import Target


@dataclass(frozen=True)
class AccuracyResult:
    map50_95: float  # COCO mAP@0.50:0.95
    map50: float  # mAP@0.50
    images: int | None  # validation images seen
    batch: int  # batch size the validator ran at (1 for static exports)
    seconds: float  # wall time of the validation


def ultralytics_device(target: Target, torch_device: str = "cpu") -> str:
    """The `device=` Ultralytics' AutoBackend needs to run `target` where the target says.

    OpenVINO artifacts need `intel:<device>`: a plain `cpu` lets OpenVINO's AUTO pick an Intel GPU when one exists.
    CUDA runtimes use the configured torch device when it names a GPU, else GPU 0.
    """
    if target.backend == "openvino":
        return f"intel:{target.device}"
    if target.device == "cpu":
        return "cpu"
    return torch_device if torch_device not in ("cpu", "", None) else "0"


def validate_artifact(artifact: str | Path, data: str | Path, imgsz: int, target: Target, batch: int = 16,
                      torch_device: str = "cpu", workers: int = 0, **overrides: Any) -> AccuracyResult:
    """mAP of `artifact` on the val split of `data`, as `YOLO(artifact).val(...)` computes it.

    rect=False for every row: exported models take square inputs, so letterboxing the PyTorch row the same way
    keeps the mAP differences down to precision and runtime. Exports with a fixed batch are validated at their
    batch (Ultralytics lowers `batch` itself); the batch actually used is returned.
    """
    from ultralytics import YOLO

    model = YOLO(str(artifact))
    seen: dict[str, int] = {}

    def _record(validator: Any) -> None:  # the validator is not kept on the model; read what it ran at
        seen.update(images=int(validator.seen or 0), batch=int(validator.args.batch))

    model.add_callback("on_val_end", _record)
    t0 = time.perf_counter()
    metrics = model.val(data=str(data), imgsz=imgsz, batch=batch, device=ultralytics_device(target, torch_device),
                        workers=workers, rect=False, plots=False, verbose=False, save_json=False, **overrides)
    return AccuracyResult(map50_95=float(metrics.box.map), map50=float(metrics.box.map50),
                          images=seen.get("images") or None, batch=seen.get("batch", batch),
                          seconds=time.perf_counter() - t0)
