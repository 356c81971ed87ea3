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
LOG = logging.getLogger("yolo_optim.baseline")


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
                   batch: int = 16, device: str = "cpu", workers: int = 0, amp: Any = "auto",
                   patience: int = 100) -> Path:
    """Train `arch` on `data` into `out` (resuming a killed run) and return best.pt; a finished run returns at once."""
    out = Path(out).resolve()
    marker = out / "baseline.json"
    best = out / "weights" / "best.pt"
    if marker.exists() and best.exists():
        return best
    from ultralytics import YOLO

    from ..models import load_yolo

    from ..training.amp import resolve_amp
    from ..training.history import training_seconds
    from ..training.trainers import read_amp_record, task_trainer, with_mixed_precision

    policy = resolve_amp(amp, device)
    last = out / "weights" / "last.pt"
    t0 = time.time()
    if _resumable(last):
        yolo = YOLO(str(last))
        results = yolo.train(resume=True, trainer=with_mixed_precision(task_trainer(yolo), policy))
    else:
        yolo = load_yolo(arch)
        results = yolo.train(
            trainer=with_mixed_precision(task_trainer(yolo), policy),
            data=str(data), epochs=epochs, imgsz=imgsz, batch=batch, device=device, workers=workers, seed=seed,
            deterministic=True, amp=policy.ultralytics_amp, project=str(out.parent), name=out.name, exist_ok=True,
            plots=False,
            verbose=False, patience=patience,
            # One optimizer step per batch: with a few hundred images, Ultralytics' nominal batch of 64 would
            # accumulate several batches per step and leave a from-scratch model too few updates in 30 epochs.
            nbs=batch)
    metrics = {k: float(v) for k, v in getattr(results, "results_dict", {}).items()}
    # every start's epochs (a run resumed after a kill has several), not just this call's
    seconds = training_seconds(out) or time.time() - t0
    write_json_atomic(marker, dict(arch=arch, data=str(data), epochs=epochs, imgsz=imgsz, seed=seed, batch=batch,
                                   metrics=metrics, train_seconds=round(seconds, 1),
                                   amp=read_amp_record(out) or policy.to_dict()))
    return best


def _resumable(last: Path) -> bool:
    """True when last.pt holds an unfinished run (Ultralytics strips the optimizer when a run ends)."""
    if not last.exists():
        return False
    import pickle
    import zipfile

    import torch

    try:
        ckpt = torch.load(last, map_location="cpu", weights_only=False)  # our own cache file, written by Ultralytics
    except (EOFError, RuntimeError, zipfile.BadZipFile, pickle.UnpicklingError) as e:
        # Ultralytics writes last.pt in place: a kill during the write leaves a torn file that cannot be resumed
        LOG.warning("%s is incomplete (%s: the run was killed while saving it); training starts over",
                    last, type(e).__name__)
        return False
    except Exception as e:  # anything else (permissions, an incompatible Ultralytics) must not silently retrain
        raise OptimError(f"cannot read the interrupted baseline run {last} ({type(e).__name__}: {e}); delete that "
                         "folder to train it again") from None
    return isinstance(ckpt, dict) and ckpt.get("optimizer") is not None and ckpt.get("epoch", -1) >= 0


def _shipped_result(cfg: BaselineConfig) -> BaselineResult | None:
    """The baseline shipped in the package, when these settings ask for exactly its recipe on the demo data."""
    from .shipped import materialize_checkpoint, matches_recipe, shipped_baseline

    shipped = shipped_baseline()
    if shipped is None or cfg.model or cfg.data or getattr(cfg, "retrain", False):
        return None
    if not matches_recipe(shipped, cfg.to_dict()):
        return None
    data = demo_dataset_path(cfg.data_train, cfg.data_val, cfg.data_classes, cfg.data_size, cfg.seed)
    out = cache_dir() / "baselines" / f"shipped-{shipped.manifest['sha256'][:12]}"
    with file_lock(out.with_suffix(".lock"), what="the shipped demo baseline (written once into the cache)"):
        weights = materialize_checkpoint(shipped, out / "weights" / "best.pt")
        if not (out / "baseline.json").exists():
            write_json_atomic(out / "baseline.json", {**shipped.recipe, "metrics": shipped.metrics,
                                                      "source": "shipped", "sha256": shipped.manifest["sha256"]})
    return BaselineResult(weights, data, shipped.metrics, out)


