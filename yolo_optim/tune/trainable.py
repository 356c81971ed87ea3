"""One Ray Tune trial: train with Ultralytics and report every epoch's metrics, so schedulers can stop bad trials.

The trial reports after each epoch through a callback added with `model.add_callback("on_fit_epoch_end", ...)`,
with a Ray checkpoint holding Ultralytics' last.pt (to continue a paused or interrupted trial where it stopped)
and the weights of the trial's best epoch so far (by the search objective, optimizer stripped).
Ultralytics' own Ray Tune callback is removed from the trainer: it would report a second, objective-less result.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .objective import Objective, latency_key

LAST, BEST, STATE = "last.pt", "best.pt", "state.json"


@dataclass(frozen=True)
class TrialSetup:
    """Everything a trial needs beside its sampled hyperparameters (shipped once to Ray's object store)."""

    model: str  # starting weights or model YAML (absolute path when a file)
    data: str  # absolute dataset YAML path: trials run in their own working folders
    epochs: int  # epochs per trial
    imgsz: int  # image size unless the space tunes it
    batch: int  # batch size unless the space tunes it
    device: str  # torch device inside the trial ("0" = the GPU Ray assigned)
    workers: int  # dataloader workers
    seed: int  # training seed, the same for every trial
    amp: str  # training precision request (auto, fp16, bf16, off), resolved on the worker that trains
    threads: int  # torch intra-op threads (the trial's CPUs)
    objective: Objective  # how metrics become the reported objective
    fixed: dict[str, Any] = field(default_factory=dict)  # fixed training arguments from the space
    latency_ms: dict[str, float] = field(default_factory=dict)  # latency_key(model, imgsz) -> median ms
    verbose: bool = False  # Ultralytics logging inside trials


def train_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """The Ray Tune function trainable."""
    os.environ.setdefault("YOLO_OFFLINE", "1")  # before Ultralytics is imported in this worker
    import torch
    from ray import tune

    from ..models import load_yolo
    from ..training.amp import resolve_amp
    from ..training.trainers import task_trainer, with_mixed_precision

    if setup.threads > 0:
        torch.set_num_threads(setup.threads)
    hyp = {**setup.fixed, **plain(config)}
    model = str(hyp.pop("model", setup.model))
    args = {"data": setup.data, "epochs": setup.epochs, "imgsz": setup.imgsz, "batch": setup.batch,
            "device": setup.device, "workers": setup.workers, "seed": setup.seed, **hyp,
            "plots": False, "val": True, "save": True, "exist_ok": True, "verbose": setup.verbose,
            "patience": setup.epochs + 1}  # the scheduler decides early stopping, not Ultralytics' patience
    latency = setup.latency_ms.get(latency_key(model, args["imgsz"])) if setup.objective.uses_latency else None
    policy = resolve_amp(setup.amp, setup.device)  # this worker's hardware decides, not the driver's
    args["amp"] = policy.ultralytics_amp
    work = Path(tempfile.mkdtemp(prefix="train-", dir=Path.cwd()))  # Ray's per-trial working folder
    try:
        checkpoint = tune.get_checkpoint()
        reporter = EpochReporter(setup.objective, latency, work, policy.precision)
        if checkpoint is not None:  # a paused or interrupted trial continues from its last epoch
            with checkpoint.as_directory() as d:
                reporter.restore(Path(d))
            if reporter.epoch >= setup.epochs:
                return  # killed after reporting its last epoch: finished (Ultralytics would refuse to resume)
            yolo = load_yolo(str(work / LAST))
            reporter.attach(yolo)
            yolo.train(resume=str(work / LAST), save_dir=str(work / "run"), device=setup.device,
                       workers=setup.workers, trainer=with_mixed_precision(task_trainer(yolo), policy))
        else:
            yolo = load_yolo(model)
            reporter.attach(yolo)
            yolo.train(**args, project=str(work), name="run",
                       trainer=with_mixed_precision(task_trainer(yolo), policy))
        if reporter.reported == 0 and checkpoint is None:
            raise RuntimeError("training finished without reporting an epoch (was validation skipped?)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


class EpochReporter:
    """Ultralytics callbacks that report each finished epoch to Ray Tune with a checkpoint."""

    def __init__(self, objective: Objective, latency_ms: float | None, work: Path, precision: str = "fp32"):
        self.objective, self.latency_ms, self.work = objective, latency_ms, work
        self.precision = precision  # the training precision the trial ran at, reported with every epoch
        self.best = -math.inf  # best objective so far, as a maximum
        self.best_epoch = 0
        self.epoch = 0  # last epoch reported
        self.reported = 0
        self._epoch_trained = False

    def attach(self, yolo: Any) -> None:
        yolo.add_callback("on_pretrain_routine_start", self.on_pretrain_routine_start)
        yolo.add_callback("on_train_epoch_end", self.on_train_epoch_end)
        yolo.add_callback("on_fit_epoch_end", self.on_fit_epoch_end)

    def restore(self, folder: Path) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        for name in (LAST, BEST):
            if (folder / name).is_file():
                shutil.copy2(folder / name, self.work / name)
        state = json.loads((folder / STATE).read_text(encoding="utf-8"))
        self.best, self.best_epoch, self.epoch = float(state["best"]), int(state["best_epoch"]), int(state["epoch"])

    def on_pretrain_routine_start(self, trainer: Any) -> None:
        # Ultralytics adds its own Ray Tune reporter when its `raytune` setting is on; one reporter per epoch only.
        for event, fns in trainer.callbacks.items():
            trainer.callbacks[event] = [f for f in fns if getattr(f, "__module__", "") !=
                                        "ultralytics.utils.callbacks.raytune"]

    def on_train_epoch_end(self, trainer: Any) -> None:
        self._epoch_trained = True  # the final validation of best.pt fires on_fit_epoch_end too; it is not an epoch

    def on_fit_epoch_end(self, trainer: Any) -> None:
        from ray import tune

        if not self._epoch_trained:
            return
        self._epoch_trained = False
        epoch = int(trainer.epoch) + 1
        metrics = {k: float(v) for k, v in (trainer.metrics or {}).items()}
        metrics.update({k: float(v) for k, v in trainer.label_loss_items(trainer.tloss, prefix="train").items()})
        metrics["fitness"] = float(trainer.fitness) if trainer.fitness is not None else float("nan")
        value = self.objective.value(metrics, self.latency_ms)
        as_max = value if self.objective.mode == "max" else -value
        with tempfile.TemporaryDirectory(prefix="ckpt-", dir=self.work) as tmp:
            folder = Path(tmp)
            shutil.copy2(trainer.last, folder / LAST)
            if math.isfinite(as_max) and as_max > self.best:
                self.best, self.best_epoch = as_max, epoch
                _strip_into(trainer.last, self.work / BEST)
            if (self.work / BEST).is_file():
                os.link(self.work / BEST, folder / BEST)
            (folder / STATE).write_text(json.dumps({"best": self.best, "best_epoch": self.best_epoch, "epoch": epoch}))
            report = {**metrics, "objective": value, "epoch": epoch, "best_epoch": self.best_epoch,
                      "best_objective": self.best if self.objective.mode == "max" else -self.best}
            if self.latency_ms is not None:
                report["latency_ms"] = self.latency_ms
            report["train_precision"] = self.precision
            report["skipped_steps"] = int(getattr(trainer, "amp_skipped_steps", 0))
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(folder))  # copied to storage here
        self.epoch = epoch
        self.reported += 1


def _strip_into(src: Path, dst: Path) -> None:
    """Ultralytics' strip_optimizer into a new file: the half-precision EMA weights a user loads."""
    from ultralytics.utils.torch_utils import strip_optimizer

    tmp = dst.with_name(f".{dst.name}.tmp")
    strip_optimizer(str(src), str(tmp))
    os.replace(tmp, dst)


def plain(config: dict[str, Any]) -> dict[str, Any]:
    """Ray/NumPy scalars as Python values, so Ultralytics' cfg checks and YAML writers accept them."""
    out = {}
    for k, v in config.items():
        if hasattr(v, "item") and not isinstance(v, (str, bytes)):
            v = v.item()
        out[k] = v
    return out
