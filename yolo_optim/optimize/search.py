"""The search: measure the source at every precision and input size, time them again side by side, keep the
precisions that buy speed, prune to latency goals at the precision to deploy, fine-tune, measure the pruned models
at the kept precisions, and time every candidate again side by side before the choice.

Stages run their tasks through an executor (here or on a Ray cluster); a failing task is recorded and the search
goes on. Progress names the stage and estimates the time left from what the finished tasks took.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import OptimError
from .candidates import BenchTask, ProbeTask, PruneTask, Timing, run_task
from .recipe import Recipe
from .retime import apply_retime, retime_task
from .select import BenchRow, kept_precisions, usable

LOG = logging.getLogger("yolo_optim.optimize")
# First guesses of a task's seconds on a small CPU, replaced by the mean of the tasks measured in this run.
_GUESS = {"bench": 30.0, "prune": 90.0, "epoch": 60.0, "probe": 600.0, "retime": 20.0}


@dataclass(frozen=True)
class SearchInputs:
    source: str  # .pt of the trained model
    source_sha256: str
    data: str  # dataset YAML
    data_sha256: str  # its fingerprint
    runtime: str  # <backend>-<device>
    recipe: Recipe
    imgsz: int  # the input size the source is deployed at
    sizes: tuple[int, ...]  # further (smaller) input sizes to measure the source at
    budget: Any  # api.Budget (ms, or a fraction of the reference's latency), or None
    metric: str
    batch: int
    device: str
    workers: int
    seed: int


@dataclass
class SearchOutcome:
    rows: list[BenchRow] = field(default_factory=list)  # every measured candidate (and failed/skipped rows)
    runs: list[dict[str, Any]] = field(default_factory=list)  # the benchmark runs the rows come from
    notes: list[str] = field(default_factory=list)  # what was skipped or dropped, and why
    stages: list[dict[str, Any]] = field(default_factory=list)  # per task: stage, label, status, seconds, error
    reference: BenchRow | None = None  # the source's row at imgsz the others are compared with
    budget_ms: float | None = None  # the budget in ms (a relative one resolved against the reference)


class Progress:
    """Logs the running stage and task with the elapsed time and an estimate of the time left."""

    def __init__(self, plan: dict[str, int], epochs: int) -> None:
        self.plan = dict(plan)  # stage -> tasks still expected
        self.t0 = time.time()
        self.took: dict[str, list[float]] = {"bench": [], "prune": [], "probe": [], "retime": []}
        self.epochs = epochs
        self.current: tuple[str, float] | None = None

    def _each(self, kind: str) -> float:
        done = self.took[kind]
        if done:
            return sum(done) / len(done)
        return _GUESS["prune"] + _GUESS["epoch"] * self.epochs if kind == "prune" else _GUESS[kind]

    def left(self) -> float:
        kinds = {"prune": "prune", "sensitivity": "probe", "side by side": "retime", "final side by side": "retime"}
        return sum(n * self._each(kinds.get(s, "bench")) for s, n in self.plan.items())

    def start(self, stage: str, task: Any) -> None:
        self.plan[stage] = max(0, self.plan.get(stage, 1) - 1)
        elapsed = time.time() - self.t0
        stages = list(self.plan)
        LOG.info("optimize [stage %d/%d %s] %s | %s elapsed, about %s left", stages.index(stage) + 1, len(stages),
                 stage, task.label, _clock(elapsed), _clock(self.left() + self._each(task.kind)))
        self.current = (task.kind, time.time())

    def finish(self, kind: str, seconds: float, reused: bool) -> None:
        if not reused:
            self.took[kind].append(seconds)


def runnable(runtime: str, precision: str) -> tuple[bool, str]:
    """Whether this machine can export and run `runtime` at `precision`, with the reason when not."""
    from ..export.base import Target, get_backend

    target = Target.parse(runtime, precision=precision)
    return get_backend(target.backend).supports(target)


def _clock(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _timing(inp: SearchInputs) -> Timing:
    """How every candidate is timed, by its benchmark task and again side by side: the recipe's loop, the metric."""
    r = inp.recipe
    return Timing(r.warmup, r.runs, r.seconds, r.threads, inp.metric)


