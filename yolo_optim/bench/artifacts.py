"""Exports for the benchmark, cached: the same source, target, image size and settings are exported once.

The cache key is the source model's content hash, the target, the image size and every setting that changes the
artifact (for INT8: the calibration images' own content fingerprint, their number and seed, so editing an image
re-exports; the runtime's version; this package's version). An export is written into a temporary folder and
renamed into the cache only when complete, so a killed export is never reused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ..core.options import ExportOptions
from ..errors import OptimError
from ..export.base import Target, get_backend
from ..paths import atomic_dir, cache_dir, file_lock

QUANTIZED = ("int8", "int8w")
# options that never change an artifact's content
NOT_IN_KEY = ("calibration", "device", "verbose", "data")


@dataclass(frozen=True)
class ExportSettings:
    """What the benchmark passes to a backend's export, beside the target."""

    imgsz: int  # square input size
    data: str  # dataset YAML (calibration images for INT8)
    device: str  # torch device used while exporting
    seed: int  # calibration sampling seed
    workers: int  # dataloader workers
    hardware: str | None = None  # the device's model: TensorRT engines only run on the GPU model they were built on
    calib_images: int = 300  # INT8 calibration images


def export_options(target: Target, s: ExportSettings) -> ExportOptions:
    """The backend options of a benchmark export; INT8 gets its calibration set sampled here (once per key)."""
    options = ExportOptions(imgsz=s.imgsz, data=s.data, calib_images=s.calib_images, seed=s.seed, device=s.device)
    if target.precision == "int8":
        from ..export.calibration import calibration_set

        options = replace(options, calibration=calibration_set(s.data, s.imgsz, s.calib_images, s.seed))
    return options


def artifact_key(source_sha: str, target: Target, options: ExportOptions,
                 hardware: str | None = None) -> dict[str, Any]:
    """Everything an artifact depends on; its hash names the cache folder."""
    from .. import __version__

    try:
        runtime = version(get_backend(target.backend).package or target.backend)
    except PackageNotFoundError:
        runtime = None
    key: dict[str, Any] = {"source_sha256": source_sha, "target": target.name, "imgsz": options.imgsz,
                           "runtime_version": runtime, "yolo_optim": __version__}
    if target.backend == "tensorrt":
        key["hardware"] = hardware
    if target.precision in QUANTIZED:  # calibration and quantization settings
        key["quantization_scheme"] = get_backend(target.backend).quantization_scheme
        key.update({k: v for k, v in asdict(options).items() if k not in NOT_IN_KEY and k not in key})
    if options.calibration is not None:
        key["calibration_fingerprint"] = options.calibration.fingerprint  # the images' names and contents
    return key


def cached_export(source: Path, source_sha: str, target: Target, s: ExportSettings,
                  root: Path | None = None) -> tuple[Path, bool]:
    """The artifact of `source` for `target`: (path, True) from the cache, or exported now (path, False)."""
    from ..models import load_yolo

    options = export_options(target, s)
    key = artifact_key(source_sha, target, options, s.hardware)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    name = f"{source.stem}-{target.runtime}-{target.precision}-{s.imgsz}-{digest}"
    folder = (root or cache_dir() / "artifacts") / name
    record = folder / "artifact.json"
    # two benchmarks on one machine export an artifact once; the second says whose export it waits for
    with file_lock(folder.with_name(f".{name}.lock"), what=f"the {target.name} export of {source.name}"):
        if record.is_file():
            path = folder / json.loads(record.read_text(encoding="utf-8"))["artifact"]
            if path.exists():
                return path, True
        for stale in folder.parent.glob(f".{name}.tmp-*"):  # left by a killed export of this key; we hold its lock
            shutil.rmtree(stale, ignore_errors=True)
        with atomic_dir(folder, replace=True) as tmp:  # a cache entry of ours: swapped whole
            produced = Path(get_backend(target.backend).export(load_yolo(str(source)), target, options, tmp))
            try:
                rel = produced.resolve().relative_to(tmp.resolve())
            except ValueError:
                raise OptimError(f"the {target.backend} export wrote {produced} outside its output folder") from None
            (tmp / "artifact.json").write_text(json.dumps({"artifact": str(rel), "key": key}, indent=2),
                                               encoding="utf-8")
    return folder / rel, False


def size_on_disk_mb(path: str | Path) -> float:
    """Size of an artifact (a folder's files summed; an ONNX file with its external-data file) in MiB."""
    p = Path(path)
    if p.is_dir():
        files = [q for q in p.rglob("*") if q.is_file()]
    else:
        files = [p] + [q for q in (p.with_name(p.name + ".data"), p.with_suffix(".bin")) if q.is_file() and q != p]
    return sum(q.stat().st_size for q in files) / 2**20


def model_complexity(source: str | Path, imgsz: int) -> tuple[int, float | None]:
    """Parameters and GFLOPs (at imgsz) of a PyTorch YOLO checkpoint; GFLOPs None when they cannot be counted."""
    from ultralytics.utils.torch_utils import get_flops, get_num_params

    from ..models import load_yolo

    model = load_yolo(str(source)).model
    flops = get_flops(model, imgsz)
    return int(get_num_params(model)), (float(flops) if flops else None)
