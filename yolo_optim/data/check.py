"""Validate a user's data.yaml before Ultralytics sees it, so a bad dataset is one clear line, never a download.

Besides the YAML, every image is checked to be an image (by its first bytes) and every label line to be a valid YOLO
row, up front and fast: Ultralytics only warns about such files and drops them, so a bad label otherwise surfaces as
a failed or silently wrong run long after it started.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..config import load_yaml_file
from ..errors import OptimError, one_line

LOG = logging.getLogger(__name__)

TOLERANCE = 0.01  # Ultralytics accepts coordinates up to 1% outside 0..1 (rounding in label tools)


def check_dataset(data: str | Path, splits: tuple[str, ...] = ("train", "val")) -> dict[str, Any]:
    """Return Ultralytics' resolved dataset dict, or raise OptimError naming what is wrong (file and line).

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
        raise OptimError(f"data={data} is not usable: {one_line(e, 200) or type(e).__name__}") from None
    for split in splits:
        images = split_images(info, data, split)
        check_images(images, data)
        check_labels(images, info, data, split)
    return info


# label rows a segment or obb model trains on; Ultralytics finds a dataset without them only when training starts
TASK_ROWS = {"segment": ("polygon rows (`class x1 y1 x2 y2 x3 y3 ...`)", lambda n: n >= 7),
             "obb": ("oriented boxes (`class x1 y1 x2 y2 x3 y3 x4 y4`)", lambda n: n == 9)}


def check_task(task: str, info: dict[str, Any] | None, data: str | Path | None) -> None:
    """The labels a model of `task` needs are in the dataset (`info` None: the demo dataset, boxes only)."""
    kind = f"{'an' if task[0] in 'aeiou' else 'a'} {task} model"
    if info is None:
        if task != "detect":
            raise OptimError(f"{kind} needs {task} labels and the demo dataset has boxes only; pass data= a dataset "
                             f"with {task} labels (Ultralytics format)")
        return
    if task == "pose" and not info.get("kpt_shape"):
        raise OptimError(f"data={data} has no kpt_shape:, so it is not a pose dataset; {kind} needs keypoint labels "
                         "and kpt_shape: [keypoints, 2 or 3] in the YAML")
    if task not in TASK_ROWS:
        return
    what, fits = TASK_ROWS[task]
    from ultralytics.data.utils import img2label_paths

    for split in ("train", "val"):
        for label in img2label_paths(split_images(info, data, split)):
            text = _read_label(label)
            if isinstance(text, str) and not all(fits(len(r.split())) for r in text.splitlines() if r.strip()):
                raise OptimError(f"data={data}: {label} has rows that are not {what}, which {kind} needs; pass a "
                                 f"dataset with {task} labels or a model of the dataset's task")


def split_images(info: dict[str, Any], data: str | Path, split: str) -> list[str]:
    """The image files of a split as Ultralytics lists them (core.images.split_images), at least one."""
    from ..core.images import IMAGE_SUFFIXES
    from ..core.images import split_images as listed

    try:
        images = [str(p) for p in listed(info, split)]
    except (OSError, UnicodeDecodeError) as e:  # a .txt image list that cannot be read
        raise OptimError(f"data={data}: the {split} image list cannot be read ({type(e).__name__}); fix "
                         f"'{split}:' or point it to an image folder") from None
    except OptimError as e:
        raise OptimError(f"data={data}: {e}") from None
    if not images:
        raise OptimError(f"data={data}: the {split} split ({info[split]}) holds no images "
                         f"({', '.join(sorted(IMAGE_SUFFIXES))}); check '{split}:' and 'path:'")
    return images


# First bytes of each image format Ultralytics reads, so a text file or a download error page named .jpg is caught
# without decoding (and without Ultralytics' Pillow patch, which tries to install a HEIF plugin for unknown files).
def _image_kind(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"BM"):
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        return "avif" if head[8:12] in (b"avif", b"avis") else "heif"
    if head.startswith((b"\x00\x00\x00\x0cjP  ", b"\xff\x4f\xff\x51")):
        return "jpeg2000"
    if head[:2] in (b"Pf", b"PF"):
        return "pfm"
    return None


def _read_head(name: str) -> tuple[bytes, bool] | OSError:
    """First bytes of a file and whether it is a JPEG without its end marker; the OSError when it cannot be read."""
    try:
        with open(name, "rb") as f:
            head = f.read(16)
            truncated = False
            if head.startswith(b"\xff\xd8\xff") and f.seek(0, 2) > 2:
                f.seek(-2, 2)
                truncated = f.read(2) != b"\xff\xd9"
            return head, truncated
    except OSError as e:
        return e


def _read_label(name: str) -> str | None | Exception:
    try:
        with open(name, encoding="utf-8-sig") as f:
            return f.read()
    except FileNotFoundError:
        return None  # an image without a label file is a background image
    except (OSError, UnicodeDecodeError) as e:
        return e


