"""Mixed precision for Ultralytics' trainers, through a trainer subclass and callbacks (no monkeypatching).

fp16 on CUDA is Ultralytics' own AMP (autocast plus a dynamic loss scaler); we only hand it `amp=True`. bf16 is
applied here: forward hooks open a bf16 autocast region at the network's first layer and close it after its head,
whose outputs are cast back to fp32, so the loss and the box assignment run in fp32 while the convolutions run in
bf16. Parameters, gradients and optimizer state stay fp32 (autocast casts copies), and the hooks sit only on the
live training module, registered after Ultralytics made its EMA copy, so checkpoints carry no trace of them and load
in plain Ultralytics.

Every optimizer step is checked: a step whose gradients are not finite is skipped and counted (with fp16 the loss
scaler already skips it and lowers its scale; that is counted too). The chosen precision, the reason and the counts
are logged and written to `amp.json` in the run folder after every epoch.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .amp import AmpPolicy

LOG = logging.getLogger("yolo_optim.training")
AMP_RECORD = "amp.json"  # written beside Ultralytics' results.csv


class _AutocastRegion:
    """bf16 autocast from before a model's first layer to after its last; the head's outputs come back as fp32."""

    def __init__(self, device_type: str) -> None:
        self.device_type = device_type
        self._open: list[Any] = []

    def enter(self, module: nn.Module, args: Any) -> None:
        self._close_all()  # a forward that raised half-way left its region open
        ctx = torch.autocast(self.device_type, dtype=torch.bfloat16)
        ctx.__enter__()
        self._open.append(ctx)

    def leave(self, module: nn.Module, args: Any, output: Any) -> Any:
        self._close_all()
        return _to_fp32(output)

    def _close_all(self) -> None:
        while self._open:
            self._open.pop().__exit__(None, None, None)


def _to_fp32(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.dtype in (torch.bfloat16, torch.float16) else obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_fp32(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_fp32(v) for k, v in obj.items()}
    return obj


def install_bf16_autocast(model: nn.Module, device_type: str) -> list[Any]:
    """Hook a bf16 autocast region into `model`; returns the hook handles.

    A plain Ultralytics network (its `model` attribute is the layer sequence it runs one layer at a time) gets the
    region from its first layer to its head, so the loss runs in fp32. A wrapper around networks (Ultralytics'
    DistillationModel: teacher, student and feature projectors, with features captured by hooks mid-network) gets
    the region around its whole forward, as Ultralytics' own CUDA AMP does, so captured bf16 features meet their
    projectors inside the region.
    """
    from ultralytics.nn.tasks import BaseModel

    region = _AutocastRegion(device_type)
    layers = getattr(model, "model", None)
    if isinstance(model, BaseModel) and isinstance(layers, (nn.Sequential, nn.ModuleList)) and len(layers):
        first, last = layers[0], layers[-1]
    else:
        first = last = model
    return [first.register_forward_pre_hook(region.enter), last.register_forward_hook(region.leave)]


def gradients_finite(model: nn.Module) -> bool:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return True
    norms = torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads])
    return bool(torch.isfinite(norms).all())


class MixedPrecisionMixin:
    """Put before an Ultralytics trainer class: `class T(MixedPrecisionMixin, DetectionTrainer)`."""

    amp_policy: AmpPolicy | None = None  # set by `with_mixed_precision`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        policy = self.amp_policy
        if policy is not None:
            # Ultralytics' own AMP is its fp16 path; a resumed run's saved args must not switch it back on either
            self.args.amp = policy.ultralytics_amp
        self.amp_steps = 0
        self.amp_skipped_steps = 0
        self._amp_handles: list[Any] = []
        self.add_callback("on_pretrain_routine_end", _on_pretrain_routine_end)
        self.add_callback("on_fit_epoch_end", _write_amp_record)
        self.add_callback("on_train_end", _on_train_end)

    def optimizer_step(self) -> None:
        self.amp_steps += 1
        scaler = self.scaler
        if scaler.is_enabled():  # fp16: the scaler skips a non-finite step and lowers its scale
            before = scaler.get_scale()
            super().optimizer_step()  # type: ignore[misc]
            if scaler.get_scale() < before:
                self._count_skip(f"fp16 loss scale lowered to {scaler.get_scale():g}")
            return
        if not gradients_finite(self.model):
            self.optimizer.zero_grad()
            self._count_skip("gradients not finite")
            return
        super().optimizer_step()  # type: ignore[misc]

    def build_optimizer(self, model: nn.Module, name: str = "auto", *args: Any, **kwargs: Any) -> Any:
        optimizer = super().build_optimizer(model, name, *args, **kwargs)  # type: ignore[misc]
        # Ultralytics' optimizer=auto switches to MuSGD on long runs; its Muon step (Newton-Schulz iterations on
        # every weight matrix) ran ~8x slower per step than AdamW on a CPU here, which turns hours into days
        if str(name).lower() == "auto" and type(optimizer).__name__ == "MuSGD" and \
                getattr(getattr(self, "device", None), "type", "cpu") == "cpu":
            LOG.warning("optimizer=auto chose MuSGD for this run's length (epochs x batches per epoch); on a CPU its "
                        "step is several times slower than AdamW's: fewer epochs or a larger batch keep AdamW")
        return optimizer

    def _count_skip(self, why: str) -> None:
        self.amp_skipped_steps += 1
        LOG.warning("optimizer step %d skipped: %s (%d of %d steps skipped so far)", self.amp_steps, why,
                    self.amp_skipped_steps, self.amp_steps)


def _on_pretrain_routine_end(trainer: Any) -> None:
    policy: AmpPolicy | None = trainer.amp_policy
    if policy is None:
        return
    LOG.info("training precision: %s (%s)", policy.precision, policy.reason)
    if policy.autocast_bf16:
        # after Ultralytics made its EMA copy (and loaded a resumed EMA): the copy that is saved never gets hooks
        trainer._amp_handles = install_bf16_autocast(trainer.model, policy.device_type)
    _write_amp_record(trainer)


def _on_train_end(trainer: Any) -> None:
    for h in trainer._amp_handles:
        h.remove()
    trainer._amp_handles = []
    _write_amp_record(trainer)
    if trainer.amp_skipped_steps:
        LOG.warning("%d of %d optimizer steps were skipped for non-finite gradients", trainer.amp_skipped_steps,
                    trainer.amp_steps)


def amp_record(trainer: Any) -> dict[str, Any]:
    policy: AmpPolicy | None = trainer.amp_policy
    return {**(policy.to_dict() if policy else {"precision": "fp32", "reason": "no policy set"}),
            "optimizer_steps": trainer.amp_steps, "skipped_steps": trainer.amp_skipped_steps}


def _write_amp_record(trainer: Any) -> None:
    save_dir = getattr(trainer, "save_dir", None)
    if not save_dir or not Path(save_dir).is_dir():
        return
    from ..paths import write_json_atomic

    write_json_atomic(Path(save_dir) / AMP_RECORD, amp_record(trainer))


def read_amp_record(save_dir: str | Path) -> dict[str, Any] | None:
    """The amp.json a mixed-precision run wrote, or None."""
    p = Path(save_dir) / AMP_RECORD
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


_CLASSES: dict[tuple[type, AmpPolicy], type] = {}


def with_mixed_precision(trainer_cls: type, policy: AmpPolicy) -> type:
    """`trainer_cls` with the mixed-precision mixin and `policy`; the same pair gives the same class."""
    if issubclass(trainer_cls, MixedPrecisionMixin):
        trainer_cls = next(c for c in trainer_cls.__mro__[1:] if not issubclass(c, MixedPrecisionMixin))
    key = (trainer_cls, policy)
    if key not in _CLASSES:
        _CLASSES[key] = type(trainer_cls.__name__, (MixedPrecisionMixin, trainer_cls),
                             {"amp_policy": policy, "__module__": trainer_cls.__module__,
                              "__qualname__": trainer_cls.__qualname__})
    return _CLASSES[key]


def task_trainer(yolo: Any) -> type:
    """Ultralytics' trainer class for a YOLO object's task (its public `task_map`)."""
    return yolo.task_map[yolo.task]["trainer"]
