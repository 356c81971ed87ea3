"""One structured (or neuron) pruning step: score channels, allocate per-layer ratios that meet a target, remove.

The input module is never touched: `prepare` copies it and rewrites split blocks; every trial of the target search
prunes a fresh copy; the result is a new module.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import OptimError, one_line
from .allocate import GroupInfo, allocate, search_level, search_prefix
from .graph import PruningGraph, refresh_block_attributes
from .importance import score_groups
from .measure import SizeModel, channel_costs, model_size
from .transform import rewrite_split_blocks

LOG = logging.getLogger("yolo_optim.prune")
MEASURES = ("channels", "params", "flops")


@dataclass(frozen=True)
class StepSpec:
    """How to prune one step."""

    kind: str = "structured"  # structured: any conv's channels; neuron: only units of 1x1 convs / linear layers
    method: str = "l1"  # importance criterion
    allocation: str = "global"  # per-layer ratios: uniform, global, sensitivity
    measure: str = "flops"  # what `removed` counts: channels, params or flops
    removed: float = 0.5  # fraction of the ORIGINAL model's measure to have removed after this step
    round_to: int = 8  # channel counts of pruned groups are multiples of this
    max_layer_ratio: float = 0.8  # no group loses more than this fraction of its original channels
    imgsz: int = 256  # image size for FLOPs and Taylor batches
    seed: int = 0
    data: str | None = None  # dataset (Taylor importance)
    taylor_batches: int = 4
    search_iterations: int = 14  # bisection steps of the target search
    search_tol: float = 0.002  # accept a level removing at most this much more than asked
    cost_power: float = 0.0  # global allocation: rank by importance / cost**cost_power


@dataclass
class StepResult:
    model: nn.Module  # the pruned module (a new object)
    removed: float  # fraction of the original measure removed
    level: float  # allocator level that met the target
    channels: dict[str, tuple[int, int]] = field(default_factory=dict)  # group -> (before this step, after)
    whole: dict[str, str] = field(default_factory=dict)  # modules left whole, with why


def prepare(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """A float32 CPU copy with split blocks rewritten into two-conv standard blocks; the input is not modified."""
    prepared = copy.deepcopy(model).float().cpu()
    rewritten = rewrite_split_blocks(prepared)
    for p in prepared.parameters():
        p.requires_grad_(True)
    return prepared, rewritten


def size_of(model: nn.Module, measure: str, imgsz: int, graph: PruningGraph | None = None) -> float:
    if measure == "flops":
        return float(model_size(model, imgsz).macs)
    if measure == "params":
        return float(model_size(model, imgsz).params)
    g = graph or PruningGraph(model)
    return float(sum(g.channels(x) for x in g.groups))


def group_infos(graph: PruningGraph, spec: StepSpec, original: dict[str, int],
                curves: dict[str, tuple[tuple[float, float], ...]] | None = None) -> list[GroupInfo]:
    """What the allocator needs per group; sensitivity curves are re-based from original to current widths."""
    scores = score_groups(graph, spec.method, spec.seed, spec.data, spec.imgsz, spec.taylor_batches)
    costs = channel_costs(graph, min(spec.imgsz, 320)) if spec.measure == "flops" else \
        _param_costs(graph) if spec.measure == "params" else {g.name: 1.0 for g in graph.groups}
    infos = []
    for g in graph.groups:
        if spec.kind == "neuron" and not g.pointwise:
            continue
        n, n0 = graph.channels(g), original.get(g.name, graph.channels(g))
        curve = _rebase(curves.get(g.name, ()), n, n0) if curves else ()
        limit = max(0.0, 1 - n0 * (1 - spec.max_layer_ratio) / n) if n else 0.0
        infos.append(GroupInfo(g.name, n, scores[g.name], max(costs.get(g.name, 1.0), 1e-9), curve, limit))
    return infos


def _rebase(curve: tuple[tuple[float, float], ...], now: int, orig: int) -> tuple[tuple[float, float], ...]:
    """A loss curve over ratios of the original width, expressed over ratios of the current width."""
    if not curve or now >= orig:
        return tuple(curve)
    from .allocate import _loss_at

    already = 1 - now / orig
    base = _loss_at(tuple(curve), already)
    out = []
    for r in (0.25, 0.5, 0.75, 1.0):
        total = 1 - (1 - r) * now / orig
        out.append((r, max(0.0, _loss_at(tuple(curve), total) - base)))
    return tuple(out)


def _param_costs(graph: PruningGraph) -> dict[str, float]:
    costs = {}
    for g in graph.groups:
        total = 0.0
        for dep, _ in graph.full_group(g):
            m = dep.target.module
            if isinstance(m, nn.Conv2d):
                k = m.kernel_size[0] * m.kernel_size[1]
                if m.groups == m.out_channels and m.groups > 1:
                    total += k
                elif graph.DG.is_out_channel_pruning_fn(dep.handler):
                    total += k * m.in_channels / m.groups
                else:
                    total += k * m.out_channels / m.groups
            elif isinstance(m, nn.BatchNorm2d):
                total += 2
        costs[g.name] = total
    return costs


def apply_keep(graph: PruningGraph, infos: list[GroupInfo], keep: dict[str, int]) -> None:
    """Remove from each group its lowest-scored channels down to `keep[name]`."""
    by_name = {g.name: g for g in graph.groups}
    for info in infos:
        g = by_name.get(info.name)
        k = keep.get(info.name, info.channels)
        if g is None or k >= graph.channels(g):
            continue
        order = torch.argsort(info.scores, stable=True)
        graph.prune(g, order[: graph.channels(g) - k].tolist())


def prune_step(model: nn.Module, spec: StepSpec, base_size: float, original: dict[str, int],
               curves: dict[str, tuple[tuple[float, float], ...]] | None = None,
               removed_fn: Callable[[nn.Module], float] | None = None, target: float | None = None) -> StepResult:
    """Prune a prepared model until `spec.removed` of `base_size` (the original model's measure) is gone.

    `removed_fn(candidate)` replaces the size measure (e.g. measured latency), with its own `target`.
    """
    graph = PruningGraph(model, spec.round_to)
    infos = group_infos(graph, spec, original, curves)
    if not infos:
        raise OptimError(f"the model has no prunable layers for kind={spec.kind}"
                         + (f" (left whole: {', '.join(graph.whole)})" if graph.whole else ""))
    analytic = _analytic(graph, spec, base_size) if removed_fn is None else None

    def trial(keep: dict[str, int]) -> nn.Module:
        work = copy.deepcopy(model)
        apply_keep(PruningGraph(work, spec.round_to), infos, keep)
        refresh_block_attributes(work)
        return work

    def removed_by(keep: dict[str, int]) -> float:
        return analytic(keep) if analytic else removed_fn(trial(keep))  # type: ignore[misc]

    def keep_at(level: float) -> dict[str, int]:
        return allocate(spec.allocation, level, infos, spec.round_to, spec.cost_power)

    cache: dict[float, float] = {}

    def removed_at(level: float) -> float:
        if level not in cache:
            cache[level] = removed_by(keep_at(level))
        return cache[level]

    goal = spec.removed if target is None else target
    below, level, removed = search_level(removed_at, goal, spec.search_tol, spec.search_iterations)
    keep = keep_at(level)
    if removed - goal > spec.search_tol:  # close the rounding gap group by group, cheapest groups first
        low = keep_at(below)
        cost = {i.name: i.cost * (low[i.name] - keep[i.name]) for i in infos}
        diff = sorted((n for n in keep if keep[n] != low[n]), key=lambda n: (cost[n], n))

        def mixed(p: int) -> dict[str, int]:
            return {**low, **{n: keep[n] for n in diff[:p]}}

        p, removed = search_prefix(lambda p: removed_by(mixed(p)), len(diff), goal)
        keep = mixed(p)
        if p and removed - goal > spec.search_tol:  # the last group added overshoots: give it only what is needed
            keep, removed = _narrow_last(keep, mixed(p - 1), diff[p - 1], spec.round_to, goal, removed_by, removed)
    pruned = trial(keep)
    check_pruned(model, pruned)
    if analytic:
        removed = 1 - size_of(pruned, spec.measure, min(spec.imgsz, 320)) / base_size
    before = {i.name: i.channels for i in infos}
    channels = {n: (before[n], keep[n]) for n in before if keep[n] != before[n]}
    LOG.info("pruned %d groups, %.1f%% of %s removed", len(channels), 100 * removed, spec.measure)
    return StepResult(pruned, removed, level, channels, dict(graph.whole))


def _narrow_last(keep: dict[str, int], without: dict[str, int], name: str, round_to: int, goal: float,
                 removed_by: Callable[[dict[str, int]], float], removed: float) -> tuple[dict[str, int], float]:
    """The widest width of group `name` (between its width in `without` and in `keep`, in round_to steps) that
    still reaches `goal`: a group whose measured loss grows linearly flips from unpruned to fully pruned at one
    level, which alone can overshoot the target by 10% of the FLOPs."""
    widths = [*sorted(range(keep[name] + round_to, without[name], round_to), reverse=True), keep[name]]
    last = len(widths) - 1  # widest first; the last is `keep`'s own width, whose removal is known

    def removed_at(i: int) -> float:
        return removed if i == last else removed_by({**keep, name: widths[i]})

    i, got = search_prefix(removed_at, last, goal)
    return {**keep, name: widths[i]}, got


def check_pruned(original: nn.Module, pruned: nn.Module) -> None:
    """Refuse a pruned model whose forward fails or whose outputs changed shape: never a silently wrong model."""
    from .graph import example_input, raw_outputs

    x = example_input(original)
    try:
        with torch.no_grad():
            before = [t.shape for t in raw_outputs(original.eval()(x))]
            after = [t.shape for t in raw_outputs(pruned.eval()(x))]
            pruned.train()
            for m in pruned.modules():  # BatchNorms stay in eval: a check must not change their statistics
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
            pruned(torch.cat([x, x]))  # the training forward (and training-only branches) must run too
    except RuntimeError as e:
        raise OptimError(f"internal error: the pruned model does not run ({one_line(e, 160)}); "
                         "please report it with the model YAML") from None
    finally:
        pruned.eval()
    if before != after:
        raise OptimError(f"internal error: pruning changed the output shapes {before} -> {after}; please report it")


def _analytic(graph: PruningGraph, spec: StepSpec, base_size: float) -> Callable[[dict[str, int]], float]:
    """removed fraction of an allocation, computed from widths alone (see measure.SizeModel)."""
    if spec.measure == "channels":
        now = {g.name: graph.channels(g) for g in graph.groups}
        return lambda keep: 1 - sum(keep.get(n, c) for n, c in now.items()) / base_size
    sizes = SizeModel(graph, min(spec.imgsz, 320))
    index = 0 if spec.measure == "flops" else 1
    return lambda keep: 1 - sizes.size(keep)[index] / base_size


def max_removed(model: nn.Module, spec: StepSpec, base_size: float, original: dict[str, int]) -> float:
    """The fraction of the measure removed with every group at its limit: the most any allocation can reach."""
    return 1 - size_of(most_pruned(model, spec, original), spec.measure, min(spec.imgsz, 320)) / base_size


def most_pruned(model: nn.Module, spec: StepSpec, original: dict[str, int]) -> nn.Module:
    """A copy with every group at its limit (every allocation strategy ends here at level 1)."""
    work = copy.deepcopy(model)
    graph = PruningGraph(work, spec.round_to)
    infos = []
    for g in graph.groups:
        if spec.kind == "neuron" and not g.pointwise:
            continue
        n, n0 = graph.channels(g), original.get(g.name, graph.channels(g))
        limit = max(0.0, 1 - n0 * (1 - spec.max_layer_ratio) / n) if n else 0.0
        infos.append(GroupInfo(g.name, n, torch.arange(n, dtype=torch.float32), 1.0, (), limit))
    apply_keep(graph, infos, allocate("uniform", 1.0, infos, spec.round_to))
    refresh_block_attributes(work)
    return work


def group_widths(model: nn.Module) -> dict[str, int]:
    graph = PruningGraph(model)
    return {g.name: graph.channels(g) for g in graph.groups}

