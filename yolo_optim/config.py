"""One frozen dataclass per mode, filled from cfg/default.yaml, then a cfg= file, then key=value overrides.

Defaults live only in the YAML; the dataclasses carry types and allowed ranges, and validate themselves in
`__post_init__`, so a bad value fails at the edge with a message that names the key, the value and what is allowed.
The allowed names of pluggable kinds (importance criteria, allocations, searchers, schedulers, precisions) are not
listed here: a field names its registry, which is asked at validation time, so `import yolo_optim.config` stays light
and a newly registered entry is accepted with no edit here.
"""

from __future__ import annotations

import ast
import difflib
import functools
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import OptimError
from .paths import cfg_dir
from .training.amp import AMP_MODES, normalize_amp, resolve_amp
from .registry import ALLOCATIONS, IMPORTANCES, SCHEDULERS, SEARCHERS, Registry

def key(*, ge: float | None = None, gt: float | None = None, lt: float | None = None,
        choices: Any = None, extra: tuple[str, ...] = (), normalize: Any = None) -> Any:
    """A dataclass field with its allowed range; the default value comes from cfg/default.yaml.

    `choices`: a fixed tuple, a Registry (its names) or a function returning names, resolved when a value is
    validated; `extra`: names allowed beside them (e.g. `none` for an optional scheduler); `normalize`: a function
    applied to the raw value first (e.g. the old boolean spelling of a key that became a choice).
    """
    return field(metadata={"ge": ge, "gt": gt, "lt": lt, "choices": choices, "extra": extra,
                           "normalize": normalize})


def _backend_precisions() -> list[str]:
    from .export.base import all_precisions

    return all_precisions()


def resolve_choices(meta: Any) -> tuple[str, ...] | None:
    """The allowed names of a field now; None when it has no list, or when its registry cannot be asked here (its
    defining module needs an optional package that is missing) or holds nothing: then the registry's own lookup,
    when the mode runs, names what is wrong."""
    choices = meta.get("choices")
    if choices is None:
        return None
    try:
        names = choices.names() if isinstance(choices, Registry) else choices() if callable(choices) else choices
    except ImportError:
        return None
    names = tuple(names)
    return tuple(dict.fromkeys([*names, *meta.get("extra", ())])) if names else None


@dataclass(frozen=True)
class _Validated:
    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            raw = getattr(self, f.name)
            if f.metadata.get("normalize") is not None:
                raw = f.metadata["normalize"](raw)
            value = _coerce(f.name, raw, hints[f.name])
            _check_range(f.name, value, f.metadata)
            object.__setattr__(self, f.name, value)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


MAX_IMGSZ = 4096  # image side limit of every mode


@dataclass(frozen=True)
class CommonConfig(_Validated):
    model: str | None  # weights or model YAML; None = demo baseline
    data: str | None  # dataset YAML; None = demo dataset
    imgsz: int = key(gt=0)  # image size, multiple of 32
    batch: int = key(gt=0)  # batch size
    device: str  # torch device
    workers: int = key(ge=0)  # dataloader workers
    seed: int  # random seed
    project: str | None  # output root
    name: str  # run name
    exist_ok: bool  # reuse an existing run folder
    verbose: bool  # more logging, tracebacks

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.imgsz % 32:
            raise OptimError(f"imgsz={self.imgsz} is not a multiple of 32 (the YOLO stride); use e.g. "
                             f"imgsz={max(32, round(self.imgsz / 32) * 32)}")
        if self.imgsz > MAX_IMGSZ:  # larger fails late, out of memory, after run folders exist
            raise OptimError(f"imgsz={self.imgsz} is too large; it must be <= {MAX_IMGSZ} (tile larger images)")
        from .models import check_device

        # A Ray cluster (tune address=) may have GPUs this machine lacks: there only the spelling is checked here.
        check_device(self.device, available=not getattr(self, "address", None))
        if getattr(self, "amp", None) is not None and not getattr(self, "address", None):
            resolve_amp(self.amp, self.device)  # fp16 asked on a CPU fails here, before anything is written


