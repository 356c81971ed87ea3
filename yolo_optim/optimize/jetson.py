"""tensorrt-jetson: latency measured on the Jetson itself, or planned from the budget alone.

With `results=`: the Jetson ran `yolo-optim benchmark` (or the bundle's bench.sh) on the candidate checkpoints and
its results.json came back here; the choice is made from those rows. Without: the budget must be relative
(`budget=0.5x`: half the source's latency on the device, at the deploy precision), and FLOPs stand in for latency
there: the source is pruned to that fraction of its FLOPs (less the recipe's margin), fine-tuned, and bundled; the
card says the latency is a plan to confirm with the bundle's bench.sh. Either way deploy/ holds the chosen variant's
deploy bundle (`yolo_optim.export(..., "tensorrt-jetson:<precision>")`), whose engine is built on the device:
engines are tied to the GPU and TensorRT version that built them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import OptimError
from .recipe import JETSON, Recipe
from .select import usable

BUILD_NOTE = ("the engine is built on the Jetson from the bundle (its README.md and build.sh); engines are tied to the "
              "GPU and TensorRT version that build them")
LOG = logging.getLogger("yolo_optim.optimize")


def run_jetson(cfg: Any, recipe: Recipe, budget: Any, t0: float) -> Any:
    from ..models import file_sha256
    from ..paths import run_dir, write_json_atomic
    from ..report.report import Report
    from .api import finish

    if not cfg.results:
        if budget is None or budget.fraction is None:
            given = f"budget={cfg.budget} is absolute, and " if budget is not None else ""
            raise OptimError(f"target={JETSON} takes its latencies from the Jetson: {given}run `yolo-optim benchmark "
                             "model=... targets=tensorrt-gpu:fp16,tensorrt-gpu:int8` there and pass results=<its "
                             "results.json>, or plan from the budget alone with a fraction of the source's latency "
                             "there, like budget=0.5x")
        return plan_jetson(cfg, recipe, budget.fraction, t0)
    measured = Report.load(cfg.results)
    rows = [r for r in measured.rows if r.backend == "tensorrt"]
    if not usable(rows, cfg.metric):
        raise OptimError(f"results={cfg.results} holds no measured TensorRT row with mAP and latency; benchmark "
                         "with accuracy=True on the Jetson")
    wanted = set(recipe.precision_list())
    rows = [r for r in rows if r.precision in wanted] or rows
    source = cfg.model or rows[0].model_path
    sha = file_sha256(source) if Path(source).is_file() else rows[0].model_sha256
    own = [r for r in usable(rows, cfg.metric) if r.model_sha256 == sha] or usable(rows, cfg.metric)
    reference = max(own, key=lambda r: (r.map50_95, -r.latency(cfg.metric)))
    folder = run_dir("optimize", cfg.project, cfg.name, cfg.exist_ok)
    folder.mkdir(parents=True, exist_ok=True)
    state = {"status": "running", "config": cfg.to_dict(), "target": JETSON, "source": source}
    write_json_atomic(folder / "optimize.json", state)

    def bundle_of(row: Any) -> Path:
        """The Jetson deploy bundle of the chosen checkpoint at the chosen precision (the checkpoint itself where
        this installation cannot write bundles)."""
        p = Path(row.model_path)
        if not p.is_file() or (row.model_sha256 and file_sha256(p) != row.model_sha256):
            raise OptimError(f"the chosen checkpoint {row.model_path} (sha256 {str(row.model_sha256)[:12]}) is not "
                             "on this machine; run optimize where the candidates were written")
        from .candidates import _public

        try:
            done = _public("export")(str(p), f"tensorrt-jetson:{row.precision}", data=cfg.data, imgsz=row.imgsz,
                                     project=str(folder / "stages"), name="jetson-bundle", exist_ok=True,
                                     guard="off")
            return Path(done.path)
        except OptimError as e:
            LOG.warning("optimize: no Jetson bundle written (%s); deploy/ holds the checkpoint", e)
            return p

    budget_ms = budget.resolve(reference.latency(cfg.metric)) if budget is not None else None
    return finish(cfg, folder, rows, measured.runs, reference, [f"latencies from {cfg.results}"], [], source, JETSON,
                  budget_ms, state, t0, deploy_artifact=bundle_of, deploy_note=BUILD_NOTE)


# Precisions a bundle can carry, fastest first: the plan deploys the fastest one the recipe allows.
_BUNDLE_PRECISIONS = ("int8", "fp16", "fp32")


def plan_jetson(cfg: Any, recipe: Recipe, fraction: float, t0: float) -> Any:
    """No device measurements: prune to `fraction` of the source's FLOPs (times the recipe's prune_margin), fine-tune,
    bundle at the fastest precision the recipe allows, and validate the bundle's graph here for mAP."""
    from ..data.baseline import resolve_model_and_data
    from ..paths import run_folder
    from .api import _folder, _source

    precision = next((p for p in _BUNDLE_PRECISIONS if p in recipe.precision_list()), None)
    if precision is None:
        raise OptimError(f"the recipe's precisions ({recipe.precisions}) hold none a Jetson bundle carries "
                         f"({', '.join(_BUNDLE_PRECISIONS)})")
    model, data = resolve_model_and_data(cfg)
    source, sha = _source(model)
    ratio = 1 - fraction * recipe.prune_margin
    # a refusal (FLOPs goal out of reach, an export the guard rejects) leaves no half-written run behind; a crash
    # keeps the folder so resume=True continues from its finished stages
    with run_folder(_folder(cfg), discard_on=(OptimError,)) as folder:
        return _plan(cfg, recipe, fraction, t0, precision, source, sha, data, ratio, folder)


