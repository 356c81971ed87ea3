"""Channel importance criteria: each returns one score per channel of a group (higher = keep).

- l1 / l2: magnitude of every weight the channel owns across the whole group (Torch-Pruning's group norm);
- bn: |gamma| of the group's BatchNorms (network slimming; pair it with `sparsity_epochs` for the L1 phase);
- taylor: |w * dL/dw| summed over the group, with the detection loss on a few training batches;
- random: a seeded random score, the baseline every criterion must beat.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import OptimError
from .graph import PruningGraph

CRITERIA = ("l1", "l2", "bn", "taylor", "random")


def make_criterion(method: str, seed: int = 0) -> Any:
    """The Torch-Pruning importance object for a method name (raw scores; normalisation is the allocator's job)."""
    import torch_pruning as tp

    imp = tp.importance
    if method == "l1":
        return imp.GroupMagnitudeImportance(p=1, group_reduction="mean", normalizer=None)
    if method == "l2":
        return imp.GroupMagnitudeImportance(p=2, group_reduction="mean", normalizer=None)
    if method == "bn":
        return imp.BNScaleImportance(group_reduction="mean", normalizer=None)
    if method == "taylor":
        return imp.GroupTaylorImportance(group_reduction="mean", normalizer=None)
    if method == "random":
        return _SeededRandom(seed)
    raise OptimError(f"method={method} is not an importance criterion; choose one of {', '.join(CRITERIA)}")


class _SeededRandom:
    """Uniform random scores from a private generator, so a random baseline is reproducible."""

    def __init__(self, seed: int) -> None:
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, group: Any) -> torch.Tensor:
        return torch.rand(len(group[0].idxs), generator=self.gen)


def score_groups(graph: PruningGraph, method: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Per-channel scores of every group, keyed by group name. Taylor needs `accumulate_gradients` first."""
    criterion = make_criterion(method, seed)
    scores: dict[str, torch.Tensor] = {}
    for g in graph.groups:
        with torch.no_grad():
            s = criterion(graph.full_group(g))
        if s is None:  # e.g. a group without BatchNorm under `bn`: fall back to the L1 norm
            s = make_criterion("l1")(graph.full_group(g))
        s = torch.nan_to_num(s.detach().float().cpu(), nan=0.0)
        if s.numel() != graph.channels(g):
            raise OptimError(f"internal error: {method} scored {s.numel()} channels of {g.name}, "
                             f"which has {graph.channels(g)}")
        scores[g.name] = s
    return scores


def _loss_batches(model: nn.Module, data: str | Path, imgsz: int, batches: int, batch: int,
                  seed: int) -> list[dict[str, Any]]:
    """A few un-augmented training batches, preprocessed as the trainer does (float images in [0, 1])."""
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_dataloader, build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset
    from ultralytics.utils import DEFAULT_CFG

    info = check_det_dataset(str(data))
    cfg = get_cfg(DEFAULT_CFG, {"imgsz": imgsz, "task": getattr(model, "task", "detect"), "seed": seed, "plots": False})
    stride = int(max(getattr(model, "stride", torch.tensor([32.0])).max().item(), 32))
    ds = build_yolo_dataset(cfg, info["train"], batch, info, mode="val", stride=stride)
    loader = build_dataloader(ds, batch, workers=0, shuffle=True, device="cpu")
    out = []
    for i, b in enumerate(loader):
        if i >= batches:
            break
        b["img"] = b["img"].float() / 255
        out.append(b)
    return out


def accumulate_gradients(model: nn.Module, data: str | Path, imgsz: int, batches: int = 4, batch: int = 8,
                         seed: int = 0) -> None:
    """Fill `.grad` of `model` with the detection loss gradient over a few batches (for the Taylor criterion).

    The model is put in training mode for the loss, but its BatchNorm layers stay in eval mode, so scoring leaves
    their running statistics untouched.
    """
    from ultralytics.cfg import get_cfg
    from ultralytics.utils import DEFAULT_CFG

    saved_args, saved_criterion = getattr(model, "args", None), getattr(model, "criterion", None)
    was_training = model.training
    model.args = get_cfg(DEFAULT_CFG, _hyp(saved_args))
    model.criterion = None  # built for the current (possibly pruned) widths
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    model.zero_grad(set_to_none=True)
    try:
        for b in _loss_batches(model, data, imgsz, batches, batch, seed):
            loss, _ = model.loss(b)
            loss.sum().backward()
    finally:
        model.args, model.criterion = saved_args, saved_criterion
        model.train(was_training)


def _hyp(args: Any) -> dict[str, Any]:
    """Loss gains from the checkpoint's training arguments when present (box, cls, dfl, ...), else defaults."""
    keys = ("box", "cls", "dfl", "pose", "kobj", "rle", "angle", "overlap_mask", "mask_ratio")
    src = args if isinstance(args, dict) else vars(args) if args is not None and hasattr(args, "__dict__") else {}
    return {k: src[k] for k in keys if k in src}


def recalibrate_batchnorm(model: nn.Module, data: str | Path, imgsz: int, batches: int = 16, batch: int = 16,
                          seed: int = 0) -> None:
    """Re-estimate BatchNorm running statistics on training images after pruning (weights are not changed).

    Removing channels changes what every following layer sees; fresh statistics recover much of the loss before
    any fine-tuning, and make the mAP measured between steps (and by sensitivity analysis) meaningful.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [(m.momentum, m.training) for m in bns]
    was = model.training
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all calibration batches
        m.train()
    try:
        with torch.no_grad():
            for b in _loss_batches(model, data, imgsz, batches, batch, seed):
                model(b["img"])
    finally:
        for m, (mom, tr) in zip(bns, saved):
            m.momentum = mom
            m.train(tr)
        model.train(was)
