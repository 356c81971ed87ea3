"""`optimize target=tensorrt-jetson` without measurements from the device: planned from a relative budget alone."""

from __future__ import annotations

import json

import onnx
import pytest
import yaml

from yolo_optim.errors import OptimError

IMGSZ = 64


def _recipe(folder, **changes):
    path = folder / "jetson.yaml"
    path.write_text(yaml.safe_dump({"target": "tensorrt-jetson", "precisions": "fp16", "prune_targets": "budget",
                                    "finetune_epochs": 0, "distill": False, "prune_allocation": "uniform",
                                    **changes}), encoding="utf-8")
    return path


def test_a_relative_budget_alone_plans_a_pruned_bundle(tmp_path, tiny_model, demo_data):
    import yolo_optim
    from yolo_optim.export.jetson import read_bundle

    r = yolo_optim.optimize(tiny_model, demo_data, target="tensorrt-jetson", budget="0.5x", imgsz=IMGSZ, batch=8,
                            recipe=str(_recipe(tmp_path)), max_drop=0.9, project=str(tmp_path / "runs"),
                            name="plan")
    assert r.status == "planned" and r.exit_code == 0 and r.row is None
    bundle = read_bundle(r.path)  # deploy/ holds a complete bundle the device builds from
    assert r.path.parent == r.save_dir / "deploy" and bundle["precision"] == "fp16"
    assert all((r.path / f).is_file() for f in ("model.onnx", "build.sh", "bench.sh", "setup.sh"))
    card = json.loads((r.save_dir / "deploy" / "model_card.json").read_text())
    assert card["latency_ms"] is None and card["budget_fraction"] == 0.5 and card["precision"] == "fp16"
    g0, g1 = card["gflops"]
    assert g1 < 0.75 * g0  # pruned towards 0.5 x 0.9 of the FLOPs (channel rounding keeps it from exact)
    assert 0.0 <= card["map50_95"] <= 1.0 and card["source_sha256"]
    text = (r.save_dir / "deploy" / "MODEL_CARD.md").read_text()
    assert "latency: not measured" in text and "bench.sh" in text
    graph = onnx.load(str(r.path / "model.onnx"))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.graph.initializer)
    state = json.loads((r.save_dir / "optimize.json").read_text())
    assert state["status"] == "planned" and state["plan"]["precision"] == "fp16"


@pytest.mark.parametrize("budget", [None, "8ms"])
def test_without_measurements_an_absolute_or_missing_budget_is_refused(tmp_path, tiny_model, demo_data, budget):
    from yolo_optim.cli import main

    args = ["optimize", f"model={tiny_model}", f"data={demo_data}", "target=tensorrt-jetson", f"imgsz={IMGSZ}",
            f"project={tmp_path / 'runs'}"] + ([f"budget={budget}"] if budget else [])
    assert main(args) == 2
    assert not (tmp_path / "runs").exists()
    import yolo_optim

    with pytest.raises(OptimError, match="results=.*budget=0.5x"):
        yolo_optim.optimize(tiny_model, demo_data, target="tensorrt-jetson", budget=budget, imgsz=IMGSZ,
                            project=str(tmp_path / "runs"))


def _device_results(tmp_path, tiny_model, demo_data):
    """A results.json as the Jetson's benchmark writes it: TensorRT rows for the source at fp16 and int8 (the
    schema from a real host benchmark, the rows' device, latency and mAP set as the Jetson would have measured)."""
    import yolo_optim

    host = yolo_optim.benchmark(str(tiny_model), str(demo_data), "onnxruntime-cpu:fp32", imgsz=IMGSZ, warmup=1, runs=3,
                                seconds=0.5, accuracy=False, project=str(tmp_path / "host"))
    doc = json.loads((host.save_dir / "results.json").read_text())
    base, rows = doc["rows"][0], []
    for precision, ms, m in (("fp16", 4.0, 0.30), ("int8", 2.5, 0.29)):
        target = f"tensorrt-jetson:{precision}"
        row = dict(base, key=base["key"].replace("onnxruntime-cpu:fp32", target), target=target, backend="tensorrt",
                   device="jetson", precision=precision, executed_precision=precision, map50_95=m, map50=m + 0.2,
                   status="ok")
        row["inference"] = dict(base["inference"], median_ms=ms)
        row["end_to_end"] = dict(base["end_to_end"], median_ms=ms + 1.0)
        rows.append(row)
    doc["rows"] = rows
    path = tmp_path / "jetson-results.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_device_results_choose_within_the_budget_and_bundle_it(tmp_path, tiny_model, demo_data):
    import yolo_optim
    from yolo_optim.export.jetson import read_bundle

    results = _device_results(tmp_path, tiny_model, demo_data)
    r = yolo_optim.optimize(tiny_model, demo_data, target="tensorrt-jetson", results=str(results), budget="3ms",
                            imgsz=IMGSZ, project=str(tmp_path / "runs"), name="jet")
    assert r.status == "ok" and r.row.precision == "int8" and r.row.latency() == 2.5
    assert read_bundle(r.path)["precision"] == "int8"  # deploy/ holds the chosen variant's bundle
    # a relative budget resolves against the device's own reference row (fp16, the most accurate: 4 ms)
    r = yolo_optim.optimize(tiny_model, demo_data, target="tensorrt-jetson", results=str(results), budget="0.5x",
                            imgsz=IMGSZ, project=str(tmp_path / "runs"), name="tight")
    assert r.status == "budget_unmet" and r.exit_code == 3 and r.closest.precision == "int8"
    assert json.loads((r.save_dir / "optimize.json").read_text())["budget_ms"] == 2.0


def test_a_planned_budget_out_of_reach_is_one_line_and_leaves_no_run_folder(tmp_path, tiny_model, demo_data, capsys):
    from yolo_optim.cli import main

    # 0.01x the latency means pruning 99% of the FLOPs: more than max_layer_ratio lets any allocation remove
    args = ["optimize", f"model={tiny_model}", f"data={demo_data}", "target=tensorrt-jetson", "budget=0.01x",
            f"imgsz={IMGSZ}", f"recipe={_recipe(tmp_path)}", f"project={tmp_path / 'runs' / 'jetson'}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # what was asked, why it cannot be, and what can: in one line
    assert "Traceback" not in err and "budget=0.01x" in last and "use ratio<=" in last and "can be planned" in last
    assert not (tmp_path / "runs").exists()
