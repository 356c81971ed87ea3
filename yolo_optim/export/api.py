"""`yolo-optim export` and `yolo_optim.export.export()`: validate inputs, export, guard accuracy, commit atomically.

Everything is written into a temporary sibling of the run folder (core.scratch: a later run removes one a kill
left behind) and moved into place only once the artifact is complete and has passed the guard, so a failure or a
kill leaves nothing half-written. This is the edge where defaults are resolved (the demo baseline and its dataset);
backends get an `ExportOptions` with everything already decided.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.options import ExportOptions
from ..core.scratch import scratch_dir
from ..errors import OptimError
from ..paths import current_umask, run_dir, write_json_atomic
from .artifact import LOG
from .base import META_KEY, Target, get_backend, read_artifact_metadata, write_artifact_metadata
from .calibration import calibration_set, dataset_info

if TYPE_CHECKING:
    from .validate import MapResult

QUANTIZED = ("int8", "int8w")
EXPORT_TASKS = ("detect", "segment", "pose", "obb")


@dataclass(frozen=True)
class ExportResult:
    """One finished export."""

    path: Path  # what YOLO(path) loads: .onnx file, OpenVINO folder or .engine file
    target: Target  # backend, device and precision
    metadata: dict[str, Any]  # read_artifact_metadata(path)
    save_dir: Path  # the run folder holding it


def export(model: Any, target: str | Target = "openvino-cpu", precision: str | None = None, data: str | None = None,
           imgsz: int | None = None, reference: MapResult | None = None, **kwargs: Any) -> ExportResult:
    """Export `model` (a .pt path or a YOLO object) to `target`; see cfg/default.yaml `export:` for the keys.

    `reference`: the FP32 source's mAP when already known (e.g. from a benchmark), so the accuracy guard does not
    validate the source again.

    >>> export("best.pt", "openvino-cpu:int8", data="data.yaml", imgsz=640).path
    """
    from ..config import make_config

    yolo = None
    if model is not None and not isinstance(model, (str, Path)):
        yolo, ckpt = model, getattr(model, "ckpt_path", None)
        model = str(ckpt) if ckpt else "in-memory"
    if isinstance(target, Target):
        target, precision = target.runtime, precision or target.precision
    overrides = {k: v for k, v in dict(model=None if model is None else str(model), target=target,
                                       precision=precision, data=None if data is None else str(data),
                                       imgsz=imgsz, **kwargs).items() if v is not None}
    return run_export(make_config("export", overrides), yolo=yolo, reference=reference)


def resolve_target(cfg: Any) -> Target:
    """The target of a config: `target=openvino-cpu precision=int8` or `target=openvino-cpu:int8`."""
    text = str(cfg.target)
    if ":" in text:
        given = text.partition(":")[2]
        if cfg.precision not in ("fp32", given):  # fp32 is the default: the target's own precision wins over it
            raise OptimError(f"target={text} says precision {given} but precision={cfg.precision}; give it once")
        return Target.parse(text)
    return Target.parse(text, precision=cfg.precision)


def run_export(cfg: Any, yolo: Any = None, reference: MapResult | None = None) -> ExportResult:
    """CLI entry: check everything cheap first, then export into a temporary folder and commit it."""
    from ..models import load_yolo

    target = resolve_target(cfg)
    backend = get_backend(target.backend)
    backend.check(target)
    if cfg.accuracy_control and (target.backend, target.precision) != ("openvino", "int8"):
        raise OptimError(f"accuracy_control=True is an OpenVINO INT8 option (NNCF); {target.name} cannot use it")
    model, data = _model_and_data(cfg, target, yolo)
    if yolo is None:
        yolo = load_yolo(model, tasks=EXPORT_TASKS)
    elif yolo.task not in EXPORT_TASKS:
        raise OptimError(f"model task '{yolo.task}' cannot be exported here; supported: {', '.join(EXPORT_TASKS)}")
    guarded = target.precision in QUANTIZED and cfg.guard != "off" and data is not None
    if data is not None and (target.precision == "int8" or guarded):
        dataset_info(data)
    calib = calibration_set(data, cfg.imgsz, cfg.calib_images, cfg.seed) if target.precision == "int8" else None
    save_dir = _output_dir(cfg)
    options = ExportOptions.from_config(cfg, data=data, calibration=calib)

    t0 = time.perf_counter()
    tmp = scratch_dir(save_dir.parent, save_dir.name)
    try:
        artifact = Path(backend.export(yolo, target, options, tmp))
        guard = None
        if guarded:
            tmp, artifact, guard = _guard(backend, yolo, target, cfg, options, tmp, artifact, model, reference)
        elif target.precision in QUANTIZED:
            _add_metadata(artifact, accuracy_guard={"skipped": "guard=off" if cfg.guard == "off" else "no data="})
        meta = read_artifact_metadata(artifact)
        write_json_atomic(tmp / "export.json", {"artifact": artifact.name, "target": target.name,
                                                "seconds": round(time.perf_counter() - t0, 1),
                                                "accuracy_guard": guard.to_dict() if guard else None,
                                                "config": cfg.to_dict(), "metadata": meta})
        final = _commit(tmp, save_dir) / artifact.name
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"Exported {target.name}: {final}")
    if guard is not None:
        print(f"Accuracy guard ({guard.metric}, val split): FP32 {guard.reference:.4f}, {target.precision} "
              f"{guard.quantized:.4f}, drop {guard.drop:+.4f} (max_drop {guard.max_drop}): "
              f"{'passed' if guard.passed else 'FAILED'}")
    return ExportResult(final, target, read_artifact_metadata(final), save_dir)


def _model_and_data(cfg: Any, target: Target, yolo: Any) -> tuple[str, str | None]:
    if cfg.model is None and yolo is None:
        if cfg.data is not None:
            raise OptimError("data= is set but model= is empty; pass model=your_weights.pt too")
        from ..data.baseline import resolve_model_and_data

        return resolve_model_and_data(cfg)  # the demo baseline with its own dataset
    if cfg.data is None and target.precision == "int8":
        raise OptimError("precision=int8 needs data= (a dataset YAML): its training images calibrate the "
                         "quantization and its validation images check the accuracy; or use precision=int8w")
    if cfg.data is not None:  # checked even where this precision does not read it: a wrong data= is not ignored
        from ..data.check import check_dataset

        check_dataset(cfg.data)
    return str(cfg.model), cfg.data


def _output_dir(cfg: Any) -> Path:
    """The run folder; an explicitly named one that exists is an error unless exist_ok (defaults are numbered)."""
    from ..config import defaults

    base = Path(cfg.project) if cfg.project else Path("runs") / "optim" / "export"
    named = base / cfg.name
    if cfg.name != defaults("export")["name"] and named.exists() and not cfg.exist_ok:
        raise OptimError(f"the output folder {named} already exists; pass exist_ok=True to add to it or choose "
                         f"another name=")
    if named.exists() and not named.is_dir():
        raise OptimError(f"{named} exists and is not a folder; choose another name=")
    return run_dir("export", cfg.project, cfg.name, cfg.exist_ok)


def _commit(tmp: Path, save_dir: Path) -> Path:
    """Rename the finished temporary folder into place, or move its entries into an existing run folder."""
    shutil.rmtree(tmp / ".work", ignore_errors=True)
    tmp.chmod(0o777 & ~current_umask())  # mkdtemp made it private; a run folder is as readable as any other
    if not save_dir.exists():
        tmp.rename(save_dir)
        return save_dir
    for item in tmp.iterdir():
        dest = save_dir / item.name
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            dest.rename(old)
            item.rename(dest)
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        else:
            item.rename(dest)
    tmp.rmdir()
    return save_dir


def _add_metadata(artifact: Path, **fields: Any) -> None:
    """Merge `fields` into the artifact's own metadata (under META_KEY)."""
    write_artifact_metadata(artifact, {**_our_metadata(artifact), **fields})


