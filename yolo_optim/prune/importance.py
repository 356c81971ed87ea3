"""Importance criteria: each scores every channel of a group (higher = keep), and optionally single weights.

- l1 / l2: magnitude of every weight the channel owns across the whole group (Torch-Pruning's group norm);
- bn: |gamma| of the group's BatchNorms (network slimming; pair it with `sparsity_epochs` for the L1 phase);
- taylor: |w * dL/dw| summed over the group, with the detection loss on a few training batches;
- random: a seeded random score, the baseline every criterion must beat.

Each is a class registered in `yolo_optim.registry.IMPORTANCES`; `method=` accepts any registered name, so a new
criterion is one subclass of `Importance` with `@IMPORTANCES.register("name")` (see the README's "Extending").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import OptimError
from ..registry import IMPORTANCES
from .graph import PruningGraph


class Importance:
    """A criterion: `__call__(group)` scores the channels of a Torch-Pruning group (None = cannot score it).

    `needs_gradients`: the model's `.grad` must hold the loss gradient (filled by `accumulate_gradients`).
    `weight_scores(weight)`: one score per single weight, for kind=weight; criteria that rank only whole channels
    leave `ranks_weights` False and kind=weight refuses them.
    """

    needs_gradients = False
    ranks_weights = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def __call__(self, group: Any) -> torch.Tensor | None:
        raise NotImplementedError

    def weight_scores(self, weight: nn.Parameter) -> torch.Tensor:
        raise OptimError(f"{type(self).__name__} scores channels, not single weights; for kind=weight use "
                         f"{', '.join(n for n, c in IMPORTANCES.items() if getattr(c, 'ranks_weights', False))}")


class _TorchPruning(Importance):
    """A Torch-Pruning importance object with raw scores (normalisation is the allocator's job)."""

    def _make(self) -> Any:
        raise NotImplementedError

    def __call__(self, group: Any) -> torch.Tensor | None:
        if not hasattr(self, "_tp"):
            self._tp = self._make()
        return self._tp(group)


@IMPORTANCES.register("l1")
class L1(_TorchPruning):
    ranks_weights = True

    def _make(self) -> Any:
        import torch_pruning as tp

        return tp.importance.GroupMagnitudeImportance(p=1, group_reduction="mean", normalizer=None)

    def weight_scores(self, weight: nn.Parameter) -> torch.Tensor:
        return weight.detach().abs()


@IMPORTANCES.register("l2")
class L2(L1):
    def _make(self) -> Any:
        import torch_pruning as tp

        return tp.importance.GroupMagnitudeImportance(p=2, group_reduction="mean", normalizer=None)


@IMPORTANCES.register("bn")
class BatchNormScale(_TorchPruning):
    def _make(self) -> Any:
        import torch_pruning as tp

        return tp.importance.BNScaleImportance(group_reduction="mean", normalizer=None)


@IMPORTANCES.register("taylor")
class Taylor(_TorchPruning):
    needs_gradients = True
    ranks_weights = True

    def _make(self) -> Any:
        import torch_pruning as tp

        return tp.importance.GroupTaylorImportance(group_reduction="mean", normalizer=None)

    def weight_scores(self, weight: nn.Parameter) -> torch.Tensor:
        if weight.grad is None:
            raise OptimError("internal error: method=taylor scored weights before their gradients were computed")
        return (weight.detach() * weight.grad.detach()).abs()


@IMPORTANCES.register("random")
class SeededRandom(Importance):
    """Uniform random scores from a private generator, so a random baseline is reproducible."""

    ranks_weights = True

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, group: Any) -> torch.Tensor:
        return torch.rand(len(group[0].idxs), generator=self.gen)

    def weight_scores(self, weight: nn.Parameter) -> torch.Tensor:
        return torch.rand(weight.shape, generator=self.gen)


def make_criterion(method: str, seed: int = 0) -> Importance:
    """The registered criterion `method`, seeded; an unknown name is a one-line error naming the closest one."""
    return IMPORTANCES.get(method)(seed)


