"""Bad input to `yolo-optim export`: one line on stderr, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from yolo_optim.cli import main
from yolo_optim.errors import OptimError
from yolo_optim.export import Target, get_backend, list_backends


def _run(capsys, *args: str) -> tuple[int, str]:
    rc = main(["export", *args])
    err = capsys.readouterr().err.strip()
    return rc, err


def _assert_clean_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("yolo-optim: error:"), err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err


def test_target_parsing():
    t = Target.parse("openvino-cpu:int8")
    assert (t.backend, t.device, t.precision, t.name, t.runtime) == ("openvino", "cpu", "int8", "openvino-cpu:int8",
                                                                    "openvino-cpu")
    assert Target.parse("onnxruntime-cpu", precision="int8w") == Target("onnxruntime", "cpu", "int8w")
    assert Target.parse(t) is t and Target.parse(t.name) == t
    with pytest.raises(OptimError, match="unknown backend 'openvin'.*did you mean 'openvino'"):
        Target.parse("openvin-cpu")
    with pytest.raises(OptimError, match="unknown device 'tpu'"):
        Target.parse("openvino-tpu")
    with pytest.raises(OptimError, match="unknown precision 'int4'"):
        Target.parse("openvino-cpu:int4")
    with pytest.raises(OptimError, match="give it once"):
        Target.parse("openvino-cpu:int8", precision="fp16")
    with pytest.raises(OptimError, match="<backend>-<device>"):
        Target.parse("openvino")


def test_every_backend_reports_availability_without_raising():
    assert set(list_backends()) == {"onnxruntime", "openvino", "tensorrt", "torch"}
    for name in list_backends():
        backend = get_backend(name)
        assert backend.name == name and backend.precisions and backend.devices
        for device in backend.devices:
            ok, why = backend.availability(device)
            assert isinstance(ok, bool) and (ok or why)


def test_missing_tensorrt_names_the_extra(capsys, tiny_model, tmp_path):
    ok, why = get_backend("tensorrt").availability("gpu")
    if ok:
        pytest.skip("TensorRT and a GPU are present")
    assert "yolo-optim[tensorrt]" in why or "GPU" in why
    rc, err = _run(capsys, f"model={tiny_model}", "target=tensorrt-gpu", "precision=fp16", f"project={tmp_path}")
    _assert_clean_error(rc, err, "tensorrt-gpu:fp16")
    assert list(tmp_path.iterdir()) == []


def test_int8_without_data(capsys, tiny_model, tmp_path):
    rc, err = _run(capsys, f"model={tiny_model}", "target=openvino-cpu", "precision=int8", f"project={tmp_path}")
    _assert_clean_error(rc, err, "needs data=")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, needle", [
    (["target=openvino-cpux"], "unknown"),
    (["target=onnx-cpu"], "unknown backend 'onnx'"),
    (["precision=int9"], "precision=int9 is not allowed"),
    (["target=onnxruntime-cpu", "precision=bf16"], "does not support precision bf16"),
    (["target=openvino-cpu:int8", "precision=fp16"], "give it once"),
])
def test_unknown_or_unsupported_target(capsys, tiny_model, tmp_path, args, needle):
    rc, err = _run(capsys, f"model={tiny_model}", f"project={tmp_path}", *args)
    _assert_clean_error(rc, err, needle)
    assert list(tmp_path.iterdir()) == []


def test_fp16_on_a_cpu_runtime_without_fp16_kernels_says_so(capsys, tiny_model, tmp_path):
    from yolo_optim.export.onnxruntime import cpu_runs_fp16

    if cpu_runs_fp16():
        pytest.skip("this CPU's onnxruntime runs fp16 natively")
    rc, err = _run(capsys, f"model={tiny_model}", "target=onnxruntime-cpu", "precision=fp16", f"project={tmp_path}")
    _assert_clean_error(rc, err, "no fp16 kernels", "fp32")


def test_model_that_is_not_a_detector(capsys, tmp_path):
    from ultralytics import YOLO

    cls = tmp_path / "cls.pt"
    YOLO("yolo11n-cls.yaml").save(str(cls))
    rc, err = _run(capsys, f"model={cls}", "target=onnxruntime-cpu", f"project={tmp_path / 'out'}")
    _assert_clean_error(rc, err, "classify", "detect, segment, pose")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    rc, err = _run(capsys, f"model={junk}", "target=onnxruntime-cpu", f"project={tmp_path / 'out'}")
    _assert_clean_error(rc, err, "not a YOLO checkpoint")
    assert not (tmp_path / "out").exists()


def _dataset_with_train(tmp_path: Path, demo_data: Path, files: dict[str, bytes]) -> Path:
    root = tmp_path / "bad-data"
    (root / "images" / "train").mkdir(parents=True)
    for name, blob in files.items():
        (root / "images" / "train" / name).write_bytes(blob)
    val = demo_data.parent / "images" / "val"
    yaml = root / "data.yaml"
    yaml.write_text(f"path: {root}\ntrain: images/train\nval: {val}\nnames:\n  0: a\n  1: b\n  2: c\n")
    return yaml


@pytest.mark.parametrize("files, needles", [
    ({}, ("holds no images",)),
    # the dataset check (up front) or the calibration sampler (later) names the bad file
    ({"a.jpg": b"garbage", "b.png": b""}, ("not an image", "corrupt or empty")),
])
def test_empty_or_corrupt_calibration_folder(capsys, tiny_model, demo_data, tmp_path, files, needles):
    data = _dataset_with_train(tmp_path, demo_data, files)
    rc, err = _run(capsys, f"model={tiny_model}", f"data={data}", "target=onnxruntime-cpu", "precision=int8",
                   f"project={tmp_path / 'out'}")
    _assert_clean_error(rc, err)
    assert any(n in err for n in needles), err
    assert not (tmp_path / "out").exists()


def test_existing_output_folder_without_exist_ok(capsys, tiny_model, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    rc, err = _run(capsys, f"model={tiny_model}", "target=onnxruntime-cpu", f"project={tmp_path}", "name=taken")
    _assert_clean_error(rc, err, "already exists", "exist_ok")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
