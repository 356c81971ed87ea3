"""Pruning options end to end: the default sensitivity path and table reuse, taylor, sparsity_epochs, distill=False,
kind=neuron, max_drop, exist_ok, registered criteria and allocations; and fine-tuning pruned seg/pose/OBB models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

IMGSZ = 64
FAST = [f"imgsz={IMGSZ}", "batch=8", "epochs=0", "calib_batches=1"]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "yolo_optim", "prune", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900, check=False)


def _ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, r.stdout[-1000:] + r.stderr[-2500:]
    return r


def _meta(run: Path) -> dict:
    return json.loads((run / "prune.json").read_text())


def _model(path: Path) -> torch.nn.Module:
    return torch.load(path, map_location="cpu", weights_only=False)["model"].float()


# --- the default allocation ------------------------------------------------------------------------------------

def test_default_sensitivity_path_and_its_table_reused(tiny_model: Path, demo_data: Path, tmp_path: Path) -> None:
    # round_to=64: only the wide groups can lose half their channels, so the analysis makes 20 probes, not 60
    args = [f"model={tiny_model}", f"data={demo_data}", *FAST, "ratio=0.1", "round_to=64", "sensitivity_ratios=0.5",
            "sensitivity_images=4", f"project={tmp_path}"]
    first = _ok(_cli(*args, "name=a", cwd=tmp_path))
    a = tmp_path / "a"
    assert _meta(a)["allocation"] == "sensitivity"
    table = (a / "sensitivity.csv").read_text()
    assert len(table.splitlines()) > 10 and "to measure" in first.stderr
    second = _ok(_cli(*args, "name=b", f"sensitivity_table={a / 'sensitivity.csv'}", cwd=tmp_path))
    assert "(0 to measure)" in second.stderr, "every row of the given table is reused, none measured again"
    assert (tmp_path / "b" / "sensitivity.csv").read_text() == table
    assert _meta(tmp_path / "b")["widths"] == _meta(a)["widths"]


def test_probe_losses_are_taken_against_the_unpruned_model_recalibrated_like_the_probes(
        trained_baseline, tmp_path: Path) -> None:
    """BatchNorm re-estimation alone moves mAP; a probe's loss must be what pruning its group costs, nothing else."""
    from ultralytics import YOLO

    from yolo_optim.prune.evaluate import primary_map, val_map
    from yolo_optim.prune.importance import recalibrate_batchnorm
    from yolo_optim.prune.sensitivity import (
        PROBE_CALIB_BATCHES,
        SensitivityRow,
        analyse,
        write_table,
    )
    from yolo_optim.prune.structured import prepare

    b = trained_baseline
    model, _ = prepare(YOLO(str(b.weights)).model)
    table = tmp_path / "s.csv"
    write_table([SensitivityRow("model.99.earlier", 64, 0.5, 32, 0.25, 0.999, 0.01)], table)  # a resumed row
    rows = analyse(model, b.data, b.imgsz, (0.5,), "l2", 128, table, batch=8, calibrate=True)
    recalibrated, _ = prepare(YOLO(str(b.weights)).model)
    recalibrate_batchnorm(recalibrated, b.data, b.imgsz, batches=PROBE_CALIB_BATCHES, seed=0)
    reference = primary_map(val_map(recalibrated, b.data, b.imgsz, 8), "detect")
    assert reference > 0.3 and len(rows) > 2
    for r in rows:
        assert r.loss == pytest.approx(reference - r.map, abs=1e-6), r.group
    assert rows[0].group == "model.99.earlier" and rows[0].loss == pytest.approx(reference - 0.25, abs=1e-6)


# --- importance criteria -----------------------------------------------------------------------------------------

def test_taylor_weight_pruning_uses_gradients(tiny_model: Path, demo_data: Path, tmp_path: Path) -> None:
    r = _ok(_cli(f"model={tiny_model}", f"data={demo_data}", *FAST, "kind=weight", "method=taylor", "target=params",
                 "ratio=0.5", f"project={tmp_path}", "name=t", cwd=tmp_path))
    assert "Weight sparsity" in r.stdout
    assert _meta(tmp_path / "t")["sparsity"]["sparsity"] == pytest.approx(0.5, abs=0.01)

    from ultralytics import YOLO

    from yolo_optim.prune.unstructured import sparsify

    model = YOLO(str(tiny_model)).model.float()
    _, taylor = sparsify(model, 0.5, "taylor", "global", data=str(demo_data), imgsz=IMGSZ, batches=2)
    _, l1 = sparsify(model, 0.5, "l1", "global")
    differ = sum(int((taylor[k] != l1[k]).sum()) for k in l1) / sum(m.numel() for m in l1.values())
    assert differ > 0.05, "taylor must rank by |w * grad|, not by |w|"


