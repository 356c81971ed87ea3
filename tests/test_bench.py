"""The benchmark end to end on the tiny fixtures: files, rows, skipped targets, failures, resume and merging."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from yolo_optim import benchmark, merge_reports
from yolo_optim.bench.api import available_targets, parse_targets
from yolo_optim.cli import main
from yolo_optim.errors import OptimError
from yolo_optim.export.base import Target, get_backend
from yolo_optim.report.report import Report
from yolo_optim.report.schema import load_results

FAST = dict(imgsz=64, warmup=2, runs=10, seconds=0.5, batch=8)
MEASURED = "torch-cpu:fp32,openvino-cpu:fp32"
REPORT_FILES = {"results.json", "results.csv", "report.md", "pareto.png", "report.html"}


@pytest.fixture(scope="module")
def unavailable() -> str:
    """A target this machine cannot run (TensorRT without CUDA, an absent Intel GPU/NPU)."""
    for name in ("tensorrt-gpu:fp16", "openvino-npu:fp32", "openvino-gpu:fp32", "torch-gpu:fp16"):
        t = Target.parse(name)
        if not get_backend(t.backend).supports(t)[0]:
            return name
    pytest.skip("every candidate target is available on this machine")


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model, demo_data, unavailable) -> Report:
    project = tmp_path_factory.mktemp("bench")
    return benchmark(model=tiny_model, data=demo_data, targets=f"{MEASURED},{unavailable}", project=project,
                     name="run", **FAST)


def test_benchmark_writes_every_file_and_row(run, tiny_model, unavailable):
    folder = run.save_dir
    assert REPORT_FILES <= {p.name for p in folder.iterdir()}
    load_results(folder)  # results.json validates against the shipped schema
    rows = {r.target: r for r in run.rows}
    assert set(rows) == {*MEASURED.split(","), unavailable} and run.complete
    for name in MEASURED.split(","):
        r = rows[name]
        assert r.status == "ok", r.error
        assert 0 <= r.map50_95 <= r.map50 <= 1 and r.val_images == 8
        assert r.inference.runs >= 10 and 0 < r.inference.median_ms <= r.inference.p99_ms
        assert r.end_to_end.median_ms > 0 and r.size_mb > 0 and r.params > 1e6
        assert r.executed_precision == "fp32"  # OpenVINO really ran f32 (a bf16 run would say so)
        assert r.model_sha256 and r.hardware and Path(r.artifact).exists()
    assert rows["openvino-cpu:fp32"].artifact != str(tiny_model)  # measured an export, not the input
    skipped = rows[unavailable]
    assert skipped.status == "skipped" and skipped.reason and skipped.inference is None
    md = (folder / "report.md").read_text()
    assert "openvino-cpu" in md and "torch-cpu" in md and f"{unavailable}: skipped" in md and "★" in md
    assert len((folder / "results.csv").read_text().splitlines()) == 1 + 3
    from PIL import Image

    assert np.asarray(Image.open(folder / "pareto.png").convert("L")).std() > 5  # not a blank canvas
    assert run.best(device="cpu") is not None


def test_resume_after_kill_keeps_finished_rows(run, tiny_model, demo_data, unavailable, tmp_path):
    project = tmp_path / "bench"
    shutil.copytree(run.save_dir, project / "run")
    killed = json.loads((project / "run" / "results.json").read_text())
    killed["complete"] = False  # as left by a kill after the first row was written
    killed["rows"] = [r for r in killed["rows"] if r["target"] == "torch-cpu:fp32"]
    (project / "run" / "results.json").write_text(json.dumps(killed))
    again = benchmark(model=tiny_model, data=demo_data, targets=f"{MEASURED},{unavailable}", project=project,
                      name="run", **FAST)
    assert again.save_dir == project / "run" and not (project / "run2").exists()  # resumed in place
    old = {r.target: r for r in run.rows}
    new = {r.target: r for r in again.rows}
    assert new["torch-cpu:fp32"] == old["torch-cpu:fp32"]  # kept, not measured again
    assert new["openvino-cpu:fp32"].run_id != old["openvino-cpu:fp32"].run_id  # measured by the new run
    assert new["openvino-cpu:fp32"].artifact_reused  # the cached export of the same source was reused
    assert again.complete and len(again.runs) == 2
    # the same command on the finished run starts a fresh numbered run, as Ultralytics numbers its runs
    assert Report.load(project / "run").complete


def test_rerun_with_exist_ok_skips_finished_rows(run, tiny_model, demo_data, unavailable, tmp_path):
    shutil.copytree(run.save_dir, tmp_path / "run")
    again = benchmark(model=tiny_model, data=demo_data, targets=f"{MEASURED},{unavailable}", project=tmp_path,
                      name="run", exist_ok=True, **FAST)
    measured = [r for r in run.rows if r.ok]
    assert [r for r in again.rows if r.ok] == measured


def test_failed_variant_is_recorded_and_merged(run, tmp_path, demo_data, capsys):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(OptimError, match=r"all 1 benchmark row\(s\) failed.*broken\.pt.*report\.md"):
        benchmark(model=broken, data=demo_data, targets="openvino-cpu:fp32", project=tmp_path, name="broken",
                  accuracy=False, **FAST)
    rep = Report.load(tmp_path / "broken")  # written before failing: the errors are in it
    (row,) = rep.rows
    assert row.status == "failed" and "broken.pt" in row.error and rep.complete
    assert REPORT_FILES <= {p.name for p in rep.save_dir.iterdir()}
    assert "failed" in (rep.save_dir / "report.md").read_text()
    merged = merge_reports([run.save_dir, rep.save_dir], out=tmp_path / "merged")
    assert len(merged.rows) == len(run.rows) + 1
    assert {r["run_id"] for r in merged.runs} == {r.run_id for r in merged.rows}
    assert REPORT_FILES <= {p.name for p in (tmp_path / "merged").iterdir()}
    # from the command line: one line, exit 2 (the cause is the user's file), no "Results saved"
    assert main(["benchmark", f"model={broken}", f"data={demo_data}", "targets=openvino-cpu:fp32", "accuracy=False",
                 f"project={tmp_path}", "name=cli", "runs=2", "warmup=0", "imgsz=64"]) == 2
    captured = capsys.readouterr()
    assert "Results saved" not in captured.out
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("yolo-optim: error: all 1 benchmark row(s) failed"), err
    assert "\x1b[" not in (tmp_path / "cli" / "report.md").read_text()


def test_rows_that_fail_for_another_reason_exit_1(tmp_path, tiny_model, demo_data, monkeypatch, capsys):
    from yolo_optim.bench import api

    def broken(*a, **k):
        raise RuntimeError("\x1b[31mruntime crashed\x1b[0m\nsecond line")

    monkeypatch.setattr(api, "measure_variant", broken)
    assert main(["benchmark", f"model={tiny_model}", f"data={demo_data}", "targets=onnxruntime-cpu:fp32",
                 f"project={tmp_path}", "name=r", "imgsz=64"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "runtime crashed second line" in err and "\x1b" not in err
    md = (tmp_path / "r" / "report.md").read_text()
    assert "RuntimeError: runtime crashed second line" in md and "\x1b" not in md


def test_throughput_batch_is_measured_where_the_batch_is_free(tmp_path, tiny_model, demo_data):
    rep = benchmark(model=tiny_model, data=demo_data, targets="torch-cpu:fp32,onnxruntime-cpu:fp32",
                    project=tmp_path, name="tp", accuracy=False, throughput_batch=4, threads=1,
                    **{**FAST, "runs": 4})
    rows = {r.target: r for r in rep.rows}
    tp = rows["torch-cpu:fp32"].throughput
    assert tp.batch == 4 and tp.images_per_s == pytest.approx(4000 / tp.batch_latency.median_ms)
    assert rows["torch-cpu:fp32"].threads_used == 1 and rows["onnxruntime-cpu:fp32"].threads_used == 1
    ort = rows["onnxruntime-cpu:fp32"]  # exported at a static batch of 1: says why instead of a figure
    assert ort.throughput is None and "fixed batch of 1" in ort.throughput_error
    assert "fixed batch of 1" in (rep.save_dir / "report.md").read_text()


@pytest.mark.slow
def test_targets_all_measures_every_available_target(tmp_path, tiny_model, demo_data):
    rep = benchmark(model=tiny_model, data=demo_data, targets="all", project=tmp_path, name="all",
                    accuracy=False, **{**FAST, "runs": 3, "warmup": 1})
    assert [r.target for r in rep.rows] == [t.name for t in available_targets()]
    assert all(r.status == "ok" for r in rep.rows), [(r.target, r.error) for r in rep.rows if not r.ok]


def test_benchmark_rows_keep_the_trained_models_accuracy(trained_baseline, tmp_path):
    base = trained_baseline
    rep = benchmark(model=base.weights, data=base.data, imgsz=base.imgsz, project=tmp_path, name="acc",
                    targets="torch-cpu:fp32,onnxruntime-cpu:fp32,openvino-cpu:fp32,onnxruntime-cpu:int8",
                    warmup=1, runs=3, seconds=0.5, batch=8)
    rows = {r.target: r for r in rep.rows}
    assert all(r.ok for r in rows.values()), [(r.target, r.error) for r in rows.values()]
    torch_map = rows["torch-cpu:fp32"].map50_95
    assert torch_map == pytest.approx(base.map50_95, abs=0.02)
    for name in ("onnxruntime-cpu:fp32", "openvino-cpu:fp32"):  # an fp32 export changes no weight
        assert rows[name].map50_95 == pytest.approx(torch_map, abs=0.01), name
    assert rows["onnxruntime-cpu:int8"].map50_95 > torch_map - 0.06  # a broken quantizer falls far below


def test_targets_parsing():
    assert [t.name for t in parse_targets("torch-cpu:fp32, openvino-cpu:int8,torch-cpu:fp32")] == \
        ["torch-cpu:fp32", "openvino-cpu:int8"]
    every = available_targets()
    assert Target("openvino", "cpu", "fp32") in every and Target("torch", "cpu", "fp32") in every
    assert all(get_backend(t.backend).availability(t.device)[0] for t in every)
    with pytest.raises(OptimError, match="unknown backend"):
        parse_targets("openvno-cpu:fp32")
    with pytest.raises(OptimError, match="targets is empty"):
        parse_targets(" , ")


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, tiny_model, demo_data, capsys):
    assert main(["benchmark", f"model={tiny_model}", f"data={demo_data}", "targets=openvino-cpu:fp33",
                 f"project={tmp_path}"]) == 2
    assert "precision 'fp33'" in capsys.readouterr().err
    assert main(["benchmark", f"model={tmp_path / 'missing.pt'}", f"data={demo_data}", f"project={tmp_path}"]) == 2
    assert "missing.pt is not a .pt checkpoint" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def _obb_dataset(demo_data: Path, out: Path) -> Path:
    """The demo dataset with every box written as Ultralytics' OBB label: class and four corners."""
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True)
        (out / "labels" / split).mkdir(parents=True)
        for img in (demo_data.parent / "images" / split).iterdir():
            shutil.copyfile(img, out / "images" / split / img.name)
            lines = []
            src = demo_data.parent / "labels" / split / f"{img.stem}.txt"
            for ln in (src.read_text().split("\n") if src.exists() else []):
                if ln.strip():
                    c, x, y, w, h = ln.split()
                    x, y, w, h = map(float, (x, y, w, h))
                    x1, y1, x2, y2 = x - w / 2, y - h / 2, x + w / 2, y + h / 2
                    lines.append(f"{c} {x1:.5f} {y1:.5f} {x2:.5f} {y1:.5f} {x2:.5f} {y2:.5f} {x1:.5f} {y2:.5f}")
            (out / "labels" / split / f"{img.stem}.txt").write_text("\n".join(lines) + "\n")
    yaml = out / "data.yaml"
    yaml.write_text(f"path: {out}\ntrain: images/train\nval: images/val\nnames:\n  0: a\n  1: b\n  2: c\n")
    return yaml


def test_obb_rows_are_validated(tmp_path, demo_data):
    """OBB models get rows with mAP (the rotated-box validator), not a KeyError."""
    from ultralytics import YOLO

    data = _obb_dataset(demo_data, tmp_path / "obb-data")
    weights = tmp_path / "obb.pt"
    YOLO("yolo11n-obb.yaml").save(str(weights))
    rep = benchmark(model=weights, data=data, targets="torch-cpu:fp32,onnxruntime-cpu:fp32", project=tmp_path,
                    name="obb", **{**FAST, "runs": 3, "warmup": 1})
    for r in rep.rows:
        assert r.ok, r.error
        assert r.map50_95 is not None and 0.0 <= r.map50_95 <= 1.0  # untrained: near 0, but measured
