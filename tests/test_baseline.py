"""The cached baseline trains once, then comes back from the cache without training."""

from __future__ import annotations

import json
import time

from yolo_optim.data.baseline import baseline_result, resolve_model_and_data
from yolo_optim.config import make_config

TINY = dict(epochs=1, imgsz=64, batch=8, data_train=8, data_val=4, data_size=64, data_classes=2)


def test_baseline_is_cached_by_settings():
    first = baseline_result(make_config("baseline", TINY))
    assert first.weights.is_file() and first.data.is_file()
    info = json.loads((first.save_dir / "baseline.json").read_text())
    assert info["epochs"] == 1 and "metrics/mAP50-95(B)" in info["metrics"]
    mtime = first.weights.stat().st_mtime_ns
    t0 = time.perf_counter()
    again = baseline_result(make_config("baseline", TINY))
    elapsed = time.perf_counter() - t0
    assert again.weights == first.weights and again.weights.stat().st_mtime_ns == mtime
    assert elapsed < 5, f"cached baseline took {elapsed:.1f}s: it retrained or re-scanned"
    other = baseline_result(make_config("baseline", {**TINY, "seed": 1}))
    assert other.weights != first.weights, "different settings must not share a cache entry"


def test_resolve_fills_only_what_is_missing(tiny_model, demo_data):
    cfg = make_config("export", {"model": str(tiny_model), "data": str(demo_data)})
    assert resolve_model_and_data(cfg) == (str(tiny_model), str(demo_data))