@dataclass(frozen=True)
class DataConfig(_Validated):
    out: str  # dataset folder
    train: int = key(gt=0)  # training images
    val: int = key(gt=0)  # validation images
    classes: int = key(ge=1, lt=9)  # object classes (1-8)
    size: int = key(ge=32)  # image side in pixels
    seed: int  # random seed
    exist_ok: bool  # replace an existing folder
    verbose: bool  # tracebacks


@dataclass(frozen=True)
class BaselineConfig(CommonConfig):
    arch: str  # model YAML
    epochs: int = key(gt=0)  # training epochs
    data_train: int = key(gt=0)  # demo training images
    data_val: int = key(gt=0)  # demo validation images
    data_classes: int = key(ge=1, lt=9)  # demo classes
    data_size: int = key(ge=32)  # demo image size
    amp: str = key(choices=AMP_MODES, normalize=normalize_amp)  # training precision: auto, fp16, bf16, off
    patience: int = key(ge=0)  # stop after this many epochs without a better fitness
    retrain: bool  # train the recipe again instead of using the shipped weights


@dataclass(frozen=True)
class ExportConfig(CommonConfig):
    target: str  # <backend>-<device>
    precision: str = key(choices=_backend_precisions)  # numeric precision
    calib_images: int = key(gt=0)  # calibration images
    max_drop: float = key(ge=0)  # accepted mAP50-95 loss
    guard: str = key(choices=("warn", "strict", "off"))  # accuracy guard
    accuracy_control: bool  # NNCF accuracy-controlled INT8 (OpenVINO)


@dataclass(frozen=True)
class BenchmarkConfig(CommonConfig):
    targets: str  # comma list of targets or 'all'
    warmup: int = key(ge=0)  # warm-up runs
    runs: int = key(gt=0)  # timed runs
    seconds: float = key(gt=0)  # time limit per variant
    threads: int = key(ge=0)  # inference threads
    throughput_batch: int = key(ge=0)  # throughput batch size
    accuracy: bool  # validate for mAP
    metric: str = key(choices=("inference", "end_to_end"))  # latency that ranks variants
    resume: bool  # continue the latest interrupted run


@dataclass(frozen=True)
class PruneConfig(CommonConfig):
    kind: str = key(choices=("structured", "neuron", "weight"))  # what is removed
    method: str = key(choices=IMPORTANCES)  # importance criterion
    allocation: str = key(choices=ALLOCATIONS)  # per-layer ratios
    target: str  # channels, params, flops or latency:<target>:<ms>
    ratio: float = key(gt=0, lt=1)  # fraction of the target measure removed
    epochs: int = key(ge=0)  # final fine-tuning epochs
    steps: int = key(ge=1)  # pruning steps
    step_epochs: int = key(ge=0)  # fine-tuning epochs between steps
    max_drop: float = key(ge=0)  # largest accepted mAP50-95 loss
    round_to: int = key(ge=1)  # channel multiple
    max_layer_ratio: float = key(gt=0, lt=1)  # most a layer may lose
    sensitivity_ratios: str  # comma list of ratios
    sensitivity_table: str | None  # reuse an earlier sensitivity.csv
    sensitivity_images: int = key(ge=0)  # val images for sensitivity
    calib_batches: int = key(ge=0)  # BatchNorm re-estimation batches
    taylor_batches: int = key(gt=0)  # batches for Taylor scores
    sparsity_epochs: int = key(ge=0)  # BatchNorm-L1 training epochs
    sparsity_l1: float = key(ge=0)  # BatchNorm-L1 penalty
    distill: bool  # distil from the unpruned source
    optimizer: str  # fine-tuning optimizer
    lr0: float = key(gt=0)  # fine-tuning learning rate
    warmup_epochs: float = key(ge=0)  # fine-tuning warm-up
    latency_imgsz: int = key(gt=0)  # image size of latency targets
    amp: str = key(choices=AMP_MODES, normalize=normalize_amp)  # fine-tuning precision: auto, fp16, bf16, off
    resume: bool  # continue a killed run


