"""The units of work of a search, as plain picklable specs and top-level functions, so each runs the same way in
this process or as a Ray task on another node: measure one model at one precision and input size, or prune one
model to one goal, or measure one shard of the pruning sensitivity probes. They call the public
`yolo_optim.benchmark` and `yolo_optim.prune`, and the pruner's own sensitivity analysis.

Each task works in its own folder, named after a digest of everything it depends on (the content hashes of its
model and data, its settings), and writes `done.json` there last: a finished task is found again and reused while
its inputs are unchanged, an interrupted one continues from what its folder holds.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..paths import write_json_atomic

DONE = "done.json"


@dataclass(frozen=True)
class Timing:
    """How the benchmark times every candidate."""

    warmup: int
    runs: int
    seconds: float
    threads: int
    metric: str  # inference or end_to_end


@dataclass(frozen=True, kw_only=True)
class ModelTask:
    """What every task names: one model on one dataset at one input size, and how to run Ultralytics on it."""

    name: str  # candidate label shown in the report (source, source@224, pruned-1.6x)
    model: str  # .pt checkpoint
    model_sha256: str  # its content hash
    data: str  # dataset YAML
    data_sha256: str  # fingerprint of the dataset
    imgsz: int  # input size
    batch: int = 16  # validation (and fine-tuning) batch
    device: str = "cpu"  # torch device for export, pruning and validation
    workers: int = 0
    seed: int = 0


@dataclass(frozen=True, kw_only=True)
class BenchTask(ModelTask):
    """Measure `model` on `runtime` at `precision` and `imgsz`: latency and mAP (one benchmark row)."""

    runtime: str  # <backend>-<device>
    precision: str  # fp32, bf16, fp16, int8w, int8
    timing: Timing
    steps: tuple[str, ...] = ()  # what was applied to the source, for the model card

    @property
    def kind(self) -> str:
        return "bench"

    @property
    def label(self) -> str:
        return f"{self.name} {self.runtime}:{self.precision} @{self.imgsz}"


@dataclass(frozen=True, kw_only=True)
class PruneTask(ModelTask):
    """Prune `model` to `target` (latency:<runtime>:<precision>:<ms>ms or <k>x, or flops) and fine-tune it."""

    target: str  # prune's target= (latency:... or flops)
    ratio: float  # prune's ratio= (flops targets)
    options: dict[str, Any] = field(default_factory=dict)  # further prune keys from the recipe

    @property
    def kind(self) -> str:
        return "prune"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.target if self.target != 'flops' else f'flops ratio {self.ratio:g}'})"


@dataclass(frozen=True, kw_only=True)
class ProbeTask(ModelTask):
    """Shard `shard` of `shards` of the sensitivity probes `prune allocation=sensitivity` would measure on `model`
    (each probe prunes one channel group alone and validates): the slow part of sensitivity pruning, split so a
    cluster measures it in parallel. The merged table is handed to the pruning tasks as `sensitivity_table=`."""

    options: dict[str, Any]  # the prune keys the pruning tasks use (method, ratios, images, round_to, ...)
    shard: int
    shards: int

    @property
    def kind(self) -> str:
        return "probe"

    @property
    def label(self) -> str:
        return f"{self.name} {self.shard + 1}/{self.shards}"


Task = BenchTask | PruneTask | ProbeTask  # and retime.RetimeTask (timing finished candidates side by side)


def task_digest(task: Task) -> str:
    """A digest of everything the task's result depends on (paths excluded: the content hashes stand for them)."""
    d = asdict(task)
    d.pop("model", None)
    d.pop("data", None)
    d.pop("name")
    d["kind"] = task.kind
    table = (d.get("options") or {}).get("sensitivity_table")
    if table and Path(table).is_file():  # its content, so a moved run folder still finds its finished pruning
        from ..models import file_sha256

        d["options"] = {**d["options"], "sensitivity_table": file_sha256(table)}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


def task_folder(root: Path, task: Task) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_.@" else "-" for c in task.name)
    tail = f"-{task.precision}-{task.imgsz}" if isinstance(task, BenchTask) else \
        f"-{task.shard + 1}of{task.shards}" if isinstance(task, ProbeTask) else ""
    return Path(root) / f"{task.kind}-{safe}{tail}-{task_digest(task)}"


