"""`optimize address=...`: candidates run as Ray tasks on a two-node cluster started on 127.0.0.1 for the test."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_node(args: list[str], temp: Path) -> subprocess.Popen:
    """One `ray start --block` node in its own session, so stopping it stops exactly its processes."""
    # a loopback-only test cluster: no token authentication (Ray turns it on when ~/.ray/auth_token exists)
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    ray = Path(sys.executable).with_name("ray")
    return subprocess.Popen([str(ray), "start", "--block", "--num-cpus=1", "--node-ip-address=127.0.0.1",
                             "--disable-usage-stats", *args], env=env, start_new_session=True,
                            stdout=open(temp / f"node-{len(list(temp.iterdir()))}.log", "w"), stderr=subprocess.STDOUT)


def _wait(ready, address: str, node: subprocess.Popen, logs: Path, what: str, seconds: float = 180) -> None:
    """Poll `ray status` until `ready(its output)`; fail with the node's log if it exits or time runs out."""
    ray = str(Path(sys.executable).with_name("ray"))
    deadline = time.time() + seconds
    while time.time() < deadline:
        if node.poll() is not None:
            log = "\n".join(p.read_text()[-1500:] for p in sorted(logs.iterdir()))
            pytest.fail(f"{what} exited: {log}")
        status = subprocess.run([ray, "status", f"--address={address}"], capture_output=True, text=True, check=False)
        if status.returncode == 0 and ready(status.stdout):
            return
        time.sleep(3)
    pytest.fail(f"{what} did not come up in {seconds:.0f} s")


@pytest.fixture
def two_node_cluster(tmp_path_factory):
    logs = tmp_path_factory.mktemp("ray-logs")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths live under it
    head = _ray_node(["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}"], logs)
    nodes = [head]
    try:
        address = f"127.0.0.1:{port}"
        _wait(lambda out: "Active" in out, address, head, logs, "the Ray head")
        nodes.append(_ray_node([f"--address={address}"], logs))
        _wait(lambda out: "/2.0 CPU" in out, address, nodes[-1], logs, "the second Ray node")
        yield address
    finally:
        for node in reversed(nodes):  # SIGTERM to each node's own session: `ray start --block` stops its processes
            try:
                os.killpg(node.pid, signal.SIGTERM)
                node.wait(timeout=60)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(node.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(temp, ignore_errors=True)


def test_candidates_run_as_ray_tasks_on_both_nodes(two_node_cluster, tmp_path, tiny_model, demo_data):
    import yolo_optim

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"target": "openvino-cpu", "precisions": "fp32,int8w",
                                      "prune_targets": "flops:0.3,flops:0.5", "finetune_epochs": 1,
                                      "distill": False, "prune_allocation": "sensitivity",
                                      "sensitivity_ratios": "0.5", "sensitivity_images": 8, "warmup": 1, "runs": 5,
                                      "seconds": 0.2}))
    r = yolo_optim.optimize(tiny_model, demo_data, target="openvino-cpu", imgsz=64, batch=8, recipe=str(recipe),
                            address=two_node_cluster, project=str(tmp_path / "runs"), name="ray")
    assert r.status == "ok" and r.path.is_dir()
    stages = json.loads((r.save_dir / "optimize.json").read_text())["stages"]
    assert all(s["status"] == "ok" for s in stages), stages
    assert [s["stage"] for s in stages].count("prune") == 2
    probes = [s for s in stages if s["stage"] == "sensitivity"]  # one shard of the probes per CPU of the cluster
    assert len(probes) == 2 and len({s["node"] for s in probes}) == 2, probes
    assert [s["stage"] for s in stages].count("pruned") >= 2  # each pruned model at every precision kept
    nodes = {s["node"] for s in stages}
    assert len(nodes) == 2 and all(n.startswith("ray:") for n in nodes), nodes  # both nodes took candidates
    assert {row.model for row in r.report.rows} == {"source", "pruned-flops0.3", "pruned-flops0.5"}
