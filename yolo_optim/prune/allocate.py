"""Per-layer pruning ratios: how many channels each group keeps, for a scalar pruning level in [0, 1].

- uniform: every group loses the same fraction of its channels;
- global: channels of all groups are ranked together by importance (normalised per group by its mean, so groups
  with different weight scales compare fairly) divided by what the channel costs in the target's unit (MACs for
  FLOPs/latency targets, parameters for parameter targets), and the least useful per unit of cost go first;
- sensitivity: each group's measured mAP loss curve (sensitivity.py) against what pruning it saves; for a
  trade-off weight lambda each group takes the ratio that maximises lambda * saving - loss.

Every strategy is monotone in the level, so `search_level` finds by bisection the smallest level that meets a
target. Channel counts of pruned groups are multiples of `round_to`; no group keeps fewer than `round_to` channels
nor loses more than its `limit`.

Each strategy is a function `(level, groups, cost_power) -> {group: channels to keep, before rounding}` registered
in `yolo_optim.registry.ALLOCATIONS`; `allocation=` accepts any registered name. A strategy marked
`@needs_sensitivity` gets each group's measured loss curve (the run measures the table first).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import OptimError
from ..registry import ALLOCATIONS

_GRID = [i / 40 for i in range(41)]  # ratio grid for the sensitivity strategy


@dataclass(frozen=True)
class GroupInfo:
    """What the allocator knows of one group in the unpruned model."""

    name: str
    channels: int  # channels before any pruning
    scores: torch.Tensor  # importance of each original channel (higher = keep)
    cost: float  # what one channel costs, in the target's unit
    loss_curve: tuple[tuple[float, float], ...] = ()  # (ratio, mAP loss) measured by sensitivity analysis
    limit: float = 0.8  # largest fraction of its current channels this group may lose


def round_keep(keep: float, channels: int, round_to: int, limit: float) -> int:
    """Channels to keep: a multiple of round_to (unless nothing is pruned), within the group's limit."""
    if channels <= round_to:
        return channels
    floor = max(round_to, math.ceil(channels * (1 - limit) / round_to) * round_to)
    k = round(keep / round_to) * round_to
    if k >= channels:
        return channels
    return max(floor, k) if floor < channels else channels


def needs_sensitivity(fn: Callable[..., dict[str, float]]) -> Callable[..., dict[str, float]]:
    """Mark an allocation that reads `GroupInfo.loss_curve`: the run measures the sensitivity table for it."""
    fn.needs_sensitivity = True  # type: ignore[attr-defined]
    return fn


def uses_sensitivity(strategy: str) -> bool:
    return bool(getattr(ALLOCATIONS.get(strategy), "needs_sensitivity", False))


def allocate(strategy: str, level: float, groups: list[GroupInfo], round_to: int = 8,
             cost_power: float = 0.0) -> dict[str, int]:
    """Channels each group keeps at pruning level `level` (0 = nothing pruned, 1 = as much as the limits allow).

    cost_power (global only): rank by importance / cost**cost_power; 0 ranks by importance alone, 1 by importance
    per unit of cost (which prunes the expensive high-resolution layers first: faster, but less accurate).
    """
    level = min(max(level, 0.0), 1.0)
    raw = ALLOCATIONS.get(strategy)(level, groups, cost_power)
    return {g.name: round_keep(raw.get(g.name, g.channels), g.channels, round_to, g.limit) for g in groups}


@ALLOCATIONS.register("uniform")
def _uniform(level: float, groups: list[GroupInfo], cost_power: float = 0.0) -> dict[str, float]:
    return {g.name: g.channels * (1 - level * g.limit) for g in groups}


@ALLOCATIONS.register("global")
def _global(level: float, groups: list[GroupInfo], cost_power: float) -> dict[str, float]:
    if level <= 0:
        return {g.name: float(g.channels) for g in groups}
    mean_cost = sum(g.cost for g in groups) / max(len(groups), 1) or 1.0
    ranked = []
    for g in groups:
        s = g.scores.float()
        s = s / (s.mean() + 1e-12)
        ranked.append(s / max(g.cost / mean_cost, 1e-6) ** cost_power)
    flat = torch.cat(ranked)
    # level 1 removes every channel the per-group limits let go; quantiles in between are monotone in level
    q = torch.quantile(flat, level) if level < 1 else flat.max()
    return {g.name: float((r > q).sum().item()) for g, r in zip(groups, ranked)}


