"""Export a model to a target and time it: the one timing path of the benchmark, pruning and tuning.

`time_artifact` loads an exported artifact with its backend's Runner and times batch-1 raw inference (and, for the
benchmark, a whole frame and a larger batch); `export_and_time` exports into a temporary folder first. Latency
always means the same thing: the harness of `core.timing`, inputs prepared outside the timed calls, the runtime's
threads as asked, and the threads and precision it really ran with read back from it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import describe
from ..registry import BACKENDS
from .options import ExportOptions
from .results import LatencyStats, ThroughputStats
from .timing import TimingPlan, time_callable, time_throughput, torch_threads

# Timing of a candidate model inside a search (pruning's latency target, tuning's latency objective): short, since
# it runs many times, yet past the first calls' allocations and with at least 10 timed calls.
CANDIDATE_PLAN = TimingPlan(warmup=5, runs=50, seconds=3.0, min_runs=10)


@dataclass(frozen=True)
class ArtifactTiming:
    """What timing one loaded artifact measured."""

    inference: LatencyStats  # batch-1 raw inference
    end_to_end: LatencyStats | None = None  # batch-1 letterbox + inference + NMS, when asked
    throughput: ThroughputStats | None = None  # images/s at a larger batch, when asked and possible
    throughput_error: str | None = None  # why throughput could not be measured
    executed_precision: str = "fp32"  # the precision the runtime really ran at
    threads_used: int | None = None  # the threads the runtime reports (None: it does not say)


def input_hw(runner: Any, imgsz: int) -> tuple[int, int]:
    """The artifact's own input size when it is fixed, else imgsz."""
    shape = tuple(getattr(runner, "input_shape", ()) or ())
    if len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[2:]):
        return int(shape[2]), int(shape[3])
    return imgsz, imgsz


def device_sync(target: Any) -> Any:
    """A device synchronisation for runtimes whose calls may return before the GPU is done (PyTorch on CUDA)."""
    if target.device == "gpu" and target.backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.synchronize
    return None


def time_artifact(artifact: str | Path, target: Any, imgsz: int, plan: TimingPlan, threads: int = 0,
                  image: np.ndarray | None = None, end_to_end: bool = False, throughput_batch: int = 0,
                  end2end: bool | None = None) -> ArtifactTiming:
    """Load `artifact` with the target's backend and time it at batch 1 (and more, as asked).

    `image`: a real BGR frame, letterboxed once outside the timed calls; None times a seeded random input. The
    inference and end-to-end loops run one after the other, not alternated: alternating measurably slowed the
    inference calls (the frame's pre/post-processing evicts caches and leaves PyTorch's worker threads spinning),
    and "inference alone" must match what the vendors' own tools (benchmark_app, trtexec) measure.
    """
    from .frame import end_to_end_callable
    from .images import letterbox

    backend = BACKENDS.get(target.backend)()
    sync = device_sync(target)
    with torch_threads(threads) as torch_count:
        runner = backend.load_runner(artifact, threads=threads)
        hw = input_hw(runner, imgsz)
        if image is not None:
            x = letterbox(image, hw)
        else:
            x = np.random.default_rng(0).random((1, 3, *hw), dtype=np.float32)
        inference = time_callable(lambda: runner(x), plan, sync)
        e2e = None
        if end_to_end:
            frame = image if image is not None else (x[0].transpose(1, 2, 0)[..., ::-1] * 255).astype(np.uint8)
            e2e = time_callable(end_to_end_callable(runner, frame, hw, end2end), plan, sync)
        throughput = throughput_error = None
        if throughput_batch > 1:
            throughput, throughput_error = _throughput(runner, x, throughput_batch, plan, sync)
        used = getattr(runner, "threads_used", None)
        if target.backend == "torch":
            used = torch_count
    return ArtifactTiming(inference, e2e, throughput, throughput_error,
                          str(getattr(runner, "executed_precision", target.precision)), used)


def _throughput(runner: Any, x1: np.ndarray, batch: int, plan: TimingPlan,
                sync: Any) -> tuple[ThroughputStats | None, str | None]:
    static = (getattr(runner, "input_shape", None) or (None,))[0]
    if isinstance(static, int) and static > 0 and static != batch:
        return None, f"the artifact has a fixed batch of {static}; export it with a dynamic batch for throughput"
    xb = np.ascontiguousarray(np.repeat(x1, batch, axis=0))
    try:
        return time_throughput(lambda: runner(xb), batch, plan, sync), None
    except Exception as e:  # a runtime refusing the batch is a fact to report, not a failed measurement
        return None, describe(e, 200)


def export_artifact(model: Any, target: Any, options: ExportOptions, folder: Path) -> Path:
    """Export `model` (a YOLO object, or a .pt/.yaml path) to `target` into `folder`; returns the artifact."""
    from ..models import load_yolo

    yolo = load_yolo(str(model)) if isinstance(model, (str, Path)) else model
    return Path(BACKENDS.get(target.backend)().export(yolo, target, options, Path(folder)))


def export_and_time(model: Any, target: Any, options: ExportOptions, plan: TimingPlan = CANDIDATE_PLAN,
                    threads: int = 0) -> ArtifactTiming:
    """Export `model` (a YOLO object, or a .pt/.yaml path) to `target` in a temporary folder and time raw
    batch-1 inference on a seeded random input (what pruning and tuning compare candidates by)."""
    with tempfile.TemporaryDirectory(prefix="yolo-optim-latency-") as tmp:
        artifact = export_artifact(model, target, options, Path(tmp) / "artifact")
        return time_artifact(artifact, target, options.imgsz, plan, threads)


def time_side_by_side(artifacts: dict[str, tuple[str | Path, int]], target: Any, plan: TimingPlan,
                      threads: int = 0) -> dict[str, LatencyStats]:
    """Batch-1 raw inference of each (artifact, input size), every one loaded first and all timed in alternation
    (a, b, a, b, ...) on seeded random inputs: figures taken under the same load, so their ratios hold while a
    shared machine's speed drifts."""
    from .timing import time_interleaved

    backend = BACKENDS.get(target.backend)()
    with torch_threads(threads):
        calls = {}
        for key, (artifact, imgsz) in artifacts.items():
            runner = backend.load_runner(artifact, threads=threads)
            x = np.random.default_rng(0).random((1, 3, *input_hw(runner, imgsz)), dtype=np.float32)
            calls[key] = lambda runner=runner, x=x: runner(x)
        return time_interleaved(calls, plan, device_sync(target))


def best_side_by_side(artifacts: dict[str, tuple[str | Path, int]], target: Any, plan: TimingPlan,
                      rounds: int = 3) -> dict[str, float]:
    """{key: ms}: the lowest of each artifact's medians over `rounds` side-by-side loops, under the timing lock
    every timing script shares, so a round that another process disturbed does not decide a figure."""
    from ..paths import file_lock
    from .timing import TIMING_LOCK

    best: dict[str, float] = {}
    with file_lock(TIMING_LOCK):
        for _ in range(rounds):
            for key, stats in time_side_by_side(artifacts, target, plan).items():
                best[key] = min(best.get(key, float("inf")), stats.median_ms)
    return best