def test_taylor_batches_reach_the_scores(tiny_model: Path, demo_data: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from ultralytics import YOLO

    from yolo_optim.prune import importance
    from yolo_optim.prune.sensitivity import analyse
    from yolo_optim.prune.structured import (
        StepSpec,
        group_widths,
        prepare,
        prune_step,
        size_of,
    )

    asked: list[int] = []
    real = importance.accumulate_gradients

    def counting(model, data, imgsz, batches=4, batch=8, seed=0):
        asked.append(batches)
        return real(model, data, imgsz, batches, batch, seed)

    monkeypatch.setattr(importance, "accumulate_gradients", counting)
    model, _ = prepare(YOLO(str(tiny_model)).model)
    analyse(model, demo_data, IMGSZ, (0.5,), "taylor", 128, tmp_path / "s.csv", batch=8, calibrate=False,
            taylor_batches=3)
    spec = StepSpec(method="taylor", data=str(demo_data), imgsz=IMGSZ, taylor_batches=2, removed=0.2, round_to=16)
    prune_step(model, spec, size_of(model, "flops", IMGSZ), group_widths(model))
    assert asked == [3, 2], "sensitivity analysis and pruning steps both score on taylor_batches batches"


def test_sparsity_epochs_shrink_batchnorm_scales(tiny_model: Path, demo_data: Path, tmp_path: Path) -> None:
    _ok(_cli(f"model={tiny_model}", f"data={demo_data}", *FAST, "method=bn", "sparsity_epochs=1",
             "sparsity_l1=10", "lr0=0.01", "allocation=uniform", "ratio=0.2", f"project={tmp_path}", "name=s",
             cwd=tmp_path))
    run = tmp_path / "s"
    assert json.loads((run / "state.json").read_text())["sparsity"].endswith("sparse.pt")

    def gammas(m: torch.nn.Module) -> torch.Tensor:
        return torch.cat([b.weight.detach().abs().flatten() for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)])

    before, after = gammas(_model(tiny_model)), gammas(_model(run / "sparsity" / "sparse.pt"))
    shrunk = float((after < before).float().mean())
    assert shrunk > 0.9, f"only {shrunk:.0%} of BatchNorm scales shrank under the L1 penalty"


# --- fine-tuning options, kinds ----------------------------------------------------------------------------------

def test_distill_false_fine_tunes_without_a_teacher(tiny_model: Path, demo_data: Path, tmp_path: Path) -> None:
    _ok(_cli(f"model={tiny_model}", f"data={demo_data}", f"imgsz={IMGSZ}", "batch=8", "epochs=1", "distill=False",
             "allocation=uniform", "ratio=0.2", f"project={tmp_path}", "name=d", cwd=tmp_path))
    run = tmp_path / "d"
    assert _meta(run)["distilled"] is False
    args = yaml.safe_load((run / "steps" / "step1" / "train" / "args.yaml").read_text())
    assert not args.get("distill_model")


def test_neuron_kind_from_the_cli_prunes_only_pointwise_units(tiny_model: Path, demo_data: Path,
                                                              tmp_path: Path) -> None:
    _ok(_cli(f"model={tiny_model}", f"data={demo_data}", *FAST, "kind=neuron", "allocation=uniform",
             "target=params", "ratio=0.1", f"project={tmp_path}", "name=n", cwd=tmp_path))
    # a group is the channels that must go together; kind=neuron prunes only groups rooted at a 1x1 conv (a residual
    # add may couple a 3x3 conv's outputs to them, so those narrow too)
    groups = _groups_of(tiny_model)
    pointwise = {g.name for g in groups if g.pointwise}
    narrowed = set(_meta(tmp_path / "n")["widths"])
    assert narrowed and narrowed <= pointwise, sorted(narrowed - pointwise)
    assert any(not g.pointwise for g in groups), "the model has spatial groups that kind=neuron must leave alone"
    src, pruned = _model(tiny_model), _model(tmp_path / "n" / "pruned.pt")
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in src.parameters())
    assert _meta(tmp_path / "n")["kind"] == "neuron"


