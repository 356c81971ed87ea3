"""`yolo-optim tune` and `yolo_optim.tune(...)`: a hyperparameter search on Ray Tune, locally or on a cluster.

Run folder (runs/optim/tune/<name>): args.yaml and space.yaml (what was asked, reused by resume=True), data.yaml
(the dataset with an absolute root, because trials run in their own working folders), ray/ (Ray's experiment:
state for resume, per-trial TensorBoard logs and checkpoints), latency.json, then trials.csv/json,
best_hyperparameters.yaml, weights/best.pt and plots/ when the search ends.

exist_ok=True reuses project/name without deleting anything: the new search's files replace those of the same
name, and its Ray experiment goes to the next free ray-N folder (resume continues the newest one).
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from ..config import TuneConfig, load_yaml_file, make_config
from ..core.cluster_address import check_address
from ..errors import OptimError, missing_extra, one_line
from ..paths import run_dir, write_text_atomic
from .objective import Objective, check_logged, make_objective, measure_latency_table
from .results import (
    TuneResult,
    best_train_args,
    collect_trials,
    pick_best,
    write_outputs,
)
from .space import SearchSpace, latency_axes, load_space
from .trainable import TrialSetup, train_trial

EXPERIMENT = "ray"  # Ray's experiment folder inside the run folder (ray-2, ray-3... in a reused folder)
# Settings a resumed search may change; everything else comes from the interrupted run's args.yaml.
RESUME_OVERRIDES = ("resume", "address", "verbose")


def tune(model: Any = None, data: Any = None, space: str | dict[str, Any] | None = None, **kwargs: Any) -> TuneResult:
    """Search training hyperparameters of `model` on `data`; keys as in cfg/default.yaml's `tune:` section.

    `space` is a YAML path (or a name under cfg/spaces) or a dict in the same format.
    Example: yolo_optim.tune("yolo11n.yaml", "data.yaml", search="bayes", trials=20, epochs=10, concurrency=4)
    """
    overrides = {"model": _model_text(model), "data": None if data is None else str(data), **kwargs}
    if isinstance(space, dict):
        return run_tune(make_config("tune", overrides), space=space)
    if space is not None:
        overrides["space"] = str(space)
    return run_tune(make_config("tune", overrides))


def _model_text(model: Any) -> str | None:
    """A path for a model given as a path or as a YOLO object (trials load it in their own processes)."""
    if model is None or isinstance(model, (str, Path)):
        return None if model is None else str(model)
    from ..models import checkpoint_path

    source = checkpoint_path(model) or getattr(model, "cfg", None)
    if not source:
        raise OptimError("this YOLO object was not loaded from a file; pass the path of its .pt or model YAML")
    return str(source)


def run_tune(cfg: TuneConfig, space: dict[str, Any] | None = None) -> TuneResult:
    """The CLI runner (`yolo-optim tune ...`); `space` replaces cfg.space with an in-memory space."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline sites: no usage-stats upload
    if not cfg.address:  # Ray's switch for a loopback-only node (read when Ray is first imported)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")  # save search state often, so a kill loses little
    # Each epoch's checkpoint forces a state snapshot (that keeps resume exact); Ray would warn about every one.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    try:
        import ray.tune  # only checks that Ray Tune is installed
    except ImportError:
        raise missing_extra("ray[tune]") from None
    if cfg.address:
        check_address(cfg.address)  # before anything is written: a wrong address would hang in ray.init
    save_dir, cfg, search_space = _prepare(cfg, space)
    objective = make_objective(cfg.objective, cfg.objective_mode, cfg.latency_target, cfg.latency_budget,
                               cfg.latency_weight)
    from .searchers import make_scheduler, make_search_plan

    make_scheduler(cfg.scheduler, cfg, objective.mode)  # an unknown name fails here, before any file is written
    plan = None if cfg.resume else make_search_plan(cfg.search, search_space, "objective", objective.mode,
                                                      cfg.trials, cfg.seed, cfg.concurrency)
    model, data = _model_and_data(cfg, save_dir, float(search_space.fixed.get("fraction", 1.0)), objective)
    experiment = _experiment_name(save_dir, cfg.resume)
    _write_inputs(save_dir, cfg, model, data, search_space)
    latency = {}
    if objective.uses_latency:
        latency = measure_latency_table(latency_axes(search_space, model, cfg.imgsz), objective, data, cfg.device,
                                        save_dir / "latency.json")
    started = _init_ray(cfg)
    try:
        tuner = _make_tuner(cfg, save_dir, experiment, search_space, objective, plan, model, data, latency)
        print(f"tune: {cfg.search} search, {cfg.trials} trials x {cfg.epochs} epochs, "
              f"scheduler={cfg.scheduler or 'none'}, {cfg.concurrency} at once; objective={objective.metric} "
              f"({objective.mode}); results in {save_dir}")
        t0 = time.time()
        try:
            tuner.fit()
        except Exception:
            print(f"tune: the search stopped early; its progress is saved: continue it with resume=True "
                  f"project={save_dir.parent} name={save_dir.name}", file=sys.stderr)
            raise
        wall = time.time() - t0
    finally:
        if started:
            import ray

            ray.shutdown()
    return _finish(cfg, save_dir, experiment, search_space, objective, model, data, wall)


