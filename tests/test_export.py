"""Export per backend x precision on the tiny model: artifacts load in plain Ultralytics, carry metadata, run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from yolo_optim.errors import OptimError
from yolo_optim.export import Target, export, get_backend, read_artifact_metadata
from yolo_optim.models import file_sha256

IMGSZ = 64
CPU_TARGETS = [
    "openvino-cpu:fp32", "openvino-cpu:bf16", "openvino-cpu:fp16", "openvino-cpu:int8w", "openvino-cpu:int8",
    "onnxruntime-cpu:fp32", "onnxruntime-cpu:int8w", "onnxruntime-cpu:int8", "torch-cpu:fp32",
]


def _runnable(name: str) -> Target:
    target = Target.parse(name)
    ok, why = get_backend(target.backend).supports(target)
    if not ok:
        pytest.skip(f"{name} not runnable here: {why}")
    return target


def _val_image(demo_data: Path) -> Path:
    return next((demo_data.parent / "images" / "val").glob("*.*"))


@pytest.mark.parametrize("name", CPU_TARGETS)
def test_export_loads_in_ultralytics_with_metadata(name, tiny_model, demo_data, tmp_path):
    from ultralytics import YOLO

    target = _runnable(name)
    result = export(str(tiny_model), name, data=str(demo_data), imgsz=IMGSZ, project=str(tmp_path), name="run",
                    guard="off", calib_images=8)
    assert result.path.exists() and result.path.parent == result.save_dir == tmp_path / "run"
    assert not any(p.name.startswith(".") for p in result.save_dir.iterdir()), "scratch files left behind"

    meta = read_artifact_metadata(result.path)
    assert meta["precision"] == target.precision and meta["backend"] == target.backend
    assert meta["source_sha256"] == file_sha256(tiny_model)
    assert meta["imgsz"] == IMGSZ and meta["task"] == "detect"
    assert meta["names"] == YOLO(str(tiny_model)).names
    if target.precision == "int8":
        assert meta["calibration"]["split"] == "train" and meta["calibration"]["images"] == 8
        assert meta["quantization"]["float_nodes"] > 0  # the head's decode stayed float

    # plain Ultralytics loads and predicts with it
    preds = YOLO(str(result.path), task="detect").predict(str(_val_image(demo_data)), imgsz=IMGSZ, verbose=False)
    assert len(preds) == 1 and preds[0].boxes is not None

    # the raw runner runs at the recorded precision and gives the model's output layout
    runner = get_backend(target.backend).load_runner(result.path, threads=1)
    out = runner(np.random.default_rng(0).random((1, 3, IMGSZ, IMGSZ), dtype=np.float32))
    first = out[0] if isinstance(out, list) else out
    assert first.shape[0] == 1 and first.shape[1] == 4 + len(meta["names"])
    assert runner.executed_precision == meta["executed_precision"]
    if target.precision in ("fp32", "bf16", "fp16"):
        assert runner.executed_precision == target.precision  # never a bf16 run labelled fp32
    if target.backend == "openvino":  # compiled at the recorded precision, whatever the CPU's default
        hint = runner.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        assert hint == meta["inference_precision_hint"] == {"bf16": "bf16", "fp16": "f16"}.get(target.precision, "f32")


def test_int8_export_with_guard_records_both_figures(tiny_model, demo_data, tmp_path):
    _runnable("onnxruntime-cpu:int8")
    result = export(str(tiny_model), "onnxruntime-cpu:int8", data=str(demo_data), imgsz=IMGSZ, project=str(tmp_path),
                    calib_images=8)
    guard = result.metadata["accuracy_guard"]
    assert {"reference", "quantized", "drop", "max_drop", "passed"} <= set(guard)
    assert guard["max_drop"] == 0.01 and 0.0 <= guard["reference"] <= 1.0 and 0.0 <= guard["quantized"] <= 1.0
    assert abs(guard["drop"] - (guard["reference"] - guard["quantized"])) < 1e-5


def test_guard_warns_on_a_forced_drop(tiny_model, demo_data, tmp_path, caplog):
    """A reference the INT8 model cannot reach: the warn guard logs both numbers and still writes the artifact."""
    from yolo_optim.export.validate import MapResult

    _runnable("onnxruntime-cpu:int8")
    with caplog.at_level("WARNING", logger="yolo_optim.export"):
        result = export(str(tiny_model), "onnxruntime-cpu:int8", data=str(demo_data), imgsz=IMGSZ,
                        project=str(tmp_path), calib_images=8, reference=MapResult(0.9, 0.95))
    guard = result.metadata["accuracy_guard"]
    assert guard["passed"] is False and guard["reference"] == 0.9 and guard["drop"] > 0.5
    assert any("0.9000" in r.getMessage() and "max_drop=0.01" in r.getMessage() for r in caplog.records)
    assert result.path.exists()


def test_strict_guard_tries_fallbacks_then_fails_leaving_nothing(tiny_model, demo_data, tmp_path):
    from yolo_optim.export.validate import MapResult

    _runnable("onnxruntime-cpu:int8")
    with pytest.raises(OptimError, match=r"accuracy guard: .*fallback.*nothing was written"):
        export(str(tiny_model), "onnxruntime-cpu:int8", data=str(demo_data), imgsz=IMGSZ, project=str(tmp_path),
               name="strict", calib_images=8, guard="strict", reference=MapResult(0.9, 0.95))
    assert list(tmp_path.iterdir()) == []  # no run folder, no temporary folders


def test_strict_guard_passes_when_within_max_drop(tiny_model, demo_data, tmp_path):
    from yolo_optim.export.validate import MapResult

    _runnable("onnxruntime-cpu:int8")
    result = export(str(tiny_model), "onnxruntime-cpu:int8", data=str(demo_data), imgsz=IMGSZ,
                    project=str(tmp_path), calib_images=8, guard="strict", max_drop=1.0,
                    reference=MapResult(0.9, 0.95))
    assert result.metadata["accuracy_guard"]["passed"] is True
    assert "fallback" not in result.metadata


def test_export_never_touches_the_source_folder(tiny_model, demo_data, tmp_path):
    import shutil

    src_dir = tmp_path / "src"
    src_dir.mkdir()
    weights = src_dir / "w.pt"
    shutil.copyfile(tiny_model, weights)
    before = file_sha256(weights)
    export(str(weights), "onnxruntime-cpu:fp32", imgsz=IMGSZ, project=str(tmp_path / "out"))
    assert sorted(p.name for p in src_dir.iterdir()) == ["w.pt"] and file_sha256(weights) == before


def test_existing_run_folder_gets_the_new_artifact_with_exist_ok(tiny_model, tmp_path):
    first = export(str(tiny_model), "onnxruntime-cpu:fp32", imgsz=IMGSZ, project=str(tmp_path), name="same")
    second = export(str(tiny_model), "torch-cpu:fp32", imgsz=IMGSZ, project=str(tmp_path), name="same",
                    exist_ok=True)
    assert first.save_dir == second.save_dir and first.path.exists() and second.path.exists()


@pytest.mark.slow
def test_openvino_accuracy_controlled_int8(tiny_model, demo_data, tmp_path):
    _runnable("openvino-cpu:int8")
    result = export(str(tiny_model), "openvino-cpu:int8", data=str(demo_data), imgsz=IMGSZ, project=str(tmp_path),
                    calib_images=8, accuracy_control=True, guard="off")
    assert "accuracy control" in result.metadata["quantization"]["method"]
    from ultralytics import YOLO

    assert YOLO(str(result.path), task="detect").predict(str(_val_image(demo_data)), imgsz=IMGSZ, verbose=False)


def test_onnxruntime_fp32_matches_the_pytorch_model(tiny_model, tmp_path):
    """The ONNX graph (with its softmax rewrite) computes what the checkpoint computes."""
    ort_art = export(str(tiny_model), "onnxruntime-cpu:fp32", imgsz=IMGSZ, project=str(tmp_path), name="o")
    pt_art = export(str(tiny_model), "torch-cpu:fp32", imgsz=IMGSZ, project=str(tmp_path), name="t")
    assert ort_art.metadata["graph_rewrites"]["softmax_decomposed"] == 1  # the DFL softmax
    x = np.random.default_rng(1).random((1, 3, IMGSZ, IMGSZ), dtype=np.float32)
    ours = get_backend("onnxruntime").load_runner(ort_art.path)(x)[0]
    ref = get_backend("torch").load_runner(pt_art.path)(x)
    assert ours.shape == ref.shape and np.abs(ours - ref).max() < 1e-2


def test_openvino_strict_guard_walks_its_fallback_chain(tiny_model, demo_data, tmp_path, monkeypatch):
    """guard=strict on OpenVINO INT8: plain PTQ, then accuracy control, then the wider float scope, in that order;
    the first that passes is kept and recorded."""
    from yolo_optim.export import guard as guard_module
    from yolo_optim.export.openvino import OpenVINOBackend
    from yolo_optim.export.validate import MapResult

    _runnable("openvino-cpu:int8")
    tried = []
    real_export = OpenVINOBackend.export

    first: list[Path] = []

    def recording_export(self, yolo, target, options, out_dir):
        """Record what the exporter asks for; one real export, copied for the retries (accuracy control and the
        wider float scope themselves are tested elsewhere; here only the chain's order and bookkeeping matter)."""
        import shutil

        tried.append((options.accuracy_control, options.float_scope))
        if not first:
            first.append(real_export(self, yolo, target, options, out_dir))
            shutil.copytree(first[0], tmp_path.parent / f"{tmp_path.name}-first")
            return first[0]
        dest = Path(out_dir) / first[0].name
        shutil.copytree(tmp_path.parent / f"{tmp_path.name}-first", dest)
        return dest

    verdicts = iter([0.10, 0.20, 0.49])  # only the third attempt is within max_drop of the 0.5 reference

    def scripted_check(artifact, reference, data, max_drop, mode, attempts=None, workers=0):
        assert Path(artifact).exists()  # each attempt is judged on the artifact it just wrote
        return guard_module.GuardResult(reference.map50_95, next(verdicts), max_drop, mode,
                                        attempts=list(attempts or []))

    monkeypatch.setattr(OpenVINOBackend, "export", recording_export)
    monkeypatch.setattr(guard_module, "check_artifact", scripted_check)
    result = export(str(tiny_model), "openvino-cpu:int8", data=str(demo_data), imgsz=IMGSZ, project=str(tmp_path),
                    name="chain", calib_images=8, guard="strict", max_drop=0.02, reference=MapResult(0.5, 0.7))
    assert tried == [(False, 0), (True, 0), (False, 1)]
    assert result.metadata["fallback"] == {"float_scope": 1}
    guard = result.metadata["accuracy_guard"]
    assert guard["passed"] and guard["quantized"] == 0.49
    assert [a["quantized"] for a in guard["attempts"]] == [0.10, 0.20]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain"]  # the failed attempts' folders are gone


@pytest.mark.parametrize("name", ["onnxruntime-cpu:int8", "openvino-cpu:int8"])
def test_int8_guard_on_a_trained_model_measures_real_accuracy(name, trained_baseline, tmp_path):
    """On a model with real accuracy the guard's FP32 figure is the model's and INT8 stays close to it."""
    _runnable(name)
    base = trained_baseline
    result = export(str(base.weights), name, data=str(base.data), imgsz=base.imgsz, project=str(tmp_path),
                    calib_images=32, guard="warn", max_drop=0.05)
    guard = result.metadata["accuracy_guard"]
    assert guard["reference"] == pytest.approx(base.map50_95, abs=0.02)
    assert guard["quantized"] > guard["reference"] - 0.05 and guard["passed"]


def test_obb_models_export_with_their_decode_kept_float(demo_data, tmp_path):
    """Rotated-box models export like the others; INT8 finds their head's decode (calibration needs images only)."""
    from ultralytics import YOLO

    weights = tmp_path / "obb.pt"
    YOLO("yolo11n-obb.yaml").save(str(weights))
    result = export(str(weights), "onnxruntime-cpu:int8", data=str(demo_data), imgsz=IMGSZ, project=str(tmp_path),
                    calib_images=8, guard="off")
    meta = result.metadata
    assert meta["task"] == "obb" and meta["quantization"]["float_nodes"] > 0
    out = get_backend("onnxruntime").load_runner(result.path)(np.zeros((1, 3, IMGSZ, IMGSZ), np.float32))
    assert out[0].shape[1] == 4 + len(meta["names"]) + 1  # boxes, class scores, angle
