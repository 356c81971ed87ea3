"""`yolo-optim optimize` and `yolo_optim.optimize(...)`: from a trained model to the most accurate variant that meets
a latency budget on a named device (or, without a budget, the fastest within max_drop of the source's mAP).

Every input is checked before the run folder is created. The run folder holds stages/ (each task's outputs, reused
by `resume` while their inputs are unchanged), then, once the search ends, results.json/.csv, report.md/.html,
pareto.png, optimize.json and deploy/ (the chosen artifact and its model card), each written whole.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OptimError
from ..paths import run_dir, write_json_atomic
from .recipe import JETSON, Recipe, load_recipe, parse_sizes
from .select import BenchRow, Choice, choose, map_change, speedup

if TYPE_CHECKING:
    from ..config import OptimizeConfig
    from ..report.report import Report

LOG = logging.getLogger("yolo_optim.optimize")
EXIT_BUDGET_UNMET = 3  # CLI exit status when no variant meets the budget (the report still says what came closest)
_BUDGET = re.compile(r"^\s*(?P<v>[0-9]*\.?[0-9]+)\s*(?P<unit>ms|s|x)?\s*$")


@dataclass(frozen=True)
class OptimizeResult:
    """A finished search."""

    status: str  # ok, budget_unmet, or planned (tensorrt-jetson from the budget alone: nothing measured on the device)
    model: Any  # the chosen variant as an Ultralytics YOLO (loaded from deploy/), None when unmet or planned
    path: Path | None  # the chosen artifact in deploy/ (planned: the Jetson bundle)
    row: BenchRow | None  # its benchmark row (mAP, latency, precision, ...)
    reference: BenchRow | None  # the source's row on the target (None when planned)
    closest: BenchRow | None  # budget unmet: the fastest variant measured
    report: Report | None  # every candidate (also results.json, report.md in save_dir); None when planned
    save_dir: Path  # the run folder
    message: str  # what was chosen, or why nothing was and what it would take
    notes: tuple[str, ...] = field(default_factory=tuple)  # stages that were skipped, dropped or failed

    @property
    def exit_code(self) -> int:
        return EXIT_BUDGET_UNMET if self.status == "budget_unmet" else 0

    @property
    def speedup(self) -> float | None:
        return speedup(self.row, self.reference, self.report.metric) if self.row and self.report else None

    @property
    def map_change(self) -> float | None:
        return map_change(self.row, self.reference) if self.row and self.reference else None


@dataclass(frozen=True)
class Budget:
    """A latency budget: absolute (ms), or a fraction of the source's latency on the target (`0.5x`), which is
    known once the source is measured there."""

    ms: float | None = None
    fraction: float | None = None

    def resolve(self, source_ms: float) -> float:
        return self.ms if self.ms is not None else float(self.fraction) * source_ms

    def __str__(self) -> str:
        return f"{self.ms:g} ms" if self.ms is not None else f"{self.fraction:g}x the source's latency"


def parse_budget(text: Any) -> Budget | None:
    """'8ms', '8', 8.5, '0.008s' -> milliseconds; '0.5x' -> half the source's latency; None or '' -> None."""
    if text is None or str(text).strip() == "":
        return None
    m = _BUDGET.match(str(text).lower())
    if not m or float(m["v"]) <= 0:
        raise OptimError(f"budget={text} is not a positive latency; write it like budget=8ms (or budget=0.008s), "
                         "or as a fraction of the source's latency on the target, like budget=0.5x")
    if m["unit"] == "x":
        if float(m["v"]) >= 1:
            raise OptimError(f"budget={text} is not below the source's own latency; a relative budget is a "
                             "fraction under 1, like budget=0.5x")
        return Budget(fraction=float(m["v"]))
    return Budget(ms=float(m["v"]) * (1000.0 if m["unit"] == "s" else 1.0))


def default_target() -> str:
    """This machine's CPU target: openvino-cpu when OpenVINO sees a CPU, else onnxruntime-cpu."""
    from ..export.base import get_backend

    return "openvino-cpu" if get_backend("openvino").availability("cpu")[0] else "onnxruntime-cpu"


