"""`ExportOptions`: everything a backend's export reads, beside the model and the target.

Backends take this, not a mode's config, so the benchmark, pruning and tuning call them directly and a reader sees
what a backend depends on. Defaults (the demo dataset, the demo baseline) are resolved before an ExportOptions is
built, at the CLI/API edge; a backend never looks anything up.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..errors import OptimError


@dataclass(frozen=True)
class ExportOptions:
    """How to export: input size, calibration for INT8, how much of the graph stays float, runtime settings."""

    imgsz: int = 640  # square static input size (pixels, a multiple of 32)
    data: str | None = None  # dataset YAML: its train split calibrates INT8, its val split checks accuracy
    calib_images: int = 300  # calibration images sampled from the train split (all if fewer)
    seed: int = 0  # calibration sampling seed
    calibration: Any = None  # a prepared export.calibration.CalibrationSet; None = sampled from data when needed
    float_scope: int = 0  # 0: only the head's decode stays float in INT8; 1: also prediction convs and the stem
    accuracy_control: bool = False  # NNCF accuracy-aware INT8 (OpenVINO): layers back to float until within max_drop
    accuracy_control_iterations: int = 20  # most layers accuracy control reverts to float
    max_drop: float = 0.01  # accepted mAP50-95 loss (accuracy control's budget)
    device: str = "cpu"  # torch device the export may use (a GPU index for engines built on the GPU)
    verbose: bool = False  # the converters' own logs

    def __post_init__(self) -> None:
        if int(self.imgsz) <= 0 or int(self.imgsz) % 32:
            raise OptimError(f"imgsz={self.imgsz} must be a positive multiple of 32")
        if self.float_scope not in (0, 1):
            raise OptimError(f"float_scope={self.float_scope} must be 0 or 1")

    @classmethod
    def from_config(cls, cfg: Any, **overrides: Any) -> ExportOptions:
        """The options named like fields of a mode's config (ExportConfig, PruneConfig, ...), then `overrides`."""
        names = {f.name for f in fields(cls)}
        values = {n: getattr(cfg, n) for n in names if hasattr(cfg, n)}
        return cls(**{**values, **overrides})
