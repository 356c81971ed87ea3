"""scripts/jetson run on this CPU machine against stand-in trtexec/tegrastats/nvpmodel/jetson_clocks (jetson_fakes):
the trtexec flags per TensorRT version, the power-mode handling, the parsing, results.json and the engine header."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from jetson_fakes import LATENCIES, MODULE, QPS, VDD_IN_MW, calls, install_fakes

KIT = Path(__file__).resolve().parents[1] / "scripts" / "jetson"
NAMES = {0: "circle", 1: "square", 2: "triangle"}


def _tiny_onnx(path: Path) -> None:
    """A one-node graph standing in for a YOLO export, with Ultralytics' metadata props."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["output0"])], "g",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3, 64, 64])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for k, v in {"stride": "32", "task": "detect", "batch": "1", "imgsz": "[64, 64]", "names": repr(NAMES)}.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(model, str(path))


def make_bundle(folder: Path, precision: str = "int8") -> Path:
    from yolo_optim.export.jetson import write_bundle
    from yolo_optim.export.tensorrt import ultralytics_header

    onnx_path = folder.parent / f"{folder.name}-src.onnx"
    _tiny_onnx(onnx_path)
    meta = {"backend": "tensorrt", "device": "jetson", "precision": precision, "target": f"tensorrt-jetson:{precision}",
            "imgsz": 64, "task": "detect", "names": NAMES, "source_model": "best.pt", "source_sha256": "ab" * 32,
            "calibration": {"split": "train", "images": 8} if precision == "int8" else None}
    return write_bundle(onnx_path, folder, ultralytics_header(onnx_path), meta, [8.0, 16.0, 32.0])


def run(script: str, bundle: Path, env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(bundle / script), *args], env=env, cwd=cwd or bundle.parent,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "bundle")