def _prepare(cfg: TuneConfig, space: dict[str, Any] | None) -> tuple[Path, TuneConfig, SearchSpace]:
    """Resolve the run folder; on resume, the interrupted run's own settings and space."""
    if not cfg.resume:
        save_dir = run_dir("tune", cfg.project, cfg.name, cfg.exist_ok).resolve()
        return save_dir, cfg, load_space(space if space is not None else cfg.space)
    save_dir = run_dir("tune", cfg.project, cfg.name, exist_ok=True).resolve()
    from ray import tune as ray_tune

    experiment = save_dir / _experiment_name(save_dir, resume=True)
    if not (save_dir / "args.yaml").is_file() or not ray_tune.Tuner.can_restore(str(experiment)):
        raise OptimError(f"resume=True but {save_dir} holds no interrupted search; pass the name= of the search to "
                         "continue, or run without resume")
    saved = load_yaml_file(save_dir / "args.yaml", what="args")
    saved.update({k: getattr(cfg, k) for k in RESUME_OVERRIDES})
    return save_dir, make_config("tune", saved), load_space(save_dir / "space.yaml")


def _experiment_name(save_dir: Path, resume: bool) -> str:
    """Ray's experiment folder: on resume the newest one; for a new search the first free one (ray, ray-2, ...)."""
    numbers = sorted(int(m[1] or 1) for p in save_dir.glob(f"{EXPERIMENT}*")
                     if p.is_dir() and (m := re.fullmatch(rf"{EXPERIMENT}(?:-(\d+))?", p.name)))
    if not numbers:
        return EXPERIMENT
    n = numbers[-1] if resume else numbers[-1] + 1
    return EXPERIMENT if n == 1 else f"{EXPERIMENT}-{n}"


def _model_and_data(cfg: TuneConfig, save_dir: Path, fraction: float, objective: Objective) -> tuple[str, str]:
    """Absolute model and data paths; the model is loaded once here so a bad one (or an objective its training
    never logs) fails before anything is written or Ray starts."""
    from ..data.baseline import resolve_model_and_data
    from ..data.check import check_dataset
    from ..models import load_yolo

    if cfg.resume:
        return str(cfg.model), str(cfg.data)
    model, data = resolve_model_and_data(cfg)
    if Path(model).exists():
        model = str(Path(model).resolve())
    yolo = load_yolo(model, tasks=("detect", "segment", "pose", "obb"))
    task = yolo.task
    check_logged(objective, yolo)
    info = check_dataset(data)
    raw = load_yaml_file(data, what="data")
    raw["path"] = str(Path(info["path"]).resolve())  # trials train from other working folders
    save_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(save_dir / "data.yaml", yaml.safe_dump(raw, sort_keys=False))
    _write_label_caches(check_dataset(save_dir / "data.yaml"), task, fraction)
    return model, str(save_dir / "data.yaml")


def _write_label_caches(info: dict[str, Any], task: str, fraction: float) -> None:
    """Scan the labels once here, as Ultralytics' trainer would: concurrent trials would race writing the caches."""
    from ultralytics.data.dataset import YOLODataset

    for split, share in (("train", fraction), ("val", 1.0)):
        YOLODataset(img_path=info[split], data=info, task=task, augment=False, fraction=share,
                    prefix=f"{split}: ")


def _write_inputs(save_dir: Path, cfg: TuneConfig, model: str, data: str, space: SearchSpace) -> None:
    args = {**cfg.to_dict(), "model": model, "data": data, "resume": False}
    write_text_atomic(save_dir / "args.yaml", yaml.safe_dump(args, sort_keys=False))
    write_text_atomic(save_dir / "space.yaml", yaml.safe_dump(space.to_yaml_dict(), sort_keys=False))


def _init_ray(cfg: TuneConfig) -> bool:
    """Connect to the cluster at cfg.address, or start a private local Ray; False when Ray was already running."""
    import ray

    if ray.is_initialized():
        return False
    env = {"YOLO_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    if os.environ.get("YOLO_CONFIG_DIR"):
        env["YOLO_CONFIG_DIR"] = os.environ["YOLO_CONFIG_DIR"]
    common = {"runtime_env": {"env_vars": env}, "log_to_driver": cfg.verbose,
              "logging_level": "info" if cfg.verbose else "warning"}
    try:
        if cfg.address:
            ray.init(address=cfg.address, **common)
        else:  # this machine's cores, no dashboard, listening on 127.0.0.1 only (see run_tune)
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, **common)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at address={cfg.address}" if cfg.address else "a local Ray instance"
        raise OptimError(f"could not start or reach {where}: {one_line(e, 200)}") from None
    return True


