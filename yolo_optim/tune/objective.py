"""What a search maximises: Ultralytics' fitness, any metric a trial logs, or accuracy under a latency budget.

Latency depends on the architecture (`model`) and the input size (`imgsz`) and on no training hyperparameter, so it
is measured once per (model, imgsz) pair before the first trial starts, on this machine and alone (never while
trials train beside it), exported to the target backend through the export contract and timed with the benchmark
harness. The table is saved in the run folder and reused on resume.

The latency-aware objective is MnasNet's (Tan et al., 2019): fitness x (latency / budget) ^ w, with
  - latency_weight = 0 (a budget): w = 0 within the budget and -1 beyond it, so a model twice as slow as allowed
    keeps half its fitness: any model within the budget beats a slower one of equal accuracy;
  - latency_weight = b > 0 (a weighted term): w = -b everywhere, a smooth trade (MnasNet uses b = 0.07: 10 %
    faster is worth about 0.7 % relative accuracy).
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import OptimError

FITNESS = "fitness"
LATENCY = "latency"
# Metric names Ultralytics' detection trainer logs every epoch (other tasks add their own, e.g. "(M)" for masks).
COMMON_METRICS = ("metrics/precision(B)", "metrics/recall(B)", "metrics/mAP50(B)", "metrics/mAP50-95(B)",
                  "val/box_loss", "val/cls_loss", "val/dfl_loss", "train/box_loss", "train/cls_loss", "train/dfl_loss")


@dataclass(frozen=True)
class Objective:
    """How each epoch's metrics become the one number the searcher and the scheduler see."""

    metric: str = FITNESS  # 'fitness', 'latency' (fitness with latency) or a logged metric name
    mode: str = "max"  # max or min
    latency_target: str = ""  # <backend>-<device>:<precision> the latency is measured on
    latency_budget: float = 0.0  # ms; the budget (or reference latency for a weighted term)
    latency_weight: float = 0.0  # 0 = hard-ish budget, > 0 = weighted term exponent

    @property
    def uses_latency(self) -> bool:
        return self.metric == LATENCY

    def value(self, metrics: dict[str, float], latency_ms: float | None = None) -> float:
        """The objective of one epoch; `metrics` holds 'fitness' and every logged metric."""
        if self.metric == LATENCY:
            if latency_ms is None:
                raise RuntimeError("the latency objective has no measured latency for this trial's model and imgsz")
            return latency_objective(metrics[FITNESS], latency_ms, self.latency_budget, self.latency_weight)
        if self.metric not in metrics:
            raise KeyError(f"objective '{self.metric}' is not among the logged metrics: {', '.join(sorted(metrics))}")
        return float(metrics[self.metric])


def make_objective(metric: str, mode: str, latency_target: str, latency_budget: float,
                   latency_weight: float) -> Objective:
    """Validate the objective settings (one-line errors) and build the Objective."""
    metric = (metric or FITNESS).strip()
    if metric not in (FITNESS, LATENCY) and "/" not in metric:
        raise OptimError(f"objective={metric} is unknown; use fitness, latency or a logged metric such as "
                         f"{', '.join(COMMON_METRICS[:4])}")
    if mode == "auto":
        mode = "min" if "loss" in metric else "max"
    if mode not in ("max", "min"):
        raise OptimError(f"objective_mode={mode} is not allowed; choose auto, max or min")
    if metric == LATENCY:
        if mode != "max":
            raise OptimError("objective=latency is maximised; set objective_mode=auto or max")
        if latency_budget <= 0:
            raise OptimError("objective=latency needs latency_budget=<milliseconds> (the budget or reference latency)")
        if not latency_target:
            raise OptimError("objective=latency needs latency_target=<backend>-<device>:<precision>, "
                             "e.g. onnxruntime-cpu:fp32")
        from ..export.base import Target, get_backend

        target = Target.parse(latency_target)
        get_backend(target.backend).check(target)
        latency_target = target.name
    return Objective(metric, mode, latency_target, float(latency_budget), float(latency_weight))


