"""Search spaces: one YAML entry per Ultralytics training hyperparameter, validated before any trial starts.

An entry is a distribution, a grid, or a fixed value:

    lr0: {loguniform: [1.0e-5, 1.0e-2]}      # continuous, sampled on a log scale
    momentum: {uniform: [0.7, 0.98], gain: 0.3}  # gain: relative mutation strength for search=evolve (0-1)
    close_mosaic: {int: [0, 10]}             # integers, both ends included
    imgsz: {int: [96, 256], step: 32}        # integers on a step
    optimizer: {choice: [AdamW, SGD]}        # categorical
    batch: {grid: [8, 16]}                   # every value is tried (search=grid); a categorical for other searchers
    fraction: 0.5                            # fixed, passed to every trial as is

Names must be Ultralytics cfg keys (ultralytics/cfg/default.yaml); a typo is an error naming the closest key.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OptimError

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice", "grid")
# Keys the search itself controls (or that would break it); they are tune settings, not hyperparameters.
RESERVED = {
    "data": "data=", "epochs": "epochs=", "project": "project=", "name": "name=", "exist_ok": "exist_ok=",
    "resume": "resume=", "mode": "", "task": "", "device": "device= and gpus_per_trial=", "plots": "",
    "save": "", "val": "", "cfg": "", "seed": "seed=", "workers": "workers=", "amp": "amp=", "time": "epochs=",
    "patience": "scheduler=", "save_period": "", "save_dir": "", "source": "", "tracker": "", "format": "",
}
MAX_LATENCY_COMBOS = 64  # (model, imgsz) pairs whose latency is measured before the search


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter."""

    name: str  # Ultralytics cfg key
    kind: str  # uniform, loguniform, int, choice or grid
    low: float | None = None  # lower bound (uniform, loguniform, int)
    high: float | None = None  # upper bound, included
    values: tuple[Any, ...] = ()  # candidates (choice, grid)
    step: int = 1  # spacing of int values
    gain: float = 1.0  # relative mutation strength for the evolution searcher

    @property
    def categorical(self) -> bool:
        return self.kind in ("choice", "grid")

    def to_unit(self, value: Any) -> float:
        """Map a value into [0, 1] (log scale for loguniform); categoricals map to their index."""
        if self.categorical:
            return float(_index(self.values, value))
        if self.high == self.low:
            return 0.0
        if self.kind == "loguniform":
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (float(value) - self.low) / (self.high - self.low)

    def from_unit(self, u: float) -> Any:
        """The inverse of to_unit, rounded to the parameter's resolution and clipped to its bounds."""
        if self.categorical:
            return self.values[int(u)]
        u = min(max(float(u), 0.0), 1.0)
        if self.kind == "loguniform":
            return _round_sig(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
        x = self.low + u * (self.high - self.low)
        if self.kind == "int":
            return int(min(max(self.low + round((x - self.low) / self.step) * self.step, self.low), self.high))
        return _round_sig(x)

    def resolution(self) -> float:
        """The smallest step that changes the value, in unit coordinates."""
        if self.kind == "int" and self.high > self.low:
            return self.step / (self.high - self.low)
        return 1e-5

    def sample(self, rng: np.random.Generator) -> Any:
        if self.categorical:
            return self.values[int(rng.integers(len(self.values)))]
        return self.from_unit(rng.random())

    def enumerate(self) -> list[Any]:
        """Every value of a discrete parameter (for latency tables)."""
        if self.categorical:
            return list(self.values)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, self.step))
        raise OptimError(f"'{self.name}' is continuous; latency can only be tabulated for discrete values")


