"""Per-device recipes (cfg/recipes/<target>.yaml): which precisions, input sizes and pruned models to try, how to
fine-tune them and how to time them. Defaults live only in the YAML files; `Recipe` carries types and ranges."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import _Validated, key, load_yaml_file
from ..errors import OptimError
from ..paths import cfg_dir

JETSON = "tensorrt-jetson"  # measured on the device itself: latency comes from its results.json
_PRUNE_GOAL = re.compile(r"^(?:(?P<speedup>[0-9.]+)x|budget|flops:(?P<flops>[0-9.]+))$")


@dataclass(frozen=True)
class Recipe(_Validated):
    target: str  # the runtime the recipe is written for
    precisions: str  # comma list of precisions to measure the source at
    min_gain: float = key(ge=0, lt=1)  # fraction faster a lower precision must be to be kept
    imgsz_choices: str | None  # smaller input sizes to try
    prune_targets: str | None  # pruned candidates: <k>x, budget, flops:<r>
    prune_margin: float = key(gt=0, lt=1.0000001)  # budget goals prune to this fraction of the budget
    prune_method: str  # importance criterion
    prune_allocation: str = key(choices=("uniform", "global", "sensitivity"))  # per-layer ratios
    sensitivity_ratios: str  # ratios of the sensitivity probes
    sensitivity_images: int = key(ge=0)  # val images per probe
    prune_steps: int = key(ge=1)  # pruning steps
    prune_max_layer_ratio: float = key(gt=0, lt=1)  # most a layer may lose
    prune_round_to: int = key(ge=1)  # channel multiple
    finetune_epochs: int = key(ge=0)  # fine-tuning epochs per pruned model
    finetune_batch: int = key(ge=0)  # fine-tuning batch; 0 = the command's batch
    distill: bool  # distil from the unpruned source
    lr0: float = key(gt=0)  # fine-tuning learning rate
    warmup: int = key(ge=0)  # untimed calls
    runs: int = key(gt=0)  # timed calls
    seconds: float = key(gt=0)  # time limit of a timed loop
    threads: int = key(ge=0)  # inference threads
    cpus_per_task: int = key(ge=1)  # CPUs per Ray task

    def precision_list(self) -> list[str]:
        from ..export.base import PRECISIONS

        out = [p.strip() for p in str(self.precisions).split(",") if p.strip()]
        bad = [p for p in out if p not in PRECISIONS]
        if not out or bad:
            raise OptimError(f"recipe precisions={self.precisions} must be a comma list of {', '.join(PRECISIONS)}")
        return list(dict.fromkeys(out))

    def prune_goals(self) -> list[str]:
        goals = [g.strip().lower() for g in str(self.prune_targets or "").split(",") if g.strip()]
        for g in goals:
            m = _PRUNE_GOAL.match(g)
            if not m or (m["speedup"] and float(m["speedup"]) <= 1) or (m["flops"] and not 0 < float(m["flops"]) < 1):
                raise OptimError(f"recipe prune_targets entry '{g}' is not understood; use <k>x with k > 1 (e.g. "
                                 "1.5x), budget, or flops:<r> with r in (0, 1) (e.g. flops:0.5)")
        return list(dict.fromkeys(goals))

    def prune_batch(self, batch: int) -> int:
        """The batch a pruning task fine-tunes (and validates) with, given the command's `batch`."""
        return self.finetune_batch or batch

    def prune_options(self) -> dict[str, Any]:
        """The `yolo-optim prune` keys every pruned candidate of this recipe is made with."""
        return {"method": self.prune_method, "allocation": self.prune_allocation,
                "sensitivity_ratios": self.sensitivity_ratios, "sensitivity_images": self.sensitivity_images,
                "steps": self.prune_steps, "max_layer_ratio": self.prune_max_layer_ratio,
                "round_to": self.prune_round_to, "epochs": self.finetune_epochs, "distill": self.distill,
                "lr0": self.lr0}


def parse_sizes(text: str | None, what: str = "imgsz_choices") -> list[int]:
    """'224,192' -> [224, 192]; every size a positive multiple of 32."""
    out = []
    for word in str(text or "").replace(" ", "").split(","):
        if not word:
            continue
        try:
            size = int(word)
        except ValueError:
            raise OptimError(f"{what}={text} must be a comma list of image sizes, e.g. 224,192") from None
        if size <= 0 or size % 32:
            raise OptimError(f"{what}={text}: {size} is not a positive multiple of 32 (the YOLO stride)")
        out.append(size)
    return list(dict.fromkeys(out))


def recipe_names() -> list[str]:
    return sorted(p.stem for p in (cfg_dir() / "recipes").glob("*.yaml"))


def load_recipe(target: str, path: str | None = None) -> Recipe:
    """The recipe of `target`: the user's file when given (keys it leaves out come from the target's packaged
    recipe), else cfg/recipes/<target>.yaml."""
    packaged = cfg_dir() / "recipes" / f"{target}.yaml"
    if not packaged.is_file():
        raise OptimError(f"no recipe for target={target}; recipes exist for {', '.join(recipe_names())} "
                         "(or pass recipe=your.yaml with a target= it names)")
    values: dict[str, Any] = load_yaml_file(packaged, "recipe")
    if path:
        given = Path(path)
        if not given.is_file() and (cfg_dir() / "recipes" / given).is_file():
            given = cfg_dir() / "recipes" / given  # a packaged recipe by its file name
        user = load_yaml_file(given, "recipe")
        unknown = sorted(set(user) - set(values))
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], sorted(values), n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(values)}"
            raise OptimError(f"recipe={path}: '{unknown[0]}' is not a recipe key; {hint}")
        if user.get("target") not in (None, target):
            raise OptimError(f"recipe={path} is written for target={user['target']}, not {target}; pass "
                             f"target={user['target']} or a recipe for {target}")
        values.update(user)
    try:
        recipe = Recipe(**values)
    except TypeError as e:  # a packaged file lacking a key is a packaging bug, said plainly
        raise OptimError(f"recipe for {target} is incomplete ({e})") from None
    recipe.precision_list()
    recipe.prune_goals()
    parse_sizes(recipe.imgsz_choices, "recipe imgsz_choices")
    return recipe
