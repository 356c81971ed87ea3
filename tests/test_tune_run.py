"""Real searches on Ray Tune: each searcher, a failing trial, resume after kill -9, the best-hyperparameters file.

All tests share one local Ray instance (starting Ray costs seconds); trials train YOLO11n at 64 px for 1-2 epochs.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

import yolo_optim
from yolo_optim.tune.results import TuneResult

SMALL = {"trials": 3, "epochs": 1, "imgsz": 64, "batch": 16, "concurrency": 2}
TWO_PARAMS = {"lr0": {"loguniform": [1.0e-4, 1.0e-2]}, "momentum": {"uniform": [0.6, 0.98], "gain": 0.3}}


@pytest.fixture(scope="module")
def ray_address() -> str:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # listen on 127.0.0.1 only
    import ray

    ctx = ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    yield ctx.address_info["gcs_address"]
    ray.shutdown()


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _check_outputs(result: TuneResult, n: int) -> None:
    d = result.save_dir
    for name in ("trials.csv", "trials.json", "best_hyperparameters.yaml", "weights/best.pt", "plots/objective.png",
                 "plots/hyperparameters.png", "args.yaml", "space.yaml"):
        assert (d / name).is_file(), name
    assert len(_rows(d / "trials.csv")) == n
    assert list((d / "ray").glob("trial_*/events.out.tfevents.*"))  # Ray's TensorBoard logs


@pytest.fixture(scope="module")
def grid_run(ray_address: str, demo_data: Path, tmp_path_factory: pytest.TempPathFactory):
    space = {"optimizer": {"grid": ["SGD", "NoSuchOptimizer", "AdamW"]}, "lr0": {"loguniform": [1.0e-4, 1.0e-2]},
             "warmup_epochs": 0}
    project = tmp_path_factory.mktemp("tune")
    return yolo_optim.tune("yolo11n.yaml", demo_data, space=space, search="grid", scheduler="none",
                           project=str(project), name="grid", **SMALL)


def test_grid_covers_the_grid_and_a_failing_trial_does_not_stop_the_search(grid_run) -> None:
    trials = grid_run.trials
    assert sorted(t.config["optimizer"] for t in trials) == ["AdamW", "NoSuchOptimizer", "SGD"]
    failed = [t for t in trials if t.status == "failed"]
    assert [t.config["optimizer"] for t in failed] == ["NoSuchOptimizer"]
    assert "NoSuchOptimizer" in failed[0].error
    assert [t.status for t in trials if t not in failed] == ["completed", "completed"]
    assert grid_run.best is not None and grid_run.best.status == "completed"
    assert all(1e-4 <= t.config["lr0"] <= 1e-2 for t in trials)
    assert yaml.safe_load(grid_run.best_hyperparameters.read_text())["warmup_epochs"] == 0  # a fixed value
    _check_outputs(grid_run, 3)
    row = next(r for r in _rows(grid_run.save_dir / "trials.csv") if r["status"] == "failed")
    assert "NoSuchOptimizer" in row["error"]


def test_best_hyperparameters_are_accepted_by_ultralytics_trainer(grid_run, tmp_path: Path) -> None:
    from ultralytics.cfg import DEFAULT_CFG_DICT

    best_yaml = grid_run.best_hyperparameters
    args = yaml.safe_load(best_yaml.read_text())
    assert set(args) <= set(DEFAULT_CFG_DICT)
    assert args["optimizer"] == grid_run.best.config["optimizer"] and args["lr0"] == grid_run.best.config["lr0"]
    yolo_cli = Path(sys.executable).with_name("yolo")
    command = [str(yolo_cli), "train", f"cfg={best_yaml}", "epochs=1", "plots=False", f"project={tmp_path}",
               "name=check"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    trained = yaml.safe_load((tmp_path / "check" / "args.yaml").read_text())
    assert trained["lr0"] == args["lr0"] and trained["optimizer"] == args["optimizer"]
    assert (tmp_path / "check" / "weights" / "best.pt").is_file()


def test_bayes_search_with_asha_reports_every_epoch(ray_address: str, demo_data: Path, tiny_model: Path,
                                                    tmp_path: Path) -> None:
    # A logged metric as the objective (losses are minimised). No warm-up and nbs=batch, so that every batch is an
    # optimizer step at the sampled lr0 and momentum, and the trials' losses differ after so short a training.
    space = {**TWO_PARAMS, "optimizer": "SGD", "warmup_epochs": 0, "nbs": 8}
    result = yolo_optim.tune(str(tiny_model), demo_data, space=space, search="bayes", scheduler="asha",
                             objective="val/box_loss", project=str(tmp_path), name="bayes",
                             **{**SMALL, "epochs": 2, "batch": 8})
    assert result.mode == "min"
    first = result.trials[0].config
    assert first["lr0"] == 0.01 and first["momentum"] == 0.937  # Ultralytics' defaults are evaluated first
    assert len({t.objective for t in result.trials}) == 3  # the sampled hyperparameters reach the training
    for t in result.trials:
        assert t.status in ("completed", "stopped")
        progress = _rows(Path(t.path) / "progress.csv")
        assert [int(r["epoch"]) for r in progress] == list(range(1, t.epochs + 1))  # one report per epoch
        assert t.objective == pytest.approx(min(float(r["val/box_loss"]) for r in progress))
    assert result.best.objective == min(t.objective for t in result.trials)
    assert yaml.safe_load(result.best_hyperparameters.read_text())["model"] == str(tiny_model)


def test_evolve_search_starts_from_defaults_and_mutates(ray_address: str, demo_data: Path, tmp_path: Path) -> None:
    space = {"lr0": {"loguniform": [1.0e-4, 1.0e-2]}, "optimizer": {"choice": ["SGD", "AdamW"]}}
    result = yolo_optim.tune("yolo11n.yaml", demo_data, space=space, search="evolve", project=str(tmp_path),
                             name="evolve", **{**SMALL, "concurrency": 1})
    configs = [t.config for t in result.trials]
    assert configs[0] == {"lr0": 0.01, "optimizer": "SGD"}  # defaults (auto is not a choice: the first one)
    assert len({tuple(c.values()) for c in configs}) == 3
    assert all(1e-4 <= c["lr0"] <= 1e-2 for c in configs)
    assert list((result.save_dir / "ray").glob("searcher-state-*.pkl"))  # the searcher's state, for resume
    _check_outputs(result, 3)


def test_random_search_resumes_after_kill_without_redoing_finished_trials(ray_address: str, demo_data: Path,
                                                                          tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import yolo_optim
        yolo_optim.tune("yolo11n.yaml", {str(demo_data)!r}, space={TWO_PARAMS!r}, search="random", trials=3,
                        epochs=1, imgsz=64, concurrency=1, scheduler="none", project={str(tmp_path)!r},
                        name="killed", address={ray_address!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    experiment = tmp_path / "killed" / "ray"
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None and not _terminated(experiment):
            time.sleep(0.5)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # kill -9 the search in the middle
        proc.wait()
    finished = {tid: (experiment / f"trial_{tid}" / "progress.csv").read_bytes() for tid in _terminated(experiment)}
    assert finished, "no trial finished before the kill"

    result = yolo_optim.tune(project=str(tmp_path), name="killed", resume=True)
    assert len(result.trials) == 3 and [t.status for t in result.trials] == ["completed"] * 3
    configs = [(t.config["lr0"], t.config["momentum"]) for t in result.trials]  # random search: distinct draws
    assert len(set(configs)) == 3 and all(1e-4 <= lr <= 1e-2 and 0.6 <= m <= 0.98 for lr, m in configs)
    for tid, progress in finished.items():  # finished trials were kept, not trained again
        assert (experiment / f"trial_{tid}" / "progress.csv").read_bytes() == progress
    _check_outputs(result, 3)


def _terminated(experiment: Path) -> set[str]:
    """Ids of the trials Ray's saved experiment state records as finished."""
    for state in experiment.glob("experiment_state-*.json"):
        try:
            trials = [json.loads(t[0]) for t in json.loads(state.read_text())["trial_data"]]
        except (ValueError, KeyError, OSError):
            return set()  # being rewritten; look again
        return {t["trial_id"] for t in trials if t["status"] == "TERMINATED"}
    return set()


