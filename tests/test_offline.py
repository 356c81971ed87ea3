"""Nothing reaches the network: CLI commands succeed with every non-loopback connection made to fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GUARD = textwrap.dedent('''
    import ipaddress, json, os, socket

    _log = os.environ["NET_GUARD_LOG"]
    _connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def _local(host):
        try:
            return ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            return host in ("localhost",)

    def _note(what):
        with open(_log, "a") as f:
            f.write(json.dumps(what) + "\\n")

    def connect(self, address, *a):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(str(address[0])):
            _note(["connect", str(address[0])])
            raise OSError(101, "Network is unreachable (blocked by test)")
        return _connect(self, address, *a)

    def connect_ex(self, address, *a):
        try:
            connect(self, address, *a)
            return 0
        except OSError as e:
            return e.errno or 101

    def getaddrinfo(host, *a, **k):
        if host is not None and not _local(str(host)):
            _note(["dns", str(host)])
            raise socket.gaierror(-3, "Temporary failure in name resolution (blocked by test)")
        return _getaddrinfo(host, *a, **k)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
''')


@pytest.fixture()
def offline_env(tmp_path: Path) -> dict[str, str]:
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    env = {k: v for k, v in os.environ.items() if k != "YOLO_OFFLINE"}  # the package must set it itself
    env.update(PYTHONPATH=os.pathsep.join([str(guard), env.get("PYTHONPATH", "")]),
               NET_GUARD_LOG=str(tmp_path / "net.log"), YOLO_OPTIM_CACHE=str(tmp_path / "cache"),
               YOLO_CONFIG_DIR=str(tmp_path / "ultralytics-config"))
    return env


def _run(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "yolo_optim", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_guard_really_blocks(offline_env, tmp_path):
    code = "import urllib.request; urllib.request.urlopen('http://example.com', timeout=5)"
    r = subprocess.run([sys.executable, "-c", code], env=offline_env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "blocked by test" in r.stderr


def test_cli_runs_without_network(offline_env, tmp_path):
    for args in (["version"], ["data", "out=ds", "train=6", "val=3", "size=64", "classes=2"],
                 ["baseline", f"data={tmp_path / 'ds' / 'data.yaml'}", "epochs=1", "imgsz=64", "batch=4"]):
        r = _run(args, offline_env, tmp_path)
        assert r.returncode == 0, f"{args} failed offline:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    assert "mAP50-95" in r.stdout
    # Ultralytics may still look up a host for an optional asset (a plotting font) and carry on without it; what
    # matters is that every command above succeeded with all such attempts refused.
    log = tmp_path / "net.log"
    attempts = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    assert all(kind == "dns" for kind, _ in attempts), f"a connection got as far as connect(): {attempts[:5]}"


def test_a_file_that_is_not_an_image_is_an_error_not_a_plugin_download(offline_env, tmp_path):
    """Ultralytics answers an unreadable image by trying to install a HEIF plugin; the dataset check names the file
    first, so nothing reaches for the network."""
    r = _run(["data", "out=ds", "train=2", "val=2", "size=64", "classes=2"], offline_env, tmp_path)
    assert r.returncode == 0, r.stderr
    (tmp_path / "ds" / "images" / "val" / "000001.jpg").write_text("<html>502 Bad Gateway</html>")
    (tmp_path / "net.log").unlink(missing_ok=True)  # only the failing command's attempts count here
    r = _run(["baseline", f"data={tmp_path / 'ds' / 'data.yaml'}", "epochs=1", "imgsz=64"], offline_env, tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "images/val/000001.jpg is not an image" in r.stderr
    # Ultralytics' dataset check looks up its font host and carries on (as in the test above); no package index.
    log = tmp_path / "net.log"
    attempts = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    assert not [a for a in attempts if a[0] != "dns" or "pypi" in a[1] or "pythonhosted" in a[1]], attempts
