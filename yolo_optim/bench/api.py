"""`yolo-optim benchmark` / `yolo_optim.benchmark()`: every model on every target -> a Report in a run folder.

Each finished row is written at once (results.json and results.csv, atomically), a failing variant records its error
and the run goes on, an unavailable target becomes a `skipped` row with the reason, and rerunning the same command
continues an interrupted run, keeping its measured rows. A run in which no row could be measured still writes its
report (the errors are in it) and then fails: exit 2 when the rows failed on the user's input, 1 otherwise.
"""

from __future__ import annotations

import shlex
import sys
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.frame import first_val_image
from ..core.images import dataset_split_images
from ..core.results import BenchRow
from ..core.timing import TimingPlan
from ..errors import OptimError
from ..export.base import Target, all_precisions, get_backend, list_backends
from ..paths import run_dir
from ..report.report import Report
from ..report.schema import SCHEMA_VERSION
from .environment import capture_environment, hardware_name
from .variant import MeasureSettings, Variant, base_row, failed_row, measure_variant, now, row_key

if TYPE_CHECKING:
    from ..config import BenchmarkConfig

# Settings that make rows comparable: a run is resumed only when they are unchanged.
SIGNATURE_KEYS = ("imgsz", "data", "warmup", "runs", "seconds", "min_runs", "threads", "throughput_batch",
                  "accuracy", "batch", "device", "seed")


class BenchmarkFailed(RuntimeError):
    """No row of a benchmark could be measured, for a reason that is not the user's input."""


def parse_targets(text: str) -> list[Target]:
    """`torch-cpu:fp32,openvino-cpu:int8` -> Targets (bad names fail before any work); `all` -> every target
    available on this machine. The default list also gets each runtime's own default precision where it is not
    fp32 (e.g. openvino-cpu:bf16 on a CPU with bf16), right after its fp32 target: what a plain export would run."""
    from ..config import defaults

    names = [t.strip() for t in str(text or "").split(",") if t.strip()]
    if not names:
        raise OptimError("targets is empty; pass targets=torch-cpu:fp32,openvino-cpu:fp32 or targets=all")
    if [n.lower() for n in names] == ["all"]:
        return available_targets()
    targets = [Target.parse(n) for n in names]
    if str(text) == str(defaults("benchmark")["targets"]):
        targets = with_runtime_defaults(targets)
    return list(dict.fromkeys(targets))  # keep order, drop repeats


def with_runtime_defaults(targets: list[Target]) -> list[Target]:
    """After each fp32 target, the precision its runtime runs a plain export at when that is not fp32."""
    out: list[Target] = []
    for t in targets:
        out.append(t)
        if t.precision == "fp32":
            backend = get_backend(t.backend)
            native = backend.default_precision(t.device)
            if native and native != "fp32" and native in backend.precisions:
                out.append(Target(t.backend, t.device, native))
    return out


def available_targets() -> list[Target]:
    """Every registered backend x device x precision whose runtime and device are usable here."""
    out = []
    for name in list_backends():
        backend = get_backend(name)
        for device in backend.devices:
            if not backend.availability(device)[0]:
                continue
            out += [Target(name, device, p) for p in all_precisions() if p in backend.precisions]
    return out


def _variants(model_text: str) -> list[Variant]:
    from ..models import file_sha256

    paths = [Path(p.strip()) for p in str(model_text).split(",") if p.strip()]
    for p in paths:
        if not p.is_file() or p.suffix != ".pt":
            raise OptimError(f"model={p} is not a .pt checkpoint file; benchmark measures trained weights "
                             "(pass model=a.pt,b.pt)")
    labels = _unique_labels(paths)
    seen: dict[tuple[str, str], Variant] = {}
    for p, label in zip(paths, labels):
        sha = file_sha256(p)
        seen.setdefault((str(p.resolve()), sha), Variant(label=label, path=p, sha256=sha))
    return list(seen.values())


