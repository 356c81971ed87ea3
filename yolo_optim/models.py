"""Loading user models safely: clear errors for bad paths, no hub downloads, the input file never touched."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import OptimError, describe

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
            check_model_file(text)
            try:
                yolo = YOLO(text)
            except Exception as e:  # Ultralytics raises many types for a file that is not a checkpoint
                raise OptimError(f"model={text} is not a YOLO checkpoint Ultralytics can load ({describe(e)}); "
                                 "give a .pt written by Ultralytics or a model YAML") from None
    if yolo.task not in tasks:
        raise OptimError(f"model task '{yolo.task}' is not supported here; supported: {', '.join(tasks)}")
    return yolo


def check_model_file(model: Any) -> None:
    """Cheap checks of a model= value (a path, or a comma list of paths) before any work or any file is written.

    A model YAML that is not a file is left to Ultralytics, which builds its packaged ones (yolo11n.yaml).
    """
    for text in (t.strip() for t in str(model).split(",") if t.strip()):
        p = Path(text)
        if p.suffix in (".yaml", ".yml") and not p.exists():
            continue
        if not p.exists():
            raise OptimError(f"model={text} does not exist; give the path of a YOLO .pt checkpoint or model YAML")
        if p.is_dir():
            raise OptimError(f"model={text} is a folder; give a YOLO .pt checkpoint file or a model YAML")
        if p.suffix not in (".pt", ".yaml", ".yml"):  # Ultralytics would take it for an exported model it cannot train
            raise OptimError(f"model={text} is not a .pt checkpoint or a model YAML; give the PyTorch weights (.pt) "
                             "Ultralytics trained")
        if not os.access(p, os.R_OK):
            raise OptimError(f"model={text} is not readable; check its permissions")


def _yolo_from_packaged_yaml(name: str) -> "YOLO":
    from ultralytics import YOLO

    try:
        return YOLO(name)
    except FileNotFoundError:
        raise OptimError(f"model={name} is neither a file nor an Ultralytics model YAML (e.g. yolo11n.yaml)") from None
    except Exception as e:
        if "rtdetr" in Path(name).name.lower():  # Ultralytics builds RT-DETR with its own class, not with YOLO()
            raise OptimError(f"model={name} is an RT-DETR model; yolo-optim works on YOLO models (detect, segment, "
                             "pose, obb), e.g. model=yolo11n.yaml") from None
        raise OptimError(f"model={name} could not be built ({describe(e)}); check the model YAML") from None


def checkpoint_path(yolo: "YOLO") -> Path | None:
    """The file a YOLO object was loaded from, if it came from a checkpoint."""
    ckpt = getattr(yolo, "ckpt_path", None)
    return Path(ckpt) if ckpt else None


_CUDA = re.compile(r"^(cuda)?(:?\d+(,\d+)*)?$")


def check_device(device: Any, available: bool = True) -> str:
    """Return `device` as a string, or raise OptimError when it is not a torch device (or, with `available`, not here).

    Accepts Ultralytics' forms: cpu, mps, cuda, 0, 0,1, cuda:0, -1 (an idle GPU), npu:0, xpu:0. Torch is imported only
    for a device other than the CPU. `available=False` checks the spelling only (a Ray cluster may have GPUs that
    this machine lacks).
    """
    text = "" if device is None else str(device).strip().lower().replace(" ", "")
    if text in ("", "cpu"):
        return text or "cpu"
    hint = "use device=cpu, 0 (the first CUDA GPU), 0,1, cuda:0 or mps"
    if text in ("-1", "mps", "mps:0") or _CUDA.match(text):
        kind = "mps" if text.startswith("mps") else "cuda"
    elif re.match(r"^(npu|xpu)(:\d+(,\d+)*)?$", text):
        kind = text[:3]
    else:
        raise OptimError(f"device={device} is not a torch device; {hint}")
    if not available:
        return text
    import torch

    if kind == "mps":
        if not torch.backends.mps.is_available():
            raise OptimError(f"device={device} asks for Apple MPS, which this machine does not have; use device=cpu")
        return text
    if kind in ("npu", "xpu"):
        backend = getattr(torch, kind, None)
        if backend is None or not backend.is_available():
            raise OptimError(f"device={device} asks for a {kind.upper()}, which torch does not see here; {hint}")
        return text
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    indices = [int(x) for x in re.findall(r"\d+", text.replace("-1", ""))] or [0]
    if count == 0:
        raise OptimError(f"device={device} asks for a CUDA GPU but torch sees none here "
                         f"(torch {torch.__version__}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}); "
                         "use device=cpu")
    if max(indices) >= count:
        raise OptimError(f"device={device} asks for CUDA GPU {max(indices)} but torch sees {count} "
                         f"(0 to {count - 1}); use one of those or device=cpu")
    return text