def _loss_at(curve: tuple[tuple[float, float], ...], r: float) -> float:
    """Loss at ratio r: piecewise linear through (0, 0) and the measured points, made non-decreasing."""
    pts = [(0.0, 0.0)] + sorted(curve)
    best, running = [], 0.0
    for x, y in pts:
        running = max(running, y)
        best.append((x, running))
    if r >= best[-1][0]:
        x0, y0 = best[-2] if len(best) > 1 else (0.0, 0.0)
        x1, y1 = best[-1]
        slope = (y1 - y0) / (x1 - x0) if x1 > x0 else 0.0
        return y1 + slope * (r - x1)  # beyond the last measured ratio the loss keeps growing at the last slope
    for (x0, y0), (x1, y1) in itertools.pairwise(best):
        if x0 <= r <= x1:
            return y0 + (y1 - y0) * (r - x0) / (x1 - x0) if x1 > x0 else y1
    return best[-1][1]


@ALLOCATIONS.register("sensitivity")
@needs_sensitivity
def _sensitivity(level: float, groups: list[GroupInfo], cost_power: float = 0.0) -> dict[str, float]:
    if not any(g.loss_curve for g in groups):
        raise OptimError("allocation=sensitivity found no measured group in the sensitivity table; lower round_to "
                         "or give sensitivity_ratios that remove at least one round_to step")
    if level <= 0:
        return {g.name: float(g.channels) for g in groups}
    if level >= 1:
        return {g.name: g.channels * (1 - g.limit) for g in groups}
    total = sum(g.cost * g.channels for g in groups) or 1.0
    # scale lambda so level 0.5 weighs the mean loss per unit of saving equally against that saving
    # a group the analysis could not prune at any measured ratio (too narrow for round_to) counts as very costly
    curves = {g.name: g.loss_curve or ((1.0, 1.0),) for g in groups}
    slopes = [max(_loss_at(curves[g.name], 0.5), 1e-6) / (0.5 * g.cost * g.channels / total) for g in groups]
    lam = math.tan(level * math.pi / 2) * (sum(slopes) / len(slopes))
    out = {}
    for g in groups:
        grid = [r for r in _GRID if r <= g.limit + 1e-9]
        curve = curves[g.name]
        best_r = max(grid, key=lambda r: lam * r * g.cost * g.channels / total - _loss_at(curve, r))
        out[g.name] = g.channels * (1 - best_r)
    return out


def search_level(removed_at: Callable[[float], float], target: float, tol: float = 0.002,
                 iterations: int = 14) -> tuple[float, float, float]:
    """Smallest level whose removed fraction reaches `target` (bisection); returns (below, level, removed), where
    `below` is the largest level tried that falls short (0 when none did).

    Raises OptimError when even level 1 falls short, naming the most this model allows.
    """
    top = removed_at(1.0)
    if top + 1e-9 < target:
        raise OptimError(f"the target cannot be met: at most {top:.1%} can be removed from this model (asked "
                         f"{target:.1%}); ask for at most {math.floor(top * 100) / 100:.2f}")
    lo, hi, hi_val = 0.0, 1.0, top
    for _ in range(iterations):
        mid = (lo + hi) / 2
        val = removed_at(mid)
        if val >= target:
            hi, hi_val = mid, val
            if val - target <= tol:
                break
        else:
            lo = mid
    return lo, hi, hi_val


def search_prefix(removed_with: Callable[[int], float], n: int, target: float) -> tuple[int, float]:
    """Smallest p in [0, n] with removed_with(p) >= target, for removed_with non-decreasing and removed_with(n) >= target.

    Used to close the gap between two allocation levels one group at a time: rounding makes whole sets of equal
    groups change width at the same level, so the level alone can overshoot a target by several percent.
    """
    lo, hi, hi_val = 0, n, removed_with(n)
    while lo < hi:
        mid = (lo + hi) // 2
        val = removed_with(mid)
        if val >= target:
            hi, hi_val = mid, val
        else:
            lo = mid + 1
    return hi, hi_val
