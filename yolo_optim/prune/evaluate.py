"""Accuracy of an in-memory model with Ultralytics' own validator, optionally on a fixed subset of the val split."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from ..core.tasks import (  # the one table of validators and mAP keys per task
    read_map,
    validator_class,
)
from ..errors import OptimError


def val_subset_yaml(data: str | Path, images: int, out_dir: Path, seed: int = 0) -> Path:
    """A copy of data.yaml whose val split is the first `images` val images (a fixed, seeded choice)."""
    import random

    from ultralytics.data.utils import check_det_dataset

    info = check_det_dataset(str(data))
    val = info.get("val")
    paths = _image_files(val)
    if not paths:
        raise OptimError(f"data={data} has no validation images; the pruner needs its val split to measure mAP")
    rng = random.Random(seed)
    chosen = sorted(rng.sample(paths, min(images, len(paths)))) if images and images < len(paths) else paths
    # absolute: Ultralytics joins a relative `val` onto `path`, which would resolve a relative folder twice
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    listing = out_dir / "val_subset.txt"
    listing.write_text("\n".join(str(p) for p in chosen) + "\n")
    keep = {k: info[k] for k in ("names", "nc", "kpt_shape", "flip_idx", "channels") if k in info}
    sub = {**keep, "path": str(out_dir), "train": str(info["train"]), "val": str(listing)}
    target = out_dir / "val_subset.yaml"
    target.write_text(yaml.safe_dump(sub, sort_keys=False))
    return target


def _image_files(val: Any) -> list[str]:
    from ..core.images import split_images

    return [str(p) for p in split_images({"val": val}, "val")]


def val_map(model: nn.Module, data: str | Path, imgsz: int, batch: int = 16, device: str = "cpu",
            workers: int = 0) -> dict[str, float]:
    """Validate a copy of `model` (the validator fuses what it is given); returns Ultralytics' metric dict."""
    from ultralytics.utils import LOGGER

    task = getattr(model, "task", "detect")
    args = {"data": str(data), "imgsz": imgsz, "batch": batch, "device": device, "workers": workers, "plots": False,
            "verbose": False, "save_json": False, "task": task, "split": "val"}
    level = LOGGER.level
    LOGGER.setLevel(40)  # the per-class table is noise here; the caller reports the figure it needs
    # an explicit save_dir: without one the validator makes a new runs/<task>/train-N folder in the cwd per call
    with tempfile.TemporaryDirectory(prefix="yolo-optim-val-") as tmp:
        try:
            validator = validator_class(task)(save_dir=Path(tmp), args=args)
            stats = validator(model=copy.deepcopy(model).float().eval())
        finally:
            LOGGER.setLevel(level)
    return {k: float(v) for k, v in dict(stats).items() if isinstance(v, (int, float))}


def primary_map(stats: dict[str, float], task: str) -> float:
    """mAP50-95 of the task's primary output (boxes, masks or keypoints); a missing key is an error, never 0."""
    return read_map(stats, task, primary=True).map50_95
