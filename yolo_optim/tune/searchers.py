"""Searchers (grid, random, bayes, evolve) and schedulers (asha, hyperband, none), each registered by name.

Every searcher runs inside Ray Tune, so all of them get its scheduling, early stopping, resume and cluster support.
A searcher is a function `(space, metric, mode, trials, seed, concurrency) -> SearchPlan` registered in
`yolo_optim.registry.SEARCHERS`; a scheduler is a function `(cfg, mode) -> a Ray Tune scheduler` registered in
`SCHEDULERS`. `search=` and `scheduler=` accept any registered name. Ray is imported inside the functions, so
listing the names (config validation, help) does not import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import OptimError
from ..registry import SCHEDULERS, SEARCHERS
from .space import SearchSpace


@dataclass(frozen=True)
class SearchPlan:
    """What Ray Tune needs to run one searcher."""

    search_alg: Any  # a ray.tune.search.Searcher or SearchAlgorithm
    param_space: dict[str, Any]  # Ray domains for searchers that read the space from the Tuner
    num_samples: int  # Tuner num_samples (for grids: repeats of the whole grid)
    limits_concurrency: bool = False  # the search algorithm enforces `concurrency` itself


def make_search_plan(search: str, space: SearchSpace, metric: str, mode: str, trials: int, seed: int,
                     concurrency: int) -> SearchPlan:
    """Build the registered searcher `search`; bad combinations (a grid larger than `trials`) are user errors."""
    return SEARCHERS.get(search)(space, metric, mode, trials, seed, concurrency)


# Ray's variant generator takes its own concurrency limit (Tune's max_concurrent_trials applies to Searchers).
@SEARCHERS.register("grid")
def grid_search(space: SearchSpace, metric: str, mode: str, trials: int, seed: int, concurrency: int) -> SearchPlan:
    """Every point of the `grid:` entries, repeated trials // grid size times; other entries sampled."""
    from ray.tune.search import BasicVariantGenerator

    size = space.grid_size()
    if not any(p.kind == "grid" for p in space.params.values()):
        raise OptimError(f"search=grid needs at least one {{grid: [...]}} entry in space {space.source}")
    if size > trials:
        raise OptimError(f"the grid in {space.source} has {size} points but trials={trials}; raise trials to "
                         f"{size} or shrink the grid")
    variants = BasicVariantGenerator(random_state=seed, max_concurrent=concurrency)
    return SearchPlan(variants, space.to_ray("grid"), trials // size, limits_concurrency=True)


@SEARCHERS.register("random")
def random_search(space: SearchSpace, metric: str, mode: str, trials: int, seed: int,
                  concurrency: int) -> SearchPlan:
    from ray.tune.search import BasicVariantGenerator

    variants = BasicVariantGenerator(random_state=seed, max_concurrent=concurrency)
    return SearchPlan(variants, space.to_ray("random"), trials, limits_concurrency=True)


@SEARCHERS.register("bayes")
def bayes_search(space: SearchSpace, metric: str, mode: str, trials: int, seed: int, concurrency: int) -> SearchPlan:
    """Optuna's TPE through Ray's OptunaSearch."""
    from optuna.samplers import TPESampler
    from ray.tune.search.optuna import OptunaSearch

    # The first trial evaluates Ultralytics' defaults (a strong start); TPE then leaves random start-up early,
    # because a search of a few dozen trials cannot spend Optuna's default ten on random sampling.
    sampler = TPESampler(seed=seed, multivariate=True, constant_liar=True,
                         n_startup_trials=max(1, min(10, trials // 4)))
    searcher = OptunaSearch(metric=metric, mode=mode, sampler=sampler, points_to_evaluate=[space.defaults()])
    return SearchPlan(searcher, space.to_ray("bayes"), trials)


@SEARCHERS.register("evolve")
def evolve_search(space: SearchSpace, metric: str, mode: str, trials: int, seed: int,
                  concurrency: int) -> SearchPlan:
    """Ultralytics-style genetic search (evolve.py)."""
    from .evolve import EvolutionSearcher

    return SearchPlan(EvolutionSearcher(space, metric=metric, mode=mode, seed=seed), {}, trials)


def make_scheduler(name: str | None, cfg: Any, mode: str) -> Any:
    """The registered scheduler `name` (empty = none) for a search of `cfg` maximising or minimising."""
    return SCHEDULERS.get(name or "none")(cfg, mode)


@SCHEDULERS.register("asha")
def asha(cfg: Any, mode: str) -> Any:
    """ASHA over epochs: stops trials that lag at each rung."""
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="epoch", max_t=cfg.epochs, grace_period=min(cfg.grace_period, cfg.epochs),
                         reduction_factor=cfg.reduction_factor)


@SCHEDULERS.register("hyperband")
def hyperband(cfg: Any, mode: str) -> Any:
    """HyperBand over epochs: pauses trials that lag and later continues them."""
    from ray.tune.schedulers import HyperBandScheduler

    return HyperBandScheduler(time_attr="epoch", max_t=cfg.epochs, reduction_factor=cfg.reduction_factor)


@SCHEDULERS.register("none")
def no_scheduler(cfg: Any, mode: str) -> Any:
    """Every trial runs all its epochs."""
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()