def _bench_task(inp: SearchInputs, name: str, model: str, sha: str, precision: str, imgsz: int,
                steps: tuple[str, ...]) -> BenchTask:
    return BenchTask(name=name, model=model, model_sha256=sha, data=inp.data, data_sha256=inp.data_sha256,
                     runtime=inp.runtime, precision=precision, imgsz=imgsz, timing=_timing(inp), batch=inp.batch,
                     device=inp.device, workers=inp.workers, seed=inp.seed, steps=steps)


def _run(executor: Any, root: Path, stage: str, tasks: list[Any], out: SearchOutcome,
         progress: Progress) -> list[tuple[Any, dict[str, Any]]]:
    """Run a stage's tasks; record each; return the successful (task, result) pairs."""
    ok = []
    started: dict[int, float] = {}

    def on_start(task: Any) -> None:
        started[id(task)] = time.time()
        progress.start(stage, task)

    for task, result, error in executor.map(run_task, str(root), tasks, on_start=on_start):
        reused = bool(result and result.get("reused"))
        # a task's own time (on a cluster the wall time since submission includes its wait in the queue)
        seconds = 0.0 if reused else (result or {}).get("seconds") or time.time() - started.get(id(task), time.time())
        progress.finish(task.kind, seconds, reused)
        out.stages.append({"stage": stage, "task": task.label, "status": "failed" if error else "ok",
                           "reused": reused, "seconds": round(seconds, 1), "error": error,
                           "node": (result or {}).get("node")})
        if error:
            LOG.warning("optimize: %s failed: %s (the search goes on)", task.label, error)
            out.notes.append(f"{stage}: {task.label} failed: {error}")
            continue
        if reused:
            LOG.info("optimize: %s reused from an earlier run with the same inputs", task.label)
        if "rows" in result:
            out.rows += [BenchRow.from_dict(r) for r in result["rows"]]
            out.runs += [r for r in result["runs"] if all(r["run_id"] != o["run_id"] for o in out.runs)]
        ok.append((task, result))
    return ok


def prune_goals(inp: SearchInputs, fastest: BenchRow, metric: str,
                budget_ms: float | None) -> tuple[list[tuple[str, str, float]], list[str]]:
    """(candidate name, prune target, ratio) per recipe goal, and notes for the goals that cannot help."""
    goals, notes, seen = [], [], []
    for g in inp.recipe.prune_goals():
        if g.startswith("flops:"):
            goals.append((f"pruned-flops{g[6:]}", "flops", float(g[6:])))
            continue
        base = fastest.latency(metric)
        if g == "budget":
            if budget_ms is None:
                continue  # no budget given: the speed-up goals stand in for it
            ms = budget_ms * inp.recipe.prune_margin
            if ms >= base:
                notes.append(f"pruning to the budget skipped: the source at {fastest.precision} already runs in "
                             f"{base:.2f} ms, within {ms:.2f} ms")
                continue
            fraction = inp.budget.fraction if inp.budget is not None else None
            name = f"pruned-{fraction:g}x" if fraction else f"pruned-{budget_ms:g}ms"
        else:
            ms, name = base / float(g[:-1]), f"pruned-{g}"
        if any(abs(ms - s) < 0.05 * s for s in seen):
            continue  # two goals this close give the same model
        seen.append(ms)
        # every goal is relative: pruning times the source again beside its candidates and divides that. A budget
        # becomes the speed-up it asks of the source as this search timed it: on a shared machine the same model
        # timed minutes apart moves by 15-40% at 256 px, and an absolute goal met (or missed) under another load
        # than the search's decides nothing
        goal = f"{float(g[:-1]):g}x" if g != "budget" else f"{base / ms:.4g}x"
        goals.append((name, f"latency:{inp.runtime}:{fastest.precision}:{goal}", 0.5))
    return goals, notes