@dataclass(frozen=True)
class TuneConfig(CommonConfig):
    space: str  # search-space YAML
    search: str = key(choices=SEARCHERS)  # searcher
    scheduler: str | None = key(choices=SCHEDULERS, extra=("none",))  # early stopping; None = none
    trials: int = key(ge=1)  # trials
    epochs: int = key(ge=1)  # epochs per trial
    concurrency: int = key(ge=1)  # trials at once
    resume: bool  # continue a search
    objective: str  # fitness, latency or a logged metric
    objective_mode: str = key(choices=("auto", "max", "min"))  # optimisation direction
    latency_target: str  # backend-device:precision timed for objective=latency
    latency_budget: float = key(ge=0)  # ms: budget or reference latency
    latency_weight: float = key(ge=0)  # 0 = budget, > 0 = weighted latency term
    grace_period: int = key(ge=1)  # epochs before a trial may be stopped
    reduction_factor: float = key(gt=1)  # scheduler halving rate
    cpus_per_trial: int = key(ge=0)  # CPUs per trial, 0 = share all
    gpus_per_trial: float = key(ge=-1)  # GPUs per trial, -1 = auto
    address: str | None  # Ray cluster address; None = local Ray
    amp: str = key(choices=AMP_MODES, normalize=normalize_amp)  # trial training precision: auto, fp16, bf16, off


@dataclass(frozen=True)
class OptimizeConfig(CommonConfig):
    target: str | None  # <backend>-<device> or tensorrt-jetson; None = this machine's CPU target
    budget: str | None  # latency budget, e.g. 8ms or 0.5x (of the source); None = fastest within max_drop
    max_drop: float = key(ge=0, lt=1)  # accepted mAP50-95 loss
    recipe: str | None  # recipe YAML; None = cfg/recipes/<target>.yaml
    imgsz_choices: str | None  # smaller input sizes to try; None = the recipe's
    metric: str = key(choices=("inference", "end_to_end"))  # latency the budget bounds
    results: str | None  # results.json measured on the device (tensorrt-jetson)
    address: str | None  # Ray cluster address; None = run here
    resume: bool  # continue an interrupted run


@dataclass(frozen=True)
class ReportConfig(_Validated):
    runs: str | None  # comma list of run folders
    metric: str = key(choices=("inference", "end_to_end"))  # latency that ranks variants
    project: str | None  # output root
    name: str  # run name
    exist_ok: bool  # reuse an existing run folder
    verbose: bool  # tracebacks


CONFIGS: dict[str, type[_Validated]] = {
    "data": DataConfig,
    "baseline": BaselineConfig,
    "export": ExportConfig,
    "benchmark": BenchmarkConfig,
    "prune": PruneConfig,
    "tune": TuneConfig,
    "optimize": OptimizeConfig,
    "report": ReportConfig,
}


@functools.lru_cache(maxsize=None)
def _default_yaml() -> dict[str, dict[str, Any]]:
    with open(cfg_dir() / "default.yaml", encoding="utf-8") as f:
        return yaml.safe_load(f)


def _runtimes() -> list[str]:
    from .export.base import all_runtimes

    return all_runtimes()


# keys whose valid values come from a registry but are not a plain choice (a target may carry ':precision')
_HELP_LISTS = {("export", "target"): _runtimes}


def cfg_help() -> str:
    """cfg/default.yaml as `yolo-optim cfg` prints it: every line whose key takes a registered name ends with the
    names registered now (built-ins and plugins alike)."""
    text = (cfg_dir() / "default.yaml").read_text(encoding="utf-8")
    lists: dict[tuple[str, str], tuple[str, ...]] = {}
    for mode, cls in CONFIGS.items():
        for f in fields(cls):
            registered = not isinstance(f.metadata.get("choices"), (tuple, type(None)))
            names = resolve_choices(f.metadata) if registered else None
            if names:  # fixed tuples are spelled out in the YAML comment already
                lists[(mode, f.name)] = names
    for (mode, name), fn in _HELP_LISTS.items():
        lists[(mode, name)] = tuple(fn())
    out, section = [], None
    for line in text.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            section = line.rstrip()[:-1]
        k = line.strip().split(":", 1)[0]
        names = lists.get((section, k)) if line.startswith("  ") else None
        out.append(f"{line}  [{', '.join(names)}]" if names else line)
    return "\n".join(out) + "\n"


