"""A Ray cluster of several nodes on this machine (127.0.0.1), for trying `address=` before there is a real one and
for measuring what the split costs and gains: `with local_cluster(nodes=2, cpus=1) as address: ...`.

Each node is a `ray start --block` process in its own session, so stopping it stops exactly its processes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import OptimError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray() -> str:
    ray = Path(sys.executable).with_name("ray")
    if not ray.is_file():
        raise OptimError("the `ray` command is not installed beside this Python; pip install 'ray[tune]'")
    return str(ray)


def _start(args: list[str], cpus: int, log: Path) -> subprocess.Popen:
    # a loopback-only cluster: no token authentication (Ray turns it on when ~/.ray/auth_token exists)
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    with open(log, "w") as out:
        return subprocess.Popen([_ray(), "start", "--block", f"--num-cpus={cpus}", "--node-ip-address=127.0.0.1",
                                 "--disable-usage-stats", *args], env=env, start_new_session=True, stdout=out,
                                stderr=subprocess.STDOUT)


def _wait(ready_cpus: int, address: str, node: subprocess.Popen, log: Path, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if node.poll() is not None:
            raise OptimError(f"a local Ray node exited: {log.read_text()[-800:]}")
        status = subprocess.run([_ray(), "status", f"--address={address}"], capture_output=True, text=True,
                                check=False)
        if status.returncode == 0 and f"/{float(ready_cpus)} CPU" in status.stdout:
            return
        time.sleep(2)
    raise OptimError(f"the local Ray cluster did not reach {ready_cpus} CPUs in {seconds:.0f} s (log: {log})")


def _stop(node: subprocess.Popen) -> None:
    try:  # SIGTERM to the node's own session: `ray start --block` stops its processes
        os.killpg(node.pid, signal.SIGTERM)
        node.wait(timeout=60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(node.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@contextmanager
def local_cluster(nodes: int = 2, cpus: int = 1, logs: Path | None = None,
                  timeout: float = 180) -> Iterator[str]:
    """Start a head and `nodes - 1` workers on 127.0.0.1, `cpus` CPUs each; yields the address for `address=`."""
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths live under it
    logs = Path(logs) if logs else temp
    logs.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    address = f"127.0.0.1:{port}"
    started: list[subprocess.Popen] = []
    try:
        started.append(_start(["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}"], cpus,
                              logs / "node-0.log"))
        _wait(cpus, address, started[0], logs / "node-0.log", timeout)
        for i in range(1, nodes):
            started.append(_start([f"--address={address}"], cpus, logs / f"node-{i}.log"))
            _wait(cpus * (i + 1), address, started[-1], logs / f"node-{i}.log", timeout)
        yield address
    finally:
        for node in reversed(started):
            _stop(node)
        shutil.rmtree(temp, ignore_errors=True)