@dataclass(frozen=True)
class SearchSpace:
    """The searched parameters and the fixed training arguments of a search."""

    params: dict[str, Param]  # name -> searched parameter
    fixed: dict[str, Any] = field(default_factory=dict)  # name -> value passed to every trial
    source: str = ""  # where it was read from

    @property
    def names(self) -> list[str]:
        return list(self.params)

    def grid_size(self) -> int:
        return math.prod(len(p.values) for p in self.params.values() if p.kind == "grid")

    def to_ray(self, search: str) -> dict[str, Any]:
        """Ray Tune domains; grids enumerate under search=grid and are categoricals for every other searcher."""
        from ray import tune

        out: dict[str, Any] = {}
        for name, p in self.params.items():
            if p.kind == "grid" and search == "grid":
                out[name] = tune.grid_search(list(p.values))
            elif p.categorical:
                out[name] = tune.choice(list(p.values))
            elif p.kind == "loguniform":
                out[name] = tune.loguniform(p.low, p.high)
            elif p.kind == "uniform":
                out[name] = tune.uniform(p.low, p.high)
            elif p.step > 1:
                out[name] = tune.qrandint(int(p.low), int(p.high), p.step)  # upper bound included
            else:
                out[name] = tune.randint(int(p.low), int(p.high) + 1)  # randint excludes its upper bound
        return out

    def defaults(self) -> dict[str, Any]:
        """Ultralytics' default value of every parameter, moved into its range: the search's natural first trial."""
        from ultralytics.cfg import DEFAULT_CFG_DICT

        out = {}
        for name, p in self.params.items():
            d = DEFAULT_CFG_DICT.get(name)
            if p.categorical:
                out[name] = d if _contains(p.values, d) else p.values[0]
            elif isinstance(d, (int, float)) and not isinstance(d, bool):
                out[name] = p.from_unit(p.to_unit(min(max(d, p.low), p.high)))
            else:
                out[name] = p.from_unit(0.5)
        return out

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {name: p.sample(rng) for name, p in self.params.items()}

    def to_yaml_dict(self) -> dict[str, Any]:
        """The space in its own YAML format (saved beside the results)."""
        out: dict[str, Any] = {}
        for name, p in self.params.items():
            entry: dict[str, Any] = {p.kind: list(p.values) if p.categorical else [p.low, p.high]}
            if p.step != 1:
                entry["step"] = p.step
            if p.gain != 1.0:
                entry["gain"] = p.gain
            out[name] = entry
        return {**out, **self.fixed}


def resolve_space_path(space: str | Path) -> Path:
    """A path as given, else relative to the packaged cfg/ folder (`spaces/default.yaml`)."""
    from ..paths import cfg_dir

    p = Path(space)
    if p.is_file():
        return p
    packaged = cfg_dir() / p
    if packaged.is_file():
        return packaged
    if (cfg_dir() / "spaces" / p).is_file():
        return cfg_dir() / "spaces" / p
    shipped = sorted(q.name for q in (cfg_dir() / "spaces").glob("*.yaml"))
    raise OptimError(f"space={space} does not exist; give a YAML path or one of cfg/spaces: {', '.join(shipped)}")


def load_space(space: str | Path | dict[str, Any]) -> SearchSpace:
    """Read and validate a search space from a YAML file (path or name under cfg/spaces) or a dict."""
    from ..config import load_yaml_file

    if isinstance(space, dict):
        raw, source = space, "<dict>"
    else:
        path = resolve_space_path(space)
        raw, source = load_yaml_file(path, what="space"), str(path)
    if not raw:
        raise OptimError(f"space {source} is empty; give at least one hyperparameter, e.g. lr0: {{loguniform: "
                         "[1.0e-5, 1.0e-2]}")
    params: dict[str, Param] = {}
    fixed: dict[str, Any] = {}
    for name, entry in raw.items():
        _check_name(str(name), source)
        if isinstance(entry, dict):
            params[name] = _parse_param(str(name), entry, source)
        elif isinstance(entry, (list, tuple)):
            raise OptimError(f"space {source}: '{name}' is a bare list; write {name}: {{choice: {list(entry)}}} or "
                             f"{{grid: {list(entry)}}}")
        else:
            fixed[name] = _check_value(str(name), entry, source)
    if not params:
        raise OptimError(f"space {source} fixes every value and searches none; give at least one distribution")
    return SearchSpace(params=params, fixed=fixed, source=source)


