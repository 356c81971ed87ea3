"""Where things live: the packaged cfg/ folder, the cache, run folders, and atomic writes."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from .errors import OptimError


def cfg_dir() -> Path:
    """The cfg/ folder: the repository's in a checkout, the packaged copy in an installed wheel."""
    return Path(str(resources.files("yolo_optim.cfg")))


def cache_dir() -> Path:
    """Cache for the demo dataset and baseline; YOLO_OPTIM_CACHE overrides ~/.cache/yolo_optim."""
    root = os.environ.get("YOLO_OPTIM_CACHE") or Path.home() / ".cache" / "yolo_optim"
    return Path(root).expanduser()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if needed): serialises processes building the same cache entry."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_dir(mode: str, project: str | None, name: str | None, exist_ok: bool) -> Path:
    """Resolve project/name as Ultralytics does: runs/optim/<mode>/<name>, numbered when it exists.

    Nothing is created here; callers create the folder only once inputs are validated.
    """
    project_path = Path(project) if project else Path("runs") / "optim" / mode
    for parent in (project_path, *project_path.parents):
        if parent.exists() and not parent.is_dir():
            raise OptimError(f"project={project_path} is not a folder ({parent} is a file); choose another project=")
    base = project_path / (name or "exp")
    if exist_ok or not base.exists():
        return base
    n = 2
    while (project_path / f"{base.name}{n}").exists():
        n += 1
    return project_path / f"{base.name}{n}"


@contextlib.contextmanager
def atomic_dir(final: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it is renamed to `final`, on error removed.

    Readers therefore never see a half-written artifact, even after a kill.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise OptimError(f"{final} already exists; pass exist_ok=True to replace it or choose another name=")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file through a temporary neighbour and os.replace, so it is whole or absent."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
