"""Pruning targets, and measured latency as one: `target=latency:openvino-cpu:8ms` prunes until it is met.

`target=latency:openvino-cpu:int8:1.3x` asks for a speed-up instead: the goal in ms is the source's latency measured
in the same run, side by side with the candidates, divided by 1.3. On a shared machine a latency measured minutes
earlier can be 15% off, enough to call a goal "already met" that is not.

A candidate's latency is measured the way the benchmark measures it: exported with the target's backend and its
raw inference timed with the one harness (yolo_optim.core.deploy.export_and_time), median of the timed calls.
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import OptimError

LOG = logging.getLogger("yolo_optim.prune")
_LATENCY = re.compile(r"^latency:(?P<runtime>[a-z]+-[a-z]+)(?::(?P<precision>[a-z0-9]+))?:(?P<value>[0-9.]+)\s*"
                      r"(?P<unit>ms|x)$")
SIZE_MEASURES = ("channels", "params", "flops")


@dataclass(frozen=True)
class LatencyGoal:
    target: Any  # yolo_optim.export.base.Target
    ms: float  # median raw-inference latency to reach, milliseconds (a speed-up goal: 0 until resolved)
    speedup: float | None = None  # `<k>x`: k times faster than the source measured in the same run

    @property
    def name(self) -> str:
        if self.speedup is not None:
            return f"latency:{self.target.name}:{self.speedup:g}x"
        return f"latency:{self.target.name}:{self.ms:g}ms"

    def resolved(self, source_ms: float) -> LatencyGoal:
        """The goal with its ms set: a speed-up goal divides the source's latency measured in this run."""
        return self if self.speedup is None else replace(self, ms=source_ms / self.speedup)


def parse_target(text: str) -> tuple[LatencyGoal | None, str]:
    """'flops' -> (None, 'flops'); 'latency:openvino-cpu:int8:5ms' or '...:1.5x' -> (LatencyGoal, 'latency')."""
    t = str(text).strip().lower()
    if t in SIZE_MEASURES:
        return None, t
    m = _LATENCY.match(t)
    if not m:
        raise OptimError(f"target={text} is not understood; use channels, params, flops or "
                         "latency:<backend>-<device>[:<precision>]:<ms>ms|<k>x, e.g. latency:openvino-cpu:8ms or "
                         "latency:openvino-cpu:int8:1.5x")
    from ..export.base import Target, get_backend

    try:
        target = Target.parse(m["runtime"], precision=m["precision"] or "fp32")
    except OptimError as e:
        raise OptimError(f"target={text}: {e}") from None
    value = float(m["value"])
    if m["unit"] == "x" and value <= 1:
        raise OptimError(f"target={text}: a speed-up goal must be above 1x (1.5x = 1.5 times faster than the source)")
    if value <= 0:
        raise OptimError(f"target={text}: the latency must be positive")
    get_backend(target.backend).check(target)  # a missing runtime or device fails now, before any work
    goal = LatencyGoal(target, 0.0, value) if m["unit"] == "x" else LatencyGoal(target, value)
    return goal, "latency"


def measure_latency(model: nn.Module, goal: LatencyGoal, imgsz: int, data: str | None = None) -> float:
    """Median raw-inference latency (ms) of `model` exported for the goal's target at `imgsz`."""
    from ..core.deploy import export_and_time
    from ..core.options import ExportOptions
    from .checkpoint import write_checkpoint

    with tempfile.TemporaryDirectory(prefix="yolo-optim-latency-") as tmp:
        ckpt = write_checkpoint(model, Path(tmp) / "candidate.pt", {}, {"candidate": True})
        options = ExportOptions(imgsz=imgsz, data=data, calib_images=32)  # INT8: a small calibration set suffices
        stats = export_and_time(ckpt, goal.target, options).inference
    return float(stats.median_ms)


def check_goal(cfg: Any, prepared: nn.Module, widths: dict[str, int], goal: LatencyGoal) -> float:
    """Fail early when the goal is already met or out of reach; returns the source's latency (ms)."""
    from .structured import StepSpec, most_pruned

    imgsz = cfg.latency_imgsz
    base = measure_latency(prepared, goal, imgsz, cfg.data)
    goal = goal.resolved(base)
    if base <= goal.ms:
        raise OptimError(f"{goal.name} is already met: the model runs in {base:.2f} ms at {imgsz} px; "
                         "nothing to prune (ask for a lower latency)")
    spec = StepSpec(kind=cfg.kind, round_to=cfg.round_to, max_layer_ratio=cfg.max_layer_ratio, imgsz=cfg.imgsz)
    best = measure_latency(most_pruned(prepared, spec, widths), goal, imgsz, cfg.data)
    if best > goal.ms:
        raise OptimError(f"{goal.name} cannot be met: the source runs in {base:.2f} ms and the most pruned model "
                         f"this allows (max_layer_ratio={cfg.max_layer_ratio}) in {best:.2f} ms at {imgsz} px; ask "
                         f"for at least {best * 1.05:.1f}ms or raise max_layer_ratio")
    LOG.info("%s: source %.2f ms, most pruned %.2f ms", goal.name, base, best)
    return base