def logged_metrics(yolo: Any) -> list[str] | None:
    """The metric names a trial reports for this model's task: Ultralytics' validation metrics, the val/ and train/
    losses of the model's own loss (their names come from the criterion), and fitness. None when the loss names
    cannot be read from this model (then only the validation metrics are known)."""
    from ultralytics.cfg import get_cfg
    from ultralytics.utils import DEFAULT_CFG
    from ultralytics.utils import metrics as um

    table = {"detect": um.DetMetrics, "segment": um.SegmentMetrics, "pose": um.PoseMetrics, "obb": um.OBBMetrics}
    keys = [FITNESS, *table[yolo.task]().keys] if yolo.task in table else [FITNESS]
    module = copy.deepcopy(yolo.model)
    module.args = get_cfg(DEFAULT_CFG)  # the criterion reads its loss gains from here
    try:
        criterion = module.init_criterion()
    except (AttributeError, KeyError, TypeError, ValueError, RuntimeError):  # a family whose loss needs more:
        # its loss names stay unknown
        return None
    names = getattr(criterion, "loss_names", None) or getattr(getattr(criterion, "one2many", None), "loss_names",
                                                               None)
    if not names:
        return None
    return keys + [f"{split}/{n}" for split in ("val", "train") for n in names]


def check_logged(objective: Objective, yolo: Any) -> None:
    """Refuse, before any trial trains, an objective metric that training this model never logs."""
    if objective.metric in (FITNESS, LATENCY):
        return
    known = logged_metrics(yolo)
    if known is None and objective.metric.startswith(("val/", "train/")):
        return  # loss names unknown for this family: the first epoch tells
    choices = known or [FITNESS, *COMMON_METRICS[:4]]
    if objective.metric not in choices:
        close = difflib.get_close_matches(objective.metric, choices, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise OptimError(f"objective={objective.metric} is never logged when training this {yolo.task} model"
                         f"{hint}; choose latency or one of: {', '.join(choices)}")


def latency_objective(fitness: float, latency_ms: float, budget_ms: float, weight: float) -> float:
    """fitness x (latency / budget) ^ w, w as the module docstring explains."""
    ratio = latency_ms / budget_ms
    w = -weight if weight > 0 else (0.0 if ratio <= 1 else -1.0)
    return float(fitness) * math.pow(ratio, w)


def latency_key(model: str, imgsz: int) -> str:
    return f"{model}@{int(imgsz)}"


def measure_latency_table(pairs: list[tuple[str, int]], objective: Objective, data: str, device: str,
                          cache: Path, threads: int = 0, log: Any = print) -> dict[str, float]:
    """Median latency in ms for every (model, imgsz) pair; pairs already in `cache` (a JSON file) are kept.

    `device` is the training device; a GPU target exports on it (or on GPU 0 when training runs on the CPU).
    """
    from ..paths import write_json_atomic

    table: dict[str, float] = {}
    if cache.is_file():
        saved = json.loads(cache.read_text(encoding="utf-8"))
        if saved.get("target") == objective.latency_target:
            table = {k: float(v) for k, v in saved.get("median_ms", {}).items()}
    for model, imgsz in pairs:
        key = latency_key(model, imgsz)
        if key in table:
            continue
        table[key] = _median_latency_ms(model, imgsz, objective.latency_target, data, device, threads)
        log(f"latency {objective.latency_target} {key}: {table[key]:.2f} ms")
        write_json_atomic(cache, {"target": objective.latency_target, "threads": threads, "median_ms": table})
    return table


def _median_latency_ms(model: str, imgsz: int, target_text: str, data: str, device: str, threads: int) -> float:
    """Export `model` at `imgsz` to the target and time raw batch-1 inference (core.deploy.export_and_time)."""
    from ..core.deploy import export_and_time
    from ..core.options import ExportOptions
    from ..export.base import Target

    target = Target.parse(target_text)
    with tempfile.TemporaryDirectory(prefix="yolo-optim-latency-") as tmp:
        yolo = _model_for_data(model, data, Path(tmp))
        device = (device if device != "cpu" else "0") if target.device == "gpu" else "cpu"  # torch device to export on
        options = ExportOptions(imgsz=imgsz, data=data, device=device)
        return export_and_time(yolo, target, options, threads=threads).inference.median_ms


def _model_for_data(model: str, data: str, tmp: Path) -> Any:
    """The model a trial would train: a model YAML is built with the dataset's class count, as training does."""
    from ..models import load_yolo

    if Path(model).suffix not in (".yaml", ".yml"):
        return load_yolo(model)
    import yaml
    from ultralytics.nn.tasks import yaml_model_load

    cfg = yaml_model_load(model)  # resolves packaged names and the scale letter (yolo11n.yaml -> scale n)
    names = yaml.safe_load(Path(data).read_text(encoding="utf-8")).get("names") or {}
    cfg["nc"] = len(names)
    tmp.mkdir(parents=True, exist_ok=True)
    out = tmp / Path(model).name
    out.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return load_yolo(str(out))
