"""The demo baseline: a nano YOLO trained once from YAML on the demo dataset, cached by its settings.

Every mode falls back to it when no model is given, so `yolo-optim benchmark` works offline out of the box.
Training saves Ultralytics' last.pt every epoch; a killed run resumes from it on the next call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import BaselineConfig, make_config
from ..errors import OptimError
from ..paths import cache_dir, file_lock, write_json_atomic
from .demo import GENERATOR_VERSION, make_demo_dataset

MAP_KEY = "metrics/mAP50-95(B)"


@dataclass(frozen=True)
class BaselineResult:
    weights: Path  # best.pt
    data: Path  # data.yaml it was trained on
    metrics: dict[str, float]  # final validation metrics
    save_dir: Path  # training folder


def _settings_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def demo_dataset_path(train: int = 400, val: int = 100, classes: int = 6, size: int = 256, seed: int = 0) -> Path:
    """data.yaml of the cached demo dataset with these settings, generated on first use."""
    settings = dict(train=train, val=val, classes=classes, size=size, seed=seed, version=GENERATOR_VERSION)
    root = cache_dir() / "datasets" / f"demo-{_settings_key(settings)}"
    if not (root / "data.yaml").exists():
        with file_lock(root.with_suffix(".lock"), what=f"the demo dataset {root}"):
            if not (root / "data.yaml").exists():
                make_demo_dataset(root, train, val, classes, size, seed)
    return root / "data.yaml"


def train_baseline(arch: str, data: str | Path, epochs: int, imgsz: int, out: str | Path, seed: int = 0,
                   batch: int = 16, device: str = "cpu", workers: int = 0, amp: bool = True) -> Path:
    """Train `arch` on `data` into `out` (resuming a killed run) and return best.pt; a finished run returns at once."""
    out = Path(out).resolve()
    marker = out / "baseline.json"
    best = out / "weights" / "best.pt"
    if marker.exists() and best.exists():
        return best
    from ultralytics import YOLO

    from ..models import load_yolo

    last = out / "weights" / "last.pt"
    t0 = time.time()
    if _resumable(last):
        results = YOLO(str(last)).train(resume=True)
    else:
        results = load_yolo(arch).train(
            data=str(data), epochs=epochs, imgsz=imgsz, batch=batch, device=device, workers=workers, seed=seed,
            deterministic=True, amp=amp, project=str(out.parent), name=out.name, exist_ok=True, plots=False,
            verbose=False,
            # One optimizer step per batch: with a few hundred images, Ultralytics' nominal batch of 64 would
            # accumulate several batches per step and leave a from-scratch model too few updates in 30 epochs.
            nbs=batch)
    metrics = {k: float(v) for k, v in getattr(results, "results_dict", {}).items()}
    write_json_atomic(marker, dict(arch=arch, data=str(data), epochs=epochs, imgsz=imgsz, seed=seed, batch=batch,
                                   metrics=metrics, train_seconds=round(time.time() - t0, 1)))
    return best


def _resumable(last: Path) -> bool:
    """True when last.pt holds an unfinished run (Ultralytics strips the optimizer when a run ends)."""
    if not last.exists():
        return False
    import torch

    try:
        ckpt = torch.load(last, map_location="cpu", weights_only=False)  # our own cache file, written by Ultralytics
    except Exception:  # killed while writing: start the run again rather than fail
        return False
    return isinstance(ckpt, dict) and ckpt.get("optimizer") is not None and ckpt.get("epoch", -1) >= 0


def baseline_result(cfg: BaselineConfig) -> BaselineResult:
    """Train (or fetch from the cache) the baseline these settings describe."""
    data = Path(cfg.data) if cfg.data else demo_dataset_path(cfg.data_train, cfg.data_val, cfg.data_classes,
                                                              cfg.data_size, cfg.seed)
    if cfg.data:
        from .check import check_dataset

        check_dataset(data)
    arch = cfg.model or cfg.arch
    from importlib.metadata import version

    settings = dict(arch=arch, data=str(data.resolve()), epochs=cfg.epochs, imgsz=cfg.imgsz, batch=cfg.batch,
                    seed=cfg.seed, ultralytics=version("ultralytics"))
    out = cache_dir() / "baselines" / f"{Path(arch).stem}-{_settings_key(settings)}"
    with file_lock(out.with_suffix(".lock"), what=f"the baseline {out.name} (trained once, then cached)"):
        weights = train_baseline(arch, data, cfg.epochs, cfg.imgsz, out, cfg.seed, cfg.batch, cfg.device,
                                 cfg.workers, cfg.amp)
    info = json.loads((out / "baseline.json").read_text())
    return BaselineResult(weights, data, info.get("metrics", {}), out)


def demo_baseline(**overrides: Any) -> Path:
    """best.pt of the cached demo baseline (yolo11n, 30 epochs, 256 px by default); trains it on first use."""
    return baseline_result(make_config("baseline", overrides)).weights


def resolve_model_and_data(cfg: Any) -> tuple[str, str]:
    """Fill an empty model/data from the demo baseline and demo dataset; check a user's data.yaml."""
    from .check import check_dataset

    if cfg.model is None:
        if cfg.data is not None:
            raise OptimError("data= is set but model= is empty; the demo baseline only knows the demo dataset, "
                             "so pass model=your_weights.pt too")
        base = baseline_result(make_config("baseline", {"device": cfg.device}))
        return str(base.weights), str(base.data)
    if cfg.data is None:
        from ..models import check_model_file

        check_model_file(cfg.model)  # a bad model= fails before the demo dataset is generated
        d = make_config("baseline")
        demo = demo_dataset_path(d.data_train, d.data_val, d.data_classes, d.data_size, d.seed)
        logging.getLogger(__name__).warning(
            "data= is empty: using the generated demo dataset %s; pass data=your/data.yaml to measure on yours", demo)
        return str(cfg.model), str(demo)
    check_dataset(cfg.data)
    return str(cfg.model), str(cfg.data)


def run_baseline(cfg: BaselineConfig) -> BaselineResult:
    """CLI entry: `yolo-optim baseline [epochs=30 imgsz=256 ...]`."""
    result = baseline_result(cfg)
    m = result.metrics
    print(f"Baseline {result.weights}: mAP50-95 {m.get(MAP_KEY, float('nan')):.4f}, "
          f"mAP50 {m.get('metrics/mAP50(B)', float('nan')):.4f}")
    return result
