"""Choosing among measured candidates: which precisions are worth keeping, and which variant to deploy."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.results import MAP_DECIMALS, BenchRow


@dataclass(frozen=True)
class Choice:
    """The outcome of a search."""

    status: str  # ok, or budget_unmet when no variant runs within the budget
    row: BenchRow | None  # the chosen variant (None when the budget is unmet)
    closest: BenchRow | None  # budget unmet: the fastest variant measured
    reference: BenchRow  # the source's row the change in mAP and the speed-up are computed against
    message: str  # one sentence saying what was chosen, or why nothing was


def _acc(r: BenchRow) -> float:
    return round(r.map50_95 or 0.0, MAP_DECIMALS)


def usable(rows: list[BenchRow], metric: str) -> list[BenchRow]:
    """Rows with both a latency and an mAP."""
    return [r for r in rows if r.ok and r.map50_95 is not None and r.latency(metric) is not None]


def kept_precisions(rows: list[BenchRow], metric: str, min_gain: float) -> tuple[list[BenchRow], list[str]]:
    """The rows of one model and input size worth deploying, most accurate first, and a note per dropped one.

    Walking from the most accurate row, a row is kept only when it runs at least `min_gain` faster than every row
    kept before it; otherwise it buys nothing, and the more accurate one is kept instead (e.g. INT8 no faster than
    bf16 on a CPU whose bf16 already runs on matrix units).
    """
    kept: list[BenchRow] = []
    notes: list[str] = []
    for r in sorted(usable(rows, metric), key=lambda r: (-_acc(r), r.latency(metric))):
        faster_than = min((k.latency(metric) for k in kept), default=None)
        if faster_than is None or r.latency(metric) < faster_than * (1 - min_gain):
            kept.append(r)
            continue
        best = min(kept, key=lambda k: k.latency(metric))
        # "no faster" would be wrong for a row that is faster by less than min_gain: say which rule dropped it
        than = "no faster than" if min_gain <= 0 else f"not at least {min_gain:.0%} faster than"
        notes.append(f"{r.precision} at {r.imgsz} px ({r.latency(metric):.2f} ms, mAP50-95 {_acc(r):.4f}) is {than} "
                     f"{best.precision} ({best.latency(metric):.2f} ms, mAP50-95 {_acc(best):.4f}), "
                     f"which is at least as accurate, on this device: {best.precision} is kept and {r.precision} "
                     "is not tried on pruned models")
    return kept, notes


def choose(rows: list[BenchRow], reference: BenchRow, metric: str, budget_ms: float | None,
           max_drop: float) -> Choice:
    """Without a budget: the fastest variant within `max_drop` of the reference's mAP50-95. With one: the most
    accurate variant whose measured latency is within it (ties go to the faster)."""
    rows = usable(rows, metric)
    if budget_ms is None:
        floor = round(_acc(reference) - max_drop, MAP_DECIMALS)
        eligible = [r for r in rows if _acc(r) >= floor] or [reference]
        best = min(eligible, key=lambda r: (r.latency(metric), -_acc(r)))
        return Choice("ok", best, None, reference,
                      f"fastest variant within max_drop={max_drop} of the source's mAP50-95 ({_acc(reference):.4f})")
    within = [r for r in rows if r.latency(metric) <= budget_ms]
    if within:
        best = min(within, key=lambda r: (-_acc(r), r.latency(metric)))
        return Choice("ok", best, None, reference, f"most accurate variant measured within {budget_ms:g} ms")
    closest = min(rows, key=lambda r: (r.latency(metric), -_acc(r)), default=None)
    if closest is None:
        return Choice("budget_unmet", None, None, reference,
                      f"no variant could be measured, so none is known to run within {budget_ms:g} ms")
    return Choice("budget_unmet", None, closest, reference,
                  f"no variant runs within {budget_ms:g} ms: the fastest, {closest.model} at {closest.precision} "
                  f"({closest.imgsz} px), takes {closest.latency(metric):.2f} ms with mAP50-95 {_acc(closest):.4f}; "
                  f"it would take a budget of at least {closest.latency(metric):.2f} ms, or smaller input sizes "
                  f"(imgsz_choices=) or deeper pruning (a recipe with larger prune_targets or "
                  f"prune_max_layer_ratio)")


def speedup(row: BenchRow, reference: BenchRow, metric: str) -> float:
    return reference.latency(metric) / row.latency(metric)


def map_change(row: BenchRow, reference: BenchRow) -> float:
    return round((row.map50_95 or 0.0) - (reference.map50_95 or 0.0), MAP_DECIMALS)