def check_target(target: str) -> str:
    """A target this machine can run, or a one-line error naming why not and what is available."""
    from ..export.base import Target, get_backend, list_backends

    if target == JETSON:
        return target
    t = Target.parse(target)
    ok, why = get_backend(t.backend).availability(t.device)
    if not ok:
        here = [f"{b}-{d}" for b in list_backends() if b != "torch" for d in get_backend(b).devices
                if get_backend(b).availability(d)[0]]
        raise OptimError(f"target={target} is not available on this machine ({why}); targets available here: "
                         f"{', '.join(here) or 'none'}")
    return t.runtime


def data_fingerprint(data: str) -> str:
    """Content fingerprint of a dataset: its YAML, every label file's content, every other file's name and size."""
    from ..data.check import check_dataset

    info = check_dataset(data)
    h = hashlib.sha256(Path(data).read_bytes())
    root = Path(str(info.get("path") or Path(data).parent))
    for p in sorted(q for q in root.rglob("*") if q.is_file() and not q.name.endswith(".cache")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes() if p.suffix == ".txt" else str(p.stat().st_size).encode())
    return h.hexdigest()


def _source(model: str) -> tuple[str, str]:
    from ..models import file_sha256, load_yolo

    p = Path(model)
    if p.suffix != ".pt":
        raise OptimError(f"model={model} is not a .pt checkpoint; optimize starts from trained weights")
    load_yolo(model, tasks=("detect",))  # a missing or foreign file fails here, before anything is written
    return str(p.resolve()), file_sha256(p)


def _folder(cfg: OptimizeConfig) -> Path:
    """A new numbered run folder, or with resume=True the latest existing project/name folder."""
    final = run_dir("optimize", cfg.project, cfg.name, cfg.exist_ok)
    if not cfg.resume:
        return final
    project = final.parent
    numbered = [p for p in project.glob(f"{cfg.name}*") if p.is_dir() and p.name[len(cfg.name):].isdigit()]
    existing = ([project / cfg.name] if (project / cfg.name).is_dir() else []) + \
        sorted(numbered, key=lambda p: int(p.name[len(cfg.name):]))
    existing = [p for p in existing if (p / "optimize.json").is_file()]
    if not existing:
        raise OptimError(f"resume=True but {project} holds no optimize run named {cfg.name}; drop resume or give "
                         "the project= and name= of the interrupted run")
    return existing[-1]


def run_optimize(cfg: OptimizeConfig) -> OptimizeResult:
    """CLI entry: check the inputs, search, choose, write the report and deploy/."""
    from ..data.baseline import resolve_model_and_data

    t0 = time.time()
    budget = parse_budget(cfg.budget)
    target = check_target(cfg.target or default_target())
    recipe = load_recipe(target, cfg.recipe)
    sizes = parse_sizes(cfg.imgsz_choices if cfg.imgsz_choices is not None else recipe.imgsz_choices)
    if any(s > cfg.imgsz for s in sizes):
        raise OptimError(f"imgsz_choices={','.join(map(str, sizes))} must be smaller than imgsz={cfg.imgsz}: they "
                         "trade accuracy for speed below the size the model is deployed at")
    if target == JETSON:
        from .jetson import run_jetson

        return run_jetson(cfg, recipe, budget, t0)
    if cfg.results:
        raise OptimError(f"results= reads latencies measured on a Jetson (target={JETSON}); target={target} is "
                         "measured here, so drop results=")
    if cfg.address:
        from ..core.cluster_address import check_address

        check_address(cfg.address)  # before any model or dataset work: ray.init would wait minutes for no one
    model, data = resolve_model_and_data(cfg)
    source, sha = _source(model)
    inputs = _inputs(cfg, recipe, target, source, sha, data, sizes, budget)
    from .parallel import make_executor
    from .search import search

    executor = make_executor(cfg.address, recipe.cpus_per_task)  # connects before the run folder is written
    try:
        folder = _folder(cfg)
        folder.mkdir(parents=True, exist_ok=True)
        state = {"status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config": cfg.to_dict(),
                 "target": target, "recipe": recipe.to_dict(), "source": source, "source_sha256": sha}
        write_json_atomic(folder / "optimize.json", state)
        outcome = search(inputs, executor, folder / "stages")
    finally:
        executor.close()
    return finish(cfg, folder, outcome.rows, outcome.runs, outcome.reference, outcome.notes, outcome.stages, source,
                  target, outcome.budget_ms, state, t0)


