"""Temporary folders beside an output, named so that a later run can remove what a killed one left.

Outputs are written into a temporary sibling and renamed into place when complete, so readers never see half a
file. A `kill -9` skips every cleanup, though, and would leave the sibling (an export's is tens of MB) for good.
The name therefore records the host and process that own it; any later run on the same host removes the
siblings whose process is gone before it writes its own.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

_NAME = re.compile(r"^\..+\.tmp-(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)-[^/]+$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"


def scratch_dir(parent: Path, stem: str) -> Path:
    """Create `parent/.<stem>.tmp-<host>-<pid>-<random>` (after removing stale ones in `parent`)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale(parent)
    return Path(tempfile.mkdtemp(prefix=f".{stem}.tmp-{_host()}-{os.getpid()}-", dir=parent))


def remove_stale(parent: Path) -> list[Path]:
    """Remove the scratch folders in `parent` left by processes of this host that no longer run; returns them."""
    removed = []
    host = _host()
    for p in Path(parent).glob(".*.tmp-*"):
        m = _NAME.match(p.name)
        if not m or m["host"] != host or _alive(int(m["pid"])):
            continue
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