def search(inp: SearchInputs, executor: Any, root: Path) -> SearchOutcome:
    out = SearchOutcome()
    recipe = inp.recipe
    precisions = []
    for p in recipe.precision_list():  # precisions this device cannot run are said, not measured
        ok, why = runnable(inp.runtime, p)
        if ok:
            precisions.append(p)
        else:
            out.notes.append(f"{inp.runtime}:{p} skipped: {why}")
    if not precisions:
        raise OptimError(f"none of the recipe's precisions ({recipe.precisions}) runs on {inp.runtime} here; "
                         f"{'; '.join(out.notes)}")
    sizes = [inp.imgsz, *[s for s in inp.sizes if s != inp.imgsz]]
    goals_guess = len(recipe.prune_goals())
    probing = recipe.prune_allocation == "sensitivity" and goals_guess > 0
    progress = Progress({"source": len(precisions) * len(sizes), "side by side": len(sizes),
                         "sensitivity": int(probing), "prune": goals_guess, "pruned": goals_guess * len(precisions),
                         "final side by side": 1}, recipe.finetune_epochs)
    LOG.info("optimize: %d source variants, up to %d pruned models, on %s", len(precisions) * len(sizes),
             goals_guess, executor.where)

    # 1. the source at every precision and input size
    tasks = [_bench_task(inp, "source" if s == inp.imgsz else f"source@{s}", inp.source, inp.source_sha256, p, s, ())
             for s in sizes for p in precisions]
    _run(executor, root, "source", tasks, out, progress)
    for s in sizes:  # which precisions are worth keeping is decided per size, so each size is compared alone
        side_by_side(inp, executor, root, out, progress, "side by side", [r for r in out.rows if r.imgsz == s])
    progress.plan["side by side"] = 0
    at_size = [r for r in out.rows if r.imgsz == inp.imgsz]
    main = usable(at_size, inp.metric)
    if not main:
        why = "; ".join([*(r.error or r.reason or r.status for r in at_size),
                         *(s["error"] for s in out.stages if s["error"])]) or "no row"
        raise OptimError(f"the source could not be measured on {inp.runtime} at {inp.imgsz} px ({why}); "
                         "nothing to compare candidates with")
    fp32 = [r for r in main if r.precision == "fp32"]
    out.reference = fp32[0] if fp32 else max(main, key=lambda r: (r.map50_95, -r.latency(inp.metric)))
    if inp.budget is not None:
        out.budget_ms = inp.budget.resolve(out.reference.latency(inp.metric))
        if inp.budget.fraction is not None:
            out.notes.append(f"budget {inp.budget}: {inp.budget.fraction:g} x {out.reference.latency(inp.metric):.2f} "
                             f"ms ({out.reference.precision}) = {out.budget_ms:.2f} ms")
    kept: list[BenchRow] = []
    for s in sizes:
        k, notes = kept_precisions([r for r in out.rows if r.imgsz == s], inp.metric, recipe.min_gain)
        out.notes += notes
        if s == inp.imgsz:
            kept = k
    deploy = [r.precision for r in kept]

    # 2. pruning to latency goals at the precision that will be deployed (the fastest one kept)
    fastest = min(kept, key=lambda r: r.latency(inp.metric))
    most_accurate = kept[0]
    goals, notes = prune_goals(inp, fastest, inp.metric, out.budget_ms)
    out.notes += notes
    if goals and out.budget_ms is not None and most_accurate.latency(inp.metric) <= out.budget_ms:
        out.notes.append(f"pruning skipped: the most accurate variant ({most_accurate.precision}, "
                         f"{most_accurate.latency(inp.metric):.2f} ms) already runs within the budget, so a pruned "
                         "model could only be less accurate")
        goals = []
    progress.plan["prune"] = len(goals)
    progress.plan["pruned"] = len(goals) * len(deploy)
    options = recipe.prune_options()
    if goals and recipe.prune_allocation == "sensitivity":
        table = sensitivity_stage(inp, options, executor, root, out, progress)
        if table is not None:
            options["sensitivity_table"] = str(table)
    progress.plan["sensitivity"] = 0
    ptasks = [PruneTask(name=name, model=inp.source, model_sha256=inp.source_sha256, data=inp.data,
                        data_sha256=inp.data_sha256, target=target, ratio=ratio, imgsz=inp.imgsz, options=options,
                        batch=recipe.prune_batch(inp.batch), device=inp.device, workers=inp.workers, seed=inp.seed)
              for name, target, ratio in goals]
    pruned = _run(executor, root, "prune", ptasks, out, progress)
    progress.plan["pruned"] = len(pruned) * len(deploy)

    # 3. every pruned model at every precision worth deploying
    btasks = []
    for task, res in pruned:
        steps = ((f"pruned ({task.target if task.target != 'flops' else f'{task.ratio:.0%} of FLOPs'}, "
                 f"{recipe.prune_method}, {recipe.prune_allocation}): {res['removed']:.1%} removed, fine-tuned "
                 f"{recipe.finetune_epochs} epochs{' with distillation' if recipe.distill else ''}"),)
        btasks += [_bench_task(inp, task.name, res["weights"], res["weights_sha256"], p, inp.imgsz, steps)
                   for p in deploy]
    _run(executor, root, "pruned", btasks, out, progress)
    side_by_side(inp, executor, root, out, progress, "final side by side", out.rows)
    progress.plan["final side by side"] = 0
    final_reference(inp, out)
    LOG.info("optimize: search done in %s", _clock(time.time() - progress.t0))
    return out