def _inputs(cfg: Any, recipe: Recipe, target: str, source: str, sha: str, data: str, sizes: list[int],
            budget: Budget | None) -> Any:
    from .search import SearchInputs

    return SearchInputs(source=source, source_sha256=sha, data=str(Path(data).resolve()),
                        data_sha256=data_fingerprint(data), runtime=target, recipe=recipe, imgsz=cfg.imgsz,
                        sizes=tuple(sizes), budget=budget, metric=cfg.metric, batch=cfg.batch,
                        device=str(cfg.device), workers=cfg.workers, seed=cfg.seed)


def finish(cfg: Any, folder: Path, rows: list[BenchRow], runs: list[dict[str, Any]], reference: BenchRow,
           notes: list[str], stages: list[dict[str, Any]], source: str, target: str, budget: float | None,
           state: dict[str, Any], t0: float, deploy_artifact: Any = None, deploy_note: str = "") -> OptimizeResult:
    """Choose, then write the report, deploy/ and optimize.json; print the outcome."""
    from ..report.report import Report
    from .card import summary_lines, write_deploy, write_report
    from .search import with_steps

    report = Report(rows=rows, runs=runs, metric=cfg.metric, complete=True)
    choice: Choice = choose(rows, reference, cfg.metric, budget, cfg.max_drop)
    lines = summary_lines(choice, notes, stages, cfg.metric, budget, target, time.time() - t0)
    write_report(report, folder, lines, choice, budget)
    path = yolo = None
    if choice.row is not None:
        versions = (runs[0].get("environment", {}).get("versions") if runs else None) or {}
        artifact = deploy_artifact(choice.row) if deploy_artifact else None
        path = write_deploy(folder, choice.row, reference, source, with_steps(choice.row), cfg.metric, versions,
                            artifact, deploy_note)
        from ultralytics import YOLO

        yolo = YOLO(str(path), task="detect")
    else:
        import shutil

        shutil.rmtree(folder / "deploy", ignore_errors=True)  # an earlier choice in this folder no longer holds
    state.update(status="done" if choice.row is not None else "budget_unmet", message=choice.message,
                 chosen=choice.row.to_dict() if choice.row else None,
                 closest=choice.closest.to_dict() if choice.closest else None, notes=notes, stages=stages,
                 budget_ms=budget, seconds=round(time.time() - t0, 1))
    write_json_atomic(folder / "optimize.json", state)
    result = OptimizeResult(choice.status, yolo, path, choice.row, reference, choice.closest, report, folder,
                            choice.message, tuple(notes))
    _print_outcome(result, cfg.metric, budget)
    return result


def _print_outcome(r: OptimizeResult, metric: str, budget: float | None) -> None:
    ref = r.reference
    if r.row is not None:
        print(f"Chosen: {r.row.model} at {r.row.precision_label()} on {r.row.runtime}, {r.row.imgsz} px: "
              f"{r.row.latency(metric):.2f} ms, {r.speedup:.2f}x the source ({ref.precision} "
              f"{ref.latency(metric):.2f} ms); mAP50-95 {r.row.map50_95:.4f} ({r.map_change:+.4f})"
              + (f"; budget {budget:g} ms" if budget is not None else ""))
        print(f"Deploy: {r.path}")
    else:
        print(f"Budget not met: {r.message}")
        for note in r.notes:  # a pruning stage that could not reach the budget says how far pruning would go
            if note.startswith("prune: "):
                print(f"  {note}")
    print(f"Report: {r.save_dir / 'report.md'}")


def optimize(model: Any = None, data: str | Path | None = None, target: str | None = None,
             budget: str | float | None = None, max_drop: float | None = None, **overrides: Any) -> OptimizeResult:
    """Python API: `yolo_optim.optimize("best.pt", "data.yaml", target="openvino-cpu", budget="8ms")`.

    `model` is a .pt path or a YOLO loaded from one; further keyword arguments are the `optimize` keys of
    cfg/default.yaml (imgsz, imgsz_choices, recipe, resume, address, project, name, ...).
    """
    from ..config import make_config

    if model is not None and not isinstance(model, (str, Path)):
        ckpt = getattr(model, "ckpt_path", None)
        if not ckpt:
            raise OptimError("pass the model as a .pt path or a YOLO loaded from one (its checkpoint is the source)")
        model = ckpt
    values = {"model": model, "data": data, "target": target, "budget": budget, "max_drop": max_drop}
    values = {k: str(v) if isinstance(v, Path) else v for k, v in values.items() if v is not None}
    return run_optimize(make_config("optimize", {**values, **overrides}))
