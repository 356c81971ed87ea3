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


def test_killed_training_resumes_from_last_epoch(demo_data, tmp_path):
    import csv
    import os
    import signal
    import subprocess
    import sys

    from yolo_optim.data.baseline import _resumable, train_baseline

    def start_and_kill(out):
        code = (f"from yolo_optim.data.baseline import train_baseline; "
                f"train_baseline('yolo11n.yaml', {str(demo_data)!r}, epochs=6, imgsz=64, out={str(out)!r}, batch=8)")
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        last = out / "weights" / "last.pt"
        deadline = time.time() + 300
        # wait for a complete mid-run checkpoint, then kill at once: the kill lands while a later epoch trains
        while not _resumable(last) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not (out / "baseline.json").exists()
        return last

    # Ultralytics writes last.pt in place, so a kill can also land mid-write; train_baseline then starts over (the
    # torn file is not resumable), which is not what this test is about: try again in a fresh folder.
    for attempt in range(3):
        out = tmp_path / f"run{attempt}"
        last = start_and_kill(out)
        if _resumable(last):
            break
    assert _resumable(last), "the kill should land mid-run, with an unfinished last.pt"
    before = (out / "results.csv").read_text() if (out / "results.csv").exists() else ""
    best = train_baseline("yolo11n.yaml", demo_data, epochs=6, imgsz=64, out=out, batch=8)
    assert best.is_file() and (out / "baseline.json").exists()
    assert (out / "results.csv").read_text().startswith(before), "epochs done before the kill were trained again"
    with open(out / "results.csv") as f:
        epochs = [int(float(row["epoch"])) for row in csv.DictReader(f)]
    # Ultralytics logs an epoch's row just before saving its checkpoint, so an epoch killed in between is trained
    # again and logged twice; every other epoch appears once, and the run ends at the requested count.
    assert sorted(set(epochs)) == [1, 2, 3, 4, 5, 6] and epochs[-1] == 6, epochs
    assert len(epochs) <= 7, f"resumed run retrained finished epochs: {epochs}"
