"""What every backend shares: staging the source model, Ultralytics' FP32 export, the metadata of an artifact."""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ..errors import OptimError, describe
from ..models import checkpoint_path, file_sha256
from .base import Target

LOG = logging.getLogger("yolo_optim.export")
WORK = ".work"  # scratch folder inside an export's output folder, removed once the artifact is complete


@contextlib.contextmanager
def quiet_ultralytics(verbose: bool = False, name: str = "ultralytics") -> Iterator[None]:
    """A library's info logs (and Ultralytics' progress bars) off for the block, its warnings kept; unless verbose."""
    logger = logging.getLogger(name)
    level = logger.level
    if not verbose:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class StagedSource:
    """A private copy of the source model inside the export folder.

    Ultralytics' exporter writes next to the model it exports; exporting the copy keeps the user's folder untouched.
    """

    def __init__(self, yolo: Any, out_dir: Path, verbose: bool = False) -> None:
        from ultralytics import YOLO

        self.verbose = verbose
        self.work = Path(out_dir) / WORK
        self.work.mkdir(parents=True, exist_ok=True)
        ckpt = checkpoint_path(yolo)
        self.path = self.work / "model.pt"
        if ckpt is not None and ckpt.suffix == ".pt" and ckpt.is_file():
            shutil.copyfile(ckpt, self.path)
            self.source_name, self.sha256 = ckpt.name, file_sha256(ckpt)
        else:  # a model built from YAML or changed in memory: save what is in memory
            yolo.save(str(self.path))
            self.source_name, self.sha256 = str(getattr(yolo, "model_name", "") or "in-memory model"), \
                file_sha256(self.path)
        self.yolo = YOLO(str(self.path))
        self.task = self.yolo.task
        self.names = dict(self.yolo.names)
        head = self.yolo.model.model[-1]
        self.strides = [float(s) for s in getattr(head, "stride", [8, 16, 32])]

    def export(self, fmt: str, imgsz: int, half: bool = False) -> Path:
        """Ultralytics' own export at a static batch-1 shape: the FP32 graph and its metadata."""
        try:  # quiet: the exporter prints usage hints that name our scratch folder; its warnings still show
            with quiet_ultralytics(self.verbose):
                out = self.yolo.export(format=fmt, imgsz=imgsz, batch=1, dynamic=False, device="cpu",
                                       quantize=16 if half else None, simplify=True, verbose=False)
        except Exception as e:  # noqa: BLE001 - Ultralytics raises many types; the user gets one line
            raise OptimError(f"Ultralytics could not export the model to {fmt} ({describe(e)})") from None
        return Path(out)

    def cleanup(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


def runtime_version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def artifact_metadata(target: Target, cfg: Any, source: StagedSource, package: str, **fields: Any) -> dict[str, Any]:
    """The fields every artifact records under META_KEY; backends add theirs (inference precision, calibration...)."""
    from .. import __version__

    return {
        "backend": target.backend,
        "device": target.device,
        "precision": target.precision,
        "target": target.name,
        "imgsz": int(cfg.imgsz),
        "task": source.task,
        "names": source.names,
        "source_model": source.source_name,
        "source_sha256": source.sha256,
        "runtime": package,
        "runtime_version": runtime_version(package),
        "ultralytics_version": runtime_version("ultralytics"),
        "yolo_optim_version": __version__,
        **fields,
    }


def place(src: Path, dest: Path) -> Path:
    """Move a produced file or folder to its final name inside the output folder."""
    if dest.exists():
        shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
    shutil.move(str(src), str(dest))
    return dest


def artifact_stem(source: StagedSource, target: Target) -> str:
    stem = Path(source.source_name).stem or "model"
    return f"{stem}_{target.backend}_{target.precision}"