def test_shellcheck_passes():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    r = subprocess.run(["shellcheck", "-x", *sorted(str(p) for p in KIT.glob("*.sh"))], capture_output=True,
                       text=True, cwd=KIT, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_bundle_holds_the_kit_and_metadata(bundle):
    for name in ("model.onnx", "metadata.json", "metadata.yaml", "README.md", "setup.sh", "build.sh", "bench.sh",
                 "common.sh", "yolo_optim_jetson.py"):
        assert (bundle / name).is_file(), name
    assert (bundle / "build.sh").stat().st_mode & 0o111
    meta = json.loads((bundle / "metadata.json").read_text())
    assert meta["precision"] == "int8" and meta["imgsz"] == 64 and meta["strides"] == [8, 16, 32]
    assert meta["names"] == {str(k): v for k, v in NAMES.items()} and meta["source_sha256"] == "ab" * 32
    assert meta["ultralytics_header"]["names"] == {str(k): v for k, v in NAMES.items()} and meta["strongly_typed"]
    from yolo_optim.export.base import backend_of_artifact, read_artifact_metadata

    host = read_artifact_metadata(bundle)  # how yolo-optim reads the folder on the host
    assert host["precision"] == "int8" and host["names"] == NAMES and backend_of_artifact(bundle) == "tensorrt"


@pytest.mark.parametrize("trt", ["10.3", "10.7"])
def test_build_on_tensorrt_10_is_strongly_typed(bundle, tmp_path, trt):
    env = install_fakes(tmp_path / "fake", trt)
    r = run("build.sh", bundle, env, "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    build = [c for c in calls(env, "trtexec") if "--help" not in c][-1]
    assert f"--onnx={bundle / 'model.onnx'}" in build and "--stronglyTyped" in build and "--skipInference" in build
    assert not {"--fp16", "--int8", "--best", "--useDLACore=0"} & set(build)
    from yolo_optim.export.base import _engine_header

    offset, header = _engine_header(tmp_path / "run" / "model.engine")
    assert header["names"] == {str(k): v for k, v in NAMES.items()} and header["stride"] == 32
    assert header["yolo_optim"]["precision"] == "int8" and header["yolo_optim"]["tensorrt_version"].startswith(trt)
    assert "dla" not in header
    assert (tmp_path / "run" / "model.engine").read_bytes()[offset:] == (tmp_path / "run" / "model.plan").read_bytes()


def test_build_with_dla_on_tensorrt_10_falls_back_to_gpu(bundle, tmp_path):
    env = install_fakes(tmp_path / "fake", "10.3")
    r = run("build.sh", bundle, env, "--out", str(tmp_path / "run"), "--dla", "1")
    assert r.returncode == 0, r.stderr
    build = [c for c in calls(env, "trtexec") if "--help" not in c][-1]
    assert {"--useDLACore=1", "--allowGPUFallback", "--int8", "--fp16"} <= set(build)
    assert "--stronglyTyped" not in build  # DLA takes the precision flags on TensorRT 10
    from yolo_optim.export.base import _engine_header

    assert _engine_header(tmp_path / "run" / "model.engine")[1]["dla"] == "1"


def test_build_on_tensorrt_11_passes_no_precision_flag(bundle, tmp_path):
    env = install_fakes(tmp_path / "fake", "11.1")
    r = run("build.sh", bundle, env, "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    build = [c for c in calls(env, "trtexec") if "--help" not in c][-1]
    assert not {"--fp16", "--int8", "--best", "--stronglyTyped"} & set(build)
    assert any(a.startswith("--saveEngine=") for a in build)
    r = run("build.sh", bundle, env, "--out", str(tmp_path / "run2"), "--dla", "0")
    assert r.returncode == 2 and "DLA is not supported" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run2" / "model.plan").exists()


@pytest.mark.parametrize("trt", ["8.6", "10.2"])
def test_unsupported_tensorrt_is_refused(bundle, tmp_path, trt):
    env = install_fakes(tmp_path / "fake", trt)
    r = run("build.sh", bundle, env, "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "is not supported" in r.stderr
    assert [c for c in calls(env, "trtexec") if "--help" not in c] == []


def test_build_failure_is_one_error(bundle, tmp_path):
    env = {**install_fakes(tmp_path / "fake", "10.3"), "FAKE_TRTEXEC_FAIL": "1"}
    r = run("build.sh", bundle, env, "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "trtexec failed" in r.stderr
    assert not (tmp_path / "run" / "model.engine").exists()


def test_setup_max_perf_reads_the_mode_from_nvpmodel_conf(bundle, tmp_path):
    env = install_fakes(tmp_path / "fake", "10.3")
    out = tmp_path / "run"
    r = run("setup.sh", bundle, env, "--max-perf", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert ["-m", "2"] in calls(env, "nvpmodel")  # MAXN_SUPER has id 2 in this conf, not the usual 0
    assert [] in calls(env, "jetson_clocks") and ["--show"] in calls(env, "jetson_clocks")
    setup = json.loads((out / "setup.json").read_text())
    assert setup["power_mode"] == "MAXN_SUPER" and setup["power_mode_id"] == 2 and setup["max_perf"] is True
    assert setup["l4t"] == "36.4.3" and setup["tensorrt"] == "10.3.0" and setup["module"] == MODULE
    assert "GPU MinFreq=1020000000" in setup["clocks"]
    r = run("setup.sh", bundle, env, "--out", str(tmp_path / "run2"))  # without --max-perf nothing is changed
    assert r.returncode == 0 and calls(env, "nvpmodel").count(["-m", "2"]) == 1


def test_bench_writes_schema_valid_results(bundle, tmp_path):
    from yolo_optim.report.schema import validate_results

    env = install_fakes(tmp_path / "fake", "10.3")
    out = tmp_path / "run"
    assert run("setup.sh", bundle, env, "--out", str(out)).returncode == 0
    assert run("build.sh", bundle, env, "--out", str(out)).returncode == 0
    r = run("bench.sh", bundle, env, "--run", str(out), "--duration", "3", "--interval", "50")
    assert r.returncode == 0, r.stderr
    timing = [c for c in calls(env, "trtexec") if any(a.startswith("--loadEngine=") for a in c)]
    assert len(timing) == 2  # the timed run, then the run under tegrastats
    assert {"--useCudaGraph", "--noDataTransfers", "--separateProfileRun", "--duration=3"} <= set(timing[0])
    assert calls(env, "tegrastats")[0][:2] == ["--interval", "50"]
    results = json.loads((out / "results.json").read_text())
    validate_results(results)
    row = results["rows"][0]
    assert row["target"] == "tensorrt-jetson:int8" and row["device"] == "jetson" and row["hardware"] == MODULE
    lat = sorted(LATENCIES)
    assert row["inference"]["runs"] == len(lat) and row["inference"]["median_ms"] == pytest.approx(
        (lat[99] + lat[100]) / 2) and row["inference"]["p99_ms"] == pytest.approx(lat[197])
    assert row["inference"]["std_ms"] > 0 and row["map50_95"] is None
    power = row["extra"]["power"]
    assert power["vdd_in_mean_mw"] == pytest.approx(VDD_IN_MW) and power["samples"] >= 2
    assert power["energy_per_inference_mj"] == pytest.approx(VDD_IN_MW / QPS)
    env_rec = results["runs"][0]["environment"]
    assert env_rec["jetson"]["l4t"] == "36.4.3" and env_rec["versions"]["tensorrt"] == "10.3.0"
    assert env_rec["jetson"]["power_mode"] == "15W"


def test_parsers_read_the_real_formats():
    import importlib.util

    spec = importlib.util.spec_from_file_location("yolo_optim_jetson", KIT / "yolo_optim_jetson.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = ("[08/12/2025-10:40:12] [I] Throughput: 1204.37 qps\n"
            "[08/12/2025-10:40:12] [I] Latency: min = 0.801514 ms, max = 1.30725 ms, mean = 0.826 ms, "
            "median = 0.82251 ms, percentile(90%) = 0.8396 ms, percentile(95%) = 0.8479 ms, "
            "percentile(99%) = 0.887 ms\n"
            "[08/12/2025-10:40:12] [I] H2D Latency: min = 0.1 ms, max = 0.2 ms, mean = 0.15 ms, median = 0.15 ms, "
            "percentile(90%) = 0.18 ms, percentile(95%) = 0.19 ms, percentile(99%) = 0.2 ms\n"
            "[08/12/2025-10:40:12] [I] Timing trace has 3614 queries over 3.00231 s\n")
    s = mod.parse_trtexec(text)
    assert s["median_ms"] == 0.82251 and s["p90_ms"] == 0.8396 and s["p99_ms"] == 0.887 and s["min_ms"] == 0.801514
    assert s["throughput_qps"] == 1204.37 and s["queries"] == 3614
    stats = mod.latency_stats(s, None)
    assert stats["runs"] == 3614 and stats["median_ms"] == 0.82251
    power = mod.parse_tegrastats("RAM 1/2MB VDD_IN 4000mW/4000mW VDD_SOC 900mW/900mW\n"
                                 "RAM 1/2MB VDD_IN 6000mW/5000mW VDD_SOC 1100mW/1000mW\n")
    assert power["vdd_in_mean_mw"] == 5000 and power["rails_mean_mw"]["VDD_SOC"] == 1000 and power["samples"] == 2
    conf = "< POWER_MODEL ID=0 NAME=10W >\n< POWER_MODEL ID=1 NAME=30W >\n< POWER_MODEL ID=2 NAME=15W >\n"
    assert mod.max_perf_mode(conf) == (1, "30W")  # no MAXN mode: the largest wattage


def test_bench_with_data_validates_the_engine_with_ultralytics(bundle, tmp_path):
    """--data: mAP from Ultralytics' validator on run/model.engine (a stand-in `ultralytics` records the call)."""
    from yolo_optim.report.schema import validate_results

    fake = tmp_path / "fake-ultralytics" / "ultralytics"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "import json, os, types\n"
        "class YOLO:\n"
        "    def __init__(self, path, task=None):\n"
        "        self.path, self.task = path, task\n"
        "    def val(self, **kw):\n"
        "        open(os.environ['FAKE_VAL_LOG'], 'w').write(json.dumps({'path': self.path, 'task': self.task, **kw}))\n"
        "        return types.SimpleNamespace(results_dict={'metrics/mAP50-95(B)': 0.4321, 'metrics/mAP50(B)': 0.65},"
        " seen=24)\n")
    data = tmp_path / "data.yaml"
    data.write_text("path: .\ntrain: images\nval: images\nnames: {0: circle}\n")
    env = {**install_fakes(tmp_path / "fake", "11.1"), "PYTHONPATH": str(fake.parent),
           "FAKE_VAL_LOG": str(tmp_path / "val.json")}
    out = tmp_path / "run"
    assert run("build.sh", bundle, env, "--out", str(out)).returncode == 0
    r = run("bench.sh", bundle, env, "--run", str(out), "--duration", "1", "--data", str(data))
    assert r.returncode == 0, r.stderr
    call = json.loads((tmp_path / "val.json").read_text())
    assert call["path"] == str(out / "model.engine") and call["task"] == "detect"
    assert call["imgsz"] == 64 and call["batch"] == 1 and call["rect"] is False and call["data"] == str(data)
    results = json.loads((out / "results.json").read_text())
    validate_results(results)
    row = results["rows"][0]
    assert row["map50_95"] == 0.4321 and row["map50"] == 0.65 and row["val_images"] == 24
    assert results["runs"][0]["environment"]["versions"]["tensorrt"] == "11.1.0"
