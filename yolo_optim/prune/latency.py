"""Pruning targets, and measured latency as one: `target=latency:openvino-cpu:8ms` prunes until it is met.

`target=latency:openvino-cpu:int8:1.3x` asks for a speed-up instead, read from the source and each candidate timed
in alternation (the source exported once, beside every candidate). On a shared machine the same model timed minutes
apart can differ by a third (the demo source at bf16 and 256 px read 2.9 and 4.0 ms), which moved a goal taken from
one such figure as far; the ratio of two models timed in one loop holds while the machine's speed drifts.

A candidate's latency is measured the way the benchmark measures it: exported with the target's backend and its
raw inference timed with the one harness (yolo_optim.core.deploy.export_and_time), median of the timed calls.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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
    from .checkpoint import write_checkpoint

    with tempfile.TemporaryDirectory(prefix="yolo-optim-latency-") as tmp:
        ckpt = write_checkpoint(model, Path(tmp) / "candidate.pt", {}, {"candidate": True})
        stats = export_and_time(ckpt, goal.target, _export_options(imgsz, data)).inference
    return float(stats.median_ms)


def _export_options(imgsz: int, data: str | None) -> Any:
    from ..core.options import ExportOptions

    return ExportOptions(imgsz=imgsz, data=data, calib_images=32)  # INT8: a small calibration set suffices


class LatencyReader:
    """`read(candidate) -> (source ms, candidate ms)`, as the goal compares them. A speed-up goal times each candidate
    in alternation with the source (exported once, in `folder`); a goal in ms times the candidate alone, and the
    source once, first."""

    def __init__(self, source: nn.Module, goal: LatencyGoal, imgsz: int, data: str | None, folder: Path) -> None:
        from ..core.deploy import export_artifact
        from .checkpoint import write_checkpoint

        self.goal, self.imgsz, self.data, self.folder = goal, imgsz, data, folder
        self.readings: list[tuple[float, float]] = []
        if goal.speedup is None:
            self.source_ms = measure_latency(source, goal, imgsz, data)
            self._source = None
        else:
            ckpt = write_checkpoint(source, folder / "source.pt", {}, {"candidate": True})
            self._source = export_artifact(ckpt, goal.target, _export_options(imgsz, data), folder / "source")
            self.source_ms = float("nan")  # known once a candidate was timed beside it

    def __call__(self, candidate: nn.Module) -> tuple[float, float]:
        if self._source is None:
            ms = measure_latency(candidate, self.goal, self.imgsz, self.data)
        else:
            from ..core.deploy import CANDIDATE_PLAN, export_artifact, time_side_by_side
            from .checkpoint import write_checkpoint

            with tempfile.TemporaryDirectory(dir=self.folder) as one:
                ckpt = write_checkpoint(candidate, Path(one) / "candidate.pt", {}, {"candidate": True})
                artifact = export_artifact(ckpt, self.goal.target, _export_options(self.imgsz, self.data),
                                           Path(one) / "artifact")
                stats = time_side_by_side({"source": (self._source, self.imgsz), "candidate": (artifact, self.imgsz)},
                                          self.goal.target, CANDIDATE_PLAN)
            self.source_ms, ms = stats["source"].median_ms, stats["candidate"].median_ms
        self.readings.append((self.source_ms, ms))
        return self.source_ms, ms

    def removed_target(self) -> float:
        """The goal as the fraction of the source's latency to remove (what the width search bisects on)."""
        return 1 - (1 / self.goal.speedup if self.goal.speedup is not None else self.goal.ms / self.source_ms)


@contextmanager
def latency_reader(source: nn.Module, goal: LatencyGoal, imgsz: int,
                   data: str | None = None) -> Iterator[LatencyReader]:
    """A LatencyReader whose exports live in a temporary folder for as long as the search runs."""
    with tempfile.TemporaryDirectory(prefix="yolo-optim-latency-") as tmp:
        yield LatencyReader(source, goal, imgsz, data, Path(tmp))


def check_goal(cfg: Any, prepared: nn.Module, widths: dict[str, int], goal: LatencyGoal) -> None:
    """Fail early when the goal is already met or out of reach."""
    from .structured import StepSpec, most_pruned

    imgsz = cfg.latency_imgsz
    spec = StepSpec(kind=cfg.kind, round_to=cfg.round_to, max_layer_ratio=cfg.max_layer_ratio, imgsz=cfg.imgsz)
    with latency_reader(prepared, goal, imgsz, cfg.data) as read:
        if goal.speedup is None and read.source_ms <= goal.ms:
            raise OptimError(f"{goal.name} is already met: the model runs in {read.source_ms:.2f} ms at {imgsz} px; "
                             "nothing to prune (ask for a lower latency)")
        base, best = read(most_pruned(prepared, spec, widths))
    allows = f"the most pruned model this allows (max_layer_ratio={cfg.max_layer_ratio})"
    if goal.speedup is not None and base / best < goal.speedup:
        raise OptimError(f"{goal.name} cannot be met: {allows} runs {base / best:.2f}x the source's speed ({best:.2f} "
                         f"against {base:.2f} ms, timed in alternation at {imgsz} px); ask for at most "
                         f"{base / best * 0.95:.2f}x or raise max_layer_ratio")
    if goal.speedup is None and best > goal.ms:
        raise OptimError(f"{goal.name} cannot be met: the source runs in {base:.2f} ms and {allows} in {best:.2f} ms "
                         f"at {imgsz} px; ask for at least {best * 1.05:.1f}ms or raise max_layer_ratio")
    LOG.info("%s: source %.2f ms, most pruned %.2f ms", goal.name, base, best)
