"""Time a search's candidates again side by side, so the latencies it compares were taken under the same load.

Each candidate is first timed by its own benchmark task, minutes apart from the others. On a shared machine the
same artifact measured minutes apart can differ by 15% or more, which is more than the gap between two precisions
or two pruned models, so a choice made from those figures could flip from one run to the next. Before deciding
which precisions to keep, and again before choosing the variant, every candidate of an input size is timed once
more in alternation (a, b, c, a, b, c, ...), and those figures replace the ones taken apart, which stay in the row
as `latency_sequential`. Only raw inference is timed this way: end-to-end timings keep the benchmark's figures.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..core.results import BenchRow, LatencyStats
from .candidates import Timing


@dataclass(frozen=True, kw_only=True)
class RetimeTask:
    """Time `artifacts` ((row key, artifact path, input size) triples, exported for `runtime`) in alternation."""

    name: str  # stage label shown in progress
    runtime: str  # <backend>-<device>
    timing: Timing
    artifacts: tuple[tuple[str, str, int], ...]

    @property
    def kind(self) -> str:
        return "retime"

    @property
    def label(self) -> str:
        sizes = "/".join(str(s) for s in sorted({a[2] for a in self.artifacts}))
        return f"{self.name}: {len(self.artifacts)} variants in alternation @{sizes}"


def retime_task(name: str, runtime: str, timing: Timing, rows: list[BenchRow]) -> RetimeTask | None:
    """The task that times `rows` side by side, or None when there is nothing to compare: fewer than two rows with
    an artifact on disk, or a search ranked by end-to-end latency (the benchmark's figures stay)."""
    if timing.metric != "inference":
        return None
    triples = tuple((r.key, str(r.artifact), r.imgsz) for r in rows
                    if r.ok and r.inference is not None and r.artifact and Path(r.artifact).exists())
    if len(triples) < 2:
        return None
    return RetimeTask(name=name, runtime=runtime, timing=timing, artifacts=triples)


def run_retime(t: RetimeTask) -> dict[str, Any]:
    """{"latency": {row key: LatencyStats as a dict}} from one alternating timing loop over every artifact."""
    from ..core.deploy import time_side_by_side
    from ..core.timing import TimingPlan
    from ..export.base import Target

    plan = TimingPlan(warmup=t.timing.warmup, runs=t.timing.runs, seconds=t.timing.seconds)
    stats = time_side_by_side({key: (artifact, imgsz) for key, artifact, imgsz in t.artifacts},
                              Target.parse(t.runtime), plan, t.timing.threads)
    return {"latency": {k: s.to_dict() for k, s in stats.items()}}


def apply_retime(rows: list[BenchRow], latency: dict[str, dict[str, Any]]) -> list[BenchRow]:
    """`rows` with the side-by-side inference figures in place of the ones timed apart (kept in
    extra["latency_sequential"], the first ones measured, when a row is timed again more than once)."""
    out = []
    for r in rows:
        new = latency.get(r.key)
        if new is None or r.inference is None:
            out.append(r)
            continue
        first = r.extra.get("latency_sequential", r.inference.to_dict())
        out.append(replace(r, inference=LatencyStats(**new), extra={**r.extra, "latency_sequential": first,
                                                                     "timed_in_alternation": True}))
    return out
