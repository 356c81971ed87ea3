"""The accuracy guard: an INT8 artifact's mAP50-95 against its FP32 source, on the validation split.

Both are letterboxed square at the export size, so the difference is the quantization's alone. The verdict is
recorded in the artifact's metadata whatever it is; `warn` only logs a failed check, `strict` makes the exporter
try its fallbacks and fail when none passes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .artifact import LOG
from .validate import MapResult, val_artifact, val_checkpoint

@dataclass(frozen=True)
class GuardResult:
    """One accuracy check of a quantized artifact."""

    reference: float  # mAP50-95 of the FP32 source
    quantized: float  # mAP50-95 of the quantized artifact
    max_drop: float  # accepted loss
    mode: str  # warn or strict
    reference_map50: float = 0.0  # mAP50 of the FP32 source
    quantized_map50: float = 0.0  # mAP50 of the quantized artifact
    attempts: list[dict[str, Any]] = field(default_factory=list)  # earlier tries (strict fallbacks), oldest first
    metric: str = "mAP50-95"
    split: str = "val"

    @property
    def drop(self) -> float:
        return self.reference - self.quantized

    @property
    def passed(self) -> bool:
        return self.drop <= self.max_drop + 1e-9

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drop": round(self.drop, 6), "passed": self.passed}

    def message(self, what: str) -> str:
        return (f"{what} loses {self.drop:.4f} {self.metric} against FP32 ({self.reference:.4f} -> "
                f"{self.quantized:.4f}), more than max_drop={self.max_drop}")


def reference_map(source: str | Path, data: str | Path, imgsz: int, batch: int, device: str,
                  workers: int) -> MapResult:
    """mAP of the FP32 PyTorch source (computed once per export, reused by every fallback)."""
    return val_checkpoint(source, data, imgsz, batch=batch, device=device, workers=workers)


def check_artifact(artifact: Path, reference: MapResult, data: str | Path, max_drop: float, mode: str,
                   attempts: list[dict[str, Any]] | None = None, workers: int = 0) -> GuardResult:
    """Validate `artifact` at its recorded precision and judge it against the reference."""
    q = val_artifact(artifact, data, workers=workers)
    result = GuardResult(reference.map50_95, q.map50_95, max_drop, mode, reference.map50, q.map50,
                         list(attempts or []))
    if not result.passed and mode == "warn":
        LOG.warning("accuracy guard: %s; rerun with guard=strict to fall back to a safer quantization",
                    result.message(artifact.name))
    return result
