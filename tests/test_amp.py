"""Mixed precision training: the precision chosen per device, bf16 autocast through hooks, skipped steps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from yolo_optim.errors import OptimError
from yolo_optim.training import amp as amp_mod
from yolo_optim.training.amp import resolve_amp
from yolo_optim.training.trainers import with_mixed_precision
from yolo_optim.training.trainers import MixedPrecisionMixin, gradients_finite, install_bf16_autocast


def _fake_cpu(monkeypatch, flags: tuple[str, ...]) -> None:
    monkeypatch.setattr(amp_mod, "_cpu_bf16_flags", lambda: flags)


def test_auto_picks_bf16_only_on_cpus_with_native_bf16(monkeypatch):
    _fake_cpu(monkeypatch, ("AMX-BF16",))
    p = resolve_amp("auto", "cpu")
    assert p.precision == "bf16" and p.autocast_bf16 and not p.ultralytics_amp and "AMX-BF16" in p.reason
    _fake_cpu(monkeypatch, ())
    p = resolve_amp("auto", "cpu")
    assert p.precision == "fp32" and "emulated" in p.reason
    p = resolve_amp("bf16", "cpu")  # honoured, with the reason saying it is emulated
    assert p.precision == "bf16" and "emulated" in p.reason


@pytest.mark.parametrize("value,expected", [(True, "fp32"), (False, "fp32"), ("off", "fp32"), ("fp32", "fp32")])
def test_boolean_spelling_still_works(monkeypatch, value, expected):
    _fake_cpu(monkeypatch, ())
    assert resolve_amp(value, "cpu").precision == expected


def test_requests_the_hardware_cannot_honour_are_clear_errors():
    with pytest.raises(OptimError, match="amp=fp16 needs a CUDA GPU"):
        resolve_amp("fp16", "cpu")
    with pytest.raises(OptimError, match="amp=fp17 is not valid"):
        resolve_amp("fp17", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(OptimError, match="no CUDA GPU"):
            resolve_amp("auto", "0")


def test_bf16_hooks_run_convs_in_bf16_and_return_fp32_outputs():
    from ultralytics import YOLO

    net = YOLO("yolo11n.yaml").model.train()
    seen: list[torch.dtype] = []
    net.model[1].register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    handles = install_bf16_autocast(net, "cpu")
    out = net(torch.rand(1, 3, 64, 64))
    assert seen == [torch.bfloat16], "the body must run under bf16 autocast"
    assert all(t.dtype == torch.float32 for t in (out if isinstance(out, (list, tuple)) else [out])
               if isinstance(t, torch.Tensor)), "head outputs must come back in fp32 for the loss"
    assert not torch.is_autocast_enabled("cpu"), "the autocast region must close after the head"
    assert all(p.dtype == torch.float32 for p in net.parameters()), "master weights stay fp32"
    for h in handles:
        h.remove()
    seen.clear()
    net(torch.rand(1, 3, 64, 64))
    assert seen == [torch.float32]


def test_bf16_region_wraps_a_distillation_model_whole():
    """Distillation captures features mid-network with hooks: the region must cover the projectors too."""
    from ultralytics import YOLO
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.distill_model import DistillationModel

    args = get_cfg(overrides={"imgsz": 64})
    teacher, student = YOLO("yolo11n.yaml").model, YOLO("yolo11n.yaml").model
    teacher.args = student.args = args
    wrapper = DistillationModel(teacher_model=teacher, student_model=student)
    wrapper.args = args
    wrapper.train()
    install_bf16_autocast(wrapper, "cpu")
    g = torch.Generator().manual_seed(0)
    batch = {"img": torch.rand(2, 3, 64, 64, generator=g), "batch_idx": torch.tensor([0.0, 1.0]),
             "cls": torch.tensor([[0.0], [1.0]]), "bboxes": torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.4, 0.4, 0.3, 0.3]])}
    loss, _ = wrapper(batch)
    loss.sum().backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()
    assert not torch.is_autocast_enabled("cpu")
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in student.parameters())


def test_non_finite_gradients_are_detected():
    lin = torch.nn.Linear(2, 2)
    lin(torch.ones(1, 2)).sum().backward()
    assert gradients_finite(lin)
    lin.weight.grad[0, 0] = float("nan")
    assert not gradients_finite(lin)


def test_bf16_training_writes_record_and_a_plain_checkpoint(demo_data, tmp_path):
    """One tiny epoch in bf16 (emulated where the CPU lacks it): amp.json records the precision and the steps, and
    the checkpoint loads in a Python that cannot import yolo_optim."""
    from ultralytics import YOLO
    from ultralytics.models.yolo.detect import DetectionTrainer

    policy = resolve_amp("bf16", "cpu")
    trainer = with_mixed_precision(DetectionTrainer, policy)
    assert issubclass(trainer, MixedPrecisionMixin) and with_mixed_precision(trainer, policy) is trainer
    YOLO("yolo11n.yaml").train(trainer=trainer, data=str(demo_data), epochs=1, imgsz=32, batch=8, device="cpu",
                               workers=0, project=str(tmp_path), name="run", plots=False, val=False, verbose=False,
                               amp=False)
    record = json.loads((tmp_path / "run" / "amp.json").read_text())
    assert record["precision"] == "bf16" and record["optimizer_steps"] >= 1
    assert 0 <= record["skipped_steps"] <= record["optimizer_steps"]
    last = tmp_path / "run" / "weights" / "last.pt"
    code = ("import sys; sys.modules['yolo_optim'] = None\n"
            "import torch; from ultralytics import YOLO\n"
            f"m = YOLO(r'{last}').model\n"
            "assert not any(mod._forward_hooks or mod._forward_pre_hooks for mod in m.modules())\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


@pytest.mark.parametrize("iterations", [1_000, 1e6])
def test_a_cpu_run_long_enough_for_musgd_is_warned_about(demo_data, tmp_path, caplog, iterations):
    """Ultralytics' optimizer=auto picks MuSGD for long runs, several times slower per step on a CPU: say so."""
    from ultralytics import YOLO
    from ultralytics.models.yolo.detect import DetectionTrainer

    cls = with_mixed_precision(DetectionTrainer, resolve_amp("off", "cpu"))
    trainer = cls(overrides={"model": "yolo11n.yaml", "data": str(demo_data), "device": "cpu", "imgsz": 32,
                             "project": str(tmp_path), "name": "run", "optimizer": "auto"})
    model = YOLO("yolo11n.yaml").model
    with caplog.at_level("WARNING", logger="yolo_optim"):
        optimizer = trainer.build_optimizer(model, "auto", iterations=iterations)
    long = iterations > 10_000
    assert (type(optimizer).__name__ == "MuSGD") is long  # Ultralytics' own choice, not changed
    assert any("MuSGD" in r.getMessage() for r in caplog.records) is long
