"""`target=tensorrt-jetson` end to end on a CPU machine: the export writes a deploy bundle (accuracy-checked on ONNX
Runtime), the benchmark shows a skipped row saying where it is measured, and the results.json the device scripts
write (stand-in tools, tests/jetson_fakes.py) merges into the host's report."""

from __future__ import annotations

import json
import subprocess

import pytest
from jetson_fakes import MODULE, install_fakes

from yolo_optim.export import read_artifact_metadata

IMGSZ = 64


@pytest.fixture(scope="module")
def bundle(tiny_model, demo_data, tmp_path_factory):
    from yolo_optim.export import export

    return export(str(tiny_model), "tensorrt-jetson:int8", data=str(demo_data), imgsz=IMGSZ,
                  project=str(tmp_path_factory.mktemp("jetson-export")), guard="warn", max_drop=1.0, calib_images=8)


def test_export_writes_a_checked_bundle(bundle, tiny_model):
    from yolo_optim.models import file_sha256

    folder = bundle.path
    assert folder.is_dir() and folder.name.endswith("_tensorrt_int8_jetson")
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["precision"] == "int8" and meta["imgsz"] == IMGSZ and meta["strides"] == [8, 16, 32]
    assert meta["source_sha256"] == file_sha256(tiny_model) and meta["calibration"]["split"] == "train"
    assert meta["quantization"]["qdq"]["int8_types"] and meta["quantization"]["qdq"]["nonzero_zero_points"] == 0
    host = read_artifact_metadata(folder)
    guard = host["accuracy_guard"]  # the bundle's ONNX validated with ONNX Runtime against the fp32 source
    assert guard["passed"] and 0 <= guard["quantized"] <= 1 and guard["reference"] >= 0
    for script in ("setup.sh", "build.sh", "bench.sh", "yolo_optim_jetson.py", "README.md"):
        assert (folder / script).is_file()


def test_benchmark_skips_tensorrt_targets_with_the_reason(tiny_model, demo_data, tmp_path):
    import yolo_optim

    targets = "onnxruntime-cpu:fp32,tensorrt-jetson:int8,tensorrt-gpu:fp16"
    report = yolo_optim.benchmark(str(tiny_model), str(demo_data), targets,
                                  imgsz=IMGSZ, warmup=1, runs=3, seconds=1.0, accuracy=False, project=str(tmp_path))
    rows = {r.target: r for r in report.rows}
    assert rows["onnxruntime-cpu:fp32"].status == "ok"
    jetson = rows["tensorrt-jetson:int8"]
    assert jetson.status == "skipped" and "bench.sh" in jetson.reason and "runs=host,jetson" in jetson.reason
    from yolo_optim.export import get_backend

    if not get_backend("tensorrt").availability("gpu")[0]:  # no GPU here: the row says so and where to go instead
        gpu = rows["tensorrt-gpu:fp16"]
        assert gpu.status == "skipped" and "target=tensorrt-jetson" in gpu.reason


def test_device_results_merge_into_the_host_report(bundle, tiny_model, demo_data, tmp_path):
    import yolo_optim
    from yolo_optim.report.merge import merge_reports

    env = install_fakes(tmp_path / "fake", "10.3")
    run = tmp_path / "jetson-run"
    for script, args in (("setup.sh", ["--out", str(run)]), ("build.sh", ["--out", str(run)]),
                         ("bench.sh", ["--run", str(run), "--duration", "2"])):
        r = subprocess.run(["bash", str(bundle.path / script), *args], env=env, capture_output=True, text=True,
                           timeout=120, cwd=tmp_path, check=False)
        assert r.returncode == 0, (script, r.stderr)
    host = yolo_optim.benchmark(str(tiny_model), str(demo_data), "onnxruntime-cpu:fp32", imgsz=IMGSZ, warmup=1,
                                runs=3, seconds=1.0, accuracy=False, project=str(tmp_path / "host"))
    merged = merge_reports([host.save_dir, run], out=tmp_path / "merged")
    by_device = {r.device: r for r in merged.rows}
    assert by_device["cpu"].status == "ok" and by_device["jetson"].status == "ok"
    assert by_device["jetson"].hardware == MODULE and by_device["jetson"].inference.median_ms > 0
    assert by_device["jetson"].model_sha256 == host.rows[0].model_sha256  # the same checkpoint on both machines
    assert len(merged.runs) == 2 and (tmp_path / "merged" / "report.md").is_file()
    assert MODULE in (tmp_path / "merged" / "report.md").read_text()
