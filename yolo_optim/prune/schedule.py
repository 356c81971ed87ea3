"""The iterative schedule: N pruning steps with fine-tuning between them, a final fine-tune, early stop, resume.

Step k removes ratio * k / N of the source model's measure (FLOPs, parameters, channels or weights). After every
step but the last, `step_epochs` of fine-tuning; if mAP50-95 then falls more than `max_drop` below the source, the
step is undone and pruning stops there. Every step's pruned and fine-tuned checkpoints are kept under steps/, and
state.json records what is finished, so a killed run continues from its last saved step (resume=True).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..paths import write_json_atomic
from .checkpoint import write_checkpoint
from .evaluate import primary_map, val_map
from .importance import recalibrate_batchnorm
from .retrain import finetune

LOG = logging.getLogger("yolo_optim.prune")


@dataclass
class Context:
    """Everything one run needs; `prune_fn(model, removed) -> (model, info)` does one pruning step."""

    cfg: Any  # PruneConfig
    data: str  # dataset YAML
    save_dir: Path  # run folder
    train_args: dict[str, Any]  # source checkpoint's training arguments
    reference_map: float  # source mAP50-95 on the val split
    prune_fn: Callable[[nn.Module, float], tuple[nn.Module, dict[str, Any]]]
    masks_fn: Callable[[nn.Module], dict[str, Any] | None] = lambda m: None  # weight masks kept while training
    teacher: str | None = None  # the unpruned source checkpoint, for distillation
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def state_path(self) -> Path:
        return self.save_dir / "state.json"

    def save_state(self) -> None:
        write_json_atomic(self.state_path, self.state)


def _train_args(ctx: Context) -> dict[str, Any]:
    c = ctx.cfg
    args = {"optimizer": c.optimizer, "lr0": c.lr0, "warmup_epochs": c.warmup_epochs}
    if c.distill and ctx.teacher:  # Ultralytics' own distillation; its projector maps pruned to original widths
        args["distill_model"] = ctx.teacher
    return args


def _finetune(ctx: Context, model: nn.Module, folder: Path, epochs: int, meta: dict[str, Any],
              bn_l1: float = 0.0) -> nn.Module:
    """Fine-tune `model` under `folder` (resuming a killed fine-tune there); returns the trained module."""
    from ultralytics import YOLO

    if epochs <= 0:
        return model
    start = folder / "pruned.pt"
    # only a fine-tune this run started is resumed; files an earlier run left in a reused (exist_ok) folder are not
    resuming = ctx.state.get("training") == str(folder) and start.exists()
    if not resuming:
        write_checkpoint(model, start, ctx.train_args, meta)
        ctx.state["training"] = str(folder)
        ctx.save_state()
    c = ctx.cfg
    weights = finetune(start, ctx.data, epochs, folder / "train", c.imgsz, c.batch, c.device, c.workers, c.seed,
                       bn_l1=bn_l1, weight_masks=ctx.masks_fn(model), resume=resuming, train_args=_train_args(ctx),
                       amp=c.amp)
    return YOLO(str(weights)).model.float()


def _load(path: Path) -> nn.Module:
    from ultralytics import YOLO

    return YOLO(str(path)).model.float()


def _check_map(ctx: Context, model: nn.Module) -> float:
    return primary_map(val_map(model, ctx.data, ctx.cfg.imgsz, ctx.cfg.batch, ctx.cfg.device, ctx.cfg.workers),
                       getattr(model, "task", "detect"))


def sparsity_phase(ctx: Context, model: nn.Module) -> nn.Module:
    """Network slimming: train with an L1 penalty on BatchNorm scales so unimportant channels shrink first."""
    c = ctx.cfg
    if c.sparsity_epochs <= 0:
        return model
    done = ctx.state.get("sparsity")
    if done:
        return _load(Path(done))
    folder = ctx.save_dir / "sparsity"
    trained = _finetune(ctx, model, folder, c.sparsity_epochs, {"phase": "sparsity"}, bn_l1=c.sparsity_l1)
    path = folder / "sparse.pt"
    write_checkpoint(trained, path, ctx.train_args, {"phase": "sparsity"})
    ctx.state["sparsity"] = str(path)
    ctx.save_state()
    return trained


def run_steps(ctx: Context, model: nn.Module) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Run (or continue) the steps; returns the final fine-tuned model and one record per kept step."""
    c = ctx.cfg
    records: list[dict[str, Any]] = list(ctx.state.get("steps", []))
    if records:
        model = _load(Path(records[-1]["checkpoint"]))
    if ctx.state.get("stopped"):  # killed after an early stop: finish the final fine-tune if it did not end
        return (model, records) if records[-1]["step"] == "final" else _final_after_stop(ctx, records)
    for k in range(len(records) + 1, c.steps + 1):
        last = k == c.steps
        folder = ctx.save_dir / "steps" / f"step{k}"
        goal = c.ratio * k / c.steps
        pruned_path = folder / "pruned.pt"
        if ctx.state.get("pending_step") == k and pruned_path.exists():  # pruned before the kill; its fine-tune
            pruned, info = _load(pruned_path), dict(ctx.state.get("pending", {}))  # resumes inside _finetune
        else:
            pruned, info = ctx.prune_fn(model, goal)
            _recalibrate(ctx, pruned)
            write_checkpoint(pruned, pruned_path, ctx.train_args, {"step": k, **info})
            ctx.state.update(pending=info, pending_step=k)
            ctx.state.pop("training", None)  # a fine-tune left from before is not this model's: start afresh
            ctx.save_state()
        epochs = c.epochs if last else c.step_epochs
        trained = _finetune(ctx, pruned, folder, epochs, {"step": k, **info})
        m = _check_map(ctx, trained)
        drop = ctx.reference_map - m
        record = {"step": k, "goal": goal, "map": m, "drop": drop, "epochs": epochs, **info}
        LOG.info("step %d/%d: %.1f%% removed, mAP50-95 %.4f (drop %.4f)", k, c.steps, 100 * info.get("removed", goal),
                 m, drop)
        if not last and drop > c.max_drop and records:
            LOG.warning("step %d lost %.4f mAP50-95 (> max_drop=%s): stopping at step %d", k, drop, c.max_drop, k - 1)
            ctx.state.update(stopped=True, stop_reason=f"step {k} dropped {drop:.4f} > max_drop {c.max_drop}")
            ctx.state.pop("pending", None)
            ctx.state.pop("pending_step", None)
            ctx.save_state()
            return _final_after_stop(ctx, records)
        ckpt = folder / "finetuned.pt"
        write_checkpoint(trained, ckpt, ctx.train_args, {"step": k, **info})
        record["checkpoint"] = str(ckpt)
        records.append(record)
        ctx.state["steps"] = records
        ctx.state.pop("pending", None)
        ctx.state.pop("pending_step", None)
        ctx.save_state()
        model = trained
        if drop > c.max_drop and last:
            LOG.warning("the final model lost %.4f mAP50-95 (> max_drop=%s); consider a smaller ratio, more steps "
                        "or more epochs", drop, c.max_drop)
    return model, records


def _final_after_stop(ctx: Context, records: list[dict[str, Any]]) -> tuple[nn.Module, list[dict[str, Any]]]:
    """After an early stop, the last kept step gets the final fine-tune budget."""
    c = ctx.cfg
    model = _load(Path(records[-1]["checkpoint"]))
    folder = ctx.save_dir / "steps" / "final"
    trained = _finetune(ctx, model, folder, c.epochs, {"final": True})
    m = _check_map(ctx, trained)
    ckpt = folder / "finetuned.pt"
    write_checkpoint(trained, ckpt, ctx.train_args, {"final": True})
    records.append({**records[-1], "step": "final", "map": m, "drop": ctx.reference_map - m, "epochs": c.epochs,
                    "checkpoint": str(ckpt)})
    ctx.state["steps"] = records
    ctx.save_state()
    return trained, records


def _recalibrate(ctx: Context, model: nn.Module) -> None:
    if ctx.cfg.calib_batches > 0:
        recalibrate_batchnorm(model, ctx.data, ctx.cfg.imgsz, ctx.cfg.calib_batches, ctx.cfg.batch, ctx.cfg.seed)