def _unique_labels(paths: list[Path]) -> list[str]:
    """File stems, lengthened with parent folders (skipping `weights`) until they differ; Ultralytics' generic
    `best`/`last` always get their run folder (`train3/best`)."""
    def label(p: Path, depth: int) -> str:
        parts = [q for q in p.resolve().with_suffix("").parts[1:] if q != "weights"]
        return "/".join(parts[-max(depth, 2 if p.stem in ("best", "last") else 1):])

    for depth in range(1, 8):
        labels = [label(p, depth) for p in paths]
        if len(set(labels)) == len(set(p.resolve() for p in paths)):
            return labels
    return [str(p) for p in paths]


def _command(cfg: "BenchmarkConfig") -> str:
    """The CLI command reproducing the run: every key that differs from the defaults."""
    from ..config import defaults

    base = defaults("benchmark")
    words = [f"{k}={v}" for k, v in cfg.to_dict().items() if v != base.get(k) and v is not None]
    return shlex.join(["yolo-optim", "benchmark", *words])


def _pick_folder(cfg: "BenchmarkConfig", signature: dict[str, Any]) -> tuple[Path, Report | None]:
    """Where to write, and the earlier report there to continue (same settings), if any."""
    final = run_dir("benchmark", cfg.project, cfg.name, cfg.exist_ok)
    if cfg.exist_ok:
        candidates = [final]
    elif cfg.resume:  # the latest of exp, exp2, exp3 ... if it was interrupted
        project = final.parent
        base = project / cfg.name
        numbered = [p for p in project.glob(f"{cfg.name}*") if p.is_dir() and p.name[len(cfg.name):].isdigit()]
        existing = ([base] if base.is_dir() else []) + sorted(numbered, key=lambda p: int(p.name[len(cfg.name):]))
        candidates = existing[-1:]
    else:
        candidates = []
    for folder in candidates:
        if not (folder / "results.json").is_file():
            continue
        try:
            old = Report.load(folder)
        except OptimError:
            continue  # unreadable or foreign results: never resumed, and never overwritten unless exist_ok
        same = old.runs and all(old.runs[-1].get("settings", {}).get(k) == signature.get(k) for k in SIGNATURE_KEYS)
        if same and (cfg.exist_ok or not old.complete):
            return folder, old
    return final, None


def run_benchmark(cfg: "BenchmarkConfig") -> Report:
    """CLI entry: measure every (model, target) pair and write the report files into the run folder."""
    from ultralytics.utils import TQDM

    from ..data.baseline import resolve_model_and_data

    targets = parse_targets(cfg.targets)
    model_text, data = resolve_model_and_data(cfg)
    variants = _variants(model_text)
    image = first_val_image(data)
    plan = TimingPlan(warmup=cfg.warmup, runs=cfg.runs, seconds=cfg.seconds)
    settings = MeasureSettings(imgsz=cfg.imgsz, data=str(Path(data).resolve()), plan=plan, threads=cfg.threads,
                               throughput_batch=cfg.throughput_batch, accuracy=cfg.accuracy, batch=cfg.batch,
                               device=str(cfg.device), workers=cfg.workers, seed=cfg.seed,
                               val_images=len(dataset_split_images(data, "val")))
    signature = {"imgsz": cfg.imgsz, "data": settings.data, **asdict(plan), "threads": cfg.threads,
                 "throughput_batch": cfg.throughput_batch, "accuracy": cfg.accuracy, "batch": cfg.batch,
                 "device": str(cfg.device), "seed": cfg.seed}
    folder, previous = _pick_folder(cfg, signature)
    env = capture_environment()
    run = {"run_id": f"{now().replace(':', '').replace('-', '')[:15]}-{uuid.uuid4().hex[:8]}", "created": now(),
           "command": _command(cfg), "argv": list(sys.argv), "seed": cfg.seed,
           "settings": {**signature, "targets": cfg.targets, "model": model_text, "metric": cfg.metric,
                        "schema_version": SCHEMA_VERSION}, "environment": env}
    kept = {r.key: r for r in (previous.rows if previous else []) if r.ok}
    report = Report(rows=[], runs=[*(previous.runs if previous else []), run], metric=cfg.metric, complete=False)
    # The folder appears with the first saved row: a run stopped before any row leaves no empty folder behind.
    complexity: dict[str, tuple[int, float | None]] = {}
    pairs = [(v, t) for v in variants for t in targets]
    bar = TQDM(pairs, desc="benchmark", unit="variant")
    for variant, target in bar:
        bar.set_description(f"benchmark {variant.label} {target.name}")
        key = row_key(variant, target, cfg.imgsz)
        if key in kept:
            report.rows.append(kept[key])
            continue
        report.rows.append(_one_row(variant, target, settings, run["run_id"], env, image, complexity, cfg.verbose))
        report.save_results(folder)  # each finished row reaches disk at once
    bar.close()
    report.runs = [r for r in report.runs if any(row.run_id == r["run_id"] for row in report.rows)] or [run]
    report.complete = True
    report.save(folder)
    _print_summary(report)
    _fail_when_nothing_measured(report, folder)
    return report