def defaults(mode: str) -> dict[str, Any]:
    """The default values of a mode: its own section, on top of `common` for modes that take a model."""
    sections = _default_yaml()
    out = dict(sections["common"]) if issubclass(CONFIGS[mode], CommonConfig) else {}
    out.update(sections[mode] or {})
    return out


def parse_value(text: str) -> Any:
    """Turn a CLI string into a Python literal where it is one (never eval): 'true' -> True, '3' -> 3, 'a' -> 'a'."""
    low = text.lower()
    if low in ("none", "null", ""):
        return None
    if low in ("true", "false"):
        return low == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def load_yaml_file(path: str | Path, what: str = "cfg") -> dict[str, Any]:
    """Read a user YAML mapping, with one-line errors for a missing, unreadable or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise OptimError(f"{what}={path} does not exist or is not a file; give the path of a YAML file")
    try:
        obj = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
        raise OptimError(f"{what}={path} is not valid YAML ({type(e).__name__}); fix the file") from None
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise OptimError(f"{what}={path} must hold a mapping of key: value, not a {type(obj).__name__}")
    return obj


def all_keys() -> set[str]:
    return {k for mode in CONFIGS for k in defaults(mode)}


def make_config(mode: str, overrides: dict[str, Any] | None = None, cfg: str | None = None) -> Any:
    """Build the validated config of `mode` from defaults, an optional cfg file, then overrides."""
    if mode not in CONFIGS:
        raise OptimError(f"unknown mode '{mode}'; valid modes: {', '.join(CONFIGS)}")
    values = defaults(mode)
    if cfg:
        from_file = load_yaml_file(cfg)
        # A shared cfg file may carry keys of other modes; only truly unknown keys are errors.
        _reject_unknown(mode, from_file, allowed=all_keys())
        values.update({k: v for k, v in from_file.items() if k in values})
    overrides = overrides or {}
    _reject_unknown(mode, overrides, allowed=set(values))
    values.update(overrides)
    return CONFIGS[mode](**values)


def _reject_unknown(mode: str, given: dict[str, Any], allowed: set[str]) -> None:
    for k in given:
        if k not in allowed:
            close = difflib.get_close_matches(str(k), sorted(allowed), n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else "see `yolo-optim cfg` for the valid keys"
            raise OptimError(f"'{k}' is not a valid key for mode '{mode}'; {hint}")


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Check (and gently convert) a value against a field's annotation."""
    args = typing.get_args(hint)
    optional = (typing.get_origin(hint) in (typing.Union, types.UnionType)) and type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    if value is None:
        if optional:
            return None
        raise OptimError(f"{name} must be set (a {base.__name__}); it is empty")
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif base is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
            return ",".join(str(v) for v in value)  # `targets=[a, b]` in a cfg file means the comma list
    raise OptimError(f"{name}={value!r} has the wrong type; expected {base.__name__}")


def _check_range(name: str, value: Any, meta: Any) -> None:
    if value is None:
        return
    choices = resolve_choices(meta)
    if choices and value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise OptimError(f"{name}={value} is not allowed; choose one of {', '.join(choices)}{hint}")
    if meta.get("ge") is not None and value < meta["ge"]:
        raise OptimError(f"{name}={value} is too small; it must be >= {meta['ge']}")
    if meta.get("gt") is not None and value <= meta["gt"]:
        raise OptimError(f"{name}={value} is too small; it must be > {meta['gt']}")
    if meta.get("lt") is not None and value >= meta["lt"]:
        raise OptimError(f"{name}={value} is too large; it must be < {meta['lt']}")
