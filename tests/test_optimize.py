"""`yolo-optim optimize` end to end on a tiny model at 64 px through a tiny recipe.

One search runs once per module (`base_run`); the other cases resume copies of its run folder, so they measure only
what their change makes new (a budget re-selects from the measured rows without measuring anything).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from yolo_optim.errors import OptimError

IMGSZ = 64
TIMING = {"warmup": 1, "runs": 5, "seconds": 0.2, "threads": 0}


def write_recipe(folder: Path, name: str, **changes) -> Path:
    recipe = {"target": "openvino-cpu", "precisions": "fp32", "prune_targets": "flops:0.3", "finetune_epochs": 0,
              "distill": False, "prune_allocation": "uniform", **TIMING, **changes}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, tiny_model, demo_data):
    """A finished search without budget: the source at fp32, one pruned (30% of FLOPs, not fine-tuned) model at fp32."""
    import yolo_optim

    root = tmp_path_factory.mktemp("optimize")
    recipe = write_recipe(root, "tiny")
    result = yolo_optim.optimize(tiny_model, demo_data, target="openvino-cpu", imgsz=IMGSZ, batch=8, recipe=str(recipe),
                                 project=str(root / "runs"), name="base")
    return {"root": root, "recipe": recipe, "result": result, "model": tiny_model, "data": demo_data}


def copy_run(base: dict, tmp_path: Path, name: str) -> Path:
    """A copy of the base run folder to resume, so the cases do not disturb one another."""
    project = tmp_path / "runs"
    shutil.copytree(base["result"].save_dir, project / name)
    return project


def stages_of(folder: Path) -> list[dict]:
    return json.loads((folder / "optimize.json").read_text())["stages"]


def test_no_budget_chooses_the_fastest_within_max_drop(base_run):
    r = base_run["result"]
    assert r.status == "ok" and r.exit_code == 0
    rows = json.loads((r.save_dir / "results.json").read_text())["rows"]
    models = {row["model"] for row in rows}
    assert models == {"source", "pruned-flops0.3"}
    source = next(row for row in rows if row["model"] == "source" and row["precision"] == "fp32")
    eligible = [row for row in rows if row["status"] == "ok"
                and round(row["map50_95"], 4) >= round(source["map50_95"] - 0.01, 4)]
    fastest = min(eligible, key=lambda row: row["inference"]["median_ms"])
    assert r.row.key == fastest["key"]
    assert r.reference.key == source["key"]
    assert r.speedup == pytest.approx(source["inference"]["median_ms"] / fastest["inference"]["median_ms"])
    for name in ("report.md", "report.html", "pareto.png", "results.csv", "optimize.json"):
        assert (r.save_dir / name).stat().st_size > 0, name
    md = (r.save_dir / "report.md").read_text()
    assert f"**Chosen: {r.row.model}" in md and "pruned-flops0.3" in md
    state = json.loads((r.save_dir / "optimize.json").read_text())
    assert state["status"] == "done" and state["chosen"]["key"] == r.row.key
    assert [s["stage"] for s in state["stages"]] == ["source", "prune", "pruned", "final side by side"]
    assert not any(s["reused"] for s in state["stages"])


def test_candidates_are_timed_again_side_by_side_before_the_choice(base_run):
    r = base_run["result"]
    final = [s for s in stages_of(r.save_dir) if s["stage"] == "final side by side"]
    assert len(final) == 1 and final[0]["status"] == "ok" and "2 variants in alternation" in final[0]["task"]
    rows = r.report.measured()
    assert len(rows) == 2 and all(x.extra.get("timed_in_alternation") for x in rows)
    assert all(x.extra["latency_sequential"]["median_ms"] > 0 for x in rows)
    assert r.reference.extra.get("timed_in_alternation")  # speed-ups are computed from the same figures


def test_results_json_is_valid_against_the_benchmark_schema(base_run):
    import jsonschema

    from yolo_optim.report.schema import results_schema

    obj = json.loads((base_run["result"].save_dir / "results.json").read_text())
    jsonschema.Draft202012Validator(results_schema()).validate(obj)
    pruned = [row for row in obj["rows"] if row["model"] == "pruned-flops0.3"]
    assert pruned and "pruned (30% of FLOPs" in pruned[0]["extra"]["optimize"]["steps"][0]
    assert {row["run_id"] for row in obj["rows"]} <= {run["run_id"] for run in obj["runs"]}


def test_deploy_is_loadable_by_plain_ultralytics(base_run, demo_data):
    from ultralytics import YOLO

    r = base_run["result"]
    assert r.path.parent == r.save_dir / "deploy"
    images = sorted((Path(demo_data).parent / "images" / "val").iterdir())
    out = YOLO(str(r.path), task="detect").predict(str(images[0]), imgsz=IMGSZ, verbose=False)
    assert len(out) == 1 and out[0].boxes is not None
    card = json.loads((r.path.parent / "model_card.json").read_text())
    assert card["target"] == r.row.target and card["latency_ms"] == pytest.approx(r.row.latency())
    assert card["source"] == str(Path(base_run["model"]).resolve()) and card["versions"].get("ultralytics")
    text = (r.path.parent / "MODEL_CARD.md").read_text()
    assert "steps applied" in text and r.row.model in text


def test_budget_met_reselects_without_measuring_again(base_run, tmp_path):
    import yolo_optim

    project = copy_run(base_run, tmp_path, "budget")
    rows = base_run["result"].report.measured()
    slowest = max(r.latency() for r in rows)
    r = yolo_optim.optimize(base_run["model"], base_run["data"], target="openvino-cpu", imgsz=IMGSZ, batch=8,
                            recipe=str(base_run["recipe"]), budget=f"{slowest * 2:.3f}ms", project=str(project),
                            name="budget", resume=True)
    assert r.status == "ok" and r.save_dir == project / "budget"
    # the source's most accurate variant is within the budget, so pruning is not tried: it could only lose mAP
    assert any(n.startswith("pruning skipped") for n in r.notes)
    source = [x for x in rows if x.model == "source"]
    best = max(source, key=lambda x: (round(x.map50_95, 4), -x.latency()))
    assert r.row.key == best.key
    stages = stages_of(r.save_dir)
    assert stages and all(s["reused"] and s["stage"] == "source" for s in stages)  # nothing measured again
    assert (r.save_dir / "deploy" / r.path.name).exists()


def test_budget_below_anything_reachable_exits_3_with_the_closest(base_run, tmp_path, capsys):
    from yolo_optim.cli import main

    project = copy_run(base_run, tmp_path, "tight")
    rc = main(["optimize", f"model={base_run['model']}", f"data={base_run['data']}", "target=openvino-cpu",
               f"imgsz={IMGSZ}", "batch=8", f"recipe={base_run['recipe']}", "budget=0.001ms", f"project={project}",
               "name=tight", "resume"])
    out = capsys.readouterr().out
    assert rc == 3
    fastest = min(base_run["result"].report.measured(), key=lambda x: x.latency())
    assert "Budget not met: no variant runs within 0.001 ms" in out and fastest.model in out
    assert f"{fastest.latency():.2f} ms" in out
    folder = project / "tight"
    assert not (folder / "deploy").exists()  # the earlier choice no longer holds: nothing to deploy
    state = json.loads((folder / "optimize.json").read_text())
    assert state["status"] == "budget_unmet" and state["closest"]["key"] == fastest.key
    assert "**Budget not met.**" in (folder / "report.md").read_text()


def test_a_target_this_machine_lacks_is_one_line_and_writes_nothing(tmp_path, tiny_model, demo_data, capsys):
    from yolo_optim.cli import main
    from yolo_optim.export.base import get_backend

    if get_backend("openvino").availability("npu")[0]:
        pytest.skip("this machine has an OpenVINO NPU")
    rc = main(["optimize", f"model={tiny_model}", f"data={demo_data}", "target=openvino-npu",
               f"project={tmp_path / 'runs'}"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "target=openvino-npu is not available on this machine" in err and "openvino-cpu" in err
    assert not (tmp_path / "runs").exists()


def test_bad_inputs_fail_before_anything_is_written(tmp_path, tiny_model, demo_data):
    import yolo_optim

    project = tmp_path / "runs"
    cases = [({"budget": "fast"}, "budget=fast is not a positive latency"),
             ({"imgsz_choices": "48"}, "not a positive multiple of 32"),
             ({"imgsz_choices": "128"}, "must be smaller than imgsz"),
             ({"recipe": str(write_recipe(tmp_path, "bad", prune_targets="half"))}, "prune_targets entry 'half'"),
             ({"recipe": str(write_recipe(tmp_path, "typo", precison="fp32"))}, "did you mean 'precisions'"),
             ({"recipe": str(write_recipe(tmp_path, "other", target="onnxruntime-cpu"))}, "written for target"),
             ({"resume": True}, "holds no optimize run")]
    for overrides, message in cases:
        with pytest.raises(OptimError, match=message):
            yolo_optim.optimize(tiny_model, demo_data, target="openvino-cpu", imgsz=IMGSZ, project=str(project),
                                **overrides)
    assert not project.exists()


def test_a_failing_stage_is_recorded_and_the_search_goes_on(base_run, tmp_path, monkeypatch):
    import yolo_optim
    from yolo_optim.optimize import candidates

    def broken(task, folder):
        raise RuntimeError("pruning crashed")

    monkeypatch.setattr(candidates, "_prune", broken)
    project = copy_run(base_run, tmp_path, "failing")
    recipe = write_recipe(tmp_path, "two", prune_targets="flops:0.3,flops:0.4")
    r = yolo_optim.optimize(base_run["model"], base_run["data"], target="openvino-cpu", imgsz=IMGSZ, batch=8,
                            recipe=str(recipe), project=str(project), name="failing", resume=True)
    assert r.status == "ok"  # chosen among the candidates that were measured
    failed = [s for s in stages_of(r.save_dir) if s["status"] == "failed"]
    assert len(failed) == 1 and "flops ratio 0.4" in failed[0]["task"]
    assert "RuntimeError: pruning crashed" in failed[0]["error"]
    assert any("pruning crashed" in n for n in r.notes)
    assert "pruning crashed" in (r.save_dir / "report.md").read_text()
    assert {row.model for row in r.report.rows} == {"source", "pruned-flops0.3"}  # the earlier pruned model stays


def test_resume_after_an_interruption_redoes_only_unfinished_stages(base_run, tmp_path, monkeypatch):
    import yolo_optim
    from yolo_optim.optimize import candidates

    project = copy_run(base_run, tmp_path, "killed")
    folder = project / "killed"
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != "optimize.json"}
    recipe = write_recipe(tmp_path, "wider", precisions="fp32,int8w", prune_targets="")
    real = candidates._bench

    def interrupted(task, out):
        if task.precision == "int8w":
            raise KeyboardInterrupt
        return real(task, out)

    monkeypatch.setattr(candidates, "_bench", interrupted)
    args = {"target": "openvino-cpu", "imgsz": IMGSZ, "batch": 8, "recipe": str(recipe), "project": str(project),
            "name": "killed", "resume": True}
    with pytest.raises(KeyboardInterrupt):
        yolo_optim.optimize(base_run["model"], base_run["data"], **args)
    # nothing half-written: the finished outputs are those of the earlier run, the state says it is running
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != "optimize.json"} == before
    assert json.loads((folder / "optimize.json").read_text())["status"] == "running"
    assert not list(folder.rglob(".*.tmp-*"))

    monkeypatch.setattr(candidates, "_bench", real)
    r = yolo_optim.optimize(base_run["model"], base_run["data"], **args)
    stages = {s["task"]: s for s in stages_of(folder)}
    assert stages["source openvino-cpu:fp32 @64"]["reused"]
    assert not stages["source openvino-cpu:int8w @64"]["reused"]
    assert {row.precision for row in r.report.rows} == {"fp32", "int8w"}


def test_sensitivity_probes_run_once_as_a_stage_and_the_pruner_reuses_them(base_run, tmp_path):
    """allocation=sensitivity: the probes are a stage of their own (one shard here, one per CPU slot on a cluster),
    and the pruning task is handed their table, so it measures no probe again."""
    import yolo_optim
    from yolo_optim.prune.sensitivity import read_table

    project = copy_run(base_run, tmp_path, "sens")
    recipe = write_recipe(tmp_path, "sens", prune_allocation="sensitivity", sensitivity_ratios="0.5",
                          sensitivity_images=8)
    r = yolo_optim.optimize(base_run["model"], base_run["data"], target="openvino-cpu", imgsz=IMGSZ, batch=8,
                            recipe=str(recipe), project=str(project), name="sens", resume=True)
    stages = stages_of(r.save_dir)
    probes = [s for s in stages if s["stage"] == "sensitivity"]
    assert len(probes) == 1 and probes[0]["status"] == "ok" and not probes[0]["reused"]
    merged = list((r.save_dir / "stages").glob("sensitivity-*.csv"))
    assert len(merged) == 1
    measured = {(x.group, x.ratio) for x in read_table(merged[0])}
    assert len(measured) > 5
    pruned_tables = list((r.save_dir / "stages").glob("prune-*/sensitivity.csv"))
    assert len(pruned_tables) == 1
    assert {(x.group, x.ratio) for x in read_table(pruned_tables[0])} == measured  # nothing measured twice

    # shards split the same probes: together they are the whole table, each probe in exactly one shard
    from yolo_optim.prune.sensitivity import probe_shard

    keys = {"method": "l2", "sensitivity_ratios": "0.5", "sensitivity_images": 8, "imgsz": IMGSZ, "batch": 8}
    halves = []
    for i in range(2):
        folder = tmp_path / f"shard{i}"
        folder.mkdir()
        halves.append({(x.group, x.ratio) for x in read_table(probe_shard(str(base_run["model"]),
                                                                          str(base_run["data"]), folder, (i, 2),
                                                                          **keys))})
    assert halves[0] and halves[1] and not halves[0] & halves[1]
    assert halves[0] | halves[1] == measured
