"""`yolo-optim prune` and `yolo_optim.prune(model, ...)`: check everything cheap, then prune, fine-tune, save.

Outputs (runs/optim/prune/<name>/): pruned.pt (an ordinary Ultralytics checkpoint, loadable without this package,
with a `prune` metadata entry), prune.json (summary), sensitivity.csv/.png (allocation=sensitivity),
steps/stepK/{pruned,finetuned}.pt and the Ultralytics fine-tuning folders, state.json (for resume=True).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from ..errors import OptimError
from ..paths import run_dir, write_json_atomic
from ..registry import ALLOCATIONS, IMPORTANCES
from .checkpoint import load_source, write_checkpoint
from .graph import PruningGraph
from .latency import LatencyGoal, parse_target
from .structured import MEASURES, StepSpec, group_widths, max_removed, prepare, size_of

if TYPE_CHECKING:
    from ultralytics import YOLO

    from ..config import PruneConfig

LOG = logging.getLogger("yolo_optim.prune")
PRUNABLE_MODELS = ("DetectionModel", "SegmentationModel", "PoseModel", "OBBModel")


@dataclass(frozen=True)
class PruneResult:
    """A finished pruning run."""

    weights: Path  # pruned.pt
    save_dir: Path  # run folder
    removed: float  # fraction of the target measure removed
    map_before: float  # source mAP50-95 on the val split
    map_after: float  # pruned and fine-tuned mAP50-95
    gflops: tuple[float, float]  # before, after (at imgsz)
    params: tuple[int, int]  # before, after
    whole: dict[str, str] = field(default_factory=dict)  # modules left whole and why
    sparsity: dict[str, Any] | None = None  # kind=weight: sparsity, sizes, and the no-speed-up note


def _ratios(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(x) for x in str(text).split(",") if x.strip())
    except ValueError:
        raise OptimError(f"sensitivity_ratios={text} must be a comma list of numbers in (0, 1), e.g. 0.25,0.5,0.75")
    if not vals or any(not 0 < v < 1 for v in vals):
        raise OptimError(f"sensitivity_ratios={text} must be a comma list of numbers in (0, 1), e.g. 0.25,0.5,0.75")
    return vals


def _check_combination(cfg: PruneConfig, goal: LatencyGoal | None, measure: str) -> None:
    if cfg.kind == "weight":
        if goal is not None or measure == "flops":
            raise OptimError("kind=weight keeps every shape, so it cannot reduce FLOPs or latency on dense runtimes; "
                             "use target=params (the fraction of weights zeroed) or kind=structured")
        criterion = IMPORTANCES.get(cfg.method)
        if not getattr(criterion, "ranks_weights", False):
            usable = ", ".join(n for n, c in IMPORTANCES.items() if getattr(c, "ranks_weights", False))
            raise OptimError(f"method={cfg.method} scores channels, not single weights; for kind=weight use {usable}")
    else:
        IMPORTANCES.get(cfg.method)  # an unknown name is a one-line error naming the closest one
    ALLOCATIONS.get(cfg.allocation)
    if cfg.sparsity_epochs and cfg.method != "bn":
        LOG.warning("sparsity_epochs=%d trains BatchNorm scales sparse, which only method=bn uses to rank channels",
                    cfg.sparsity_epochs)


def run_prune(cfg: PruneConfig) -> PruneResult:
    """CLI entry. Every input is checked before the run folder is created; a bad one writes nothing."""
    from ..data.baseline import resolve_model_and_data

    goal, measure = parse_target(cfg.target)
    _check_combination(cfg, goal, measure)
    ratios = _ratios(cfg.sensitivity_ratios)
    if cfg.sensitivity_table and not Path(cfg.sensitivity_table).is_file():
        raise OptimError(f"sensitivity_table={cfg.sensitivity_table} does not exist; give the sensitivity.csv of an "
                         "earlier run or leave it empty")
    model_path, data = resolve_model_and_data(cfg)
    module, train_args, sha, source = load_source(model_path)
    if type(module).__name__ not in PRUNABLE_MODELS:
        raise OptimError(f"{type(module).__name__} models cannot be pruned here; supported: YOLO detect, segment, "
                         "pose and obb models (DetectionModel, SegmentationModel, PoseModel, OBBModel)")
    prepared, rewritten = prepare(module)
    widths = group_widths(prepared) if cfg.kind != "weight" else {}
    whole = _check_reachable(cfg, prepared, widths, measure, goal) if cfg.kind != "weight" else {}
    save_dir = _open_run_dir(cfg, sha)
    t0 = time.time()
    for name, why in whole.items():
        LOG.warning("left whole: %s (%s)", name, why)
    from . import runner

    model, info = runner.execute(cfg, prepared, widths, data, save_dir, train_args, sha, measure, goal, ratios,
                                 teacher=source if Path(source).is_file() else None)
    weights = save_dir / "pruned.pt"
    meta = {**info["meta"], "source": source, "source_sha256": sha, "rewritten_blocks": rewritten,
            "seconds": round(time.time() - t0, 1)}
    write_checkpoint(model, weights, train_args, meta)
    write_json_atomic(save_dir / "prune.json", meta)
    result = PruneResult(weights, save_dir, meta["removed"], meta["metrics"]["map_before"],
                         meta["metrics"]["map_after"], (meta["size"]["gflops_before"], meta["size"]["gflops_after"]),
                         (meta["size"]["params_before"], meta["size"]["params_after"]), meta.get("whole", {}),
                         meta.get("sparsity"))
    _print_summary(result, cfg)
    return result


def _check_reachable(cfg: PruneConfig, prepared: nn.Module, widths: dict[str, int], measure: str,
                     goal: LatencyGoal | None) -> dict[str, str]:
    """Fail before writing anything when the model has nothing to prune or the target is out of reach.

    Returns the modules left whole, with why (from the same dependency graph, so it is traced once).
    """
    graph = PruningGraph(prepared, cfg.round_to)
    usable = [g for g in graph.groups if (cfg.kind != "neuron" or g.pointwise) and g.channels > cfg.round_to]
    if not usable:
        whole = f" (left whole: {', '.join(graph.whole)})" if graph.whole else ""
        raise OptimError(f"the model has no prunable layers for kind={cfg.kind}{whole}; nothing to do")
    if goal is not None:
        from .latency import check_goal

        check_goal(cfg, prepared, widths, goal)
        return graph.whole
    spec = _spec(cfg, measure, None)
    reach = max_removed(prepared, spec, size_of(prepared, measure, min(cfg.imgsz, 320)), widths)
    if reach + 1e-9 < cfg.ratio:
        raise OptimError(f"target {measure} ratio={cfg.ratio} cannot be met: the most this model allows is "
                         f"{reach:.3f} (max_layer_ratio={cfg.max_layer_ratio}, round_to={cfg.round_to}, layers left "
                         f"whole: {len(graph.whole)}); use ratio<={int(reach * 1000) / 1000}")
    return graph.whole


def _spec(cfg: PruneConfig, measure: str, data: str | None) -> StepSpec:
    return StepSpec(kind=cfg.kind, method=cfg.method, allocation=cfg.allocation,
                    measure=measure if measure in MEASURES else "flops", removed=cfg.ratio, round_to=cfg.round_to,
                    max_layer_ratio=cfg.max_layer_ratio, imgsz=cfg.imgsz, seed=cfg.seed, data=data,
                    taylor_batches=cfg.taylor_batches)


def _open_run_dir(cfg: PruneConfig, sha: str) -> Path:
    """A new numbered run folder, or with resume=True the existing project/name folder of the same run."""
    import json

    if cfg.resume:
        save_dir = run_dir("prune", cfg.project, cfg.name, exist_ok=True).resolve()
        state = save_dir / "state.json"
        if not state.exists():
            raise OptimError(f"resume=True but {save_dir} holds no unfinished pruning run (no state.json); "
                             "drop resume or give the project= and name= of the killed run")
        saved = json.loads(state.read_text())
        mine = {k: v for k, v in cfg.to_dict().items() if k not in ("resume", "verbose", "exist_ok")}
        theirs = {k: v for k, v in saved.get("config", {}).items() if k not in ("resume", "verbose", "exist_ok")}
        if saved.get("source_sha256") != sha or mine != theirs:
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise OptimError(f"resume=True but {save_dir} was started with other settings "
                             f"({', '.join(diff) or 'another model'}); resume with the same arguments")
        return save_dir
    # exist_ok reuses project/name: nothing there is deleted; this run's files replace those of the same name, and
    # the fresh state.json makes it ignore what an earlier run left (steps, fine-tunes, sensitivity rows)
    save_dir = run_dir("prune", cfg.project, cfg.name, cfg.exist_ok).resolve()
    save_dir.mkdir(parents=True, exist_ok=cfg.exist_ok)
    write_json_atomic(save_dir / "state.json", {"config": cfg.to_dict(), "source_sha256": sha})
    return save_dir


def _print_summary(r: PruneResult, cfg: PruneConfig) -> None:
    print(f"Pruned ({cfg.kind}, {cfg.method}, {cfg.allocation}): {r.removed:.1%} of {cfg.target} removed, "
          f"GFLOPs {r.gflops[0]:.2f} -> {r.gflops[1]:.2f}, params {r.params[0]:,} -> {r.params[1]:,}, "
          f"mAP50-95 {r.map_before:.4f} -> {r.map_after:.4f}")
    if r.sparsity:
        print(f"Weight sparsity {r.sparsity['sparsity']:.1%}: {r.sparsity['dense_mb']:.2f} MB dense, "
              f"{r.sparsity['compressed_mb']:.2f} MB compressed. {r.sparsity['note']}.")
    for name, why in r.whole.items():
        print(f"Left whole: {name} ({why})")


def prune(model: Any = None, data: str | Path | None = None, **overrides: Any) -> YOLO:
    """Python API: prune and fine-tune; returns the pruned model as a YOLO object (its weights are pruned.pt).

    >>> pruned = yolo_optim.prune("best.pt", data="data.yaml", ratio=0.5, target="flops", epochs=9)
    >>> pruned.prune_result.save_dir
    """
    from ultralytics import YOLO

    from ..config import make_config

    if model is not None and not isinstance(model, (str, Path)):
        path = getattr(model, "ckpt_path", None)
        if not path:
            raise OptimError("pass the model as a .pt path or a YOLO loaded from one (its checkpoint is the source)")
        model = path
    values = {"model": None if model is None else str(model), "data": None if data is None else str(data),
              **overrides}
    result = run_prune(make_config("prune", {k: v for k, v in values.items() if v is not None or k in overrides}))
    yolo = YOLO(str(result.weights))
    yolo.prune_result = result
    return yolo
