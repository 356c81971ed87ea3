"""Pruning runs end to end: CLI, checkpoints that load without yolo_optim, fine-tuning, export, resume, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

IMGSZ = 64

# A Python prelude that makes `yolo_optim` impossible to import, as on a machine where it is not installed.
NO_YOLO_OPTIM = r"""
import importlib.abc, sys
class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "yolo_optim" or name.startswith("yolo_optim."):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, _NotInstalled())
try:
    import yolo_optim
    raise SystemExit("yolo_optim is importable")
except ModuleNotFoundError:
    pass
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "yolo_optim", "prune", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def pruned_run(tiny_model: Path, demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CLI run on the tiny trained YOLO11n: 50% of the FLOPs removed, one fine-tuning epoch."""
    root = tmp_path_factory.mktemp("prune-run")
    before = tiny_model.read_bytes()
    r = _cli(f"model={tiny_model}", f"data={demo_data}", f"imgsz={IMGSZ}", "batch=8", "epochs=1", "ratio=0.5",
             "target=flops", "allocation=global", f"project={root}", "name=run", cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    assert tiny_model.read_bytes() == before, "the input weights must never be modified"
    return root / "run"


def test_run_writes_an_ordinary_checkpoint_with_metadata(pruned_run: Path, tiny_model: Path) -> None:
    from yolo_optim.models import file_sha256

    weights = pruned_run / "pruned.pt"
    assert weights.exists() and (pruned_run / "prune.json").exists()
    ckpt = torch.load(weights, map_location="cpu", weights_only=False)
    meta = ckpt["prune"]
    assert meta["method"] == "l2" and meta["allocation"] == "global" and meta["kind"] == "structured"
    assert meta["target"] == "flops" and meta["distilled"] is True
    assert meta["source_sha256"] == file_sha256(tiny_model)
    assert 0.5 <= meta["removed"] <= 0.53
    assert meta["size"]["params_after"] < meta["size"]["params_before"]
    assert meta["widths"] and all(new < old for old, new in meta["widths"].values())
    assert ckpt["train_args"]["data"], "training arguments travel with the checkpoint"
    assert (pruned_run / "steps" / "step1" / "pruned.pt").exists()
    assert (pruned_run / "steps" / "step1" / "train" / "weights" / "last.pt").exists()
    import yaml

    args = yaml.safe_load((pruned_run / "steps" / "step1" / "train" / "args.yaml").read_text())
    assert args["distill_model"] == str(tiny_model), "the fine-tune distils from the unpruned source"


def test_pruned_checkpoint_loads_predicts_and_validates_without_yolo_optim(pruned_run: Path,
                                                                          demo_data: Path) -> None:
    code = NO_YOLO_OPTIM + f"""
import numpy as np, torch
from ultralytics import YOLO
m = YOLO({str(pruned_run / 'pruned.pt')!r})
assert m.ckpt["prune"]["kind"] == "structured"
res = m.predict(np.zeros(({IMGSZ}, {IMGSZ}, 3), dtype=np.uint8), imgsz={IMGSZ}, verbose=False)
assert res and res[0].boxes is not None
raw = m.model.eval()(torch.rand(1, 3, {IMGSZ}, {IMGSZ}))[0]
assert raw.shape[0] == 1 and raw.shape[1] == 4 + len(m.names), raw.shape
stats = m.val(data={str(demo_data)!r}, imgsz={IMGSZ}, batch=8, plots=False, verbose=False)
print("MAP", float(stats.box.map))
"""
    for safe in ("0", "1"):  # also under Ultralytics' restricted (weights_only) loader
        env = {**os.environ, "YOLO_OFFLINE": "1", "ULTRALYTICS_SAFE_LOAD": safe}
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                           cwd=pruned_run, check=False)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "MAP" in r.stdout


def _assert_same_detections(got: np.ndarray, ref: np.ndarray, runtime: str) -> None:
    """Class scores must match closely; boxes up to the DFL's conditioning.

    A model trained for one epoch has box-distribution logits in the thousands, so float32 rounding differences
    between runtimes can move a few decoded coordinates by a fraction of a pixel; a pruning error (a channel mapped
    wrong) moves nearly all of them, and the scores too.
    """
    assert got.shape == ref.shape, runtime
    np.testing.assert_allclose(got[:, 4:], ref[:, 4:], rtol=1e-3, atol=1e-3, err_msg=f"{runtime} class scores")
    box_error = np.abs(got[:, :4] - ref[:, :4])
    p95 = float(np.percentile(box_error, 95))
    assert p95 < 0.05, f"{runtime}: boxes differ (95th percentile {p95:.3f} px)"
    assert box_error.max() < 4.0, f"{runtime}: a box coordinate differs by {box_error.max():.2f} px"


def test_pruned_model_exports_to_onnx_and_openvino_with_matching_outputs(pruned_run: Path, tmp_path: Path) -> None:
    import shutil

    import onnxruntime as ort
    import openvino as ov
    from ultralytics import YOLO

    src = tmp_path / "pruned.pt"
    shutil.copy(pruned_run / "pruned.pt", src)
    model = YOLO(str(src))
    x = torch.rand(1, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(0))
    # exporters fold BatchNorm into the convs: compare with the same folded model, so only the runtimes differ
    ref = model.model.float().eval().fuse(verbose=False)(x)[0].detach().numpy()
    onnx_path = YOLO(str(src)).export(format="onnx", imgsz=IMGSZ, simplify=False, verbose=False)
    got = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})[0]
    _assert_same_detections(got, ref, "onnxruntime")
    ov_dir = YOLO(str(src)).export(format="openvino", imgsz=IMGSZ, verbose=False)
    compiled = ov.Core().compile_model(str(next(Path(ov_dir).glob("*.xml"))), "CPU",
                                       {"INFERENCE_PRECISION_HINT": "f32"})
    _assert_same_detections(compiled(x.numpy())[0], ref, "openvino")


def test_validation_leaves_no_run_folders_behind(tiny_model: Path, demo_data: Path) -> None:
    """Ultralytics' validator makes a fresh runs/<task>/train-N folder per call unless it is given a save_dir."""
    from ultralytics import YOLO
    from ultralytics.cfg import get_cfg, get_save_dir
    from ultralytics.utils import DEFAULT_CFG

    from yolo_optim.prune.evaluate import primary_map, val_map

    default_parent = get_save_dir(get_cfg(DEFAULT_CFG, {"task": "detect"})).parent
    before = sorted(default_parent.iterdir()) if default_parent.exists() else []
    metrics = val_map(YOLO(str(tiny_model)).model, demo_data, IMGSZ)
    assert 0.0 <= primary_map(metrics, "detect") <= 1.0
    after = sorted(default_parent.iterdir()) if default_parent.exists() else []
    assert after == before, f"validation left {sorted(set(after) - set(before))}"


@pytest.mark.parametrize("arch", ["yolov8n.yaml", "yolo26n.yaml"])
def test_finetune_keeps_the_pruned_architecture(arch: str, demo_data: Path, tmp_path: Path, monkeypatch) -> None:
    """...into the folder it was given, also as a relative path (Ultralytics would nest one under runs/<task>/)."""
    from ultralytics import YOLO

    from yolo_optim.prune.checkpoint import write_checkpoint
    from yolo_optim.prune.retrain import finetune
    from yolo_optim.prune.structured import (
        StepSpec,
        group_widths,
        prepare,
        prune_step,
        size_of,
    )

    prepared, _ = prepare(_with_classes(arch, 3))  # the demo dataset's 3 classes
    widths = group_widths(prepared)
    step = prune_step(prepared, StepSpec(removed=0.4, imgsz=IMGSZ), size_of(prepared, "flops", IMGSZ), widths)
    pruned_widths = group_widths(step.model)
    start = write_checkpoint(step.model, tmp_path / "pruned.pt", {}, {"kind": "structured"})
    monkeypatch.chdir(tmp_path)
    best = finetune(start, demo_data, 1, Path("ft"), IMGSZ, 8)
    assert best.is_absolute() and best.is_file() and best.parent.parent == tmp_path / "ft"
    trained = YOLO(str(best)).model
    assert group_widths(trained) == pruned_widths != widths
    assert sum(p.numel() for p in trained.parameters()) == sum(p.numel() for p in step.model.parameters())


def _with_classes(arch: str, nc: int) -> torch.nn.Module:
    from ultralytics.nn.tasks import DetectionModel

    return DetectionModel(arch, nc=nc, verbose=False)


def test_python_api_weight_pruning_reports_sparsity(tiny_model: Path, demo_data: Path, tmp_path: Path) -> None:
    import yolo_optim
    from yolo_optim.prune.unstructured import prunable_weights

    pruned = yolo_optim.prune(tiny_model, data=demo_data, kind="weight", target="params", ratio=0.6,
                              method="l1", epochs=1, imgsz=IMGSZ, batch=8, project=str(tmp_path), name="w")
    r = pruned.prune_result
    assert r.sparsity is not None and "no speed-up" in r.sparsity["note"]
    weights = prunable_weights(pruned.model)
    zeros = sum(int((p == 0).sum()) for p in weights.values()) / sum(p.numel() for p in weights.values())
    assert zeros >= 0.59, "the zeros must survive fine-tuning and the EMA"
    assert r.sparsity["compressed_mb"] < r.sparsity["dense_mb"]
    assert r.params[0] == r.params[1], "unstructured pruning keeps every shape"


def test_resume_continues_a_killed_iterative_run(tiny_model: Path, demo_data: Path, tmp_path: Path) -> None:
    args = [f"model={tiny_model}", f"data={demo_data}", f"imgsz={IMGSZ}", "batch=8", "steps=2", "step_epochs=1",
            "epochs=1", "ratio=0.4", "max_drop=1.0", "allocation=uniform", "method=random", f"project={tmp_path}",
            "name=it"]
    r = _cli(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    run = tmp_path / "it"
    first = json.loads((run / "prune.json").read_text())
    assert [h["step"] for h in first["history"]] == [1, 2]
    assert first["history"][0]["removed"] < first["history"][1]["removed"]
    # Simulate a kill during step 2's fine-tune: its record and outputs are gone, its pruned checkpoint is kept.
    state = json.loads((run / "state.json").read_text())
    state["steps"] = state["steps"][:1]
    (run / "state.json").write_text(json.dumps(state))
    (run / "steps" / "step2" / "finetuned.pt").unlink()
    (run / "pruned.pt").unlink()
    step1 = (run / "steps" / "step1" / "finetuned.pt").stat().st_mtime_ns
    r = _cli(*args, "resume=True", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (run / "pruned.pt").exists()
    assert (run / "steps" / "step1" / "finetuned.pt").stat().st_mtime_ns == step1, "step 1 must not be redone"
    again = json.loads((run / "prune.json").read_text())
    assert again["size"]["params_after"] == first["size"]["params_after"]
    r = _cli(*args[:-1], "name=other", "resume=True", cwd=tmp_path)
    assert r.returncode == 2 and "no unfinished pruning run" in r.stderr


@pytest.mark.parametrize("extra,message", [
    (["ratio=1.5"], "ratio=1.5 is too large"),
    (["method=magic"], "method=magic is not allowed"),
    (["ratio=0.99"], "cannot be met: the most this model allows is"),
    (["round_to=4096"], "no prunable layers"),
    (["target=speed"], "target=speed is not understood"),
    (["kind=weight", "target=flops"], "kind=weight keeps every shape"),
    (["kind=weight", "method=bn", "target=params"], "method=bn scores channels, not single weights"),
    (["device=xyz"], "device=xyz is not a torch device"),
    (["method=l22"], "did you mean 'l2'"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(extra: list[str], message: str, tiny_model: Path,
                                                         demo_data: Path, tmp_path: Path) -> None:
    r = _cli(f"model={tiny_model}", f"data={demo_data}", f"imgsz={IMGSZ}", f"project={tmp_path / 'p'}", *extra,
             cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-1500:]
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()


def test_checkpoint_without_training_arguments_is_refused(tiny_model: Path, demo_data: Path, tmp_path: Path) -> None:
    ckpt = torch.load(tiny_model, map_location="cpu", weights_only=False)
    ckpt.pop("train_args", None)
    bare = tmp_path / "bare.pt"
    torch.save(ckpt, bare)
    r = _cli(f"model={bare}", f"data={demo_data}", f"imgsz={IMGSZ}", f"project={tmp_path / 'p'}", cwd=tmp_path)
    assert r.returncode == 2 and "no training arguments" in r.stderr
    assert not (tmp_path / "p").exists()


@pytest.mark.slow
def test_sensitivity_allocation_writes_table_and_plot(tiny_model: Path, demo_data: Path, tmp_path: Path) -> None:
    r = _cli(f"model={tiny_model}", f"data={demo_data}", f"imgsz={IMGSZ}", "batch=8", "epochs=0", "ratio=0.3",
             "allocation=sensitivity", "sensitivity_ratios=0.5", "sensitivity_images=4", "calib_batches=2",
             f"project={tmp_path}", "name=s", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    run = tmp_path / "s"
    rows = (run / "sensitivity.csv").read_text().splitlines()
    assert rows[0].startswith("group,channels,ratio,kept,map,loss,macs_saved") and len(rows) > 40
    assert (run / "sensitivity.png").stat().st_size > 10_000
    assert json.loads((run / "prune.json").read_text())["allocation"] == "sensitivity"
    progress = [ln for ln in r.stderr.splitlines() if ln.startswith("sensitivity: ")]
    assert progress and "left" in progress[-1], "the command line shows the analysis' progress"
    banners = (r.stdout + r.stderr).count("Fast image access")
    assert banners <= 3, f"{banners} dataset banners: one per probe would bury the progress"


def test_a_speed_up_goal_is_resolved_against_the_source_measured_in_the_same_run() -> None:
    from yolo_optim.errors import OptimError
    from yolo_optim.prune.latency import parse_target

    goal, measure = parse_target("latency:openvino-cpu:int8:1.5x")
    assert measure == "latency" and goal.speedup == 1.5 and goal.target.precision == "int8"
    assert goal.name == "latency:openvino-cpu:int8:1.5x"
    assert goal.resolved(12.0).ms == pytest.approx(8.0)  # 12 ms measured now, 1.5 times faster
    fixed, _ = parse_target("latency:openvino-cpu:8ms")
    assert fixed.speedup is None and fixed.resolved(12.0).ms == 8.0  # a goal in ms is kept as given
    with pytest.raises(OptimError, match="a speed-up goal must be above 1x"):
        parse_target("latency:openvino-cpu:0.8x")


def test_a_speed_up_goal_times_each_candidate_beside_the_source_exported_once(monkeypatch) -> None:
    import yolo_optim.core.deploy as deploy
    from yolo_optim.prune.latency import latency_reader, parse_target
    from yolo_optim.prune.structured import StepSpec, group_widths, most_pruned, prepare

    exported, timed = [], []
    export_artifact, time_side_by_side = deploy.export_artifact, deploy.time_side_by_side
    monkeypatch.setattr(deploy, "export_artifact", lambda model, target, options, folder: (
        exported.append(Path(folder).name), export_artifact(model, target, options, folder))[1])
    monkeypatch.setattr(deploy, "time_side_by_side", lambda artifacts, *a, **k: (
        timed.append(sorted(artifacts)), time_side_by_side(artifacts, *a, **k))[1])
    source = prepare(_with_classes("yolo11n.yaml", 3))[0]
    small = most_pruned(source, StepSpec(imgsz=64), group_widths(source))
    goal, _ = parse_target("latency:openvino-cpu:1.5x")
    with latency_reader(source, goal, 64) as read:
        first, second = read(small), read(source)
    assert exported == ["source", "artifact", "artifact"]  # the source once, then each candidate
    assert timed == [["candidate", "source"]] * 2  # every candidate in one loop with the source
    assert read.readings == [first, second] and all(ms > 0 for pair in read.readings for ms in pair)
    assert read.source_ms == second[0] and read.removed_target() == pytest.approx(1 - 1 / 1.5)


def test_a_speed_up_goal_past_the_most_pruned_model_says_how_far_it_goes() -> None:
    from types import SimpleNamespace

    from yolo_optim.errors import OptimError
    from yolo_optim.prune.latency import check_goal, parse_target
    from yolo_optim.prune.structured import group_widths, prepare

    source = prepare(_with_classes("yolo11n.yaml", 3))[0]
    cfg = SimpleNamespace(latency_imgsz=64, kind="structured", round_to=8, max_layer_ratio=0.5, imgsz=64, data=None)
    goal, _ = parse_target("latency:openvino-cpu:50x")  # no width pruning makes a model 50 times faster
    with pytest.raises(OptimError, match=r"latency:openvino-cpu:fp32:50x cannot be met: the most pruned model this allows "
                                         r"\(max_layer_ratio=0\.5\) runs \d+\.\d\dx the source's speed \(.* ms, timed in "
                                         r"alternation at 64 px\); ask for at most \d+\.\d\dx or raise max_layer_ratio"):
        check_goal(cfg, source, group_widths(source), goal)


@pytest.mark.slow
def test_latency_target_is_met_as_measured(tiny_model: Path, demo_data: Path, tmp_path: Path) -> None:
    from ultralytics import YOLO

    from yolo_optim.prune.latency import measure_latency, parse_target
    from yolo_optim.prune.structured import prepare

    goal, _ = parse_target("latency:openvino-cpu:1000ms")
    source_ms = measure_latency(prepare(YOLO(str(tiny_model)).model)[0], goal, 320)
    wanted = round(source_ms * 0.75, 2)
    r = _cli(f"model={tiny_model}", f"data={demo_data}", f"imgsz={IMGSZ}", "batch=8", "epochs=0",
             f"target=latency:openvino-cpu:{wanted}ms", "latency_imgsz=320", "allocation=global",
             f"project={tmp_path}", "name=l",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    meta = json.loads((tmp_path / "l" / "prune.json").read_text())
    assert meta["latency_goal_ms"] == wanted and meta["removed"] > 0.05
    got = measure_latency(YOLO(str(tmp_path / "l" / "pruned.pt")).model, goal, 320)
    assert got <= wanted * 1.15, f"{got:.2f} ms measured for a {wanted} ms goal (source {source_ms:.2f} ms)"


def test_a_killed_finetune_resumes_with_the_pruned_architecture(demo_data: Path, tmp_path: Path) -> None:
    """Ultralytics' own resume (optimizer, EMA, epoch) continues a pruned model's fine-tune after a kill."""
    import csv

    from ultralytics import YOLO

    from yolo_optim.prune.checkpoint import write_checkpoint
    from yolo_optim.prune.retrain import finetune, pruned_trainer
    from yolo_optim.prune.structured import (
        StepSpec,
        group_widths,
        prepare,
        prune_step,
        size_of,
    )

    prepared, _ = prepare(_with_classes("yolo11n.yaml", 3))
    step = prune_step(prepared, StepSpec(removed=0.5, imgsz=IMGSZ, round_to=8), size_of(prepared, "flops", IMGSZ),
                      group_widths(prepared))
    start = write_checkpoint(step.model, tmp_path / "pruned.pt", {}, {"kind": "structured"})
    out = tmp_path / "ft"

    class Killed(Exception):
        pass

    def kill(trainer: object) -> None:
        raise Killed

    yolo = YOLO(str(start))
    yolo.add_callback("on_fit_epoch_end", kill)  # after epoch 1 is saved, as a kill would leave it
    with pytest.raises(Killed):
        yolo.train(trainer=pruned_trainer("detect"), data=str(demo_data), epochs=2, imgsz=IMGSZ, batch=8,
                   workers=0, project=str(tmp_path), name="ft", exist_ok=True, plots=False, verbose=False)
    last = torch.load(out / "weights" / "last.pt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 0 and last["optimizer"] is not None
    best = finetune(start, demo_data, 2, out, IMGSZ, 8, resume=True)
    with open(out / "results.csv") as f:
        assert [int(float(r["epoch"])) for r in csv.DictReader(f)] == [1, 2]
    assert group_widths(YOLO(str(best)).model) == group_widths(step.model)


@pytest.mark.tensorrt
def test_pruned_model_exports_to_tensorrt(pruned_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorrt")
    if not torch.cuda.is_available():
        pytest.skip("TensorRT needs an NVIDIA GPU")
    import shutil

    from ultralytics import YOLO

    src = tmp_path / "pruned.pt"
    shutil.copy(pruned_run / "pruned.pt", src)
    engine = YOLO(str(src)).export(format="engine", imgsz=IMGSZ, device=0, verbose=False)
    res = YOLO(engine).predict(np.zeros((IMGSZ, IMGSZ, 3), dtype=np.uint8), imgsz=IMGSZ, verbose=False)
    assert res and res[0].boxes is not None
