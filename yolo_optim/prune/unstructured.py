"""Unstructured weight pruning: zero the least important individual weights of the conv/linear layers.

Shapes do not change, so the model stays an ordinary dense Ultralytics model. Dense runtimes (PyTorch, ONNX
Runtime, OpenVINO, TensorRT) run the zeros like any other value: this gives NO speed-up, only a smaller compressed
file (zeros compress well) and a starting point for sparse kernels. The masks are kept at zero during fine-tuning.
"""

from __future__ import annotations

import copy
import io
import zlib
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import OptimError

NO_SPEEDUP = ("unstructured sparsity keeps every layer's shape: dense runtimes (PyTorch, ONNX Runtime, OpenVINO, "
              "TensorRT) get no speed-up from it, only a smaller compressed file")


@dataclass(frozen=True)
class SparsityReport:
    sparsity: float  # fraction of prunable weights that are zero
    prunable: int  # weights considered (conv and linear weights, prediction convs excluded)
    zeros: int  # of which zero
    dense_mb: float  # fp16 state dict, uncompressed
    compressed_mb: float  # the same, zlib-compressed: what sparsity saves on disk or over the wire
    note: str = NO_SPEEDUP


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """Conv/linear weights except the fixed DFL decoder; keyed by parameter name."""
    out = {}
    for name, m in model.named_modules():
        if type(m).__name__ == "DFL":
            continue
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.numel() > 1:
            if any(type(p).__name__ == "DFL" for p in _ancestors(model, name)):
                continue
            out[f"{name}.weight" if name else "weight"] = m.weight
    return out


def _ancestors(model: nn.Module, name: str) -> list[nn.Module]:
    parts = name.split(".")
    return [model.get_submodule(".".join(parts[:i])) for i in range(1, len(parts))]


def weight_scores(model: nn.Module, method: str, seed: int = 0, data: str | None = None, imgsz: int = 256,
                  batches: int = 4) -> dict[str, torch.Tensor]:
    """Per-weight importance from the registered criterion `method` (taylor: gradients from `data` first)."""
    from .importance import accumulate_gradients, make_criterion

    criterion = make_criterion(method, seed)
    if not getattr(criterion, "ranks_weights", False):
        criterion.weight_scores(next(iter(prunable_weights(model).values())))  # raises the one-line refusal
    if getattr(criterion, "needs_gradients", False):
        if not data:
            raise OptimError(f"method={method} ranks weights by the loss gradient; give data=")
        accumulate_gradients(model, data, imgsz, batches, seed=seed)
    try:
        return {name: criterion.weight_scores(p) for name, p in prunable_weights(model).items()}
    finally:
        model.zero_grad(set_to_none=True)


def sparsify(model: nn.Module, sparsity: float, method: str = "l1", allocation: str = "global",
             seed: int = 0, data: str | None = None, imgsz: int = 256,
             batches: int = 4) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A copy of `model` with `sparsity` of its prunable weights zeroed, and the 0/1 masks (parameter name -> mask).

    global: one threshold over all layers (scores normalised by each layer's mean, so layers compare fairly);
    uniform: the same sparsity in every layer.
    """
    if not 0 < sparsity < 1:
        raise OptimError(f"ratio={sparsity} must be in (0, 1) for weight pruning")
    if allocation not in ("global", "uniform"):
        raise OptimError(f"allocation={allocation} is not available for kind=weight; use global or uniform")
    pruned = copy.deepcopy(model)
    scores = weight_scores(model, method, seed, data, imgsz, batches)
    if not scores:
        raise OptimError("the model has no prunable conv or linear weights")
    params = prunable_weights(pruned)
    masks: dict[str, torch.Tensor] = {}
    if allocation == "global":
        normed = {k: v / (v.mean() + 1e-12) for k, v in scores.items()}
        flat = torch.cat([v.flatten() for v in normed.values()])
        k = int(sparsity * flat.numel())
        thr = flat.kthvalue(max(k, 1)).values if k > 0 else flat.min() - 1
        for name, v in normed.items():
            masks[name] = (v > thr).float()
    else:
        for name, v in scores.items():
            k = int(sparsity * v.numel())
            thr = v.flatten().kthvalue(max(k, 1)).values if k > 0 else v.min() - 1
            masks[name] = (v > thr).float()
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask.to(params[name].dtype))
    return pruned, masks


def sparsity_report(model: nn.Module) -> SparsityReport:
    params = prunable_weights(model)
    total = sum(p.numel() for p in params.values())
    zeros = sum(int((p.detach() == 0).sum()) for p in params.values())
    buf = io.BytesIO()
    torch.save({k: v.detach().half() for k, v in model.state_dict().items()}, buf)
    raw = buf.getvalue()
    return SparsityReport(zeros / max(total, 1), total, zeros, len(raw) / 2**20,
                          len(zlib.compress(raw, 9)) / 2**20)


def masks_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """Masks that keep an already sparse model's zeros at zero (for resuming or further training)."""
    return {k: (p.detach() != 0).float() for k, p in prunable_weights(model).items()}