def _fail_when_nothing_measured(report: Report, folder: Path) -> None:
    """Raise when no row was measured: OptimError when the failures come from the input (every failed row raised
    an OptimError) or every target was skipped, BenchmarkFailed otherwise."""
    if any(r.ok for r in report.rows):
        return
    failed = [r for r in report.rows if r.status == "failed"]
    where = f"details in {folder / 'report.md'}"
    if not failed:
        reasons = "; ".join(dict.fromkeys(f"{r.target}: {r.reason}" for r in report.rows))
        raise OptimError(f"no target could be measured on this machine ({reasons}); {where}")
    first = failed[0].error or "unknown error"
    text = f"all {len(failed)} benchmark row(s) failed, e.g. {failed[0].model} on {failed[0].target}: {first}; {where}"
    if all((r.error or "").startswith(("OptimError", "BackendUnavailable")) for r in failed):
        raise OptimError(text)
    raise BenchmarkFailed(text)


def _one_row(variant: Variant, target: Target, s: MeasureSettings, run_id: str, env: dict[str, Any],
             image: Any, complexity: dict[str, tuple[int, float | None]], verbose: bool) -> BenchRow:
    hardware = hardware_name(target.device, target.backend, env)
    ok, why = get_backend(target.backend).supports(target)
    if not ok:
        return base_row(variant, target, s, run_id, hardware, "skipped", reason=why)
    try:
        if variant.sha256 not in complexity:
            from .artifacts import model_complexity

            complexity[variant.sha256] = model_complexity(variant.path, s.imgsz)
        return measure_variant(variant, target, s, run_id, hardware, image, complexity[variant.sha256])
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # one broken variant must not stop the others; its row says what happened
        if verbose:
            import traceback

            traceback.print_exc()
        return failed_row(variant, target, s, run_id, hardware, e)


def _print_summary(report: Report) -> None:
    for group in report.groups():
        best = report.best(device=group)
        fastest = min(report.measured([r for r in report.rows if r.group == group]),
                      key=lambda r: r.latency(report.metric), default=None)
        if fastest is None:
            continue
        line = f"{group}: fastest {fastest.model} {fastest.target} {fastest.latency(report.metric):.2f} ms"
        if best is not None:
            line += f"; most accurate {best.model} {best.target} mAP50-95 {best.map50_95:.4f}"
        print(line)


def benchmark(model: str | Path | list[str | Path] | None = None, data: str | Path | None = None,
              targets: str | list[str] | None = None, **overrides: Any) -> Report:
    """Python API: `yolo_optim.benchmark(model=["a.pt", "b.pt"], data="data.yaml", targets="all", imgsz=640)`.

    Keyword arguments are the `benchmark` keys of cfg/default.yaml; returns the Report (its save_dir is the run
    folder).
    """
    from ..config import make_config

    def joined(v: Any) -> Any:
        return ",".join(str(x) for x in v) if isinstance(v, (list, tuple)) else (str(v) if isinstance(v, Path) else v)

    values = {k: v for k, v in {"model": model, "data": data, "targets": targets}.items() if v is not None}
    return run_benchmark(make_config("benchmark", {k: joined(v) for k, v in {**values, **overrides}.items()}))
