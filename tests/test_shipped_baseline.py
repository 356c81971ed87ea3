"""The shipped demo baseline: tensors-only weights become an ordinary Ultralytics checkpoint, exactly."""

from __future__ import annotations

import json

import pytest
import torch

from yolo_optim.config import make_config
from yolo_optim.data import baseline as baseline_mod
from yolo_optim.data import shipped as shipped_mod
from yolo_optim.errors import OptimError

RECIPE = dict(arch="yolo11n.yaml", epochs=1, imgsz=64, batch=8, seed=0, data_train=24, data_val=8, data_classes=3,
              data_size=64, amp="auto", patience=100)


@pytest.fixture()
def assets(tiny_model, tmp_path, monkeypatch):
    """The tiny model written as shipped assets, with the package pointed at them."""
    folder = tmp_path / "assets"
    shipped_mod.write_shipped_assets(tiny_model, {"recipe": RECIPE, "metrics": {"metrics/mAP50-95(B)": 0.5}},
                                     folder)
    monkeypatch.setattr(shipped_mod, "ASSETS", folder)
    return folder


def test_weights_are_tensors_only_and_rebuild_the_same_network(assets, tiny_model, tmp_path):
    from ultralytics import YOLO

    state = torch.load(assets / "demo_baseline.pth", weights_only=True)  # refuses anything but tensors
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    manifest = json.loads((assets / "demo_baseline.json").read_text())
    assert len(manifest["sha256"]) == 64 and manifest["recipe"] == RECIPE
    ckpt = shipped_mod.materialize_checkpoint(shipped_mod.shipped_baseline(), tmp_path / "out" / "best.pt")
    a, b = YOLO(str(tiny_model)).model.float().eval(), YOLO(str(ckpt)).model.float().eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a(x)[0], b(x)[0])
    assert b.names == a.names and YOLO(str(ckpt)).task == "detect"


def test_tampered_weights_are_refused(assets, tmp_path):
    w = assets / "demo_baseline.pth"
    w.write_bytes(w.read_bytes() + b"\0")
    with pytest.raises(OptimError, match="do not match their recorded sha256"):
        shipped_mod.materialize_checkpoint(shipped_mod.shipped_baseline(), tmp_path / "best.pt")
    assert not (tmp_path / "best.pt").exists()


def test_recipe_settings_use_the_shipped_weights_without_training(assets):
    cfg = make_config("baseline", dict(RECIPE))
    result = baseline_mod.baseline_result(cfg)
    assert result.save_dir.name.startswith("shipped-") and result.weights.is_file()
    assert result.metrics == {"metrics/mAP50-95(B)": 0.5}
    other = make_config("baseline", {**RECIPE, "retrain": True})
    assert baseline_mod._shipped_result(other) is None, "retrain must train the recipe, not reuse the weights"
    assert baseline_mod._shipped_result(make_config("baseline", {**RECIPE, "epochs": 2})) is None
