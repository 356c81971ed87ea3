"""A careful timing harness for any callable: warm-up, a bounded timed loop, robust statistics.

Used for every backend (and by pruning and tuning to time candidate models), so one rule decides what "latency" means:
- warm-up calls are never timed (first calls pay for lazy allocation, kernel selection, caches);
- the timed loop stops after `runs` calls or once `seconds` have elapsed, whichever comes first, but always
  times at least `min_runs` calls so a slow model still gets usable percentiles; the count actually timed is
  recorded beside the statistics;
- each call is timed alone with `time.perf_counter_ns`, garbage collection paused (as `timeit` does), and an
  optional `sync` (e.g. `torch.cuda.synchronize`) so asynchronous devices are timed to completion;
- the median is the headline figure (robust to the odd preemption); p90/p99, mean and std show the tail.
"""

from __future__ import annotations

import contextlib
import gc
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import OptimError
from .results import LatencyStats, ThroughputStats

# Benchmark scripts hold this lock while timing, so two timing runs on one machine never overlap.
TIMING_LOCK = Path(tempfile.gettempdir()) / "yolo_optim_timing.lock"


@dataclass(frozen=True)
class TimingPlan:
    """How long to time: warm-up calls, then up to `runs` calls or `seconds`, at least `min_runs`."""

    warmup: int = 10  # untimed calls first
    runs: int = 100  # most timed calls
    seconds: float = 10.0  # time limit of the timed loop
    min_runs: int = 10  # fewest timed calls, whatever the time limit

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.runs < 1 or self.seconds <= 0 or self.min_runs < 1:
            raise OptimError(f"bad timing plan (warmup={self.warmup}, runs={self.runs}, seconds={self.seconds}); "
                             "use warmup>=0, runs>=1, seconds>0")


def time_callable(fn: Callable[[], Any], plan: TimingPlan | None = None,
                  sync: Callable[[], Any] | None = None) -> LatencyStats:
    """Time `fn()` per the plan and return its latency statistics.

    `fn` must do the whole unit of work (inputs prepared outside it); `sync` is called after each call inside the
    timed span, for devices whose calls return before the work is done.
    """
    return time_interleaved({"fn": fn}, plan, sync)["fn"]


def time_interleaved(fns: dict[str, Callable[[], Any]], plan: TimingPlan | None = None,
                     sync: Callable[[], Any] | None = None) -> dict[str, LatencyStats]:
    """Time several callables in alternation (a, b, a, b, ...), each call timed alone.

    Alternating makes every callable see the same machine conditions, e.g. to compare two candidate models
    while other processes come and go. Each gets `plan.runs` calls at most and `plan.seconds` of the loop's time
    limit. Callables that disturb each other (one evicting the other's caches) are better timed apart.
    """
    plan = plan or TimingPlan()
    for _ in range(plan.warmup):
        for fn in fns.values():
            fn()
    if sync:
        sync()
    floor = min(plan.min_runs, plan.runs)
    budget_ns = int(plan.seconds * 1e9) * len(fns)
    samples: dict[str, list[int]] = {name: [] for name in fns}
    rounds = 0
    with _gc_paused():
        start = time.perf_counter_ns()
        while rounds < plan.runs:
            for name, fn in fns.items():
                t0 = time.perf_counter_ns()
                fn()
                if sync:
                    sync()
                samples[name].append(time.perf_counter_ns() - t0)
            rounds += 1
            if time.perf_counter_ns() - start >= budget_ns and rounds >= floor:
                break
    return {name: LatencyStats.from_samples(np.asarray(s, dtype=np.float64) / 1e6) for name, s in samples.items()}


def time_throughput(fn: Callable[[], Any], batch: int, plan: TimingPlan | None = None,
                    sync: Callable[[], Any] | None = None) -> ThroughputStats:
    """Time `fn()` that processes `batch` images per call; throughput is batch / median call time."""
    stats = time_callable(fn, plan, sync)
    return ThroughputStats(batch=batch, images_per_s=batch * 1000.0 / stats.median_ms, batch_latency=stats)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[int]:
    """Limit PyTorch's intra-op threads for the block (0 = leave the default); yields the count in force."""
    import torch

    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
