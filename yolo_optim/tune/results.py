"""A finished (or interrupted) search as files: trials.csv/json, best_hyperparameters.yaml, best weights, plots.

best_hyperparameters.yaml holds only Ultralytics train keys, checked with Ultralytics' own cfg validation, so
`yolo train cfg=best_hyperparameters.yaml` accepts it as is.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..paths import write_json_atomic, write_text_atomic
from .space import SearchSpace
from .trainable import BEST, plain

STATUSES = ("completed", "stopped", "failed", "unfinished")


@dataclass(frozen=True)
class TrialRecord:
    """One trial of a search."""

    trial_id: str  # Ray's trial id
    status: str  # completed (all epochs), stopped (by the scheduler), failed (raised), unfinished (interrupted)
    config: dict[str, Any]  # sampled hyperparameters
    epochs: int  # epochs reported
    objective: float | None  # best objective over its epochs
    best_epoch: int | None  # the epoch of that objective
    metrics: dict[str, float] = field(default_factory=dict)  # metrics of the last reported epoch
    latency_ms: float | None = None  # measured latency of its (model, imgsz), latency objective only
    error: str | None = None  # first line of the exception of a failed trial
    path: str = ""  # Ray's trial folder (TensorBoard events, progress.csv, checkpoint)
    train_precision: str | None = None  # precision the trial trained at (fp32, bf16, fp16)


@dataclass(frozen=True)
class TuneResult:
    """What `yolo_optim.tune` returns."""

    save_dir: Path  # runs/optim/tune/<name>
    objective: str  # what was optimised
    mode: str  # max or min
    trials: list[TrialRecord]  # every trial, in start order
    best: TrialRecord | None  # the best finished trial
    best_hyperparameters: Path | None  # best_hyperparameters.yaml
    best_weights: Path | None  # weights/best.pt
    wall_s: float  # seconds the search (this invocation) took

    @property
    def best_objective(self) -> float | None:
        return self.best.objective if self.best else None

    def counts(self) -> dict[str, int]:
        return {s: sum(t.status == s for t in self.trials) for s in STATUSES}


def collect_trials(experiment_path: Path, epochs: int, mode: str) -> list[TrialRecord]:
    """TrialRecords of a Ray Tune experiment folder (finished, interrupted or killed), in creation order."""
    from ray.tune import ExperimentAnalysis, ResultGrid

    analysis = ExperimentAnalysis(str(experiment_path), default_metric="objective", default_mode=mode)
    # HyperBand leaves the trials it paused at its last rung PAUSED when the search ends; only a search that was
    # interrupted (a trial still RUNNING or PENDING) has paused trials it will continue on resume.
    interrupted = any(t.status in ("RUNNING", "PENDING") for t in analysis.trials)
    pairs = sorted(zip(analysis.trials, ResultGrid(analysis)), key=lambda pair: _creation_index(pair[0]))
    records = []
    for trial, r in pairs:
        df = r.metrics_dataframe
        metrics = plain({k: v for k, v in (r.metrics or {}).items() if _is_number(v)})
        objective = best_epoch = None
        if df is not None and len(df) and "objective" in df:
            series = df["objective"].astype(float)
            i = series.idxmax() if mode == "max" else series.idxmin()
            if math.isfinite(series[i]):
                objective, best_epoch = float(series[i]), int(df["epoch"][i])
        done = int(metrics.get("epoch", 0))
        if r.error is not None or trial.status == "ERROR":
            status = "failed"
        elif done >= epochs:
            status = "completed"
        elif trial.status == "TERMINATED" or (trial.status == "PAUSED" and not interrupted):
            status = "stopped"
        else:
            status = "unfinished"
        error = _first_line(r.error) if r.error is not None else None
        records.append(TrialRecord(trial_id=str(trial.trial_id), status=status, config=plain(dict(trial.config)),
                                   epochs=done, objective=objective, best_epoch=best_epoch, metrics=metrics,
                                   latency_ms=metrics.get("latency_ms"), error=error, path=str(r.path),
                                   train_precision=(r.metrics or {}).get("train_precision")))
    return records


def _creation_index(trial: Any) -> int:
    """Ray tags each trial '<index>_<config>' in creation order; its saved trial list is not always in that order."""
    head = str(trial.experiment_tag).split("_", 1)[0]
    return int(head) if head.isdigit() else 1 << 30


def _first_line(error: BaseException) -> str:
    """The innermost exception of a trial's error, in one line."""
    cause = getattr(error, "cause", None) or error.__cause__ or error
    text = f"{type(cause).__name__}: {cause}".strip()
    return text.splitlines()[0][:300]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) or hasattr(v, "item")


def pick_best(trials: list[TrialRecord], mode: str) -> TrialRecord | None:
    scored = [t for t in trials if t.objective is not None and t.status != "failed"]
    if not scored:
        return None
    return (max if mode == "max" else min)(scored, key=lambda t: t.objective)


def best_train_args(best: TrialRecord, space: SearchSpace, model: str, data: str, imgsz: int,
                    batch: int) -> dict[str, Any]:
    """The best trial as Ultralytics train arguments, validated by Ultralytics' own cfg check."""
    from ultralytics.cfg import get_cfg

    args = {"model": model, "data": data, "imgsz": imgsz, "batch": batch, **space.fixed,
            **{k: v for k, v in best.config.items() if k in space.params}}
    get_cfg(overrides=args)  # raises on a key or type Ultralytics would refuse
    return args


