"""Fine-tune a pruned model with Ultralytics' own trainer, keeping the pruned architecture.

Ultralytics' trainers rebuild the network from `model.yaml` and copy matching weights into it (`get_model`), which
would silently restore the unpruned widths. The trainers here override only `get_model` (to return the pruned
module itself) and `optimizer_step` (for the optional BatchNorm-L1 phase and for keeping pruned weights at zero):
everything else -- optimizer, EMA, loss, AMP, checkpoints, resume -- is Ultralytics' code, set up for the module
they were given. Checkpoints pickle the module, so the pruned architecture survives save, load and resume.

Use them from plain Ultralytics too:  YOLO("pruned.pt").train(trainer=PrunedDetectionTrainer, data=..., epochs=...)
"""

from __future__ import annotations

import copy
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import OptimError

# Defaults that suit a pruned, already-trained model: a smaller learning rate than training from scratch and
# almost no warm-up (a long warm-up would spend the short budget re-learning what the model already knows).
FINETUNE_DEFAULTS = {"optimizer": "AdamW", "lr0": 0.001, "lrf": 0.1, "warmup_epochs": 0.5, "cos_lr": False}


class PrunedModelMixin:
    """Train the module handed in (a pruned model), never a model rebuilt from its YAML."""

    bn_l1: float = 0.0  # L1 penalty on BatchNorm scales (network slimming's sparsity phase); 0 = off
    weight_masks: dict[str, torch.Tensor] | None = None  # parameter name -> 0/1 mask kept during training

    def get_model(self, cfg: Any = None, weights: Any = None, verbose: bool = True) -> nn.Module:
        module = weights.get("ema") or weights.get("model") if isinstance(weights, dict) else weights
        if not isinstance(module, nn.Module):
            raise OptimError("a pruned model can only be trained from its own weights; pass the pruned .pt as "
                             "model= and leave pretrained=True")
        model = copy.deepcopy(module).float()
        nc = getattr(self, "data", {}).get("nc")
        model_nc = getattr(model, "nc", None) or (model.yaml.get("nc") if isinstance(model.yaml, dict) else None)
        if nc is not None and model_nc is not None and int(nc) != int(model_nc):
            raise OptimError(f"the pruned model predicts {model_nc} classes but the dataset has {nc}; "
                             "fine-tune it on the dataset it was trained for")
        for p in model.parameters():
            p.requires_grad_(True)
        model.criterion = None  # the loss is rebuilt for this module's widths on first use
        setter = getattr(self, "set_model_names_for_load", None)
        return setter(model) if setter else model

    def optimizer_step(self) -> None:
        model = self.model
        if self.bn_l1 > 0:
            scale = self.scaler.get_scale() if self.scaler.is_enabled() else 1.0  # grads are still AMP-scaled
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d) and m.weight.grad is not None:
                    m.weight.grad.add_(self.bn_l1 * scale * torch.sign(m.weight.detach()))
        masks = self._masks_on_device()
        if masks:
            for name, p in model.named_parameters():
                mask = masks.get(_student_name(name))
                if mask is not None and p.grad is not None:
                    p.grad.mul_(mask)
        super().optimizer_step()  # type: ignore[misc]
        if masks:  # weight decay and EMA must not revive pruned weights either
            with torch.no_grad():
                for net in (model, getattr(self.ema, "ema", None)):
                    if net is None:
                        continue
                    for name, p in net.named_parameters():
                        mask = masks.get(_student_name(name))
                        if mask is not None:
                            p.mul_(mask.to(p.dtype))

    def _masks_on_device(self) -> dict[str, torch.Tensor]:
        if not self.weight_masks:
            return {}
        cache = getattr(self, "_device_masks", None)
        if cache is None:
            device = next(self.model.parameters()).device
            cache = {k: v.to(device) for k, v in self.weight_masks.items()}
            self._device_masks = cache
        return cache


