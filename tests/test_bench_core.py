"""The shared core and the registries: one list of backends, one table of validators and mAP keys, one image list,
checkpoint metadata read without running the file, scratch folders a later run cleans, threads read back."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from yolo_optim.config import make_config
from yolo_optim.core.images import is_image, split_images
from yolo_optim.core.results import plain_text
from yolo_optim.core.scratch import remove_stale, scratch_dir
from yolo_optim.core.tasks import TASKS, map_key, read_map, validator_class
from yolo_optim.errors import OptimError
from yolo_optim.export import Backend, Target, all_runtimes, export, get_backend, register_backend
from yolo_optim.registry import BACKENDS, IMPORTANCES


class ToyBackend(Backend):
    """A backend the project has never heard of: one new file's worth of code."""

    name = "toy"
    devices = ("cpu",)
    precisions = ("fp32", "fp8")
    package = "numpy"

    def availability(self, device: str = "cpu") -> tuple[bool, str]:
        return device == "cpu", "" if device == "cpu" else "no such device"


@pytest.fixture
def toy():
    register_backend(ToyBackend)
    try:
        yield ToyBackend
    finally:
        BACKENDS._entries.pop("toy", None)


def test_a_registered_backend_is_accepted_everywhere_without_other_edits(toy):
    from yolo_optim.bench.api import available_targets

    assert Target.parse("toy-cpu:fp32") == Target("toy", "cpu", "fp32")
    assert "toy-cpu" in all_runtimes() and isinstance(get_backend("toy"), ToyBackend)
    assert make_config("export", {"target": "toy-cpu", "precision": "fp8"}).precision == "fp8"  # its new precision
    assert Target("toy", "cpu", "fp8") in available_targets()
    with pytest.raises(OptimError, match="unknown device 'gpu'"):
        Target.parse("toy-gpu:fp32")


def test_without_registration_the_same_names_are_refused():
    assert "toy" not in BACKENDS
    with pytest.raises(OptimError, match="unknown backend 'toy'"):
        Target.parse("toy-cpu:fp32")
    with pytest.raises(OptimError, match="precision=fp8 is not allowed"):
        make_config("export", {"precision": "fp8"})


def test_config_choices_come_from_the_importance_registry():
    IMPORTANCES.register("toy_crit", lambda *a, **k: None)
    try:
        assert make_config("prune", {"method": "toy_crit"}).method == "toy_crit"
        with pytest.raises(OptimError, match="method=nope is not allowed; choose one of .*toy_crit"):
            make_config("prune", {"method": "nope"})
    finally:
        IMPORTANCES._entries.pop("toy_crit", None)


def test_cfg_help_lists_registered_names(toy):
    from yolo_optim.config import cfg_help

    line = next(ln for ln in cfg_help().splitlines() if ln.strip().startswith("target: openvino-cpu"))
    assert "toy-cpu" in line and "openvino-cpu" in line


def test_every_task_has_a_validator_and_keys():
    assert set(TASKS) == {"detect", "segment", "pose", "obb"}
    for task in TASKS:
        assert validator_class(task).__name__.endswith("Validator")
    assert map_key("obb") == "metrics/mAP50-95(B)" and map_key("segment", primary=True) == "metrics/mAP50-95(M)"
    assert map_key("pose", "50", primary=True) == "metrics/mAP50(P)"


def test_a_missing_metric_is_an_error_or_nan_never_zero():
    stats = {"metrics/mAP50-95(B)": 0.4, "metrics/mAP50(B)": 0.6}
    assert read_map(stats, "detect").map50_95 == 0.4
    with pytest.raises(OptimError, match=r"reported no 'metrics/mAP50-95\(M\)'"):
        read_map(stats, "segment", primary=True)
    assert math.isnan(read_map({}, "detect", strict=False).map50_95)


