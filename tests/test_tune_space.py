"""Search spaces, the evolution searcher's operator, objectives and bad-input errors: no Ray cluster, no training."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from yolo_optim.cli import main
from yolo_optim.errors import OptimError
from yolo_optim.tune.objective import latency_objective, make_objective
from yolo_optim.tune.space import load_space

TWO = {"lr0": {"loguniform": [1.0e-4, 1.0e-2]}, "momentum": {"uniform": [0.6, 0.98], "gain": 0.3}}


def test_default_space_covers_ultralytics_tuner_space() -> None:
    import torch
    from ultralytics.engine.tuner import Tuner

    theirs = Tuner({"mode": "train"}, model=torch.nn.Identity()).space  # Ultralytics' own genetic-tuner space
    ours = load_space("spaces/default.yaml")
    assert set(theirs) <= set(ours.params)
    assert ours.params["optimizer"].kind == "choice"  # the categorical Ultralytics leaves commented out
    for name, bounds in theirs.items():
        p = ours.params[name]
        assert (p.low, p.high) == pytest.approx(bounds[:2]), name


@pytest.mark.parametrize("space, match", [
    ({"momentun": {"uniform": [0, 1]}}, "did you mean 'momentum'"),
    ({"lr0": {"uniform": [0.1, 0.01]}}, "min 0.1 > max 0.01"),
    ({"lr0": {"unifrom": [0.1, 0.2]}}, "did you mean 'uniform'"),
    ({"lr0": {"loguniform": [0.0, 0.1]}}, "min > 0"),
    ({"lr0": {"uniform": [0.1]}}, r"needs \[min, max\]"),
    ({"lr0": {"uniform": ["a", 1]}}, "must be a number"),
    ({"close_mosaic": {"uniform": [0, 10]}}, "takes integers"),
    ({"mosaic": {"uniform": [0, 2]}}, "fraction"),
    ({"epochs": {"int": [1, 5]}}, "controlled by the search"),
    ({"imgsz": {"choice": [64, 100]}}, "multiple of 32"),
    ({"imgsz": {"int": [64, 256], "step": 16}}, "multiples of 32"),
    ({"optimizer": {"uniform": [0, 1]}}, "not numeric"),
    ({"optimizer": ["SGD", "AdamW"]}, "bare list"),
    ({"optimizer": {"choice": []}}, "non-empty list"),
    ({"optimizer": "SGD"}, "searches none"),
    ({}, "is empty"),
])
def test_bad_spaces_are_one_line_errors(space: dict, match: str) -> None:
    with pytest.raises(OptimError, match=match) as e:
        load_space(space)
    assert "\n" not in str(e.value)


def test_space_files(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    (tmp_path / "broken.yaml").write_text("lr0: {uniform: [0.1, \n")
    (tmp_path / "list.yaml").write_text("- lr0\n")
    (tmp_path / "ok.yaml").write_text("lr0: {loguniform: [1e-5, 1e-2]}\nfraction: 0.5\n")  # YAML reads 1e-5 as text
    with pytest.raises(OptimError, match="empty"):
        load_space(tmp_path / "empty.yaml")
    with pytest.raises(OptimError, match="not valid YAML"):
        load_space(tmp_path / "broken.yaml")
    with pytest.raises(OptimError, match="mapping"):
        load_space(tmp_path / "list.yaml")
    with pytest.raises(OptimError, match="does not exist"):
        load_space(tmp_path / "missing.yaml")
    ok = load_space(tmp_path / "ok.yaml")
    assert ok.params["lr0"].low == 1e-5 and ok.fixed == {"fraction": 0.5}


def test_ray_domains_follow_the_space() -> None:
    from ray.tune.search.sample import Categorical, Float, Integer

    space = load_space({"lr0": {"loguniform": [1e-4, 1e-2]}, "close_mosaic": {"int": [0, 2]},
                        "imgsz": {"int": [64, 128], "step": 32}, "optimizer": {"grid": ["SGD", "AdamW"]}})
    grid, bayes = space.to_ray("grid"), space.to_ray("bayes")
    assert grid["optimizer"] == {"grid_search": ["SGD", "AdamW"]}
    assert isinstance(bayes["optimizer"], Categorical)  # a grid is a categorical for model-based searchers
    assert isinstance(bayes["lr0"], Float) and isinstance(bayes["close_mosaic"], Integer)
    rng = np.random.default_rng(0)
    assert {bayes["close_mosaic"].sample(random_state=rng) for _ in range(300)} == {0, 1, 2}  # max included
    assert {bayes["imgsz"].sample(random_state=rng) for _ in range(300)} == {64, 96, 128}
    assert space.grid_size() == 2


def test_units_round_trip_and_defaults_stay_inside() -> None:
    space = load_space("spaces/default.yaml")
    defaults = space.defaults()
    for name, p in space.params.items():
        value = defaults[name]
        if p.categorical:
            assert value in p.values
            continue
        assert p.low <= value <= p.high, name
        assert p.from_unit(p.to_unit(value)) == pytest.approx(value, rel=1e-5, abs=1e-9)
    lr0 = space.params["lr0"]
    assert lr0.from_unit(0.5) == pytest.approx(math.sqrt(1e-5 * 1e-2), rel=1e-4)  # log scale midpoint


def _evolver(seed: int = 0):
    from yolo_optim.tune.evolve import EvolutionSearcher

    space = load_space({**TWO, "optimizer": {"choice": ["SGD", "AdamW", "Adam"]}})
    return space, EvolutionSearcher(space, metric="objective", mode="max", seed=seed)


def test_evolution_starts_from_defaults_then_mutates_the_best_parent() -> None:
    space, ev = _evolver()
    assert ev.suggest("t0") == space.defaults()
    ev.on_trial_complete("t0", {"objective": 0.5})
    assert len(ev.history) == 1 and ev.suggest("t1") != space.defaults()

    space, ev = _evolver()
    best = {"lr0": 1e-2, "momentum": 0.98, "optimizer": "SGD"}
    worst = {"lr0": 1e-4, "momentum": 0.6, "optimizer": "Adam"}
    ev.add_evaluated_point(best, 1.0)
    ev.add_evaluated_point(worst, 0.0)
    children = []
    for i in range(40):
        child = ev.suggest(f"c{i}")
        children.append(child)
        ev.on_trial_complete(f"c{i}", None, error=True)  # failures add no parents
        for name, p in space.params.items():
            assert (child[name] in p.values) if p.categorical else (p.low <= child[name] <= p.high)
    genes = np.array([ev._genes(c) for c in children])
    numeric = [not p.categorical for p in space.params.values()]
    near_best = np.abs(genes - np.array(ev._genes(best)))[:, numeric].sum(1)
    near_worst = np.abs(genes - np.array(ev._genes(worst)))[:, numeric].sum(1)
    assert (near_best < near_worst).all()  # the fitter parent is drawn (weights: objective - min + 1e-6)
    assert len({tuple(g) for g in genes} | {ev._genes(best)}) == len(genes) + 1  # mutated, never repeated
    assert len(ev.history) == 2
    optimizers = {c["optimizer"] for c in children}
    assert "SGD" in optimizers and len(optimizers) > 1  # categorical genes mutate too, mostly kept


def test_evolution_state_survives_save_and_restore(tmp_path: Path) -> None:
    _, ev = _evolver(seed=3)
    for i in range(4):
        ev.suggest(f"t{i}")
        ev.on_trial_result(f"t{i}", {"objective": 0.1 * i})
        ev.on_trial_complete(f"t{i}", {"objective": 0.05 * i})
    ev.save(str(tmp_path / "state.pkl"))
    _, other = _evolver(seed=99)
    other.restore(str(tmp_path / "state.pkl"))
    assert [h[0] for h in other.history] == pytest.approx([0.0, 0.1, 0.2, 0.3])  # best epoch, not the last
    assert other.suggest("next") == ev.suggest("next")


def test_latency_objective() -> None:
    assert latency_objective(0.5, 8.0, budget_ms=10.0, weight=0.0) == 0.5  # within budget: fitness alone
    assert latency_objective(0.5, 20.0, budget_ms=10.0, weight=0.0) == pytest.approx(0.25)  # 2x over: half
    assert latency_objective(0.5, 5.0, budget_ms=10.0, weight=0.07) == pytest.approx(0.5 * 0.5 ** -0.07)
    assert make_objective("val/box_loss", "auto", "", 0, 0).mode == "min"
    assert make_objective("fitness", "auto", "", 0, 0).mode == "max"
    with pytest.raises(OptimError, match="latency_budget"):
        make_objective("latency", "auto", "onnxruntime-cpu:fp32", 0, 0)
    with pytest.raises(OptimError, match="unknown"):
        make_objective("mAP", "auto", "", 0, 0)


@pytest.mark.parametrize("args, match", [
    (["trials=0"], "trials=0 is too small"),
    (["search=annealing"], "search=annealing is not allowed"),
    (["scheduler=pbt"], "scheduler=pbt is not allowed"),
    (["space=nope.yaml"], "does not exist"),
    (["space=@EMPTY"], "is empty"),
    (["space=@INVERTED"], "min 0.9 > max 0.1"),
    (["space=@GRID", "search=grid", "trials=2"], "has 3 points but trials=2"),
    (["space=@GRID", "search=grid", "trials=3", "objective=map"], "objective=map is unknown"),
    (["search=grid"], "needs at least one {grid"),
])
def test_cli_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], match: str) -> None:
    files = {"@EMPTY": "", "@INVERTED": "lr0: {uniform: [0.9, 0.1]}\n",
             "@GRID": "optimizer: {grid: [SGD, Adam, AdamW]}\n"}
    for key, text in files.items():
        (tmp_path / f"{key[1:]}.yaml").write_text(text)
    args = [a.replace("@", str(tmp_path) + "/") + (".yaml" if "@" in a else "") for a in args]
    rc = main(["tune", "model=yolo11n.yaml", "data=data.yaml", f"project={tmp_path}/runs", *args])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # nothing written for bad input


def test_ray_missing_is_a_one_line_error(tmp_path: Path) -> None:
    fake = tmp_path / "site" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    cmd = [sys.executable, "-m", "yolo_optim.cli"]
    out = subprocess.run([*cmd, "tune", "model=yolo11n.yaml", "data=d.yaml"], env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 2, out.stderr
    assert "'ray[tune]' package is not installed" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert subprocess.run([*cmd, "help"], env=env, capture_output=True, timeout=120, check=False).returncode == 0


def test_latency_table_is_measured_once_per_model_and_size(demo_data: Path, tmp_path: Path) -> None:
    from yolo_optim.tune.objective import _model_for_data, measure_latency_table

    assert _model_for_data("yolo11n.yaml", str(demo_data), tmp_path / "m").model.yaml["nc"] == 3  # as trained
    objective = make_objective("latency", "auto", "onnxruntime-cpu:fp32", 5.0, 0.0)
    logged: list[str] = []
    cache = tmp_path / "latency.json"
    table = measure_latency_table([("yolo11n.yaml", 32)], objective, str(demo_data), "cpu", cache, log=logged.append)
    assert list(table) == ["yolo11n.yaml@32"] and table["yolo11n.yaml@32"] > 0 and len(logged) == 1
    again = measure_latency_table([("yolo11n.yaml", 32)], objective, str(demo_data), "cpu", cache, log=logged.append)
    assert again == table and len(logged) == 1  # read from latency.json, not measured again


def test_an_objective_training_never_logs_fails_before_anything_is_written(demo_data: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    rc = main(["tune", "model=yolo11n.yaml", f"data={demo_data}", f"project={tmp_path}/runs",
               "objective=metrics/mAP50-95(M)"])  # a mask metric: a detection model never logs it
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "never logged" in err and "did you mean 'metrics/mAP50-95(B)'" in err
    assert not (tmp_path / "runs").exists()


def test_logged_metrics_follow_the_task_and_its_loss() -> None:
    from yolo_optim.models import load_yolo
    from yolo_optim.tune.objective import logged_metrics

    detect = logged_metrics(load_yolo("yolo11n.yaml"))
    assert {"fitness", "metrics/mAP50-95(B)", "val/box_loss", "train/dfl_loss"} <= set(detect)
    seg = logged_metrics(load_yolo("yolo11n-seg.yaml"))
    assert {"metrics/mAP50-95(M)", "val/seg_loss"} <= set(seg) and "val/seg_loss" not in detect


@pytest.mark.parametrize("mode", ["tune", "optimize"])
def test_an_address_where_nothing_listens_fails_in_seconds(mode: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    """tune and optimize both take a Ray cluster's address=; ray.init itself would wait minutes for no answer."""
    import socket
    import time

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.time()
    model = ["model=yolo11n.yaml", "data=data.yaml"] if mode == "tune" else []  # optimize: the demo baseline
    rc = main([mode, *model, f"project={tmp_path}/runs", f"address=127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert rc == 2 and time.time() - t0 < 10, err
    assert f"nothing answers at 127.0.0.1:{port}" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_best_so_far_follows_the_objective_direction() -> None:
    from yolo_optim.tune.results import best_so_far

    assert best_so_far([0.3, 0.1, 0.5, 0.2], "min") == [0.3, 0.1, 0.1, 0.1]  # a loss: the lowest so far
    assert best_so_far([0.3, 0.1, 0.5, 0.2], "max") == [0.3, 0.3, 0.5, 0.5]


def test_a_registered_searcher_and_scheduler_are_looked_up_by_name() -> None:
    from yolo_optim.registry import SCHEDULERS, SEARCHERS
    from yolo_optim.tune.searchers import SearchPlan, make_scheduler, make_search_plan

    calls = []

    @SEARCHERS.register("toy-lookup")
    def toy(space, metric, mode, trials, seed, concurrency):
        calls.append((metric, mode, trials))
        return SearchPlan(None, {}, trials)

    SCHEDULERS.register("toy-lookup", lambda cfg, mode: ("scheduler", mode))
    plan = make_search_plan("toy-lookup", load_space(TWO), "objective", "min", 5, 0, 1)
    assert plan.num_samples == 5 and calls == [("objective", "min", 5)]
    assert make_scheduler("toy-lookup", None, "max") == ("scheduler", "max")
    with pytest.raises(OptimError, match="did you mean 'toy-lookup'"):
        make_search_plan("toy-lookp", load_space(TWO), "objective", "min", 5, 0, 1)