def _plan(cfg: Any, recipe: Recipe, fraction: float, t0: float, precision: str, source: str, sha: str, data: Any,
          ratio: float, folder: Path) -> Any:
    import time

    from ..export.validate import val_artifact, val_checkpoint
    from ..paths import write_json_atomic
    from .api import OptimizeResult, data_fingerprint
    from .candidates import PruneTask, _public, run_task
    from .card import write_plan_deploy

    state = {"status": "running", "config": cfg.to_dict(), "target": JETSON, "source": source, "source_sha256": sha,
             "plan": {"budget_fraction": fraction, "flops_removed": round(ratio, 4), "precision": precision}}
    write_json_atomic(folder / "optimize.json", state)
    LOG.info("optimize: no Jetson measurements, so FLOPs stand in for latency: pruning %.0f%% of the FLOPs for "
             "%gx the source's latency (margin %g), deployed at %s", 100 * ratio, fraction, recipe.prune_margin,
             precision)
    stages = folder / "stages"
    options = recipe.prune_options()
    task = PruneTask(name=f"pruned-{fraction:g}x", model=source, model_sha256=sha, data=str(Path(data).resolve()),
                     data_sha256=data_fingerprint(data), target="flops", ratio=round(ratio, 4), imgsz=cfg.imgsz,
                     options=options, batch=recipe.prune_batch(cfg.batch), device=str(cfg.device),
                     workers=cfg.workers, seed=cfg.seed)
    try:
        pruned = run_task(str(stages), task)
    except OptimError as e:
        raise OptimError(f"budget={fraction:g}x plans removing {ratio:.1%} of the FLOPs (1 - budget x prune_margin "
                         f"{recipe.prune_margin:g}), and the pruner refuses: {e}; a budget of at least (1 - that "
                         f"ratio) / {recipe.prune_margin:g} can be planned") from None
    bundle = _public("export")(pruned["weights"], f"tensorrt-jetson:{precision}", data=data, imgsz=cfg.imgsz,
                               project=str(stages), name=f"bundle-{fraction:g}x-{precision}", exist_ok=True,
                               max_drop=cfg.max_drop, batch=cfg.batch, device=str(cfg.device))
    measured = val_artifact(bundle.path, data, workers=cfg.workers)  # the very graph the device builds
    reference = val_checkpoint(source, data, cfg.imgsz, cfg.batch, str(cfg.device), cfg.workers)
    plan = {"source": source, "source_sha256": sha, "precision": precision, "imgsz": cfg.imgsz,
            "budget_fraction": fraction, "flops_removed": round(pruned["removed"], 4),
            "gflops": pruned["gflops"], "params": pruned["params"], "map50_95": measured.map50_95,
            "map50": measured.map50, "source_map50_95": reference.map50_95,
            "steps": [(f"pruned {pruned['removed']:.1%} of the FLOPs ({recipe.prune_method}, "
                       f"{recipe.prune_allocation}), fine-tuned {recipe.finetune_epochs} epochs"
                       f"{' with distillation' if recipe.distill else ''}"),
                      f"bundled for tensorrt-jetson ({precision}) at {cfg.imgsz} px"]}
    path = write_plan_deploy(folder, Path(bundle.path), plan)
    state.update(status="planned", plan=plan, seconds=round(time.time() - t0, 1))
    write_json_atomic(folder / "optimize.json", state)
    change = measured.map50_95 - reference.map50_95
    message = (f"planned for {fraction:g}x the source's latency on the Jetson from FLOPs ({pruned['gflops'][0]:.2f} "
               f"-> {pruned['gflops'][1]:.2f} GFLOPs) at {precision}; mAP50-95 {measured.map50_95:.4f} "
               f"({change:+.4f}) on this machine's run of the bundle's graph; confirm the latency with the "
               "bundle's bench.sh on the device")
    print(f"Planned: {message}")
    print(f"Deploy: {path}")
    return OptimizeResult("planned", None, path, None, None, None, None, folder, message)
