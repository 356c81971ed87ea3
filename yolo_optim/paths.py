"""Where things live: the packaged cfg/ folder, the cache, run folders, locks, and atomic writes.

One meaning of `exist_ok` for every mode (see EXIST_OK): a run folder that exists is reused, the files the mode writes
are overwritten, and nothing else in it is touched; yolo-optim never deletes a file it did not write.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from .errors import OptimError

LOG = logging.getLogger(__name__)

EXIST_OK = ("exist_ok=True reuses project/name if it exists: the files this mode writes are overwritten, every "
            "other file in the folder is kept; nothing is deleted")


def cfg_dir() -> Path:
    """The cfg/ folder: the repository's in a checkout, the packaged copy in an installed wheel."""
    return Path(str(resources.files("yolo_optim.cfg")))


def cache_dir() -> Path:
    """Cache for the demo dataset and baseline; YOLO_OPTIM_CACHE overrides ~/.cache/yolo_optim."""
    root = os.environ.get("YOLO_OPTIM_CACHE") or Path.home() / ".cache" / "yolo_optim"
    return Path(root).expanduser()


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask alone must set it to read it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def as_new_file(path: str | Path) -> None:
    """Give a mkstemp/mkdtemp result the permissions open()/mkdir() would (0666/0777 less the umask), not 0600/0700.

    Call it before renaming a temporary file into place: results on a shared project folder must stay readable.
    """
    path = Path(path)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~current_umask())


def _lock_holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another process"
    if not info:
        return "another process"
    since = time.strftime("%H:%M:%S", time.localtime(info.get("since", 0)))
    return f"pid {info.get('pid')} on {info.get('host')} ({info.get('command', '?')}, since {since})"


@contextlib.contextmanager
def file_lock(path: Path, what: str | None = None, notice_after: float = 2.0) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if needed): serialises processes building the same cache entry.

    A process that has to wait says, after `notice_after` seconds, what it waits for and who holds it (the holder
    writes its pid, host and command into the lock file), instead of hanging silently.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as f:  # "a+": opening must not wipe the holder's note
        deadline = time.monotonic() + notice_after
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    LOG.warning("waiting for %s: %s holds the lock %s (it is building it; this continues when it "
                                "finishes)", what or path.stem, _lock_holder(path), path)
                    fcntl.flock(f, fcntl.LOCK_EX)
                    break
                time.sleep(0.1)
        note = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
                "command": " ".join(["yolo-optim", *sys.argv[1:]])[:200]}
        f.seek(0)
        f.truncate()
        f.write(json.dumps(note))
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)


def check_writable(path: str | Path, key: str = "project") -> None:
    """Fail with one line unless `path` can be created (or written to) by this process, before anything is written.

    The nearest existing folder is probed by creating and removing an empty folder: permission bits alone say
    nothing for root, read-only mounts or NFS with root squashing.
    """
    p = Path(path).absolute()
    for parent in (p, *p.parents):
        if not parent.exists():
            continue
        if not parent.is_dir():
            raise OptimError(f"{key}={path} cannot be created: {parent} is a file; choose another {key}=")
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".yolo-optim-probe-", dir=parent))
        except OSError as e:
            raise OptimError(f"{key}={path} is not writable ({parent}: {e.strerror or type(e).__name__}); choose a "
                             f"folder you can write with {key}=") from None
        return


def run_dir(mode: str, project: str | None, name: str | None, exist_ok: bool) -> Path:
    """Resolve project/name as Ultralytics does: runs/optim/<mode>/<name>, numbered when it exists (see EXIST_OK).

    Nothing is created here; callers create the folder (`run_folder`) only once inputs are validated.
    """
    project_path = Path(project) if project else Path("runs") / "optim" / mode
    if name and (Path(name).is_absolute() or ".." in Path(name).parts):
        raise OptimError(f"name={name} leaves the project folder; give a plain run name, and choose the folder "
                         "with project=")
    for parent in (project_path, *project_path.parents):
        if parent.exists() and not parent.is_dir():
            raise OptimError(f"project={project_path} is not a folder ({parent} is a file); choose another project=")
    check_writable(project_path)
    base = project_path / (name or "exp")
    if base.exists() and not base.is_dir():
        raise OptimError(f"{base} exists and is not a folder; choose another name=")
    if exist_ok or not base.exists():
        return base
    n = 2
    while (project_path / f"{base.name}{n}").exists():
        n += 1
    return project_path / f"{base.name}{n}"


@contextlib.contextmanager
def run_folder(path: Path, discard_on: tuple[type[BaseException], ...] = ()) -> Iterator[Path]:
    """Create a run folder for the block; if the block fails before writing anything into it, remove it again.

    An interrupted or failed run therefore leaves no empty folders behind (nor the empty parents it created). A
    folder with progress in it is kept for a resume, except when the block ends with one of `discard_on` (a refusal
    such as OptimError: nothing to resume) and this call created the folder: then all of it goes, since everything
    in it is the block's.
    """
    path = Path(path)
    created = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException as e:
        if created and isinstance(e, discard_on):
            shutil.rmtree(path, ignore_errors=True)
        for p in created:
            try:
                if p.exists():
                    p.rmdir()  # only an empty folder goes
            except OSError:
                break
        raise


def _merge_into(src: Path, dst: Path) -> None:
    """Move every entry of `src` into the existing folder `dst`; same-named files are replaced, nothing else."""
    for item in src.iterdir():
        dest = dst / item.name
        if item.is_dir() and not item.is_symlink() and dest.is_dir() and not dest.is_symlink():
            _merge_into(item, dest)
            item.rmdir()
        elif dest.is_dir() and not dest.is_symlink():
            raise OptimError(f"{dest} is a folder where this run writes a file; move it away or choose another name=")
        else:
            os.replace(item, dest)  # atomic for a file; a folder only lands where nothing of that name was


@contextlib.contextmanager
def atomic_dir(final: Path, overwrite: bool = False, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it becomes `final`, on error it is removed.

    Readers therefore never see a half-written artifact, even after a kill. When `final` exists: an error, unless
    `overwrite` (exist_ok), which moves the new entries into it and replaces only same-named files (EXIST_OK), or
    `replace`, which swaps the whole folder and is only for a folder the caller has checked that the project wrote.
    """
    final = Path(final)
    if final.exists() and not (overwrite or replace):
        raise OptimError(f"{final} already exists; pass exist_ok=True to write into it or choose another name=")
    if final.exists() and not final.is_dir():
        raise OptimError(f"{final} exists and is not a folder; choose another path")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        as_new_file(tmp)  # mkdtemp makes it private
        if not final.exists():
            tmp.rename(final)
        elif replace:
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            _merge_into(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file through a temporary neighbour and os.replace, so it is whole or absent.

    The file gets the permissions a plain open() would give (0666 less the umask), not mkstemp's private 0600:
    on a shared project folder other users must be able to read the results.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        as_new_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