def baseline_result(cfg: BaselineConfig) -> BaselineResult:
    """Train (or fetch from the package or the cache) the baseline these settings describe."""
    shipped = _shipped_result(cfg)
    if shipped is not None:
        return shipped
    data = Path(cfg.data) if cfg.data else demo_dataset_path(cfg.data_train, cfg.data_val, cfg.data_classes,
                                                              cfg.data_size, cfg.seed)
    if cfg.data:
        from .check import check_dataset

        check_dataset(data)
    arch = cfg.model or cfg.arch
    from importlib.metadata import version

    from ..training.amp import resolve_amp

    settings = dict(arch=arch, data=str(data.resolve()), epochs=cfg.epochs, imgsz=cfg.imgsz, batch=cfg.batch,
                    seed=cfg.seed, ultralytics=version("ultralytics"))
    precision = resolve_amp(cfg.amp, cfg.device).precision
    if precision != "fp32":  # fp32 keeps the key earlier versions used, so their cached runs stay valid
        settings["precision"] = precision
    if cfg.patience != 100:  # Ultralytics' default keeps the key earlier versions used
        settings["patience"] = cfg.patience
    out = cache_dir() / "baselines" / f"{Path(arch).stem}-{_settings_key(settings)}"
    if getattr(cfg, "retrain", False) and (out / "baseline.json").exists():
        out = out.with_name(out.name + "-retrain")  # a retrain never overwrites the cached run it reproduces
    with file_lock(out.with_suffix(".lock"), what=f"the baseline {out.name} (trained once, then cached)"):
        weights = train_baseline(arch, data, cfg.epochs, cfg.imgsz, out, cfg.seed, cfg.batch, cfg.device,
                                 cfg.workers, cfg.amp, cfg.patience)
    info = json.loads((out / "baseline.json").read_text())
    return BaselineResult(weights, data, info.get("metrics", {}), out)


def demo_baseline(**overrides: Any) -> Path:
    """best.pt of the demo baseline (yolo11n, 256 px): the shipped weights for the default recipe (written into the
    cache in seconds on first use), otherwise trained once for these settings and cached."""
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
        _check_tasks(cfg.model, None, None)
        d = make_config("baseline")
        demo = demo_dataset_path(d.data_train, d.data_val, d.data_classes, d.data_size, d.seed)
        logging.getLogger(__name__).warning(
            "data= is empty: using the generated demo dataset %s; pass data=your/data.yaml to measure on yours", demo)
        return str(cfg.model), str(demo)
    _check_tasks(cfg.model, check_dataset(cfg.data), cfg.data)
    return str(cfg.model), str(cfg.data)


def _check_tasks(model: Any, info: dict[str, Any] | None, data: Any) -> None:
    """Each model of model= (one, or a comma list) against the dataset's labels, before any run folder exists.
    A model that does not load is left to the mode, which says so in its own terms (benchmark records it as a
    failed row and measures the others)."""
    from ..models import load_yolo
    from .check import check_task

    for text in (t.strip() for t in str(model).split(",") if t.strip()):
        try:
            task = load_yolo(text).task
        except OptimError:
            continue
        check_task(task, info, data)


def run_baseline(cfg: BaselineConfig) -> BaselineResult:
    """CLI entry: `yolo-optim baseline [retrain] [epochs=... imgsz=...]`.

    The weights live in the cache (shared by every mode); the run folder project/name receives a copy of best.pt and
    baseline.json (settings, metrics, training precision), like every other mode's outputs.
    """
    import shutil

    from ..paths import atomic_dir, run_dir

    run = run_dir("baseline", cfg.project, cfg.name, cfg.exist_ok)  # checked before any training starts
    result = baseline_result(cfg)
    info = json.loads((result.save_dir / "baseline.json").read_text())
    with atomic_dir(run, overwrite=cfg.exist_ok) as tmp:
        (tmp / "weights").mkdir()
        shutil.copy2(result.weights, tmp / "weights" / "best.pt")
        write_json_atomic(tmp / "baseline.json", {**info, "cache": str(result.save_dir)})
    m = result.metrics
    print(f"Baseline {run / 'weights' / 'best.pt'}: mAP50-95 {m.get(MAP_KEY, float('nan')):.4f}, "
          f"mAP50 {m.get('metrics/mAP50(B)', float('nan')):.4f}"
          + (" (shipped with yolo-optim)" if info.get("source") == "shipped" else ""))
    return BaselineResult(run / "weights" / "best.pt", result.data, result.metrics, run)