def check_images(images: list[str], data: str | Path) -> None:
    """Every listed file exists, is readable and starts like an image; truncated JPEGs are named in a warning."""
    heif_ok: bool | None = None
    truncated = []
    for name, got in zip(images, map(_read_head, images)):
        if isinstance(got, FileNotFoundError):
            raise OptimError(f"data={data}: image {name} does not exist; fix the image list")
        if isinstance(got, OSError):
            raise OptimError(f"data={data}: image {name} cannot be read ({got.strerror or type(got).__name__}); "
                             "check its permissions")
        head, cut = got
        if cut:
            truncated.append(name)
        kind = _image_kind(head)
        if kind is None:
            what = "is empty" if not head else "is not an image (its first bytes match no image format)"
            raise OptimError(f"data={data}: {name} {what}; remove it from the dataset or replace it")
        if kind == "heif":
            if heif_ok is None:
                try:
                    import pi_heif  # noqa: F401

                    heif_ok = True
                except ImportError:
                    heif_ok = False
            if not heif_ok:
                raise OptimError(f"data={data}: {name} is a HEIC/HEIF image, which needs the pi-heif package; "
                                 "pip install pi-heif, or convert the images to JPEG/PNG")
    if truncated:
        LOG.warning("data=%s: %d JPEG(s) lack their end marker (first: %s); Ultralytics re-saves such files in "
                    "place when it scans the dataset", data, len(truncated), truncated[0])


def check_labels(images: list[str], info: dict[str, Any], data: str | Path, split: str) -> None:
    """Every label line is `class x y w h`, a polygon `class x1 y1 x2 y2 ...`, or a pose row of the kpt_shape."""
    from ultralytics.data.utils import img2label_paths

    nc = int(info.get("nc") or len(info.get("names") or []))
    kpt = info.get("kpt_shape")
    pose_len = 5 + kpt[0] * kpt[1] if kpt else None
    root = Path(info.get("path") or ".")
    labels = img2label_paths(images)
    texts = [_read_label(x) for x in labels]
    for label, text in zip(labels, texts):
        if isinstance(text, Exception):
            raise OptimError(f"data={data}: label file {label} cannot be read ({type(text).__name__}); fix or "
                             "remove it")
    found = [(label, text) for label, text in zip(labels, texts) if text is not None]
    if not found:
        raise OptimError(f"data={data}: none of the {len(images)} {split} images has a label file (looked for e.g. "
                         f"{labels[0]}); labels go in a labels/ folder beside images/, one .txt per image")
    if _boxes_fine(found, nc):
        return
    for label, text in found:  # the slow path finds the file and line of the first problem
        if text.strip():
            _check_label_text(text, label, root, data, nc, kpt, pose_len)


def _boxes_fine(found: list[tuple[str, str]], nc: int) -> bool:
    """Fast path for the common case, every line a valid 5-value box: one vectorised check of all rows at once."""
    import numpy as np

    words = " ".join(text for _, text in found).split()
    rows = sum(1 for _, text in found for line in text.splitlines() if line.strip())
    if len(words) != 5 * rows:
        return False
    try:
        table = np.array(words, dtype=np.float64).reshape(-1, 5)
    except ValueError:
        return False
    cls, coords = table[:, 0], table[:, 1:]
    return bool(np.isfinite(table).all() and (cls >= 0).all() and (cls < nc).all() and (cls % 1 == 0).all()
                and (coords >= -TOLERANCE).all() and (coords <= 1 + TOLERANCE).all())


def _check_label_text(text: str, label: str, root: Path, data: str | Path, nc: int, kpt: Any,
                      pose_len: int | None) -> None:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words:
            continue

        def bad(why: str) -> OptimError:
            try:
                where = Path(label).relative_to(root)
            except ValueError:
                where = Path(label)
            return OptimError(f"data={data}: {where} line {number}: {why}")

        try:
            values = [float(w) for w in words]
        except ValueError:
            word = next(w for w in words if not _is_number(w))
            raise bad(f"'{word}' is not a number; a label line is `class x_center y_center width height`, "
                      "normalised to 0-1") from None
        n = len(values)
        pose = pose_len is not None and n == pose_len
        if not (n == 5 or pose or (n >= 7 and n % 2 == 1)):
            raise bad(f"has {n} values; a box needs 5 (`class x_center y_center width height`), a polygon a class "
                      "and 3 or more x y pairs" + (f", a pose row {pose_len}" if pose_len else ""))
        cls = values[0]
        if cls != cls or cls < 0 or cls % 1:
            raise bad(f"class {words[0]} is not a class index; use a whole number from 0 to {nc - 1}")
        if cls >= nc:
            raise bad(f"class {int(cls)} is out of range: data.yaml names {nc} classes (0-{nc - 1}); fix the label "
                      "or the names:")
        coords = values[1:5] + [v for i, v in enumerate(values[5:]) if i % kpt[1] < 2] if pose else values[1:]
        low, high = min(coords), max(coords)
        if not (-TOLERANCE <= low and high <= 1 + TOLERANCE) or any(c != c for c in coords):
            off = next(c for c in coords if not -TOLERANCE <= c <= 1 + TOLERANCE)
            raise bad(f"coordinate {off:g} is outside 0-1; YOLO labels are divided by the image width and height")
        rows.append(n)
    if any(r > 6 for r in rows) and 5 in rows and pose_len is None:
        raise OptimError(f"data={data}: {label} mixes box rows (5 values) and polygon rows; use one kind per file")


def _is_number(word: str) -> bool:
    try:
        float(word)
        return True
    except ValueError:
        return False
