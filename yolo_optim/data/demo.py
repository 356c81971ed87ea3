"""An offline, deterministic detection dataset that is hard enough to show what optimizations cost.

Objects are geometric classes drawn at many scales (down to a few pixels) with textured fills, over natural-photo
crops (images shipped inside Ultralytics and Matplotlib) or procedural textures, with non-class clutter and partial
occlusion. Labels follow what stays visible: a heavily covered object is dropped, a partly covered one is boxed
around its visible part.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..errors import OptimError
from ..paths import atomic_dir, check_writable

CLASS_NAMES = ("circle", "square", "triangle", "star", "ring", "cross", "hexagon", "diamond")
GENERATOR_VERSION = 2  # bump when the drawing changes, so cached datasets and baselines are rebuilt
MIN_VISIBLE = 0.45  # objects with less of their area visible are unlabelled (too ambiguous to demand)


@dataclass(frozen=True)
class DemoDataset:
    path: Path  # dataset root
    yaml: Path  # data.yaml to pass as data=
    train: int  # training images
    val: int  # validation images
    classes: int  # number of classes
    size: int  # image side in pixels
    seed: int  # generator seed

    @property
    def save_dir(self) -> Path:
        return self.path


MAX_SIZE = 2048  # image side: larger only costs memory (the drawing works in float arrays of size x size)
MAX_IMAGES = 100_000  # per split
DEMO_MARK = "yolo-optim demo dataset"  # in demo.json: the folder is ours and exist_ok may replace it
_OWN_FILE = re.compile(r"^(data\.yaml|demo\.json|images|labels|(images|labels)/(train|val)|images/(train|val)/\d{6}\.jpg"
                       r"|labels/(train|val)/\d{6}\.txt|labels/(train|val)\.cache)$")


def make_demo_dataset(out: str | Path, train: int = 400, val: int = 100, classes: int = 6, size: int = 256,
                      seed: int = 0, exist_ok: bool = False) -> DemoDataset:
    """Write the dataset in Ultralytics layout (data.yaml, images/{train,val}, labels/{train,val}) atomically.

    With `exist_ok` an existing demo dataset (marked by its demo.json, holding nothing but what this function
    writes) is replaced; any other existing folder is left alone with an error, since it holds someone else's files.
    """
    if not 1 <= classes <= len(CLASS_NAMES):
        raise OptimError(f"classes={classes} is out of range; the demo dataset has 1 to {len(CLASS_NAMES)} classes")
    if train < 1 or val < 1 or size < 32:
        raise OptimError(f"train={train}, val={val}, size={size}: need at least 1 image per split and size >= 32")
    if size > MAX_SIZE:
        raise OptimError(f"size={size} is too large; demo images are at most {MAX_SIZE} px (use e.g. size=640)")
    if max(train, val) > MAX_IMAGES:
        raise OptimError(f"train={train}, val={val}: at most {MAX_IMAGES} images per split")
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise OptimError(f"out={out} is a file; choose a folder path for the dataset")
    replace = _check_replaceable(out, exist_ok)
    check_writable(out, key="out")
    with atomic_dir(out, overwrite=not replace, replace=replace) as tmp:
        backgrounds = _natural_backgrounds()
        for split, count in (("train", train), ("val", val)):
            (tmp / "images" / split).mkdir(parents=True)
            (tmp / "labels" / split).mkdir(parents=True)
            for i in range(count):
                # One child generator per image: any image can be regenerated alone, and splits never share images.
                img_rng = np.random.default_rng([seed, 0 if split == "train" else 1, i])
                image, labels = draw_image(img_rng, size, classes, backgrounds)
                image.save(tmp / "images" / split / f"{i:06d}.jpg", quality=92)
                (tmp / "labels" / split / f"{i:06d}.txt").write_text(
                    "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in labels))
        names = "".join(f"  {i}: {n}\n" for i, n in enumerate(CLASS_NAMES[:classes]))
        (tmp / "data.yaml").write_text(
            f"# yolo-optim demo dataset (generator v{GENERATOR_VERSION}, seed {seed})\n"
            f"path: {out}\ntrain: images/train\nval: images/val\nnames:\n{names}")
        settings = dict(generator=DEMO_MARK, train=train, val=val, classes=classes, size=size, seed=seed,
                        version=GENERATOR_VERSION)
        (tmp / "demo.json").write_text(json.dumps(settings, indent=2) + "\n")
    return DemoDataset(out, out / "data.yaml", train, val, classes, size, seed)


def _check_replaceable(out: Path, exist_ok: bool) -> bool:
    """True when `out` is a demo dataset this project wrote and may be replaced; an error for any other folder."""
    if not out.exists() or not any(out.iterdir()):
        return False  # nothing there (or an empty folder): written into, nothing to replace
    try:
        mark = json.loads((out / "demo.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        mark = None
    if not isinstance(mark, dict) or not {"seed", "version"} <= set(mark):
        raise OptimError(f"out={out} holds files that are not a yolo-optim demo dataset (no demo.json of ours); "
                         "choose a new or empty folder for out=")
    if not exist_ok:
        raise OptimError(f"out={out} already exists; pass exist_ok=True to replace the demo dataset in it or "
                         "choose another out=")
    foreign = next((p for p in sorted(out.rglob("*")) if not _OWN_FILE.match(p.relative_to(out).as_posix())), None)
    if foreign is not None:
        raise OptimError(f"out={out} is a demo dataset but also holds {foreign.relative_to(out)}, which yolo-optim "
                         "did not write; move it away or choose another out=")
    return True


def run_data(cfg) -> DemoDataset:
    """CLI entry: `yolo-optim data out=... train=... val=... classes=... size=... seed=...`."""
    ds = make_demo_dataset(cfg.out, cfg.train, cfg.val, cfg.classes, cfg.size, cfg.seed, cfg.exist_ok)
    print(f"Wrote {ds.train} train + {ds.val} val images ({ds.classes} classes, {ds.size}px); data={ds.yaml}")
    return ds


# --- drawing -----------------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _natural_backgrounds() -> tuple[np.ndarray, ...]:
    """Photos that installed packages carry; procedural textures stand in if none is found."""
    candidates = []
    try:
        import ultralytics

        assets = Path(ultralytics.__file__).parent / "assets"
        candidates += sorted(assets.glob("*.jpg"))
    except ImportError:
        pass
    try:
        import matplotlib

        candidates += [Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"]
    except ImportError:
        pass
    photos = []
    for p in candidates:
        if p.is_file():
            with Image.open(p) as im:
                photos.append(np.asarray(im.convert("RGB")))
    return tuple(photos)


def _value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a random grid upsampled bicubically."""
    grid = (rng.random((cells, cells)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0


def _texture_background(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.uniform(40, 215, 3)
    tint = rng.uniform(-60, 60, 3)
    n = sum(_value_noise(rng, size, c) * w for c, w in ((4, 0.5), (12, 0.3), (32, 0.2)))
    img = base + (n[..., None] - 0.5) * 2 * tint + (n[..., None] - 0.5) * 60
    if rng.random() < 0.4:  # stripes or grid, as in floors, fences, fabric
        yy, xx = np.mgrid[0:size, 0:size]
        period = rng.uniform(6, 30)
        theta = rng.uniform(0, math.pi)
        stripes = np.sin((xx * math.cos(theta) + yy * math.sin(theta)) * 2 * math.pi / period)
        img += stripes[..., None] * rng.uniform(10, 35)
    return np.clip(img, 0, 255)


def _photo_background(rng: np.random.Generator, size: int, photos: tuple[np.ndarray, ...]) -> np.ndarray:
    photo = photos[rng.integers(len(photos))]
    h, w = photo.shape[:2]
    side = int(rng.uniform(0.25, 1.0) * min(h, w))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR)
    arr = np.asarray(crop, dtype=np.float32)
    if rng.random() < 0.5:
        arr = arr[:, ::-1]
    return np.clip(arr * rng.uniform(0.7, 1.2, 3) + rng.uniform(-25, 25), 0, 255)


def _shape_mask(kind: str, size: int, cx: float, cy: float, r: float, angle: float, aspect: float) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(mask)
    rx, ry = r * aspect, r / aspect

    def poly(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        ca, sa = math.cos(angle), math.sin(angle)
        return [(cx + (px * rx) * ca - (py * ry) * sa, cy + (px * rx) * sa + (py * ry) * ca) for px, py in points]

    def regular(n: int, start: float = 0.0) -> list[tuple[float, float]]:
        return [(math.cos(start + 2 * math.pi * k / n), math.sin(start + 2 * math.pi * k / n)) for k in range(n)]

    if kind in ("circle", "ring"):
        d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
        if kind == "ring":
            k = 0.55
            d.ellipse([cx - rx * k, cy - ry * k, cx + rx * k, cy + ry * k], fill=0)
    elif kind == "square":
        d.polygon(poly(regular(4, math.pi / 4)), fill=255)
    elif kind == "triangle":
        d.polygon(poly(regular(3, -math.pi / 2)), fill=255)
    elif kind == "star":
        pts = [(math.cos(-math.pi / 2 + math.pi * k / 5) * (1 if k % 2 == 0 else 0.42),
                math.sin(-math.pi / 2 + math.pi * k / 5) * (1 if k % 2 == 0 else 0.42)) for k in range(10)]
        d.polygon(poly(pts), fill=255)
    elif kind == "cross":
        t = 0.33
        pts = [(-t, -1), (t, -1), (t, -t), (1, -t), (1, t), (t, t), (t, 1), (-t, 1), (-t, t), (-1, t), (-1, -t),
               (-t, -t)]
        d.polygon(poly(pts), fill=255)
    elif kind == "hexagon":
        d.polygon(poly(regular(6)), fill=255)
    elif kind == "diamond":
        d.polygon(poly([(0, -1), (0.6, 0), (0, 1), (-0.6, 0)]), fill=255)
    return mask


def _clutter_mask(rng: np.random.Generator, size: int) -> Image.Image:
    """Non-class distractors: strokes, blobs and irregular polygons that occlude and confuse."""
    mask = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(mask)
    kind = rng.integers(3)
    if kind == 0:
        pts = [tuple(rng.uniform(0, size, 2)) for _ in range(rng.integers(2, 5))]
        d.line(pts, fill=255, width=int(rng.integers(1, max(2, size // 40))))
    elif kind == 1:
        cx, cy = rng.uniform(0, size, 2)
        # Strongly irregular outlines, so clutter never passes for a (regular) class shape.
        n = int(rng.integers(7, 13))
        r = rng.uniform(0.03, 0.12) * size
        radii = rng.uniform(0.25, 1.4, n)
        pts = [(cx + math.cos(2 * math.pi * k / n) * r * radii[k],
                cy + math.sin(2 * math.pi * k / n) * r * radii[k]) for k in range(n)]
        d.polygon(pts, fill=255)
    else:
        cx, cy = rng.uniform(0, size, 2)
        a, b = rng.uniform(0.01, 0.15, 2) * size
        d.ellipse([cx - a, cy - b / 4, cx + a, cy + b / 4], fill=255)
    return mask


def _fill(rng: np.random.Generator, size: int) -> np.ndarray:
    color = rng.uniform(0, 255, 3)
    if rng.random() < 0.35:  # textured fill: the network cannot rely on flat colour alone
        n = _value_noise(rng, size, int(rng.integers(6, 24)))[..., None]
        return np.clip(color * (0.6 + 0.8 * n), 0, 255)
    return np.broadcast_to(color, (size, size, 3))


def draw_image(rng: np.random.Generator, size: int, classes: int,
               photos: tuple[np.ndarray, ...] = ()) -> tuple[Image.Image, list[tuple[int, float, float, float, float]]]:
    """Draw one image; return it with its YOLO labels (class, cx, cy, w, h normalised)."""
    img = _photo_background(rng, size, photos) if photos and rng.random() < 0.5 else _texture_background(rng, size)
    owner = np.full((size, size), -1, dtype=np.int32)  # which object (or clutter, -2) shows at each pixel
    objects: list[tuple[int, int]] = []  # (class, full area in pixels)
    layers = ["object"] * int(rng.integers(2, 9)) + ["clutter"] * int(rng.integers(0, 5))
    rng.shuffle(layers)
    for layer in layers:
        if layer == "clutter":
            mask = np.asarray(_clutter_mask(rng, size)) > 127
            who = -2
        else:
            cls = int(rng.integers(classes))
            # Log-uniform scale: many small objects (a few pixels), some that fill half the image.
            r = math.exp(rng.uniform(math.log(0.035 * size), math.log(0.25 * size)))
            cx, cy = rng.uniform(-0.1 * size, 1.1 * size, 2)  # may be cut by the border
            mask = np.asarray(_shape_mask(CLASS_NAMES[cls], size, cx, cy, r, rng.uniform(0, 2 * math.pi),
                                          rng.uniform(0.75, 1.33))) > 127
            if mask.sum() < 6:
                continue
            who = len(objects)
            objects.append((cls, int(mask.sum())))
        soft = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(0.6)),
                          dtype=np.float32)[..., None] / 255.0
        img = img * (1 - soft) + _fill(rng, size) * soft
        owner[mask] = who
    if rng.random() < 0.5:  # sensor noise and light falloff
        img = img + rng.normal(0, rng.uniform(2, 10), img.shape)
    if rng.random() < 0.3:
        yy, xx = np.mgrid[0:size, 0:size] / size
        img = img * (0.75 + 0.5 * (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1) + 1) / 2)[..., None]
    image = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if rng.random() < 0.2:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    labels = []
    for idx, (cls, area) in enumerate(objects):
        ys, xs = np.nonzero(owner == idx)
        if len(xs) < max(4, MIN_VISIBLE * area):
            continue
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        if x1 - x0 < 3 or y1 - y0 < 3:
            continue
        labels.append((cls, (x0 + x1) / 2 / size, (y0 + y1) / 2 / size, (x1 - x0) / size, (y1 - y0) / size))
    return image, labels
