"""The demo dataset: Ultralytics layout, deterministic, varied enough to be a real detection task."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from yolo_optim.data.demo import make_demo_dataset
from yolo_optim.errors import OptimError


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in (".jpg", ".txt"):
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_layout_and_labels(tmp_path):
    ds = make_demo_dataset(tmp_path / "d", train=12, val=4, classes=4, size=96, seed=3)
    data = yaml.safe_load(ds.yaml.read_text())
    assert data["names"] == {0: "circle", 1: "square", 2: "triangle", 3: "star"}
    assert Path(data["path"]) == ds.path
    for split, n in (("train", 12), ("val", 4)):
        images = sorted((ds.path / "images" / split).glob("*.jpg"))
        labels = sorted((ds.path / "labels" / split).glob("*.txt"))
        assert len(images) == len(labels) == n
    rows = np.array([list(map(float, ln.split())) for p in (ds.path / "labels").rglob("*.txt")
                     for ln in p.read_text().splitlines()])
    assert len(rows) > 16, "images should hold several objects on average"
    assert set(rows[:, 0].astype(int)) <= {0, 1, 2, 3}
    assert (rows[:, 1:] >= 0).all() and (rows[:, 1:] <= 1).all()
    widths = rows[:, 3] * 96
    assert widths.min() < 12 and widths.max() > 30, "objects must span small to large scales"


def test_deterministic_for_a_seed(tmp_path):
    a = make_demo_dataset(tmp_path / "a", train=6, val=2, size=64, seed=1)
    b = make_demo_dataset(tmp_path / "b", train=6, val=2, size=64, seed=1)
    c = make_demo_dataset(tmp_path / "c", train=6, val=2, size=64, seed=2)
    assert _digest(a.path) == _digest(b.path) != _digest(c.path)


def test_existing_folder_needs_exist_ok(tmp_path):
    make_demo_dataset(tmp_path / "d", train=2, val=1, size=64)
    with pytest.raises(OptimError, match="already exists"):
        make_demo_dataset(tmp_path / "d", train=2, val=1, size=64)
    make_demo_dataset(tmp_path / "d", train=3, val=1, size=64, exist_ok=True)
    assert len(list((tmp_path / "d" / "images" / "train").glob("*.jpg"))) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary folders left behind"


def test_dataset_trains_and_validates_in_ultralytics(demo_data, tiny_model):
    from ultralytics import YOLO

    metrics = YOLO(str(tiny_model)).val(data=str(demo_data), imgsz=64, batch=8, plots=False, verbose=False)
    assert 0.0 <= metrics.box.map <= 1.0
    assert metrics.box.nc == 3
