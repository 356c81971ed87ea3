"""Every mode the README shows, typed as a user would: `yolo-optim MODE key=value` from a fresh working folder, with
the default (relative) project and relative paths, at tiny sizes.

Tests with an absolute `project=` cannot see a relative path resolved twice; these run where a new user runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DATA = "datasets/demo/data.yaml"  # relative to the working folder, as in the README
TINY = ["imgsz=64", "batch=8"]


def _yolo_optim(*args: str, cwd: Path, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("yolo-optim")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "yolo_optim"]
    return subprocess.run([*command, *args], cwd=cwd, env={**os.environ, "YOLO_OFFLINE": "1", **env},
                          capture_output=True, text=True, timeout=timeout, check=False)


def _ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, (r.stdout[-1500:] + r.stderr[-2500:])
    return r.stdout


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """A fresh working folder holding the user's best.pt and the dataset `yolo-optim data` writes."""
    root = tmp_path_factory.mktemp("readme")
    shutil.copy(tiny_model, root / "best.pt")
    out = _ok(_yolo_optim("data", "out=datasets/demo", "train=16", "val=8", "classes=3", "size=64", cwd=root))
    assert "data=" in out
    return root


def test_data_writes_the_dataset_where_asked(work: Path) -> None:
    data = work / DATA
    assert data.is_file()
    assert len(list((work / "datasets/demo/images/train").iterdir())) == 16
    assert len(list((work / "datasets/demo/labels/val").glob("*.txt"))) == 8


def test_baseline_trains_into_the_cache(work: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = _ok(_yolo_optim("baseline", "epochs=1", "imgsz=64", "data_train=16", "data_val=8", "data_classes=3",
                          "data_size=64", cwd=work, YOLO_OPTIM_CACHE=str(cache)))
    assert "Baseline" in out and "mAP50-95" in out
    assert list(cache.rglob("best.pt")), "the baseline weights land in the cache"


def test_export(work: Path) -> None:
    out = _ok(_yolo_optim("export", "model=best.pt", f"data={DATA}", "target=onnxruntime-cpu", "precision=int8w",
                          "imgsz=64", cwd=work))
    run = work / "runs/optim/export/exp"
    assert run.is_dir() and str(run.resolve()) in out
    assert list(run.rglob("*.onnx"))


def test_benchmark_then_report(work: Path) -> None:
    _ok(_yolo_optim("benchmark", "model=best.pt", f"data={DATA}", "targets=torch-cpu:fp32,onnxruntime-cpu:fp32",
                    *TINY, "warmup=1", "runs=5", "seconds=1", cwd=work))
    results = json.loads((work / "runs/optim/benchmark/exp/results.json").read_text())
    assert results["rows"] and all(r["status"] == "ok" for r in results["rows"]), results["rows"]
    _ok(_yolo_optim("report", "runs=runs/optim/benchmark/exp", cwd=work))
    assert (work / "runs/optim/report/exp/report.md").is_file()


def test_prune_with_the_default_sensitivity_allocation(work: Path) -> None:
    """The README's `yolo-optim prune model=best.pt data=data.yaml` with its default allocation=sensitivity."""
    # round_to=64 leaves only the wide layers prunable, so the analysis measures 20 probes, not 60
    _ok(_yolo_optim("prune", "model=best.pt", f"data={DATA}", *TINY, "ratio=0.1", "epochs=0", "round_to=64",
                    "sensitivity_ratios=0.5", "sensitivity_images=4", "calib_batches=1", cwd=work))
    run = work / "runs/optim/prune/exp"
    meta = json.loads((run / "prune.json").read_text())
    assert meta["allocation"] == "sensitivity" and meta["removed"] >= 0.1
    rows = (run / "sensitivity.csv").read_text().splitlines()
    assert len(rows) > 10, "every group was measured"
    subset = run / "sensitivity_val" / "val_subset.txt"
    assert len(subset.read_text().split()) == 4 and all(Path(p).is_absolute() for p in subset.read_text().split())
    assert (run / "pruned.pt").is_file()


def test_tune(work: Path) -> None:
    out = _ok(_yolo_optim("tune", "model=best.pt", f"data={DATA}", "space=small.yaml", "search=random",
                          "scheduler=none", "trials=1", "epochs=1", *TINY, "concurrency=1", cwd=work))
    run = work / "runs/optim/tune/exp"
    assert "tune: best" in out
    assert (run / "best_hyperparameters.yaml").is_file() and (run / "weights/best.pt").is_file()