def write_outputs(save_dir: Path, trials: list[TrialRecord], best: TrialRecord | None, space: SearchSpace,
                  settings: dict[str, Any], train_args: dict[str, Any] | None) -> tuple[Path | None, Path | None]:
    """Write every output file; returns (best_hyperparameters.yaml, weights/best.pt), None where absent."""
    write_json_atomic(save_dir / "trials.json", {"settings": settings, "best": asdict(best) if best else None,
                                                 "trials": [asdict(t) for t in trials]})
    write_text_atomic(save_dir / "trials.csv", trials_csv(trials, space))
    yaml_path = weights = None
    if best is not None and train_args is not None:
        yaml_path = save_dir / "best_hyperparameters.yaml"
        write_text_atomic(yaml_path, best_yaml_text(train_args, best, settings))
        weights = copy_best_weights(best, save_dir / "weights" / "best.pt")
    plot_search(trials, space, settings.get("objective", "objective"), save_dir / "plots",
                settings.get("objective_mode", "max"))
    return yaml_path, weights


def trials_csv(trials: list[TrialRecord], space: SearchSpace) -> str:
    metric_keys = sorted({k for t in trials for k in t.metrics if "/" in k})
    head = ["trial_id", "status", "objective", "best_epoch", "epochs", "latency_ms", "train_precision",
            "skipped_steps", *space.names, *metric_keys, "error"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(head)
    for t in trials:
        w.writerow([t.trial_id, t.status, t.objective, t.best_epoch, t.epochs, t.latency_ms, t.train_precision,
                    t.metrics.get("skipped_steps"), *[t.config.get(n) for n in space.names],
                    *[t.metrics.get(k) for k in metric_keys], t.error or ""])
    return buf.getvalue()


def best_yaml_text(args: dict[str, Any], best: TrialRecord, settings: dict[str, Any]) -> str:
    import yaml

    header = (f"# Best hyperparameters of yolo-optim tune ({settings.get('search')} search, "
              f"{settings.get('trials')} trials x {settings.get('epochs')} epochs)\n"
              f"# trial {best.trial_id}: {settings.get('objective')}={best.objective:.6g} at epoch {best.best_epoch}\n"
              f"# Train with: yolo train cfg=best_hyperparameters.yaml epochs=<N>\n")
    return header + yaml.safe_dump(plain(args), sort_keys=False)


def copy_best_weights(best: TrialRecord, dst: Path) -> Path | None:
    """weights/best.pt from the best trial's Ray checkpoint (the epoch with its best objective)."""
    candidates = sorted(Path(best.path).glob(f"checkpoint_*/{BEST}")) if best.path else []
    if not candidates:
        return None
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copy2(candidates[-1], tmp)
    tmp.replace(dst)
    return dst


def best_so_far(values: list[float], mode: str) -> list[float]:
    """The running best of `values` in the objective's own direction (the lowest so far when minimising)."""
    better = min if mode == "min" else max
    out: list[float] = []
    for v in values:
        out.append(v if not out else better(out[-1], v))
    return out


def plot_search(trials: list[TrialRecord], space: SearchSpace, objective: str, out: Path, mode: str = "max") -> None:
    """objective.png (objective per trial, best so far: the lowest for mode=min) and hyperparameters.png (each
    parameter vs objective)."""
    from ..core.plotting import (
        plt,  # an Agg canvas per figure, no process-wide matplotlib.use
    )

    out.mkdir(parents=True, exist_ok=True)
    scored = [(i, t) for i, t in enumerate(trials, 1) if t.objective is not None]
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = {"completed": "tab:blue", "stopped": "tab:orange", "unfinished": "tab:gray", "failed": "tab:red"}
    for status, color in colors.items():
        pts = [(i, t.objective) for i, t in scored if t.status == status]
        if pts:
            ax.scatter(*zip(*pts), c=color, label=status, s=24)
    failed = [i for i, t in enumerate(trials, 1) if t.status == "failed"]
    if failed:
        ax.scatter(failed, [min((t.objective for _, t in scored), default=0)] * len(failed), marker="x",
                   c="tab:red", label="failed")
    if scored:
        running = best_so_far([t.objective for _, t in scored], mode)
        ax.step([i for i, _ in scored], running, where="post", c="k", lw=1, label="best so far")
    ax.set(xlabel="trial", ylabel=objective, title=f"{objective} per trial")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "objective.png", dpi=110)
    plt.close(fig)

    names = space.names
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        p = space.params[name]
        pts = [(t.config.get(name), t.objective) for _, t in scored if name in t.config]
        if p.categorical:
            labels = [str(v) for v in p.values]
            ax.scatter([labels.index(str(x)) for x, _ in pts], [y for _, y in pts], s=16)
            ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=7)
        else:
            ax.scatter([x for x, _ in pts], [y for _, y in pts], s=16)
            if p.kind == "loguniform":
                ax.set_xscale("log")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.supylabel(objective, fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "hyperparameters.png", dpi=110)
    plt.close(fig)
