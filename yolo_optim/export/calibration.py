"""Calibration images for INT8: a seeded sample of the training split, letterboxed like Ultralytics' predictor.

The training split, never the validation split: the validation images measure the accuracy of the quantized model,
so calibrating on them would flatter it.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.images import letterbox, read_image, split_images
from ..core.options import ExportOptions
from ..errors import OptimError

LOG = logging.getLogger("yolo_optim.export")


@dataclass(frozen=True)
class CalibrationSet:
    """The images an INT8 export is calibrated on; `fingerprint` keys calibration caches."""

    images: tuple[Path, ...]  # readable images, in sampling order
    imgsz: int  # square letterbox size
    seed: int  # sampling seed
    split_size: int  # images in the split sampled from
    skipped: tuple[str, ...] = field(default=())  # unreadable images left out
    fingerprint: str = ""  # sha256 over the chosen image names and contents

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[np.ndarray]:  # re-iterable: quantizers walk the set more than once
        return self.arrays()

    def arrays(self) -> Iterator[np.ndarray]:
        """Each image as a (1, 3, imgsz, imgsz) float32 array in [0, 1], RGB, letterboxed."""
        for p in self.images:
            yield letterbox_image(p, self.imgsz)

    def info(self) -> dict[str, Any]:
        """What the artifact metadata records about its calibration."""
        return {"split": "train", "images": len(self.images), "split_images": self.split_size, "seed": self.seed,
                "imgsz": self.imgsz, "skipped": len(self.skipped), "fingerprint": self.fingerprint}


def dataset_info(data: str | Path | None) -> dict[str, Any]:
    """Ultralytics' parsed data.yaml (absolute train/val paths), with one-line errors and never a download."""
    if data is None or str(data).strip() == "":
        raise OptimError("INT8 export needs data= (a dataset YAML) for calibration and the accuracy check; "
                         "pass data=path/to/data.yaml")
    from ..data.check import check_dataset

    return check_dataset(data, splits=("train", "val"))


def calibration_for(options: ExportOptions) -> CalibrationSet:
    """The calibration set of an export: the one the caller prepared, else sampled from options.data now."""
    if options.calibration is not None:
        return options.calibration
    return calibration_set(options.data, int(options.imgsz), int(options.calib_images), int(options.seed))


def calibration_set(data: str | Path, imgsz: int, n: int = 300, seed: int = 0) -> CalibrationSet:
    """Sample `n` training images (all if fewer) with a fixed seed, dropping unreadable ones.

    Raises a one-line OptimError for an empty split or one without a single readable image.
    """
    info = dataset_info(data)
    if not info.get("train"):
        raise OptimError(f"data={data} has no 'train:' split; INT8 calibration uses the training images")
    files = split_images(info, "train")
    if not files:
        raise OptimError(f"the training split of data={data} holds no images; INT8 calibration needs some "
                         f"(add images or use precision=fp32/fp16/int8w)")
    chosen = files if len(files) <= n else random.Random(seed).sample(files, n)
    good, bad = [], []
    digest = hashlib.sha256()
    for p in chosen:
        blob = _read_bytes(p)
        if blob is None or read_image(p) is None:
            bad.append(str(p))
            continue
        good.append(p)
        digest.update(p.name.encode())
        digest.update(hashlib.sha256(blob).digest())
    if not good:
        raise OptimError(f"none of the {len(chosen)} sampled training images of data={data} can be read "
                         f"(corrupt or empty files, e.g. {bad[0]}); fix the dataset")
    if bad:
        LOG.warning("calibration: skipped %d unreadable image(s), e.g. %s", len(bad), bad[0])
    return CalibrationSet(tuple(good), imgsz, seed, len(files), tuple(bad), digest.hexdigest())


def letterbox_image(path: Path, imgsz: int) -> np.ndarray:
    """Read an image and preprocess it exactly as Ultralytics' predictor does for a square static input."""
    img = read_image(path)
    if img is None:
        raise OptimError(f"calibration image {path} cannot be read; fix or remove it")
    return letterbox(img, imgsz)


def _read_bytes(path: Path) -> bytes | None:
    try:
        blob = Path(path).read_bytes()
    except OSError:
        return None
    return blob or None


def calibration_dataset_yaml(images: list[Path], data: str | Path, folder: str | Path) -> Path:
    """A dataset YAML whose train split is exactly `images` (a list file), for a tool that calibrates INT8 on a
    dataset's split, such as Ultralytics' own `export(int8=True, data=..., split="train")`: both routes then see the
    same images. Paths are absolute (Ultralytics resolves a relative one against its datasets folder); `val` is
    the dataset's, as Ultralytics parsed it."""
    import json

    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    listing = folder / "calib.txt"
    listing.write_text("\n".join(str(Path(p).resolve()) for p in images) + "\n", encoding="utf-8")
    info = dataset_info(data)
    out = folder / "calib.yaml"  # JSON is YAML; Ultralytics reads it with its YAML loader
    out.write_text(json.dumps({"path": str(folder), "train": str(listing), "val": info["val"],
                               "names": {int(k): v for k, v in info["names"].items()}}), encoding="utf-8")
    return out
