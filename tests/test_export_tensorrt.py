"""TensorRT engines (FP16, calibrated INT8 with a keyed cache): need TensorRT and a CUDA GPU, skipped elsewhere."""

from __future__ import annotations

import pytest

from yolo_optim.export import export, get_backend, read_artifact_metadata

pytestmark = [pytest.mark.gpu, pytest.mark.tensorrt]
IMGSZ = 64


@pytest.fixture(autouse=True)
def _needs_tensorrt():
    ok, why = get_backend("tensorrt").availability("gpu")
    if not ok:
        pytest.skip(why)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_loads_in_ultralytics(precision, tiny_model, demo_data, tmp_path):
    import numpy as np
    from ultralytics import YOLO

    result = export(str(tiny_model), "tensorrt-gpu", precision=precision, data=str(demo_data), imgsz=IMGSZ,
                    project=str(tmp_path), guard="off", calib_images=8)
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


def test_int8_calibration_cache_is_keyed_and_reused(tiny_model, demo_data, tmp_path):
    first = export(str(tiny_model), "tensorrt-gpu:int8", data=str(demo_data), imgsz=IMGSZ, project=str(tmp_path),
                   name="a", guard="off", calib_images=8)
    cache = first.metadata["calibration"]["cache"]
    stamp = __import__("os").stat(cache).st_mtime_ns
    second = export(str(tiny_model), "tensorrt-gpu:int8", data=str(demo_data), imgsz=IMGSZ, project=str(tmp_path),
                    name="b", guard="off", calib_images=8)
    assert second.metadata["calibration"]["cache"] == cache and __import__("os").stat(cache).st_mtime_ns == stamp
    other = export(str(tiny_model), "tensorrt-gpu:int8", data=str(demo_data), imgsz=IMGSZ, project=str(tmp_path),
                   name="c", guard="off", calib_images=4)  # other images: another key
    assert other.metadata["calibration"]["cache"] != cache
