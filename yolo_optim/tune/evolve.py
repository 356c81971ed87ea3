"""`search=evolve`: a Ray Tune `Searcher` that mutates the best finished trials the way Ultralytics' genetic tuner
(ultralytics/engine/tuner.py) does, with categorical parameters and log-scaled ranges added.

This module imports Ray at the top; only the `evolve` searcher's builder (and tests) import it.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
from ray.tune.search import Searcher

from .space import SearchSpace


class EvolutionSearcher(Searcher):
    """Genetic search: mutate one of the best finished trials, as Ultralytics' Tuner does, inside Ray Tune.

    The first trial runs Ultralytics' defaults; while no trial has finished, further trials sample the space at
    random (an initial population for concurrent workers); afterwards each new trial is a mutation of a parent
    drawn from the best `parents` trials, weighted by objective. Numeric genes live in [0, 1] (log scale for
    loguniform); each gene mutates with probability 1/2 by a Gaussian step of sigma x gain, which shrinks while
    the best result is stale; after 30 trials steps follow the elite's covariance. Categorical genes switch to
    another value with probability sigma. Configurations already tried are never proposed again.
    """

    def __init__(self, space: SearchSpace, metric: str | None = None, mode: str | None = None, seed: int = 0,
                 parents: int = 9, sigma: float = 0.2):
        super().__init__(metric=metric, mode=mode)
        self.space = space
        self.parents, self.sigma = parents, sigma
        self.rng = np.random.default_rng(seed)
        self.history: list[tuple[float, tuple[float, ...]]] = []  # (objective as max, genes), finish order
        self.seen: set[tuple[float, ...]] = set()  # genes proposed so far
        self.live: dict[str, dict[str, Any]] = {}  # trial_id -> config
        self.best_in_trial: dict[str, float] = {}  # trial_id -> best objective reported so far
        self.started = 0

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        if config:
            return False  # the space is ours; a Tuner param_space with domains would be ambiguous
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.started == 0 and not self.history:
            config = self.space.defaults()
        elif not self.history:
            config = self._unique(lambda: self.space.sample(self.rng))
        else:
            config = self._mutate()
        self.started += 1
        self.seen.add(self._genes(config))
        self.live[trial_id] = config
        return dict(config)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self.metric in result:
            value = self._as_max(result[self.metric])
            self.best_in_trial[trial_id] = max(value, self.best_in_trial.get(trial_id, -np.inf))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        config = self.live.pop(trial_id, None)
        best = self.best_in_trial.pop(trial_id, None)
        if result and self.metric in result:
            last = self._as_max(result[self.metric])
            best = last if best is None else max(best, last)
        if config is None or error or best is None or not np.isfinite(best):
            return  # a failed trial teaches nothing; its genes stay in `seen`, so it is not proposed again
        self.history.append((float(best), self._genes(config)))

    def add_evaluated_point(self, parameters: dict, value: float, error: bool = False, pruned: bool = False,
                            intermediate_values: list | None = None) -> None:
        """Seed the population with a result obtained elsewhere (e.g. an earlier search)."""
        genes = self._genes(parameters)
        self.seen.add(genes)
        if not error and value is not None and np.isfinite(value):
            self.history.append((self._as_max(value), genes))

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))

    def get_state(self) -> dict[str, Any]:
        return {"history": self.history, "seen": self.seen, "live": self.live, "started": self.started,
                "best_in_trial": self.best_in_trial, "rng": self.rng.bit_generator.state,
                "metric": self._metric, "mode": self._mode}

    def set_state(self, state: dict[str, Any]) -> None:
        self.history, self.seen, self.live = state["history"], state["seen"], state["live"]
        self.started, self.best_in_trial = state["started"], state["best_in_trial"]
        self.rng.bit_generator.state = state["rng"]
        self._metric, self._mode = state["metric"], state["mode"]

    # --- the genetic operator ---------------------------------------------------------------------------
    def _as_max(self, value: Any) -> float:
        return float(value) if self.mode != "min" else -float(value)

    def _genes(self, config: dict[str, Any]) -> tuple[float, ...]:
        return tuple(round(p.to_unit(config[n]), 9) for n, p in self.space.params.items())

    def _config(self, genes: np.ndarray) -> dict[str, Any]:
        return {n: p.from_unit(g) for (n, p), g in zip(self.space.params.items(), genes)}

    def _unique(self, propose: Any) -> dict[str, Any]:
        for _ in range(200):
            config = propose()
            if self._genes(config) not in self.seen:
                return config
        return config  # a tiny discrete space is exhausted: repeating a config beats stopping the search

    def _mutate(self) -> dict[str, Any]:
        params = list(self.space.params.values())
        ng = len(params)
        numeric = np.array([not p.categorical for p in params])
        fitness = np.array([f for f, _ in self.history])
        genes = np.array([g for _, g in self.history], dtype=float)
        order = np.argsort(-fitness)
        top = order[: self.parents]
        weights = fitness[top] - fitness[top].min() + 1e-6
        weights = weights / weights.sum() if np.isfinite(weights).all() and weights.sum() > 0 else None
        stale = len(fitness) - 1 - int(np.argmax(fitness))  # finished trials since the best one
        decay = 1 - 0.2 * min(stale / 25, 1)
        gains = np.array([p.gain for p in params])
        scale = np.maximum(self.sigma * decay * gains, [p.resolution() for p in params])
        covariance, confidence = None, 0.0
        if len(fitness) >= 30 and numeric.any():
            n_elite = min(int(np.ceil(len(fitness) * 0.2)), 30)
            confidence = min(n_elite / numeric.sum(), 1.0)
            elite = genes[order[:n_elite]][:, numeric]
            covariance = (np.atleast_2d(np.cov(elite, rowvar=False)) * decay**2 * confidence
                          + np.diag(np.square(scale[numeric]) / numeric.sum()))

        def propose(attempt: int) -> dict[str, Any]:
            child = genes[top[self.rng.choice(len(top), p=weights)]].copy()
            if attempt >= 100:  # the neighbourhood is exhausted: re-draw the numeric genes
                child[numeric] = self.rng.random(numeric.sum())
                return self._config(child)
            mask = self.rng.random(ng) < 0.5
            if covariance is not None and self.rng.random() < 0.4 * confidence:
                drawn = self.rng.multivariate_normal(child[numeric], covariance)
                drawn = 1 - np.abs(drawn % 2 - 1)  # reflect into [0, 1]
                child[numeric] = np.where(mask[numeric], drawn, child[numeric])
            else:
                step = self.rng.standard_normal(ng) * scale
                child = np.where(mask & numeric, np.clip(child + step, 0, 1), child)
            for i, p in enumerate(params):
                if p.categorical and mask[i] and len(p.values) > 1 and self.rng.random() < self.sigma:
                    others = [j for j in range(len(p.values)) if j != int(child[i])]
                    child[i] = others[int(self.rng.integers(len(others)))]
            return self._config(child)

        attempts = iter(range(200))
        return self._unique(lambda: propose(next(attempts, 199)))