def _trial_resources(cfg: TuneConfig) -> tuple[int, float, str]:
    """(CPUs, GPUs, torch device) per trial: cluster CPUs shared among concurrent trials; GPUs when asked for."""
    import ray

    total = ray.cluster_resources()
    cpus = cfg.cpus_per_trial or max(1, int(total.get("CPU", 1) // cfg.concurrency))
    gpus = cfg.gpus_per_trial
    if gpus < 0:  # auto: a device other than cpu shares the cluster's GPUs among the concurrent trials
        gpus = 0.0 if cfg.device == "cpu" else min(1.0, total.get("GPU", 0.0) / cfg.concurrency)
        if cfg.device != "cpu" and gpus == 0:
            raise OptimError(f"device={cfg.device} but the Ray cluster has no GPU; use device=cpu or another address=")
    if gpus > total.get("GPU", 0.0) and gpus > 0:
        raise OptimError(f"gpus_per_trial={gpus} but the Ray cluster has {total.get('GPU', 0)} GPUs")
    return cpus, gpus, "0" if gpus > 0 else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES to the trial's GPU


def _make_tuner(cfg: TuneConfig, save_dir: Path, experiment: str, space: SearchSpace, objective: Objective,
                plan: Any, model: str, data: str, latency: dict[str, float]) -> Any:
    from ray import tune as ray_tune

    from .progress import TrialLog
    from .searchers import make_scheduler

    cpus, gpus, device = _trial_resources(cfg)
    setup = TrialSetup(model=model, data=data, epochs=cfg.epochs, imgsz=cfg.imgsz, batch=cfg.batch, device=device,
                       workers=cfg.workers, seed=cfg.seed, amp=cfg.amp, threads=cpus, objective=objective,
                       fixed=dict(space.fixed), latency_ms=latency, verbose=cfg.verbose)
    trainable = ray_tune.with_resources(ray_tune.with_parameters(train_trial, setup=setup),
                                        {"cpu": cpus, "gpu": gpus})
    if cfg.resume:
        print(f"tune: resuming the search in {save_dir}")
        return ray_tune.Tuner.restore(str(save_dir / experiment), trainable=trainable, resume_unfinished=True,
                                      resume_errored=False, restart_errored=False)
    tune_config = ray_tune.TuneConfig(metric="objective", mode=objective.mode, search_alg=plan.search_alg,
                                      scheduler=make_scheduler(cfg.scheduler, cfg, objective.mode), num_samples=plan.num_samples,
                                      reuse_actors=True,  # one worker process trains trial after trial
                                      max_concurrent_trials=None if plan.limits_concurrency else cfg.concurrency,
                                      trial_name_creator=trial_name,
                                      trial_dirname_creator=trial_name)
    run_config = ray_tune.RunConfig(name=experiment, storage_path=str(save_dir), verbose=1 if cfg.verbose else 0,
                                    failure_config=ray_tune.FailureConfig(max_failures=0, fail_fast=False),
                                    checkpoint_config=ray_tune.CheckpointConfig(num_to_keep=1),
                                    callbacks=[TrialLog()])
    return ray_tune.Tuner(trainable, param_space=plan.param_space, tune_config=tune_config, run_config=run_config)


def trial_name(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def _finish(cfg: TuneConfig, save_dir: Path, experiment: str, space: SearchSpace, objective: Objective, model: str,
            data: str, wall: float) -> TuneResult:
    trials = collect_trials(save_dir / experiment, cfg.epochs, objective.mode)
    best = pick_best(trials, objective.mode)
    settings = {**cfg.to_dict(), "model": model, "data": data, "objective": objective.metric,
                "objective_mode": objective.mode, "wall_s": round(wall, 1)}
    train_args = best_train_args(best, space, model, data, cfg.imgsz, cfg.batch) if best else None
    yaml_path, weights = write_outputs(save_dir, trials, best, space, settings, train_args)
    result = TuneResult(save_dir=save_dir, objective=objective.metric, mode=objective.mode, trials=trials, best=best,
                        best_hyperparameters=yaml_path, best_weights=weights, wall_s=wall)
    counts = ", ".join(f"{n} {s}" for s, n in result.counts().items() if n)
    print(f"tune: {len(trials)} trials ({counts}) in {wall:.0f} s")
    if best is None:
        first = next((t.error for t in trials if t.error), "no trial reported a result")
        raise OptimError(f"no trial finished an epoch ({counts}); first error: {first}; see {save_dir}/trials.csv")
    print(f"tune: best {objective.metric}={best.objective:.5g} (trial {best.trial_id}, epoch {best.best_epoch}); "
          f"{yaml_path}; TensorBoard: tensorboard --logdir {save_dir / experiment}")
    if any(t.status == "unfinished" for t in trials):
        print(f"tune: the search was interrupted; continue it with resume=True project={save_dir.parent} "
              f"name={save_dir.name}")
    return result
