"""Shared fixtures: a tiny generated dataset and a tiny trained model, built once per test session, offline."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

# Before Ultralytics is imported anywhere: no network probes, settings and caches in a throwaway folder.
_SESSION_ROOT = Path(tempfile.mkdtemp(prefix="yolo-optim-tests-"))
os.environ["YOLO_OFFLINE"] = "1"
os.environ.setdefault("YOLO_CONFIG_DIR", str(_SESSION_ROOT / "ultralytics-config"))
os.environ["YOLO_OPTIM_CACHE"] = str(_SESSION_ROOT / "cache")

# Ultralytics' logger keeps the stream it is created with: created here, at session start, it holds pytest's session
# capture; created first inside a test, it would hold that test's capture, closed after it, and every later log line
# would print a "Logging error" traceback into another test's stderr (whatever order the tests run in).
import ultralytics  # noqa: E402,F401

TINY_IMGSZ = 64


@pytest.fixture(scope="session")
def demo_data() -> Path:
    """data.yaml of a small demo dataset (24 train / 8 val images, 3 classes, 64 px)."""
    from yolo_optim.data.demo import make_demo_dataset

    return make_demo_dataset(_SESSION_ROOT / "demo-data", train=24, val=8, classes=3, size=TINY_IMGSZ, seed=0).yaml


@pytest.fixture(scope="session")
def tiny_model(demo_data: Path) -> Path:
    """A YOLO11n checkpoint trained one epoch at 64 px on `demo_data` (a real Ultralytics .pt)."""
    from yolo_optim.data.baseline import train_baseline

    return train_baseline("yolo11n.yaml", demo_data, epochs=1, imgsz=TINY_IMGSZ, out=_SESSION_ROOT / "tiny-model")


@dataclass(frozen=True)
class TrainedBaseline:
    """The shipped demo baseline as an ordinary checkpoint, with a held-out val split it is measured on."""

    weights: Path  # Ultralytics .pt written from the package's shipped weights
    data: Path  # data.yaml: the first HELD_OUT_VAL images of the demo val split (never trained on)
    imgsz: int  # the size it was trained and is validated at
    map50_95: float  # its mAP50-95 on `data` at `imgsz`, measured once per test session


HELD_OUT_VAL = 24


@pytest.fixture(scope="session")
def trained_baseline() -> TrainedBaseline:
    """A model whose mAP is far from zero, so accuracy assertions (export guard, pruning, benchmark rows) can fail."""
    from ultralytics import YOLO

    from yolo_optim.data.demo import make_demo_dataset
    from yolo_optim.data.shipped import materialize_checkpoint, shipped_baseline

    shipped = shipped_baseline()
    if shipped is None:
        pytest.skip("this installation carries no shipped demo baseline (yolo_optim/data/assets/demo_baseline.*)")
    recipe = shipped.recipe
    weights = materialize_checkpoint(shipped, _SESSION_ROOT / "shipped-baseline" / "best.pt")
    # Val images are drawn from (seed, split, index) alone, so this split is the head of the demo val split.
    ds = make_demo_dataset(_SESSION_ROOT / "held-out", train=8, val=HELD_OUT_VAL, classes=recipe["data_classes"],
                           size=recipe["data_size"], seed=recipe["seed"])
    metrics = YOLO(str(weights)).val(data=str(ds.yaml), imgsz=recipe["imgsz"], batch=8, device="cpu", workers=0,
                                     plots=False, verbose=False, project=str(_SESSION_ROOT / "val"), name="baseline")
    return TrainedBaseline(weights, ds.yaml, recipe["imgsz"], float(metrics.box.map))
