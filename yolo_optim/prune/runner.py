"""The body of a pruning run, after every input was checked and the run folder exists."""

from __future__ import annotations

import json
import logging
import shutil
import statistics
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from torch import nn

from .. import __version__
from ..paths import write_json_atomic
from .allocate import uses_sensitivity
from .evaluate import primary_map, val_map, val_subset_yaml
from .latency import LatencyGoal, latency_reader
from .measure import model_size
from .schedule import Context, run_steps, sparsity_phase
from .sensitivity import analyse, curves, plot_table, write_table
from .structured import StepSpec, group_widths, prune_step, size_of
from .unstructured import masks_of, sparsify, sparsity_report

LOG = logging.getLogger("yolo_optim.prune")


def execute(cfg: Any, prepared: nn.Module, widths: dict[str, int], data: str, save_dir: Path,
            train_args: dict[str, Any], sha: str, measure: str, goal: LatencyGoal | None,
            ratios: tuple[float, ...], teacher: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Prune (and fine-tune) per `cfg`; returns the final module and the metadata to record."""
    state_path = save_dir / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    state.setdefault("config", cfg.to_dict())
    state.setdefault("source_sha256", sha)
    task = getattr(prepared, "task", "detect")
    if "map_before" not in state:
        state["map_before"] = primary_map(val_map(prepared, data, cfg.imgsz, cfg.batch, cfg.device, cfg.workers),
                                          task)
        write_json_atomic(state_path, state)
    ctx = Context(cfg, data, save_dir, train_args, state["map_before"], prune_fn=lambda m, r: (m, {}), state=state,
                  teacher=teacher if teacher and teacher.endswith(".pt") else None)
    size_imgsz = cfg.imgsz
    before = model_size(prepared, size_imgsz)
    meta: dict[str, Any] = {"yolo_optim": __version__, "kind": cfg.kind, "method": cfg.method,
                            "allocation": cfg.allocation, "target": cfg.target, "ratio": cfg.ratio,
                            "round_to": cfg.round_to, "max_layer_ratio": cfg.max_layer_ratio, "steps": cfg.steps,
                            "epochs": cfg.epochs, "task": task, "distilled": bool(cfg.distill and ctx.teacher)}
    if cfg.kind == "weight":
        if cfg.allocation != "uniform":
            LOG.info("kind=weight ranks single weights, not layers: allocation=global is used")
        ctx.prune_fn = lambda m, r: _sparsify_step(cfg, m, r, data)
        ctx.masks_fn = masks_of
        model, records = run_steps(ctx, prepared)
        report = sparsity_report(model)
        meta["sparsity"] = asdict(report)
        meta["removed"] = report.sparsity
        LOG.warning(report.note)
    else:
        model = sparsity_phase(ctx, prepared)
        spec = StepSpec(kind=cfg.kind, method=cfg.method, allocation=cfg.allocation,
                        measure="flops" if measure == "latency" else measure, removed=cfg.ratio,
                        round_to=cfg.round_to, max_layer_ratio=cfg.max_layer_ratio, imgsz=cfg.imgsz, seed=cfg.seed,
                        data=data, taylor_batches=cfg.taylor_batches)
        table = _sensitivity(cfg, ctx, model, data, ratios) if uses_sensitivity(cfg.allocation) else None
        base = size_of(model, spec.measure, min(cfg.imgsz, 320))
        if goal is not None:
            spec = replace(spec, removed=_flops_for_latency(cfg, ctx, model, spec, base, widths, goal, table))
            meta["latency_goal_ms"] = ctx.state.get("latency_goal_ms", goal.ms)  # a speed-up goal, in ms
        ratio = spec.removed
        state["effective_ratio"] = ratio

        def prune_fn(m: nn.Module, removed: float) -> tuple[nn.Module, dict[str, Any]]:
            step = prune_step(m, replace(spec, removed=removed * ratio / cfg.ratio), base, widths, table)
            return step.model, {"removed": step.removed, "level": step.level}

        ctx.prune_fn = prune_fn
        model, records = run_steps(ctx, model)
        meta["removed"] = 1 - size_of(model, spec.measure, min(cfg.imgsz, 320)) / base
        meta["measure"] = spec.measure
        final = group_widths(model)
        meta["widths"] = {k: [widths[k], final.get(k, widths[k])] for k in widths if final.get(k) != widths[k]}
        from .graph import PruningGraph

        meta["whole"] = dict(PruningGraph(model).whole)
    after = model_size(model, size_imgsz)
    meta["size"] = {"imgsz": size_imgsz, "gflops_before": round(before.gflops, 4),
                    "gflops_after": round(after.gflops, 4), "params_before": before.params,
                    "params_after": after.params}
    meta["metrics"] = {"map_before": state["map_before"], "map_after": records[-1]["map"] if records else None,
                       "map_key": "mAP50-95", "val": "full val split"}
    meta["history"] = [{k: v for k, v in r.items() if k != "checkpoint"} for r in records]
    if state.get("stop_reason"):
        meta["stopped_early"] = state["stop_reason"]
    return model, {"meta": meta}


def _sparsify_step(cfg: Any, model: nn.Module, sparsity: float, data: str) -> tuple[nn.Module, dict[str, Any]]:
    allocation = "uniform" if cfg.allocation == "uniform" else "global"
    pruned, _ = sparsify(model, sparsity, cfg.method, allocation, cfg.seed, data, cfg.imgsz, cfg.taylor_batches)
    return pruned, {"removed": sparsity_report(pruned).sparsity}


def _sensitivity(cfg: Any, ctx: Context, model: nn.Module, data: str,
                 ratios: tuple[float, ...]) -> dict[str, tuple[tuple[float, float], ...]]:
    folder = ctx.save_dir
    table = folder / "sensitivity.csv"
    if not ctx.state.get("sensitivity"):  # first time in this run: an earlier run's table here is not reused
        given = Path(cfg.sensitivity_table) if cfg.sensitivity_table else None
        if given is not None and given.resolve() != table.resolve():
            shutil.copyfile(given, table)  # rows measured before are kept; missing ones are measured
        elif given is None:
            write_table([], table)
        ctx.state["sensitivity"] = str(table)
        ctx.save_state()
    subset = val_subset_yaml(data, cfg.sensitivity_images, folder / "sensitivity_val", cfg.seed) \
        if cfg.sensitivity_images else data
    rows = analyse(model, subset, cfg.imgsz, ratios, cfg.method, cfg.round_to, table,
                   cfg.batch, cfg.seed, calibrate=cfg.calib_batches > 0, kind=cfg.kind,
                   taylor_batches=cfg.taylor_batches)
    plot_table(rows, folder / "sensitivity.png")
    return curves(rows)


def _flops_for_latency(cfg: Any, ctx: Context, model: nn.Module, spec: StepSpec, base: float,
                       widths: dict[str, int], goal: LatencyGoal, table: Any) -> float:
    """The FLOPs fraction to remove so the pruned architecture meets the latency goal (searched once, cached)."""
    if "latency_flops" in ctx.state:
        return float(ctx.state["latency_flops"])
    found: dict[str, float] = {}
    with latency_reader(model, goal, cfg.latency_imgsz, cfg.data) as read:

        def removed_fn(candidate: nn.Module) -> float:
            source_ms, ms = read(candidate)
            flops = 1 - size_of(candidate, "flops", min(cfg.imgsz, 320)) / base
            LOG.info("latency search: %.1f%% FLOPs removed -> %.2f ms (the source %.2f ms)", 100 * flops, ms,
                     source_ms)
            if ms <= goal.resolved(source_ms).ms:
                found[f"{flops:.6f}"] = ms
            return 1 - ms / source_ms

        step = prune_step(model, replace(spec, search_iterations=7, search_tol=0.02), base, widths, table,
                          removed_fn=removed_fn, target=read.removed_target())
        source_ms = statistics.median(s for s, _ in read.readings) if read.readings else read.source_ms
    flops = 1 - size_of(step.model, "flops", min(cfg.imgsz, 320)) / base
    ctx.state["latency_flops"] = flops
    ctx.state["latency_goal_ms"] = goal.resolved(source_ms).ms  # a speed-up goal: against the source's median
    ctx.state["latency_search"] = {"source_ms": source_ms, "reached": found,
                                   "readings": [list(r) for r in read.readings]}
    ctx.save_state()
    return flops