def test_split_images_one_suffix_set_and_list_files(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("a.jpg", "b.PNG", "c.webp", "notes.txt", "d.heic", "labels.cache"):
        (folder / name).write_bytes(b"x")
    listing = tmp_path / "val.txt"
    listing.write_text("./imgs/a.jpg\n\n./imgs/notes.txt\n")
    got = split_images({"train": str(folder), "val": str(listing)}, "train")
    assert [p.name for p in got] == ["a.jpg", "b.PNG", "c.webp", "d.heic"]
    assert split_images({"val": str(listing)}, "val") == [tmp_path / "imgs" / "a.jpg"]
    assert is_image("x.JPEG") and not is_image("x.txt")
    with pytest.raises(OptimError, match="no 'test:' split"):
        split_images({}, "test")


def test_checkpoint_metadata_is_read_without_running_the_pickle(tmp_path, tiny_model):
    import torch

    from yolo_optim.export.base import read_artifact_metadata

    marker = tmp_path / "ran"
    ckpt = torch.load(tiny_model, map_location="cpu", weights_only=False)
    ckpt["payload"] = _Touch(marker)  # a pickle that creates a file when unpickled the usual way
    evil = tmp_path / "evil.pt"
    torch.save(ckpt, evil)
    meta = read_artifact_metadata(evil)
    assert meta["task"] == "detect" and len(meta["names"]) == 3 and meta["args"]["imgsz"] == 64
    assert not marker.exists()
    torch.load(evil, map_location="cpu", weights_only=False)
    assert marker.exists()  # the usual read would have run it


class _Touch:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_stale_scratch_folders_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    mine = scratch_dir(tmp_path, "exp")
    from yolo_optim.core.scratch import _host

    stale = tmp_path / f".exp.tmp-{_host()}-{dead}-abc"
    stale.mkdir()
    (stale / "model.onnx").write_bytes(b"0" * 1024)
    other_host = tmp_path / f".exp.tmp-elsewhere-{dead}-abc"
    other_host.mkdir()
    (tmp_path / "user.txt").write_text("keep")
    assert remove_stale(tmp_path) == [stale]
    assert mine.exists() and other_host.exists() and (tmp_path / "user.txt").exists()


def test_an_export_killed_with_sigkill_leaves_nothing_after_the_next_run(tmp_path, tiny_model):
    """kill -9 during an export, then a second export into the same project: no scratch folder remains."""
    code = ("import os, signal, sys\n"
            "from yolo_optim.export import api\n"
            "from yolo_optim.export.onnxruntime import OnnxRuntimeBackend\n"
            "real = OnnxRuntimeBackend.export\n"
            "def dying(self, *a, **k):\n"
            "    path = real(self, *a, **k)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            "OnnxRuntimeBackend.export = dying\n"
            f"api.export({str(tiny_model)!r}, 'onnxruntime-cpu:fp32', imgsz=64, project={str(tmp_path)!r})\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert proc.returncode == -9, proc.stderr[-2000:]
    left = [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert left and sum(f.stat().st_size for f in left[0].rglob("*") if f.is_file()) > 1e6  # what a kill leaves
    export(str(tiny_model), "onnxruntime-cpu:fp32", imgsz=64, project=str(tmp_path), name="again")
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_plain_text_has_no_colour_codes():
    assert plain_text("\x1b[34m\x1b[1mval: \x1b[0mScanning\n  bad") == "val: Scanning bad"


def test_runtimes_report_the_threads_they_run_with(tiny_model, tmp_path):
    onnx = export(str(tiny_model), "onnxruntime-cpu:fp32", imgsz=64, project=str(tmp_path), name="o").path
    assert get_backend("onnxruntime").load_runner(onnx, threads=1).threads_used == 1
    assert get_backend("onnxruntime").load_runner(onnx).threads_used is None  # ORT's own choice: not reported
    ov = export(str(tiny_model), "openvino-cpu:fp32", imgsz=64, project=str(tmp_path), name="v").path
    assert get_backend("openvino").load_runner(ov, threads=1).threads_used == 1
    default = get_backend("openvino").load_runner(ov).threads_used
    assert default is not None and default >= 1


def test_default_targets_add_the_runtimes_own_precision(monkeypatch):
    from yolo_optim.bench.api import parse_targets
    from yolo_optim.config import defaults
    from yolo_optim.export import openvino

    default = defaults("benchmark")["targets"]
    for bf16 in (True, False):
        monkeypatch.setattr(openvino, "has_bf16", lambda: bf16)
        names = [t.name for t in parse_targets(default)]
        assert ("openvino-cpu:bf16" in names) is bf16
        if bf16:
            assert names[names.index("openvino-cpu:fp32") + 1] == "openvino-cpu:bf16"
    assert [t.name for t in parse_targets("openvino-cpu:fp32")] == ["openvino-cpu:fp32"]  # a user's list is kept


def test_int8_cache_key_follows_the_calibration_images(tmp_path, demo_data):
    from yolo_optim.bench.artifacts import ExportSettings, artifact_key, export_options

    copy = tmp_path / "data"  # calibration takes every train image (calib_images > the split): the edited one too
    shutil.copytree(demo_data.parent, copy)
    (copy / "data.yaml").write_text((copy / "data.yaml").read_text().replace(str(demo_data.parent), str(copy)))
    target = Target.parse("onnxruntime-cpu:int8")

    def key() -> dict:
        s = ExportSettings(imgsz=64, data=str(copy / "data.yaml"), device="cpu", seed=0, workers=0, calib_images=100)
        return artifact_key("sha", target, export_options(target, s))

    before = key()
    again = key()
    assert again == before, {k: (v, again.get(k)) for k, v in before.items() if again.get(k) != v}
    img = sorted((copy / "images" / "train").glob("*.*"))[0]
    import cv2

    pixels = cv2.imread(str(img))
    pixels[:8, :8] = 255 - pixels[:8, :8]
    cv2.imwrite(str(img), pixels)
    after = key()
    assert after != before and after["calibration_fingerprint"] != before["calibration_fingerprint"]


def test_int8_cache_key_follows_the_backends_quantization_scheme(monkeypatch, demo_data):
    """An INT8 artifact cached before the backend changed how it quantizes is not reused; fp32 ones still are."""
    from yolo_optim.bench.artifacts import ExportSettings, artifact_key, export_options
    from yolo_optim.export.base import get_backend

    s = ExportSettings(imgsz=64, data=str(demo_data), device="cpu", seed=0, workers=0, calib_images=4)
    int8, fp32 = Target.parse("openvino-cpu:int8"), Target.parse("openvino-cpu:fp32")
    before = {t: artifact_key("sha", t, export_options(t, s)) for t in (int8, fp32)}
    monkeypatch.setattr(type(get_backend("openvino")), "quantization_scheme", "next")
    after = {t: artifact_key("sha", t, export_options(t, s)) for t in (int8, fp32)}
    assert after[int8] != before[int8] and after[int8]["quantization_scheme"] == "next"
    assert after[fp32] == before[fp32]


def test_openvino_int8_keeps_activations_asymmetric_on_cpu_and_gpu():
    """SiLU outputs are not symmetric around 0: MIXED (asymmetric activations) on CPU/GPU, NPU keeps PERFORMANCE."""
    nncf = pytest.importorskip("nncf")
    from yolo_optim.export.openvino import quantization_settings

    assert quantization_settings("cpu")["preset"] == nncf.QuantizationPreset.MIXED
    assert quantization_settings("gpu")["preset"] == nncf.QuantizationPreset.MIXED
    assert quantization_settings("npu")["preset"] == nncf.QuantizationPreset.PERFORMANCE


def test_export_and_time_is_one_path(tiny_model):
    from yolo_optim.core.deploy import export_and_time
    from yolo_optim.core.options import ExportOptions
    from yolo_optim.core.timing import TimingPlan

    timing = export_and_time(str(tiny_model), Target.parse("onnxruntime-cpu:fp32"), ExportOptions(imgsz=64),
                             TimingPlan(warmup=1, runs=3, seconds=1, min_runs=3), threads=1)
    assert timing.inference.runs == 3 and timing.inference.median_ms > 0
    assert timing.executed_precision == "fp32" and timing.threads_used == 1
    with pytest.raises(OptimError, match="multiple of 32"):
        ExportOptions(imgsz=50)
    assert np.isfinite(timing.inference.p99_ms)


def test_best_side_by_side_keeps_each_artifacts_lowest_median_over_rounds(monkeypatch):
    """A round another process disturbed (every figure high) does not decide a figure; the lock is held throughout."""
    import yolo_optim.core.deploy as deploy
    from yolo_optim.core.results import LatencyStats
    from yolo_optim.core.timing import TIMING_LOCK, TimingPlan

    rounds = iter([{"a": 5.0, "b": 9.0}, {"a": 7.0, "b": 4.0}, {"a": 6.0, "b": 8.0}])
    held = []

    def fake(artifacts, target, plan):
        import fcntl

        with open(TIMING_LOCK, "a+") as f:  # another open file: its lock attempt fails while the lock is held
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held.append(False)
                fcntl.flock(f, fcntl.LOCK_UN)
            except BlockingIOError:
                held.append(True)
        assert set(artifacts) == {"a", "b"}
        return {k: LatencyStats.from_samples([ms]) for k, ms in next(rounds).items()}

    monkeypatch.setattr(deploy, "time_side_by_side", fake)
    best = deploy.best_side_by_side({"a": ("a.xml", 64), "b": ("b.xml", 64)}, None, TimingPlan(), rounds=3)
    assert best == {"a": 5.0, "b": 4.0} and held == [True] * 3
