"""Shared fixtures: a tiny generated dataset and a tiny trained model, built once per test session, offline."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Before Ultralytics is imported anywhere: no network probes, settings and caches in a throwaway folder.
_SESSION_ROOT = Path(tempfile.mkdtemp(prefix="yolo-optim-tests-"))
os.environ["YOLO_OFFLINE"] = "1"
os.environ.setdefault("YOLO_CONFIG_DIR", str(_SESSION_ROOT / "ultralytics-config"))
os.environ["YOLO_OPTIM_CACHE"] = str(_SESSION_ROOT / "cache")

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