def _student_name(name: str) -> str:
    """Parameter name in the pruned model, also when the trainer wrapped it for distillation."""
    return name.removeprefix("student_model.")


def _base_trainers() -> dict[str, type]:
    from ultralytics.models import yolo

    return {"detect": yolo.detect.DetectionTrainer, "segment": yolo.segment.SegmentationTrainer,
            "pose": yolo.pose.PoseTrainer, "obb": yolo.obb.OBBTrainer}


def pruned_trainer(task: str, bn_l1: float = 0.0, weight_masks: dict[str, torch.Tensor] | None = None) -> type:
    """The trainer class for `task` that keeps a pruned architecture (optionally with slimming or weight masks)."""
    bases = _base_trainers()
    if task not in bases:
        raise OptimError(f"task '{task}' cannot be fine-tuned here; supported: {', '.join(bases)}")
    name = f"Pruned{bases[task].__name__}"
    return type(name, (PrunedModelMixin, bases[task]), {"bn_l1": float(bn_l1), "weight_masks": weight_masks,
                                                         "__module__": __name__})


_DEFAULT_TRAINERS: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    """PrunedDetectionTrainer, PrunedSegmentationTrainer, PrunedPoseTrainer, PrunedOBBTrainer (built on demand)."""
    for task, base in _base_trainers().items():
        if name == f"Pruned{base.__name__}":
            if name not in _DEFAULT_TRAINERS:
                _DEFAULT_TRAINERS[name] = pruned_trainer(task)
            return _DEFAULT_TRAINERS[name]
    raise AttributeError(name)


def finetune(weights: str | Path, data: str | Path, epochs: int, out_dir: Path, imgsz: int, batch: int,
             device: str = "cpu", workers: int = 0, seed: int = 0, bn_l1: float = 0.0,
             weight_masks: dict[str, torch.Tensor] | None = None, resume: bool = False,
             train_args: dict[str, Any] | None = None, amp: Any = "off") -> Path:
    """Fine-tune the pruned checkpoint `weights` into `out_dir` (Ultralytics layout); returns the weights to keep.

    With resume=True and an unfinished `out_dir/weights/last.pt`, the killed run continues where it stopped.
    `amp` (auto, fp16, bf16, off) picks the training precision (yolo_optim.training.amp).
    """
    from ultralytics import YOLO

    from ..training.amp import resolve_amp
    from ..training.trainers import with_mixed_precision

    out_dir = Path(out_dir).resolve()  # Ultralytics puts a relative project under runs/<task>/
    last = out_dir / "weights" / "last.pt"
    policy = resolve_amp(amp, device)
    trainer = with_mixed_precision(pruned_trainer(YOLO(str(weights)).task, bn_l1, weight_masks), policy)
    if resume and _unfinished(last):
        yolo = YOLO(str(last))
        yolo.train(trainer=trainer, resume=True)
    else:
        # one optimizer step per batch: fine-tuning runs few epochs, and Ultralytics' nominal batch of 64 would
        # accumulate several small batches per step and leave the pruned model too few updates to recover
        args = {**FINETUNE_DEFAULTS, "nbs": batch, **(train_args or {}), "amp": policy.ultralytics_amp}
        yolo = YOLO(str(weights))
        yolo.train(trainer=trainer, data=str(data), epochs=epochs, imgsz=imgsz, batch=batch, device=device,
                   workers=workers, seed=seed, deterministic=True, project=str(out_dir.parent), name=out_dir.name,
                   exist_ok=True, plots=False, verbose=False, **args)
    best = out_dir / "weights" / "best.pt"
    return best if best.exists() else last


def _unfinished(last: Path) -> bool:
    if not last.exists():
        return False
    try:
        ckpt = torch.load(last, map_location="cpu", weights_only=False)  # written by our own run
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):  # killed while writing
        return False
    return isinstance(ckpt, dict) and ckpt.get("optimizer") is not None and ckpt.get("epoch", -1) >= 0