def test_exist_ok_reuses_the_folder_and_deletes_nothing(tiny_model: Path, demo_data: Path, tmp_path: Path) -> None:
    args = [f"model={tiny_model}", f"data={demo_data}", *FAST, "allocation=uniform", f"project={tmp_path}",
            "name=e"]
    _ok(_cli(*args, "ratio=0.4", cwd=tmp_path))
    run = tmp_path / "e"
    (run / "notes.txt").write_text("mine")
    old_step = (run / "steps" / "step1" / "pruned.pt").read_bytes()
    _ok(_cli(*args, "ratio=0.2", "exist_ok=True", cwd=tmp_path))
    assert (run / "notes.txt").read_text() == "mine", "a file the run did not write is never deleted"
    assert not (tmp_path / "e2").exists()
    assert _meta(run)["ratio"] == 0.2 and 0.2 <= _meta(run)["removed"] < 0.3, "the earlier step is not reused"
    assert (run / "steps" / "step1" / "pruned.pt").read_bytes() != old_step


# --- accuracy and early stop on a model that has something to lose ------------------------------------------------

def test_small_ratio_keeps_map_within_tolerance(trained_baseline, tmp_path: Path) -> None:
    baseline = trained_baseline
    # no fine-tune and no BatchNorm re-estimation (the held-out split has 8 training images): the pruner alone is
    # measured; a channel mapped wrong anywhere collapses mAP, an honest 5% of FLOPs costs little of it
    _ok(_cli(f"model={baseline.weights}", f"data={baseline.data}", f"imgsz={baseline.imgsz}", "batch=8",
             "epochs=0", "calib_batches=0", "allocation=global", "ratio=0.05", f"project={tmp_path}", "name=acc",
             cwd=tmp_path))
    meta = _meta(tmp_path / "acc")
    assert meta["metrics"]["map_before"] == pytest.approx(baseline.map50_95, abs=0.02)
    assert meta["metrics"]["map_after"] >= 0.75 * meta["metrics"]["map_before"], meta["metrics"]


def test_max_drop_stops_pruning_early(trained_baseline, tmp_path: Path) -> None:
    baseline = trained_baseline
    r = _ok(_cli(f"model={baseline.weights}", f"data={baseline.data}", f"imgsz={baseline.imgsz}", "batch=8",
                 "epochs=0", "step_epochs=0", "steps=3", "ratio=0.6", "max_drop=0", "calib_batches=2",
                 "allocation=uniform", f"project={tmp_path}", "name=stop", cwd=tmp_path))
    meta = _meta(tmp_path / "stop")
    assert [h["step"] for h in meta["history"]] == [1, "final"], meta["history"]
    assert "step 2 dropped" in meta["stopped_early"] and "max_drop" in r.stderr
    assert meta["removed"] < 0.3, "the step past max_drop is undone"


# --- registries ----------------------------------------------------------------------------------------------------

def test_a_registered_criterion_and_allocation_run_end_to_end(tiny_model: Path, demo_data: Path,
                                                              tmp_path: Path) -> None:
    import yolo_optim
    from yolo_optim.prune.allocate import GroupInfo
    from yolo_optim.prune.importance import Importance
    from yolo_optim.registry import ALLOCATIONS, IMPORTANCES

    scored: list[int] = []
    allocated: list[float] = []

    @IMPORTANCES.register("toy-channel-index")
    class ChannelIndex(Importance):
        """Keeps the last channels of every group: easy to check."""

        def __call__(self, group):
            scored.append(1)
            return torch.arange(len(group[0].idxs), dtype=torch.float32)

    @ALLOCATIONS.register("toy-half-uniform")
    def half_uniform(level: float, groups: list[GroupInfo], cost_power: float = 0.0) -> dict[str, float]:
        allocated.append(level)
        return {g.name: g.channels * (1 - level * g.limit / 2) for g in groups}

    pruned = yolo_optim.prune(tiny_model, data=demo_data, method="toy-channel-index", allocation="toy-half-uniform",
                              ratio=0.2, epochs=0, imgsz=IMGSZ, batch=8, calib_batches=0, project=str(tmp_path),
                              name="toy")
    meta = pruned.ckpt["prune"]
    assert meta["method"] == "toy-channel-index" and meta["allocation"] == "toy-half-uniform"
    assert scored and allocated and meta["removed"] >= 0.2
    assert sum(p.numel() for p in pruned.model.parameters()) < sum(p.numel() for p in _model(tiny_model).parameters())
    assert len(scored) == len(_groups_of(tiny_model)), "the toy criterion scored every group"