def finished(root: Path, task: Task) -> dict[str, Any] | None:
    """The recorded result of a task that already finished with the same inputs, else None."""
    done = task_folder(root, task) / DONE
    if done.is_file():
        try:
            return json.loads(done.read_text(encoding="utf-8"))
        except ValueError:  # written atomically, so only a foreign edit breaks it: measure again
            return None
    return None


def run_task(root: str, task: Task) -> dict[str, Any]:
    """Run one task (reusing its finished result); the entry point both locally and on a Ray worker."""
    root_path = Path(root)
    old = finished(root_path, task)
    if old is not None:
        return {**old, "reused": True}
    folder = task_folder(root_path, task)
    t0 = time.perf_counter()
    from .retime import RetimeTask, run_retime

    work = {BenchTask: _bench, PruneTask: _prune, ProbeTask: _probe,
            RetimeTask: lambda t, _folder: run_retime(t)}[type(task)]
    result = work(task, folder)
    result.update(node=_node(), seconds=round(time.perf_counter() - t0, 1))
    write_json_atomic(folder / DONE, result)
    return {**result, "reused": False}


def _node() -> str:
    """Where the task ran: the Ray node id inside a Ray worker, else this host's name."""
    import socket
    import sys

    if "ray" in sys.modules:  # only a Ray worker (or a driver that chose Ray) has imported it
        ray = sys.modules["ray"]
        if ray.is_initialized():
            return f"ray:{ray.get_runtime_context().get_node_id()[:12]}"
    return socket.gethostname()


def _public(name: str) -> Any:
    """A function of the public API (`yolo_optim.benchmark`, `yolo_optim.prune`), wherever it is defined now.

    `yolo_optim.prune` as an attribute may be the subpackage once it is imported, so the API table is asked.
    """
    import importlib

    import yolo_optim

    return getattr(importlib.import_module(yolo_optim._API[name]), name)


def _bench(t: BenchTask, folder: Path) -> dict[str, Any]:
    report = _public("benchmark")(model=t.model, data=t.data, targets=f"{t.runtime}:{t.precision}", imgsz=t.imgsz,
                       project=str(folder.parent), name=folder.name, exist_ok=True, resume=True,
                       warmup=t.timing.warmup, runs=t.timing.runs, seconds=t.timing.seconds,
                       threads=t.timing.threads, metric=t.timing.metric, accuracy=True, batch=t.batch,
                       device=t.device, workers=t.workers, seed=t.seed)
    rows = [replace(r, model=t.name, extra={**r.extra, "optimize": {"candidate": t.name, "steps": list(t.steps)}})
            for r in report.rows]
    used = {r.run_id for r in rows}
    return {"rows": [r.to_dict() for r in rows], "runs": [r for r in report.runs if r["run_id"] in used]}


def _probe(t: ProbeTask, folder: Path) -> dict[str, Any]:
    from ..prune.sensitivity import probe_shard, read_table

    folder.mkdir(parents=True, exist_ok=True)
    keys = {**t.options, "imgsz": t.imgsz, "batch": t.batch, "device": t.device, "workers": t.workers,
            "seed": t.seed}
    table = probe_shard(t.model, t.data, folder, (t.shard, t.shards), **keys)
    return {"table": str(table), "probes": len(read_table(table))}


def _prune(t: PruneTask, folder: Path) -> dict[str, Any]:
    state = folder / "state.json"
    keys = dict(target=t.target, ratio=t.ratio, imgsz=t.imgsz, latency_imgsz=t.imgsz, batch=t.batch,
                device=t.device, workers=t.workers, seed=t.seed, project=str(folder.parent), name=folder.name,
                **t.options)
    if state.is_file() and not (folder / "pruned.pt").is_file():
        keys["resume"] = True  # a killed pruning run continues from its last saved step
    else:
        keys["exist_ok"] = True  # a run folder without state is a leftover of a kill before the first save
    yolo = _public("prune")(t.model, data=t.data, **keys)
    r = yolo.prune_result
    from ..models import file_sha256

    return {"weights": str(r.weights), "weights_sha256": file_sha256(r.weights), "removed": r.removed,
            "map_before": r.map_before, "map_after": r.map_after, "gflops": list(r.gflops),
            "params": list(r.params)}
