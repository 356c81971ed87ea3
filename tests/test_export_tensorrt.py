"""TensorRT engines for TensorRT 10.3+ and 11: the builder checked against stand-in `tensorrt` modules of both major
versions (whose 11.x lacks every removed API), the one-line refusal without a GPU, and, on a machine with TensorRT
and a GPU (markers gpu/tensorrt), real engines that Ultralytics loads."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from yolo_optim.errors import OptimError
from yolo_optim.export import get_backend, read_artifact_metadata
from yolo_optim.export.tensorrt import build_engine, cuda_index, network_flags

IMGSZ = 64
REMOVED_IN_11 = ("FP16", "INT8", "BF16", "FP8", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS")


def fake_tensorrt(version: str) -> types.ModuleType:
    """A `tensorrt` stand-in recording calls; on 11.x the removed APIs are absent, so touching one fails."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    major = int(version.split(".")[0])
    trt.calls = []

    class Logger:
        WARNING, ERROR = 2, 1

        def __init__(self, level: int) -> None:
            pass

    flags = {"STRONGLY_TYPED": 0}
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(**flags)
    builder_flags = {"TF32": 7, "FP16": 0, "INT8": 1, "OBEY_PRECISION_CONSTRAINTS": 11, "GPU_FALLBACK": 4}
    if major >= 11:
        builder_flags = {k: v for k, v in builder_flags.items() if k not in REMOVED_IN_11}
    trt.BuilderFlag = types.SimpleNamespace(**builder_flags)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE=0)

    class Config:
        def set_memory_pool_limit(self, pool: int, size: int) -> None:
            trt.calls.append(("set_memory_pool_limit", pool, size))

        def set_flag(self, flag: int) -> None:
            trt.calls.append(("set_flag", flag))

        def __setattr__(self, name: str, value: object) -> None:
            if major >= 11 and name in ("int8_calibrator",):
                raise AttributeError(f"'IBuilderConfig' has no attribute '{name}' in TensorRT 11")
            trt.calls.append(("setattr", name))
            object.__setattr__(self, name, value)

    class Builder:
        def __init__(self, logger: Logger) -> None:
            if major < 11:
                self.platform_has_fast_fp16 = True

        def create_network(self, flags: int = 0) -> object:
            trt.calls.append(("create_network", flags))
            return types.SimpleNamespace()

        def create_builder_config(self) -> Config:
            return Config()

        def build_serialized_network(self, network: object, config: Config) -> bytes:
            trt.calls.append(("build",))
            return b"FAKE-ENGINE"

    class OnnxParser:
        num_errors = 0

        def __init__(self, network: object, logger: Logger) -> None:
            pass

        def parse_from_file(self, path: str) -> bool:
            trt.calls.append(("parse", Path(path).name))
            return True

    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, OnnxParser
    return trt


@pytest.mark.parametrize("version,flags", [("10.3.0", 1), ("10.13.3", 1), ("11.1.0", 0)])
def test_builder_is_strongly_typed_without_precision_flags(tmp_path, version, flags):
    trt = fake_tensorrt(version)
    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(b"")
    assert build_engine(onnx_path, trt) == b"FAKE-ENGINE"
    assert ("create_network", flags) in trt.calls and network_flags(trt) == flags
    assert not [c for c in trt.calls if c[0] in ("set_flag", "setattr")]  # no precision flag, no calibrator
    assert ("set_memory_pool_limit", 0, 4 << 30) in trt.calls and trt.calls[-1] == ("build",)


def test_builder_refuses_tensorrt_older_than_10_3(tmp_path):
    with pytest.raises(OptimError, match="too old"):
        build_engine(tmp_path / "m.onnx", fake_tensorrt("10.2.0"))


def test_device_picks_the_cuda_gpu():
    assert [cuda_index(d) for d in ("cpu", "", None, "0", "1", "cuda:2", "1,0", "cuda")] == [0, 0, 0, 0, 1, 2, 1, 0]
    with pytest.raises(OptimError, match="does not name a CUDA GPU"):
        cuda_index("mps")


def test_without_a_gpu_export_says_so_in_one_line(tiny_model, tmp_path):
    ok, why = get_backend("tensorrt").availability("gpu")
    if ok:
        pytest.skip("this machine has TensorRT and a GPU")
    assert "target=tensorrt-jetson" in why
    import torch

    if not torch.cuda.is_available():  # the missing GPU is named first: installing TensorRT would not help
        assert why.startswith("no CUDA GPU is visible here")
    r = subprocess.run([sys.executable, "-m", "yolo_optim", "export", f"model={tiny_model}", "target=tensorrt-gpu",
                        f"imgsz={IMGSZ}", f"project={tmp_path}"], capture_output=True, text=True, timeout=300, check=False)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "tensorrt-jetson" in lines[0] and "Traceback" not in r.stderr
    assert not any(tmp_path.iterdir())


