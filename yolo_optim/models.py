"""Loading user models safely: clear errors for bad paths, no hub downloads, the input file never touched."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import OptimError

if TYPE_CHECKING:
    from ultralytics import YOLO

SUPPORTED_TASKS = ("detect", "segment", "pose", "obb")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Content hash of a file or folder (an OpenVINO IR folder hashes its files in name order)."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    for q in files:
        with open(q, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    return h.hexdigest()


def load_yolo(model: Any, tasks: tuple[str, ...] = SUPPORTED_TASKS) -> "YOLO":
    """Return a YOLO object for a YOLO instance, a .pt checkpoint path, or an Ultralytics model YAML.

    Paths are checked before Ultralytics sees them: for a missing `.pt` it would try to download it from the hub.
    """
    from ultralytics import YOLO

    if isinstance(model, YOLO):
        yolo = model
    else:
        if model is None or str(model).strip() == "":
            raise OptimError("model is empty; pass model=path/to/weights.pt or a model YAML such as yolo11n.yaml")
        text = str(model)
        p = Path(text)
        if p.suffix in (".yaml", ".yml") and not p.exists():
            yolo = _yolo_from_packaged_yaml(text)
        else:
            if not p.exists():
                raise OptimError(f"model={text} does not exist; give the path of a YOLO .pt checkpoint or model YAML")
            if p.is_file() and not os.access(p, os.R_OK):
                raise OptimError(f"model={text} is not readable; check its permissions")
            try:
                yolo = YOLO(text)
            except Exception as e:  # Ultralytics raises many types for a file that is not a checkpoint
                raise OptimError(f"model={text} is not a YOLO checkpoint Ultralytics can load "
                                 f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})") from None
    if yolo.task not in tasks:
        raise OptimError(f"model task '{yolo.task}' is not supported here; supported: {', '.join(tasks)}")
    return yolo


def _yolo_from_packaged_yaml(name: str) -> "YOLO":
    from ultralytics import YOLO

    try:
        return YOLO(name)
    except FileNotFoundError:
        raise OptimError(f"model={name} is neither a file nor an Ultralytics model YAML (e.g. yolo11n.yaml)") from None
    except Exception as e:
        raise OptimError(f"model={name} could not be built ({type(e).__name__}: {e})") from None


def checkpoint_path(yolo: "YOLO") -> Path | None:
    """The file a YOLO object was loaded from, if it came from a checkpoint."""
    ckpt = getattr(yolo, "ckpt_path", None)
    return Path(ckpt) if ckpt else None
