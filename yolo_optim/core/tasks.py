"""Per task: Ultralytics' validator and the names of the mAP keys it reports (the one table of both)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import OptimError

# task -> (validator module under ultralytics.models.yolo, class, letter of its primary metrics: Box, Mask, Pose)
_VALIDATORS = {"detect": ("detect", "DetectionValidator", "B"), "segment": ("segment", "SegmentationValidator", "M"),
               "pose": ("pose", "PoseValidator", "P"), "obb": ("obb", "OBBValidator", "B")}
TASKS = tuple(_VALIDATORS)


@dataclass(frozen=True)
class MapResult:
    """mAP of one validation; NaN where the validator did not report the metric."""

    map50_95: float  # mAP@0.50:0.95
    map50: float  # mAP@0.50


def validator_class(task: str) -> Any:
    """Ultralytics' validator class of `task`."""
    if task not in _VALIDATORS:
        raise OptimError(f"task '{task}' has no validator here; supported tasks: {', '.join(TASKS)}")
    import importlib

    module, cls, _ = _VALIDATORS[task]
    return getattr(importlib.import_module(f"ultralytics.models.yolo.{module}"), cls)


def map_key(task: str, iou: str = "50-95", primary: bool = False) -> str:
    """`metrics/mAP50-95(B)`: the metric key of the boxes (every task has them) or of the task's primary output
    (masks for segment, keypoints for pose) when `primary`."""
    if task not in _VALIDATORS:
        raise OptimError(f"task '{task}' has no validator here; supported tasks: {', '.join(TASKS)}")
    return f"metrics/mAP{iou}({_VALIDATORS[task][2] if primary else 'B'})"


def read_map(stats: dict[str, Any], task: str, primary: bool = False, strict: bool = True) -> MapResult:
    """mAP50-95 and mAP50 from a validator's metric dict.

    A missing key is an error (strict) or NaN, never 0: a silent 0 reads as a model that detects nothing.
    """
    out = []
    for iou in ("50-95", "50"):
        k = map_key(task, iou, primary)
        if k not in stats:
            if strict:
                raise OptimError(f"the {task} validator reported no '{k}' (it reported: {', '.join(sorted(stats))})")
            out.append(math.nan)
        else:
            out.append(float(stats[k]))
    return MapResult(*out)
