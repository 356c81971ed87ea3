"""Reading source checkpoints and writing pruned ones in Ultralytics' own checkpoint format.

A pruned checkpoint is the dict Ultralytics writes (`model` = the pickled module, `train_args`, `date`, `version`)
plus a `prune` entry of plain Python values (method, ratios, per-layer widths, sizes, the source's sha256). It
references only torch and ultralytics classes, so `YOLO("pruned.pt")` works without this package, also under
Ultralytics' restricted loader (ULTRALYTICS_SAFE_LOAD=1).
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import OptimError
from ..models import file_sha256
from ..paths import as_new_file


def load_source(model: Any) -> tuple[nn.Module, dict[str, Any], str, str]:
    """(module, train_args, sha256, description) of a .pt checkpoint, a model YAML, or a YOLO object.

    The file is only read; the module returned is the one Ultralytics loaded (callers copy before changing it).
    """
    from ..models import load_yolo

    yolo = load_yolo(model)
    module = yolo.model
    if not isinstance(module, nn.Module):
        raise OptimError(f"model={model} is not a PyTorch model (an exported artifact?); prune the .pt checkpoint")
    ckpt_path = getattr(yolo, "ckpt_path", None)
    if ckpt_path:
        ckpt = getattr(yolo, "ckpt", None) or {}
        if not ckpt.get("train_args"):
            raise OptimError(f"model={ckpt_path} has no training arguments (train_args); it is not an Ultralytics "
                             "training checkpoint -- train or fine-tune it with Ultralytics first")
        return module, dict(ckpt["train_args"]), file_sha256(ckpt_path), str(ckpt_path)
    text = str(getattr(yolo, "cfg", None) or getattr(module, "yaml_file", None) or model)
    p = Path(text)
    sha = file_sha256(p) if p.is_file() else hashlib.sha256(text.encode()).hexdigest()
    return module, {}, sha, text


def write_checkpoint(module: nn.Module, path: Path, train_args: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Save `module` as an Ultralytics checkpoint (fp16, as Ultralytics stores them) through a temp file."""
    from ultralytics import __version__

    model = copy.deepcopy(module).half()
    model.criterion = None
    for p in model.parameters():
        p.requires_grad_(False)
    if isinstance(getattr(model, "yaml", None), dict):
        model.yaml = {**model.yaml, "pruned": _plain(_summary(meta))}
    ckpt = {
        "epoch": -1,
        "best_fitness": None,
        "model": model,
        "ema": None,
        "updates": None,
        "optimizer": None,
        "train_args": _plain(train_args),
        "train_metrics": _plain(meta.get("metrics", {})),
        "date": datetime.now().astimezone().isoformat(),
        "version": __version__,
        "license": "AGPL-3.0 (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
        "prune": _plain(meta),
    }
    return save_atomic(ckpt, path)


def save_atomic(obj: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(obj, buf)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
        as_new_file(tmp)  # mkstemp makes it private (0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _summary(meta: dict[str, Any]) -> dict[str, Any]:
    keys = ("kind", "method", "allocation", "target", "ratio", "removed", "source_sha256", "yolo_optim")
    return {k: meta[k] for k in keys if k in meta}


def _plain(obj: Any) -> Any:
    """Only plain Python values in checkpoints: Ultralytics' restricted loader accepts nothing else."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    return str(obj)


def read_prune_metadata(path: str | Path) -> dict[str, Any]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)  # a checkpoint the user points us at
    return dict(ckpt.get("prune") or {})
