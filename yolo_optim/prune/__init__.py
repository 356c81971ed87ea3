"""Structured channel, neuron and unstructured weight pruning of Ultralytics YOLO models, with fine-tuning.

`yolo_optim.prune(model, data=..., ratio=0.5, target="flops")` returns the pruned YOLO; the heavy modules are
imported on first use. The fine-tuning trainers (PrunedDetectionTrainer, ...) also work from plain Ultralytics:
`YOLO("pruned.pt").train(trainer=PrunedDetectionTrainer, data=..., epochs=...)`.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_LAZY = {
    "prune": "api", "run_prune": "api", "PruneResult": "api",
    "pruned_trainer": "retrain", "finetune": "retrain", "PrunedDetectionTrainer": "retrain",
    "PrunedSegmentationTrainer": "retrain", "PrunedPoseTrainer": "retrain", "PrunedOBBTrainer": "retrain",
    "PruningGraph": "graph", "rewrite_split_blocks": "transform", "read_prune_metadata": "checkpoint",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """`yolo_optim.prune` is both this package and the public function: importing the package binds the name
    `prune` on `yolo_optim` to the package, so calling the package runs the function."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .api import prune

        return prune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