def test_engine_export_with_a_stand_in_tensorrt(tiny_model, demo_data, tmp_path, monkeypatch):
    """The whole export flow on the CPU: Q/DQ ONNX, the version-gated build, Ultralytics' header with our metadata."""
    import contextlib

    from yolo_optim.export import export
    from yolo_optim.export import tensorrt as backend_module
    from yolo_optim.export.base import _engine_header

    trt = fake_tensorrt("11.1.0")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(backend_module.TensorRTBackend, "availability", lambda self, device="gpu": (True, ""))
    seen = []

    @contextlib.contextmanager
    def on_gpu(index):
        seen.append(index)
        yield "Fake GPU"

    monkeypatch.setattr(backend_module, "cuda_device", on_gpu)
    monkeypatch.setattr("yolo_optim.models.check_device", lambda device, available=True: str(device))  # no GPU here
    result = export(str(tiny_model), "tensorrt-gpu:int8", data=str(demo_data), imgsz=IMGSZ, project=str(tmp_path),
                    guard="off", calib_images=8, device="1")
    assert result.path.suffix == ".engine" and seen == [1]
    offset, header = _engine_header(result.path)
    assert result.path.read_bytes()[offset:] == b"FAKE-ENGINE"
    assert header["stride"] == 32 and header["imgsz"] == [IMGSZ, IMGSZ] and header["task"] == "detect"
    meta = read_artifact_metadata(result.path)
    assert meta["precision"] == "int8" and meta["gpu"] == "Fake GPU" and meta["cuda_device"] == 1
    assert meta["tensorrt_version"] == "11.1.0" and meta["strongly_typed"] is True
    qdq = meta["quantization"]["qdq"]
    assert qdq["int8_types"] and qdq["nonzero_zero_points"] == 0 and qdq["float_nodes_with_qdq"] == 0
    assert meta["calibration"]["split"] == "train" and meta["calibration"]["images"] == 8
    assert ("parse", "int8_qdq.onnx") in trt.calls and not [c for c in trt.calls if c[0] == "set_flag"]


# --------------------------------------------------------------------------------------------- real TensorRT
@pytest.fixture
def _needs_tensorrt():
    ok, why = get_backend("tensorrt").availability("gpu")
    if not ok:
        pytest.skip(why)


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_loads_in_ultralytics(precision, tiny_model, demo_data, tmp_path, _needs_tensorrt):
    import numpy as np
    from ultralytics import YOLO

    from yolo_optim.export import export

    result = export(str(tiny_model), "tensorrt-gpu", precision=precision, data=str(demo_data), imgsz=IMGSZ,
                    project=str(tmp_path), guard="off", calib_images=8, device="0")
    assert result.path.suffix == ".engine"
    meta = read_artifact_metadata(result.path)
    assert meta["precision"] == precision and meta["backend"] == "tensorrt" and meta["imgsz"] == IMGSZ
    assert meta["names"] == YOLO(str(tiny_model)).names and meta["gpu"]
    image = next((demo_data.parent / "images" / "val").glob("*.*"))
    preds = YOLO(str(result.path), task="detect").predict(str(image), imgsz=IMGSZ, device=0, verbose=False)
    assert len(preds) == 1
    runner = get_backend("tensorrt").load_runner(result.path)
    out = runner(np.zeros(runner.input_shape, np.float32))
    assert out[0].shape[:2] == (1, 4 + len(meta["names"])) and runner.executed_precision == precision


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_int8_engine_keeps_accuracy(tiny_model, demo_data, tmp_path, _needs_tensorrt):
    from yolo_optim.export import export

    result = export(str(tiny_model), "tensorrt-gpu:int8", data=str(demo_data), imgsz=IMGSZ, project=str(tmp_path),
                    guard="warn", calib_images=8, device="0")
    guard = result.metadata["accuracy_guard"]
    assert guard["quantized"] >= guard["reference"] - 0.01 - 1e-9


def test_modelopt_is_no_dependency():
    """nvidia-modelopt[onnx] would replace onnx and add onnxruntime-gpu beside onnxruntime (README); the Q/DQ path
    must not need it, in the default install or the tensorrt extra."""
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *(d for deps in project["optional-dependencies"].values() for d in deps)]
    assert not [d for d in wanted if "modelopt" in d.lower() or "onnxruntime-gpu" in d.lower()]
    code = ("import sys, yolo_optim.export.qdq, yolo_optim.export.tensorrt, yolo_optim.export.jetson; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('modelopt', 'tensorrt')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr
