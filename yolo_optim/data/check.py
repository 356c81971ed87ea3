"""Validate a user's data.yaml before Ultralytics sees it, so a bad dataset is one clear line, never a download."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..config import load_yaml_file
from ..errors import OptimError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def check_dataset(data: str | Path, splits: tuple[str, ...] = ("train", "val")) -> dict[str, Any]:
    """Return Ultralytics' resolved dataset dict, or raise OptimError naming what is wrong.

    Ultralytics' own check runs with autodownload off: a dataset with a `download:` script must already be on disk.
    """
    if data is None or str(data).strip() == "":
        raise OptimError("data is empty; pass data=path/to/data.yaml")
    path = Path(str(data))
    if path.suffix not in (".yaml", ".yml"):
        raise OptimError(f"data={data} is not a dataset YAML; pass data=path/to/data.yaml")
    raw = load_yaml_file(path, what="data")
    if "names" not in raw and "nc" not in raw:
        raise OptimError(f"data={data} has neither 'names' nor 'nc'; list the class names under names:")
    for split in splits:
        if not raw.get(split):
            raise OptimError(f"data={data} has no '{split}:' entry; add the {split} image folder")
    from ultralytics.data.utils import check_det_dataset

    try:
        info = check_det_dataset(str(path), autodownload=False)
    except Exception as e:  # Ultralytics raises FileNotFoundError/SyntaxError/TypeError with emoji-laden text
        first = re.sub(r"[^\x20-\x7e]", "", str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        raise OptimError(f"data={data} is not usable: {first.strip()}") from None
    for split in splits:
        folders = info[split] if isinstance(info[split], list) else [info[split]]
        for folder in map(Path, folders):
            if not folder.exists():
                raise OptimError(f"data={data}: the {split} path {folder} does not exist; fix '{split}:' or 'path:'")
            if folder.is_dir() and not any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.rglob("*")):
                raise OptimError(f"data={data}: the {split} folder {folder} holds no images")
    return info