def latency_axes(space: SearchSpace, model: str, imgsz: int) -> list[tuple[str, int]]:
    """Every (model, imgsz) pair a search can train: latency depends on these and on nothing else it tunes."""
    models = _axis(space, "model", str(model))
    sizes = _axis(space, "imgsz", int(imgsz))
    pairs = [(str(m), int(s)) for m in models for s in sizes]
    if len(pairs) > MAX_LATENCY_COMBOS:
        raise OptimError(f"the space has {len(pairs)} (model, imgsz) pairs to time for the latency objective; use at "
                         f"most {MAX_LATENCY_COMBOS} (a coarser imgsz step or fewer model choices)")
    return pairs


def _axis(space: SearchSpace, name: str, default: Any) -> list[Any]:
    if name in space.params:
        return space.params[name].enumerate()
    return [space.fixed.get(name, default)]


def _check_name(name: str, source: str) -> None:
    from ultralytics.cfg import DEFAULT_CFG_DICT

    if name in RESERVED:
        how = f"; set it with the tune setting {RESERVED[name]}" if RESERVED[name] else ""
        raise OptimError(f"space {source}: '{name}' is controlled by the search, not a hyperparameter to tune{how}")
    if name not in DEFAULT_CFG_DICT:
        close = difflib.get_close_matches(name, sorted(DEFAULT_CFG_DICT), n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else "valid names are the keys of Ultralytics' default.yaml"
        raise OptimError(f"space {source}: '{name}' is not an Ultralytics hyperparameter; {hint}")


def _key_type(name: str) -> str:
    """'int', 'float', 'fraction', 'bool' or 'other' for an Ultralytics cfg key."""
    from ultralytics.cfg import (
        CFG_BOOL_KEYS,
        CFG_FLOAT_KEYS,
        CFG_FRACTION_KEYS,
        CFG_INT_KEYS,
        DEFAULT_CFG_DICT,
    )

    if name in CFG_BOOL_KEYS:
        return "bool"
    if name in CFG_FRACTION_KEYS:
        return "fraction"
    if name in CFG_INT_KEYS or name in ("imgsz",) or (name == "batch"):
        return "int"
    if name in CFG_FLOAT_KEYS or isinstance(DEFAULT_CFG_DICT.get(name), float):
        return "float"
    return "other"


def _parse_param(name: str, entry: dict[str, Any], source: str) -> Param:
    where = f"space {source}: '{name}'"
    kinds = [k for k in entry if k in DISTRIBUTIONS]
    extra = [k for k in entry if k not in (*DISTRIBUTIONS, "gain", "step")]
    if len(kinds) != 1 or extra:
        bad = extra[0] if extra else None
        close = difflib.get_close_matches(str(bad), DISTRIBUTIONS, n=1) if bad else []
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise OptimError(f"{where} needs exactly one of {', '.join(DISTRIBUTIONS)}, got {list(entry)}{hint}")
    kind, args = kinds[0], entry[kinds[0]]
    gain = _number(entry.get("gain", 1.0), f"{where} gain")
    if not 0 < gain <= 1:
        raise OptimError(f"{where} gain={gain} must be in (0, 1]")
    key_type = _key_type(name)
    if kind in ("choice", "grid"):
        if not isinstance(args, (list, tuple)) or not args:
            raise OptimError(f"{where} {kind} needs a non-empty list of values, e.g. {{{kind}: [a, b]}}")
        values = tuple(_check_value(name, v, source) for v in args)
        if len({repr(v) for v in values}) != len(values):
            raise OptimError(f"{where} {kind} lists a value twice: {list(values)}")
        return Param(name, kind, values=values, gain=gain)
    if not isinstance(args, (list, tuple)) or len(args) != 2:
        raise OptimError(f"{where} {kind} needs [min, max], got {args!r}")
    low, high = (_number(a, f"{where} {kind} bound") for a in args)
    if low > high:
        raise OptimError(f"{where} has min {low} > max {high}; swap them")
    if key_type in ("bool", "other"):
        raise OptimError(f"{where} is not numeric; use {{choice: [...]}} or {{grid: [...]}}")
    if kind == "int":
        step = int(_number(entry.get("step", 1), f"{where} step"))
        if step < 1 or low != int(low) or high != int(high):
            raise OptimError(f"{where} int needs integer bounds and step >= 1, got [{low}, {high}] step {step}")
        param = Param(name, kind, int(low), int(high), step=step, gain=gain)
        for v in (param.low, param.high):
            _check_value(name, v, source)
        if name == "imgsz" and (param.low % 32 or param.step % 32):
            raise OptimError(f"{where} must stay on multiples of 32 (the YOLO stride); use e.g. step: 32")
        return param
    if "step" in entry:
        raise OptimError(f"{where} step applies to int ranges only")
    if key_type == "int":
        raise OptimError(f"{where} takes integers; use {{int: [{int(low)}, {int(high)}]}}")
    if kind == "loguniform" and low <= 0:
        raise OptimError(f"{where} loguniform needs min > 0, got {low}; use uniform for ranges that include 0")
    if key_type == "fraction" and (low < 0 or high > 1):
        raise OptimError(f"{where} is a fraction; its range must lie within [0, 1], got [{low}, {high}]")
    return Param(name, kind, low, high, gain=gain)


def _check_value(name: str, value: Any, source: str) -> Any:
    """Type-check one concrete value the way Ultralytics' cfg check would, so no trial fails on it later."""
    where = f"space {source}: '{name}'"
    key_type = _key_type(name)
    if key_type == "bool" and not isinstance(value, bool):
        raise OptimError(f"{where} takes true/false, got {value!r}")
    if key_type in ("int", "float", "fraction"):
        if isinstance(value, str):
            value = _number(value, where)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise OptimError(f"{where} takes a number, got {value!r}")
        if key_type == "int" and value != int(value):
            raise OptimError(f"{where} takes integers, got {value!r}")
        value = int(value) if key_type == "int" else float(value)
        if key_type == "fraction" and not 0 <= value <= 1:
            raise OptimError(f"{where} is a fraction and must lie within [0, 1], got {value}")
        if name == "imgsz" and (value <= 0 or value % 32):
            raise OptimError(f"{where} value {value} is not a positive multiple of 32 (the YOLO stride)")
        if name == "batch" and value == 0:
            raise OptimError(f"{where} cannot be 0")
    if name == "model" and not isinstance(value, str):
        raise OptimError(f"{where} takes model paths or YAML names, got {value!r}")
    return value


def _number(x: Any, where: str) -> float:
    """YAML reads `1e-5` (no dot) as a string; accept it as the number it means."""
    if isinstance(x, bool):
        raise OptimError(f"{where} must be a number, got {x!r}")
    if isinstance(x, (int, float)):
        if not math.isfinite(x):
            raise OptimError(f"{where} must be finite, got {x!r}")
        return x
    try:
        v = float(str(x))
    except ValueError:
        raise OptimError(f"{where} must be a number, got {x!r}") from None
    if not math.isfinite(v):
        raise OptimError(f"{where} must be finite, got {x!r}")
    return v


def _round_sig(x: float, digits: int = 6) -> float:
    return float(f"{x:.{digits}g}")


def _index(values: tuple[Any, ...], value: Any) -> int:
    for i, v in enumerate(values):
        if v == value and type(v) is type(value):
            return i
    for i, v in enumerate(values):
        if v == value:
            return i
    raise ValueError(f"{value!r} is not among {values}")


def _contains(values: tuple[Any, ...], value: Any) -> bool:
    try:
        _index(values, value)
        return True
    except ValueError:
        return False
