"""The Pareto front of accuracy versus latency: the variants no other variant beats on both."""

from __future__ import annotations

from typing import Sequence


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the Pareto-optimal points among (latency, accuracy) pairs, lower latency and higher accuracy
    being better, in order of increasing latency.

    A point is optimal when no other point is at least as fast and at least as accurate and strictly better in
    one of the two. Exact duplicates are all kept (neither dominates the other).
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best_acc = float("-inf")
    best_lat = None  # latency of the point that set best_acc
    for i in order:
        lat, acc = points[i]
        if acc > best_acc:
            front.append(i)
            best_acc, best_lat = acc, lat
        elif acc == best_acc and lat == best_lat:
            front.append(i)  # an exact duplicate of an optimal point
    return front