@pytest.mark.slow
def test_hyperband_with_latency_objective(ray_address: str, demo_data: Path, tmp_path: Path) -> None:
    from yolo_optim.tune.objective import latency_objective

    space = {"imgsz": {"choice": [32, 64]}, "lr0": {"loguniform": [1.0e-4, 1.0e-2]}, "optimizer": "SGD"}
    result = yolo_optim.tune("yolo11n.yaml", demo_data, space=space, search="random", scheduler="hyperband",
                             objective="latency", latency_target="onnxruntime-cpu:fp32", latency_budget=0.5,
                             project=str(tmp_path), name="latency", **{**SMALL, "trials": 4, "epochs": 3})
    table = json.loads((result.save_dir / "latency.json").read_text())["median_ms"]
    assert set(table) == {"yolo11n.yaml@32", "yolo11n.yaml@64"}
    for t in result.trials:
        assert t.status in ("completed", "stopped")
        assert t.latency_ms == table[f"yolo11n.yaml@{t.config['imgsz']}"]
        for r in _rows(Path(t.path) / "progress.csv"):
            assert float(r["objective"]) == pytest.approx(latency_objective(float(r["fitness"]), t.latency_ms, 0.5, 0))


def test_a_registered_searcher_runs_and_exist_ok_keeps_the_earlier_search(ray_address: str, demo_data: Path,
                                                                          tmp_path: Path) -> None:
    from ray.tune.search import BasicVariantGenerator

    from yolo_optim.registry import SEARCHERS
    from yolo_optim.tune.searchers import SearchPlan

    @SEARCHERS.register("toy-fixed-lr")
    def fixed_lr(space, metric, mode, trials, seed, concurrency):
        """Every trial at lr0=0.0042, whatever the space says."""
        return SearchPlan(BasicVariantGenerator(max_concurrent=1), {"lr0": 0.0042}, trials, limits_concurrency=True)

    args = {**SMALL, "trials": 1, "concurrency": 1}
    first = yolo_optim.tune("yolo11n.yaml", demo_data, space=TWO_PARAMS, search="toy-fixed-lr", scheduler="none",
                            project=str(tmp_path), name="toy", **args)
    assert [t.config["lr0"] for t in first.trials] == [0.0042] and first.best is not None
    (first.save_dir / "notes.txt").write_text("mine")
    second = yolo_optim.tune("yolo11n.yaml", demo_data, space=TWO_PARAMS, search="random", scheduler="none",
                             project=str(tmp_path), name="toy", exist_ok=True, **args)
    assert second.save_dir == first.save_dir
    assert (first.save_dir / "notes.txt").read_text() == "mine", "exist_ok deletes nothing"
    assert (first.save_dir / "ray").is_dir() and (first.save_dir / "ray-2").is_dir()
    assert Path(second.trials[0].path).parent.name == "ray-2" and second.trials[0].config["lr0"] != 0.0042
    rows = _rows(first.save_dir / "trials.csv")
    assert [r["trial_id"] for r in rows] == [second.trials[0].trial_id]  # the outputs are the new search's