def _our_metadata(artifact: Path) -> dict[str, Any]:
    import json

    from .base import _read_raw_metadata

    ours = _read_raw_metadata(artifact).get(META_KEY) or {}
    return json.loads(ours) if isinstance(ours, str) else dict(ours)


def _guard(backend: Any, yolo: Any, target: Target, cfg: Any, options: ExportOptions, tmp: Path, artifact: Path,
           model: str, ref: MapResult | None = None) -> tuple[Path, Path, Any]:
    """Validate the artifact; under guard=strict retry the backend's fallbacks until one passes, else fail."""
    from .guard import check_artifact, reference_map

    data = options.data
    if ref is None:
        source = model if Path(model).is_file() else tmp / "reference.pt"
        if not Path(source).is_file():
            yolo.save(str(source))
        ref = reference_map(source, data, cfg.imgsz, cfg.batch, cfg.device, cfg.workers)
        Path(tmp / "reference.pt").unlink(missing_ok=True)
    result = check_artifact(artifact, ref, data, cfg.max_drop, cfg.guard, workers=cfg.workers)
    if not result.passed and cfg.guard == "strict" and target.precision == "int8":
        attempts = [{"settings": {"float_scope": options.float_scope}, "quantized": result.quantized}]
        for change in [c for c in backend.fallbacks if any(getattr(options, k) != v for k, v in c.items())]:
            LOG.warning("accuracy guard: %s; retrying with %s", result.message(target.name), change)
            alt = scratch_dir(tmp.parent, f"{tmp.name.split('.tmp-')[0].lstrip('.')}-fallback")
            try:
                alt_artifact = Path(backend.export(yolo, target, replace(options, **change), alt))
                result = check_artifact(alt_artifact, ref, data, cfg.max_drop, cfg.guard, attempts, cfg.workers)
            except BaseException:
                shutil.rmtree(alt, ignore_errors=True)
                raise
            attempts.append({"settings": change, "quantized": result.quantized})
            if result.passed:
                shutil.rmtree(tmp, ignore_errors=True)
                tmp, artifact = alt, alt_artifact
                _add_metadata(artifact, fallback=change)
                break
            shutil.rmtree(alt, ignore_errors=True)
    if not result.passed and cfg.guard == "strict":
        tried = f" after trying {len(backend.fallbacks)} fallback(s)" if target.precision == "int8" \
            and backend.fallbacks else ""
        raise OptimError(f"accuracy guard: {result.message(target.name)}{tried}; nothing was written. Raise "
                         f"max_drop=, calibrate on more images (calib_images=) or use a float precision")
    _add_metadata(artifact, accuracy_guard=result.to_dict())
    return tmp, artifact, result