def final_reference(inp: SearchInputs, out: SearchOutcome) -> None:
    """Point `out.reference` at its row after the final side-by-side timing, and resolve a fractional budget again
    against it: the source's fp32 row was timed in the same loop as every candidate, so "0.5x" then means half of
    what the candidates are compared with, and a chosen variant's reported speed-up agrees with the budget."""
    ref = next((r for r in out.rows if r.key == out.reference.key), out.reference)
    if ref is out.reference:
        return
    out.reference = ref
    if inp.budget is None or inp.budget.fraction is None or out.budget_ms is None:
        return
    ms = inp.budget.resolve(ref.latency(inp.metric))
    if round(ms, 2) != round(out.budget_ms, 2):
        out.notes.append(f"budget {inp.budget} resolved again against the final side-by-side timing, where every "
                         f"candidate was timed in one loop with the source: {inp.budget.fraction:g} x "
                         f"{ref.latency(inp.metric):.2f} ms ({ref.precision}) = {ms:.2f} ms")
    out.budget_ms = ms


def side_by_side(inp: SearchInputs, executor: Any, root: Path, out: SearchOutcome, progress: Progress, stage: str,
                 rows: list[BenchRow]) -> None:
    """Time `rows` again in alternation and use those figures in `out.rows` (see retime.py)."""
    task = retime_task(stage.replace(" ", "-"), inp.runtime, _timing(inp), rows)
    if task is None:
        return
    for _task, result in _run(executor, root, stage, [task], out, progress):
        out.rows = apply_retime(out.rows, result["latency"])


def sensitivity_stage(inp: SearchInputs, options: dict[str, Any], executor: Any, root: Path, out: SearchOutcome,
                      progress: Progress) -> Path | None:
    """Measure the pruning sensitivity probes once for every pruned candidate, split into one shard per slot of the
    executor (Ray tasks across a cluster; one shard here), and merge the shards' tables. A failed shard leaves its
    probes to the pruning task, which measures whatever the table lacks."""
    from ..paths import write_text_atomic

    shards = executor.slots
    progress.plan["sensitivity"] = shards
    keys = {k: options[k] for k in ("method", "sensitivity_ratios", "sensitivity_images", "round_to")}
    tasks = [ProbeTask(name="sensitivity", model=inp.source, model_sha256=inp.source_sha256, data=inp.data,
                       data_sha256=inp.data_sha256, imgsz=inp.imgsz, options=keys, shard=i, shards=shards,
                       batch=inp.batch, device=inp.device, workers=inp.workers, seed=inp.seed) for i in range(shards)]
    done = _run(executor, root, "sensitivity", tasks, out, progress)
    if not done:
        return None
    tables = sorted(Path(res["table"]) for _, res in done)
    lines = [tables[0].read_text(encoding="utf-8").splitlines()[0]]
    for t in tables:
        lines += t.read_text(encoding="utf-8").splitlines()[1:]
    from .candidates import task_digest

    merged = root / f"sensitivity-{task_digest(tasks[0])[:8]}-{shards}.csv"
    write_text_atomic(merged, "\n".join(lines) + "\n")
    LOG.info("optimize: %d sensitivity probes measured in %d shard(s) on %s", len(lines) - 1, len(done),
             executor.where)
    return merged


def with_steps(row: BenchRow) -> tuple[str, ...]:
    """The steps recorded for a candidate's row, plus its precision and input size."""
    steps = tuple((row.extra.get("optimize") or {}).get("steps") or ())
    return (*steps, f"exported to {row.target} ({row.precision_label()}) at {row.imgsz} px")

