"""The timing harness: what it times, when it stops, and the statistics it reports; the environment record."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from yolo_optim.bench.environment import capture_environment, hardware_name
from yolo_optim.core.results import LatencyStats
from yolo_optim.core.timing import TimingPlan, time_callable, time_interleaved, time_throughput, torch_threads
from yolo_optim.errors import OptimError


class Counter:
    def __init__(self, sleep: float = 0.0) -> None:
        self.calls, self.sleep = 0, sleep

    def __call__(self) -> None:
        self.calls += 1
        if self.sleep:
            time.sleep(self.sleep)


def test_stats_match_numpy():
    samples = [5.0, 1.0, 3.0, 2.0, 4.0, 100.0]
    s = LatencyStats.from_samples(samples)
    assert s.runs == 6 and s.median_ms == 3.5 and s.min_ms == 1.0 and s.max_ms == 100.0
    assert s.p90_ms == pytest.approx(np.percentile(samples, 90))
    assert s.p99_ms == pytest.approx(np.percentile(samples, 99))
    assert s.mean_ms == pytest.approx(np.mean(samples)) and s.std_ms == pytest.approx(np.std(samples, ddof=1))
    assert LatencyStats.from_samples([2.0]).std_ms == 0.0
    with pytest.raises(ValueError):
        LatencyStats.from_samples([])


def test_warmup_is_not_timed_and_runs_cap_the_loop():
    fn, syncs = Counter(), []
    s = time_callable(fn, TimingPlan(warmup=7, runs=25, seconds=60), sync=lambda: syncs.append(1))
    assert fn.calls == 7 + 25 and s.runs == 25
    assert len(syncs) == 25 + 1  # once after warm-up, then after every timed call


def test_seconds_cap_the_loop_but_min_runs_hold():
    fn = Counter(sleep=0.01)
    s = time_callable(fn, TimingPlan(warmup=0, runs=10_000, seconds=0.1, min_runs=3))
    assert 3 <= s.runs < 30  # ~10 calls fit in 0.1 s; far fewer than `runs`
    slow = Counter(sleep=0.03)
    s = time_callable(slow, TimingPlan(warmup=0, runs=100, seconds=0.001, min_runs=4))
    assert s.runs == 4  # the time limit passed at once, yet the floor of timed calls holds
    assert s.median_ms == pytest.approx(30, rel=0.5)  # it really measures the call


def test_interleaved_alternates_and_times_each_alone():
    order: list[str] = []
    fast = lambda: order.append("a")  # noqa: E731
    slow = lambda: (order.append("b"), time.sleep(0.004))  # noqa: E731
    stats = time_interleaved({"a": fast, "b": slow}, TimingPlan(warmup=1, runs=6, seconds=60))
    assert order == ["a", "b"] * 7  # one warm-up round, then six alternating rounds
    assert stats["a"].runs == stats["b"].runs == 6
    assert stats["a"].median_ms < 1 < stats["b"].median_ms  # each call timed on its own


def test_throughput_and_bad_plans():
    t = time_throughput(Counter(sleep=0.005), batch=4, plan=TimingPlan(warmup=0, runs=5, seconds=10))
    assert t.batch == 4 and t.images_per_s == pytest.approx(4000 / t.batch_latency.median_ms)
    with pytest.raises(OptimError, match="bad timing plan"):
        TimingPlan(runs=0)


def test_torch_threads_restored():
    import torch

    before = torch.get_num_threads()
    with torch_threads(1) as n:
        assert n == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before


def test_environment_is_recorded():
    env = capture_environment()
    json.dumps(env)  # plain JSON values only
    assert env["cpu"]["model"] and env["cpu"]["logical_cores"] >= 1
    assert env["versions"]["torch"] and env["versions"]["ultralytics"] and env["versions"]["python"]
    assert hardware_name("cpu", "openvino", env) == env["cpu"]["model"]
    if not env["gpus"]:
        assert hardware_name("gpu", "tensorrt", env) is None