def score_groups(graph: PruningGraph, method: str, seed: int = 0, data: str | Path | None = None, imgsz: int = 256,
                 batches: int = 4) -> dict[str, torch.Tensor]:
    """Per-channel scores of every group, keyed by group name.

    A criterion that needs gradients gets them here, from the loss on `batches` training batches of `data`.
    """
    criterion = make_criterion(method, seed)
    if getattr(criterion, "needs_gradients", False):
        if not data:
            raise OptimError(f"method={method} scores channels with the loss gradient; give data=")
        accumulate_gradients(graph.model, data, imgsz, batches, seed=seed)
    scores: dict[str, torch.Tensor] = {}
    try:
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
    finally:
        graph.model.zero_grad(set_to_none=True)
    return scores


def _loss_batches(model: nn.Module, data: str | Path, imgsz: int, batches: int, batch: int,
                  seed: int, augment: bool = False) -> list[dict[str, Any]]:
    """A few training batches, preprocessed as the trainer does (float images in [0, 1]).

    augment=False: the images letterboxed as validation sees them. augment=True: the training pipeline's own
    augmentation (mosaic, HSV, flips, with the dataset's default hyperparameters), drawn from seeded generators that
    are put back afterwards, so the same seed gives the same batches and no other random stream moves.
    """
    import random

    import numpy as np
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_dataloader, build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset
    from ultralytics.utils import DEFAULT_CFG

    info = check_det_dataset(str(data))
    cfg = get_cfg(DEFAULT_CFG, {"imgsz": imgsz, "task": getattr(model, "task", "detect"), "seed": seed, "plots": False})
    stride = int(max(getattr(model, "stride", torch.tensor([32.0])).max().item(), 32))
    ds = build_yolo_dataset(cfg, info["train"], batch, info, mode="train" if augment else "val", stride=stride)
    loader = build_dataloader(ds, batch, workers=0, shuffle=True, device="cpu")
    states = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    out = []
    try:
        for i, b in enumerate(loader):
            if i >= batches:
                break
            b["img"] = b["img"].float() / 255
            out.append(b)
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
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
    # a checkpoint stripped by Ultralytics (a fine-tuned step's best.pt) has requires_grad off everywhere
    frozen = [p for p in model.parameters() if not p.requires_grad]
    for p in frozen:
        p.requires_grad_(True)
    try:
        for b in _loss_batches(model, data, imgsz, batches, batch, seed):
            loss, _ = model.loss(b)
            loss.sum().backward()
    finally:
        model.args, model.criterion = saved_args, saved_criterion
        model.train(was_training)
        for p in frozen:
            p.requires_grad_(False)


def _hyp(args: Any) -> dict[str, Any]:
    """Loss gains from the checkpoint's training arguments when present (box, cls, dfl, ...), else defaults."""
    keys = ("box", "cls", "dfl", "pose", "kobj", "rle", "angle", "overlap_mask", "mask_ratio")
    src = args if isinstance(args, dict) else vars(args) if args is not None and hasattr(args, "__dict__") else {}
    return {k: src[k] for k in keys if k in src}


def recalibrate_batchnorm(model: nn.Module, data: str | Path, imgsz: int, batches: int = 16, batch: int = 16,
                          seed: int = 0) -> None:
    """Re-estimate BatchNorm running statistics on training images after pruning (weights are not changed).

    Removing channels changes what every following layer sees; fresh statistics recover much of the loss before
    any fine-tuning, and make the mAP measured between steps (and by sensitivity analysis) meaningful. The batches
    are augmented as in training: the statistics a model was trained with are those of augmented images, and
    re-estimating them on plain letterboxed ones cost the unpruned demo model 4 points of mAP50-95 by itself
    (0.7215 as trained, 0.6799 re-estimated on plain images, 0.7248 on augmented ones; 16 batches of 16).
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
            for b in _loss_batches(model, data, imgsz, batches, batch, seed, augment=True):
                model(b["img"])
    finally:
        for m, (mom, tr) in zip(bns, saved):
            m.momentum = mom
            m.train(tr)
        model.train(was)
