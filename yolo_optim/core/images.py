"""A dataset split's images, and the letterbox every model input goes through (Ultralytics' predictor's own)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OptimError

# Ultralytics' IMG_FORMATS (ultralytics.data.utils): the files its dataloaders read as images of a split.
IMAGE_SUFFIXES = frozenset({"avif", "bmp", "dng", "heic", "heif", "jp2", "jpeg", "jpg", "mpo", "png", "tif", "tiff",
                            "webp"})


def is_image(path: str | Path) -> bool:
    return str(path).rpartition(".")[-1].lower() in IMAGE_SUFFIXES


def split_images(data_info: dict[str, Any], split: str) -> list[Path]:
    """Image files of a split of a parsed data.yaml (a folder, a .txt list, or a list of either), sorted.

    Folders are searched recursively, list files are read as Ultralytics reads them ('./x.jpg' relative to the
    list's folder, other relative paths as given).
    """
    entry = data_info.get(split)
    if not entry:
        raise OptimError(f"the dataset has no '{split}:' split; add it to the data YAML")
    files: list[str] = []
    for item in entry if isinstance(entry, list) else [entry]:
        q = Path(str(item))
        if q.is_dir():
            files += [str(f) for f in q.rglob("*.*")]
        elif q.is_file():
            base = str(q.parent) + os.sep
            lines = q.read_text(encoding="utf-8-sig").strip().splitlines()
            files += [x.strip().replace("./", base, 1) if x.strip().startswith("./") else x.strip()
                      for x in lines if x.strip()]
        else:
            raise OptimError(f"the dataset's {split} images at {q} do not exist; fix '{split}:' in the data YAML")
    return sorted(Path(f) for f in files if is_image(f))


def dataset_split_images(data: str | Path, split: str) -> list[Path]:
    """`split_images` of a data.yaml path (checked with one-line errors, never downloaded)."""
    from ..data.check import check_dataset

    return split_images(check_dataset(data, splits=(split,)), split)


def read_image(path: str | Path) -> np.ndarray | None:
    """BGR HWC uint8 of an image file, or None when it is missing, empty or not decodable."""
    import cv2

    try:
        blob = Path(path).read_bytes()
    except OSError:
        return None
    if not blob:
        return None
    img = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
    return img if img is not None and img.size else None


def letterbox(img: np.ndarray, imgsz: int | tuple[int, int]) -> np.ndarray:
    """BGR HWC uint8 -> letterboxed RGB NCHW float32 in [0, 1], as Ultralytics' predictor prepares a frame for a
    fixed input shape (auto=False: padded to exactly imgsz)."""
    from ultralytics.data.augment import LetterBox

    shape = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
    boxed = LetterBox(new_shape=shape, auto=False, stride=32)(image=img)
    x = boxed[..., ::-1].transpose(2, 0, 1)[None]  # BGR->RGB, HWC->CHW, add batch
    return np.ascontiguousarray(x, dtype=np.float32) / 255.0
