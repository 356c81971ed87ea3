"""The demo baseline shipped inside the package: weights that load without unpickling, turned into a checkpoint.

The package carries three files under `yolo_optim/data/assets/`: the model YAML, the EMA weights as a plain tensor
state dict (`torch.load(weights_only=True)` reads it; no code runs on load), and a manifest with the recipe that made
them (so `yolo-optim baseline retrain` reproduces it), the weights' sha256, the final metrics and the training curve.
First use writes an ordinary Ultralytics checkpoint from them into the cache, in seconds.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import OptimError
from ..paths import as_new_file

ASSETS = Path(__file__).resolve().parent / "assets"
STEM = "demo_baseline"


@dataclass(frozen=True)
class ShippedBaseline:
    manifest: dict[str, Any]  # recipe, sha256, metrics, curve, training time
    weights: Path  # state dict (.pth, tensors only)
    model_yaml: Path  # Ultralytics model YAML with nc and names

    @property
    def recipe(self) -> dict[str, Any]:
        """The `baseline` settings that trained it (arch, epochs, imgsz, batch, seed, amp, patience, data_*)."""
        return dict(self.manifest["recipe"])

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.manifest.get("metrics", {}))


def shipped_baseline(assets: Path | None = None) -> ShippedBaseline | None:
    """The shipped baseline, or None when this installation carries none."""
    assets = assets or ASSETS
    manifest = assets / f"{STEM}.json"
    if not manifest.is_file():
        return None
    info = json.loads(manifest.read_text(encoding="utf-8"))
    return ShippedBaseline(info, assets / f"{STEM}.pth", assets / f"{STEM}.yaml")


def matches_recipe(shipped: ShippedBaseline, settings: dict[str, Any]) -> bool:
    """True when `settings` (BaselineConfig keys) ask for exactly what was shipped."""
    recipe = shipped.recipe
    return all(settings.get(k) == v for k, v in recipe.items() if k in settings)


def materialize_checkpoint(shipped: ShippedBaseline, out: Path) -> Path:
    """Write `out` (an Ultralytics .pt) from the shipped files unless it is already there; returns `out`."""
    if out.is_file():
        return out
    import hashlib

    import torch
    import yaml
    from ultralytics import YOLO, __version__

    digest = hashlib.sha256(shipped.weights.read_bytes()).hexdigest()
    if digest != shipped.manifest["sha256"]:
        raise OptimError(f"the shipped baseline weights {shipped.weights} do not match their recorded sha256; "
                         "reinstall yolo-optim")
    state = torch.load(shipped.weights, map_location="cpu", weights_only=True)
    cfg = yaml.safe_load(shipped.model_yaml.read_text(encoding="utf-8"))
    yolo = YOLO(str(shipped.model_yaml), task=shipped.manifest.get("task", "detect"), verbose=False)
    model = yolo.model
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    model.names = {int(k): v for k, v in dict(enumerate(cfg["names"]) if isinstance(cfg["names"], list)
                                              else cfg["names"]).items()}
    train_args = dict(shipped.manifest.get("train_args", {}))
    model.args = train_args
    ckpt = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "version": __version__,
            "epoch": -1, "best_fitness": None, "model": None, "ema": copy.deepcopy(model).half().eval(),
            "updates": None, "optimizer": None, "scaler": None, "train_args": train_args,
            "train_metrics": shipped.metrics, "train_results": None,
            "license": "AGPL-3.0 License (https://ultralytics.com/license)", "docs": "https://docs.ultralytics.com"}
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        torch.save(ckpt, tmp)
        as_new_file(tmp)  # mkstemp makes it 0600; a cache on a shared home stays readable like any other file
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def write_shipped_assets(best_pt: Path, manifest: dict[str, Any], assets: Path | None = None) -> ShippedBaseline:
    """Turn a finished training's best.pt into the three shipped files (EMA weights stored as Ultralytics stores
    them, fp16). `manifest` carries the recipe, metrics, curve and timing; sha256 and task are added here."""
    import hashlib

    import torch
    import yaml
    from ultralytics import YOLO

    assets = assets or ASSETS
    yolo = YOLO(str(best_pt))
    model = yolo.model
    assets.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().half().contiguous() if v.is_floating_point() else v.detach().contiguous()
             for k, v in model.state_dict().items()}
    weights = assets / f"{STEM}.pth"
    torch.save(state, weights)
    cfg = dict(model.yaml)
    cfg["nc"] = len(model.names)
    cfg["names"] = [model.names[i] for i in range(len(model.names))]
    (assets / f"{STEM}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    full = {**manifest, "task": yolo.task, "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
            # the training machine's own paths (its weights file) mean nothing elsewhere; data= names the demo dataset
            "train_args": {k: v for k, v in dict(model.args).items() if k != "model" and
                           (isinstance(v, (str, int, float, bool)) or v is None)}}
    (assets / f"{STEM}.json").write_text(json.dumps(full, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return ShippedBaseline(full, weights, assets / f"{STEM}.yaml")