def _groups_of(weights: Path) -> list:
    from yolo_optim.prune.graph import PruningGraph
    from yolo_optim.prune.structured import prepare

    return PruningGraph(prepare(_model(weights))[0]).groups


# --- fine-tuning pruned models of the other tasks ----------------------------------------------------------------

def _task_dataset(det_yaml: Path, task: str, out: Path) -> Path:
    """The demo detection dataset relabelled for `task`: box outlines as polygons (segment), box corners (obb),
    box centres as one keypoint (pose)."""
    import shutil

    info = yaml.safe_load(det_yaml.read_text())
    root = det_yaml.parent / info.get("path", ".")  # an absolute path replaces the parent
    for split in ("train", "val"):
        shutil.copytree(root / "images" / split, out / "images" / split)
        (out / "labels" / split).mkdir(parents=True)
        for f in (root / "labels" / split).glob("*.txt"):
            lines = []
            for ln in f.read_text().split("\n"):
                if not ln.strip():
                    continue
                c, x, y, w, h = ln.split()[:5]
                x, y, w, h = map(float, (x, y, w, h))
                corners = [x - w / 2, y - h / 2, x + w / 2, y - h / 2, x + w / 2, y + h / 2, x - w / 2, y + h / 2]
                extra = f"{x:.6f} {y:.6f} 2" if task == "pose" else ""
                body = f"{x:.6f} {y:.6f} {w:.6f} {h:.6f} {extra}" if task == "pose" else \
                    " ".join(f"{v:.6f}" for v in corners)
                lines.append(f"{c} {body}")
            (out / "labels" / split / f.name).write_text("\n".join(lines) + "\n")
    data = {"path": str(out), "train": "images/train", "val": "images/val", "names": info["names"]}
    if task == "pose":
        data.update(kpt_shape=[1, 3], flip_idx=[0])
    (out / "data.yaml").write_text(yaml.safe_dump(data))
    return out / "data.yaml"


@pytest.mark.slow
@pytest.mark.parametrize("arch,task", [("yolo11n-seg.yaml", "segment"), ("yolo11n-pose.yaml", "pose"),
                                       ("yolo11n-obb.yaml", "obb")])
def test_finetune_keeps_pruned_widths_for_other_tasks(arch: str, task: str, demo_data: Path, tmp_path: Path) -> None:
    from ultralytics import YOLO
    from ultralytics.nn.tasks import OBBModel, PoseModel, SegmentationModel

    from yolo_optim.prune.checkpoint import write_checkpoint
    from yolo_optim.prune.retrain import finetune
    from yolo_optim.prune.structured import (
        StepSpec,
        group_widths,
        prepare,
        prune_step,
        size_of,
    )

    data = _task_dataset(demo_data, task, tmp_path / "data")
    source = {"segment": lambda: SegmentationModel(arch, nc=3, verbose=False),
              "pose": lambda: PoseModel(arch, nc=3, data_kpt_shape=(1, 3), verbose=False),
              "obb": lambda: OBBModel(arch, nc=3, verbose=False)}[task]()
    prepared, _ = prepare(source)
    step = prune_step(prepared, StepSpec(removed=0.3, imgsz=IMGSZ), size_of(prepared, "flops", IMGSZ),
                      group_widths(prepared))
    start = write_checkpoint(step.model, tmp_path / "pruned.pt", {"task": task}, {"kind": "structured"})
    best = finetune(start, data, 1, tmp_path / "ft", IMGSZ, 8)
    trained = YOLO(str(best))
    assert trained.task == task
    assert group_widths(trained.model) == group_widths(step.model) != group_widths(prepared)
    metrics = trained.val(data=str(data), imgsz=IMGSZ, batch=8, plots=False, verbose=False)
    assert metrics is not None
