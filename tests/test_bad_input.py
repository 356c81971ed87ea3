"""Bad input, tried as a new user would: every case is one line on stderr naming what is wrong and what to do, exit
code 2, no traceback, and nothing written (not in the working folder, the dataset, the project or the cache)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CUDA = shutil.which("nvidia-smi") is not None


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and mtime: a rewrite in place shows as well as a new file."""
    out = {}
    for p in root.rglob("*"):
        st = p.lstat()
        out[p.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns if p.is_file() else 0)
    return out


def _dataset(root: Path, demo_data: Path, n: int = 2) -> Path:
    """A small copy of the demo dataset (n images per split) that a case may break; returns its data.yaml."""
    src = demo_data.parent
    for split in ("train", "val"):
        for sub, suffix in (("images", ".jpg"), ("labels", ".txt")):
            (root / sub / split).mkdir(parents=True)
            for i in range(n):
                shutil.copy(src / sub / split / f"{i:06d}{suffix}", root / sub / split / f"{i:06d}{suffix}")
    names = yaml.safe_load(demo_data.read_text())["names"]
    (root / "data.yaml").write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val",
                                                    "names": names}))
    return root / "data.yaml"


def _label(ds: Path, text: str | bytes, split: str = "train", i: int = 1) -> None:
    p = ds.parent / "labels" / split / f"{i:06d}.txt"
    p.write_bytes(text) if isinstance(text, bytes) else p.write_text(text)


def _label_is_folder(t: Path, ds: Path) -> None:
    p = ds.parent / "labels/train/000001.txt"
    p.unlink()
    p.mkdir()


def _list_with_missing_image(t: Path, ds: Path) -> None:
    (ds.parent / "val.txt").write_text("./images/val/nope.jpg\n")
    _edit_yaml(ds, val="val.txt")


def _folder(p: Path) -> Path:
    p.mkdir()
    return p


def _image(ds: Path, data: bytes, name: str = "000001.jpg", split: str = "val") -> None:
    (ds.parent / "images" / split / name).write_bytes(data)


def _yaml(t: Path, name: str, obj) -> str:
    p = t / name
    p.write_text(obj if isinstance(obj, str) else yaml.safe_dump(obj))
    return str(p)


def _edit_yaml(ds: Path, **changes) -> None:
    obj = yaml.safe_load(ds.read_text())
    for k, v in changes.items():
        if v is None:
            obj.pop(k, None)
        else:
            obj[k] = v
    ds.write_text(yaml.safe_dump(obj))


# Each case: (setup(tmp, ds) -> argv after `yolo-optim`, regex the one line must match). `ds` is a fresh small
# dataset copy; `tmp` the case's folder. The data cases run in several modes: each calls check_dataset at its edge.
def _then(change, mode: str, *args: str):
    """A case that breaks the dataset copy with `change(tmp, ds)`, then runs `mode data=<ds> *args`."""
    def setup(t: Path, ds: Path) -> list[str]:
        change(t, ds)
        return [mode, f"data={ds}", *args]
    return setup


def _bad_label(text: str):
    return _then(lambda t, ds: _label(ds, text), "baseline", "epochs=1", "imgsz=64")


CASES = {
    # labels: the file and the line are named
    "label with 3 numbers": (_bad_label("0 0.5 0.5\n"), r"labels/train/000001\.txt line 1: has 3 values"),
    "class id >= nc": (_bad_label("0 0.5 0.5 0.1 0.1\n7 0.5 0.5 0.1 0.1\n"),
                       r"000001\.txt line 2: class 7 is out of range: data\.yaml names 3 classes"),
    "negative class": (_bad_label("-1 0.5 0.5 0.1 0.1\n"), r"line 1: class -1 is not a class index"),
    "fractional class": (_bad_label("1.5 0.5 0.5 0.1 0.1\n"), r"line 1: class 1\.5 is not a class index"),
    "coordinates outside 0..1": (_bad_label("0 0.5 1.7 0.1 0.1\n"), r"line 1: coordinate 1\.7 is outside 0-1"),
    "pixel coordinates": (_bad_label("0 120 80 30 20\n"), r"coordinate 120 is outside 0-1"),
    "non-numeric value": (_bad_label("car 0.5 0.5 0.1 0.1\n"), r"line 1: 'car' is not a number"),
    "nan coordinate": (_bad_label("0 nan 0.5 0.1 0.1\n"), r"coordinate nan is outside 0-1"),
    "boxes mixed with polygons": (_bad_label("0 0.5 0.5 0.1 0.1\n0 0.1 0.1 0.2 0.1 0.2 0.2\n"), r"mixes box rows"),
    "label file is a folder": (_then(_label_is_folder, "baseline"),
                               r"label file .*000001\.txt cannot be read \(IsADirectoryError\)"),
    "label not UTF-8": (_then(lambda t, ds: _label(ds, b"\xff\xfe\x00\x81 0.5"), "baseline"),
                        r"000001\.txt cannot be read"),
    "bad label, benchmark": (_then(lambda t, ds: _label(ds, "9 0.5 0.5 0.1 0.1\n", split="val"), "benchmark",
                                   "model=yolo11n.yaml", "imgsz=64"),
                             r"labels/val/000001\.txt line 1: class 9 is out of range"),
    "bad label, export int8": (_then(lambda t, ds: _label(ds, "0 0.5\n"), "export", "model=yolo11n.yaml",
                                     "target=onnxruntime-cpu", "precision=int8", "imgsz=64"),
                               r"000001\.txt line 1: has 2 values"),
    "bad label, prune": (_then(lambda t, ds: _label(ds, "0 0.5 0.5 0.1 -0.2\n"), "prune", "model=yolo11n.yaml",
                               "imgsz=64"), r"coordinate -0\.2 is outside 0-1"),
    # images
    "text file named .jpg": (_then(lambda t, ds: _image(ds, b"<html>404 Not Found</html>"), "baseline"),
                             r"images/val/000001\.jpg is not an image"),
    "empty image file": (_then(lambda t, ds: _image(ds, b""), "baseline"), r"000001\.jpg is empty"),
    "HEIC without pi-heif": (_then(lambda t, ds: _image(ds, b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
                                                        name="000009.heic"), "baseline"),
                             r"000009\.heic is a HEIC/HEIF image, which needs the pi-heif package"),
    "image list names a missing file": (_then(_list_with_missing_image, "baseline"),
                                        r"image .*nope\.jpg does not exist"),
    # splits and YAML
    "empty val split": (_then(lambda t, ds: [p.unlink() for p in (ds.parent / "images/val").iterdir()], "baseline"),
                        r"the val split .* holds no images"),
    "no label files at all": (_then(lambda t, ds: shutil.rmtree(ds.parent / "labels"), "baseline"),
                              r"none of the 2 train images has a label file"),
    "data.yaml without val": (_then(lambda t, ds: _edit_yaml(ds, val=None), "baseline"), r"has no 'val:' entry"),
    "data.yaml without names": (_then(lambda t, ds: _edit_yaml(ds, names=None), "baseline"),
                                r"has neither 'names' nor 'nc'"),
    "data.yaml is a list": (lambda t, ds: ["baseline", "data=" + _yaml(t, "l.yaml", "- a\n- b\n")],
                            r"must hold a mapping"),
    "data is a folder": (lambda t, ds: ["baseline", f"data={ds.parent}"], r"is not a dataset YAML"),
    "data folder named .yaml": (lambda t, ds: ["baseline", f"data={_folder(t / 'd.yaml')}"],
                                r"does not exist or is not a file"),
    "data= without model=": (lambda t, ds: ["benchmark", f"data={ds}"], r"data= is set but model= is empty"),
    # models
    "corrupt .pt": (lambda t, ds: ["export", f"model={_yaml(t, 'bad.pt', 'not a pickle at all')}"],
                    r"is not a YOLO checkpoint Ultralytics can load \(\w+Error: [^()]*\); give a \.pt"),
    "empty .pt": (lambda t, ds: ["export", f"model={_yaml(t, 'e.pt', '')}"], r"e\.pt is not a YOLO checkpoint"),
    "model is a folder": (lambda t, ds: ["export", f"model={t}"], r"is a folder; give a YOLO \.pt"),
    "model is a text file": (lambda t, ds: ["export", f"model={_yaml(t, 'notes.txt', 'x')}"],
                             r"notes\.txt is not a \.pt checkpoint or a model YAML"),
    "fp32 export with a bad data=": (lambda t, ds: ["export", "model=yolo11n.yaml", f"data={_yaml(t, 'd.txt', 'x')}"],
                                     r"d\.txt is not a dataset YAML"),
    "names count differs from nc": (_then(lambda t, ds: _edit_yaml(ds, nc=5), "baseline"),
                                    r"is not usable: .*'names' length 3 and 'nc: 5' must match"),
    "pose row of the wrong length": (_then(lambda t, ds: [_edit_yaml(ds, kpt_shape=[2, 3]),
                                                          _label(ds, "0 0.5 0.5 0.1 0.1 0.4 0.4 2\n")], "baseline"),
                                     r"line 1: has 8 values; .* a pose row 11"),
    "missing model": (lambda t, ds: ["benchmark", "model=best.pt"], r"model=best\.pt does not exist"),
    "unknown model YAML": (lambda t, ds: ["export", "model=yolo99z.yaml"], r"yolo99z\.yaml is neither a file"),
    "prune speed-up goal not above 1x": (lambda t, ds: ["prune", "target=latency:openvino-cpu:0.5x"],
                                         r"a speed-up goal must be above 1x"),
    "RT-DETR model YAML": (lambda t, ds: ["export", "model=rtdetr-l.yaml"], r"rtdetr-l\.yaml is an RT-DETR model"),
    "int8 without data": (lambda t, ds: ["export", "model=yolo11n.yaml", "precision=int8", "target=onnxruntime-cpu"],
                          r"precision=int8 needs data="),
    # values
    "device=xyz, prune": (lambda t, ds: ["prune", "model=yolo11n.yaml", f"data={ds}", "device=xyz"],
                          r"device=xyz is not a torch device; use device=cpu"),
    "device=xyz, export": (lambda t, ds: ["export", "device=xyz"], r"device=xyz is not a torch device"),
    "device=xyz, tune": (lambda t, ds: ["tune", "device=xyz"], r"device=xyz is not a torch device"),
    "imgsz too large": (lambda t, ds: ["benchmark", "imgsz=100000"], r"imgsz=100000 is too large; it must be <= 4096"),
    "imgsz negative": (lambda t, ds: ["export", "imgsz=-64"], r"imgsz=-64 is too small"),
    "imgsz not a stride multiple": (lambda t, ds: ["export", "imgsz=100"], r"imgsz=100 is not a multiple of 32"),
    "data size too large": (lambda t, ds: ["data", "size=100000"], r"size=100000 is too large"),
    "batch zero": (lambda t, ds: ["baseline", "batch=0"], r"batch=0 is too small"),
    "workers negative": (lambda t, ds: ["benchmark", "workers=-1"], r"workers=-1 is too small"),
    "epochs not a number": (lambda t, ds: ["baseline", "epochs=ten"], r"epochs='ten' has the wrong type"),
    "seed fractional": (lambda t, ds: ["data", "seed=1.5"], r"seed=1\.5 has the wrong type; expected int"),
    "ratio 1.5": (lambda t, ds: ["prune", "ratio=1.5"], r"ratio=1\.5 is too large"),
    "trials zero": (lambda t, ds: ["tune", "trials=0"], r"trials=0 is too small"),
    "empty key": (lambda t, ds: ["data", "=3"], r"'=3' has no key before '='"),
    "empty name": (lambda t, ds: ["export", "name="], r"name must be set"),
    "name escaping the project": (lambda t, ds: ["export", "model=yolo11n.yaml", "name=../../x"],
                                  r"name=\.\./\.\./x leaves the project folder"),
    "cfg file missing": (lambda t, ds: ["data", "cfg=nope.yaml"], r"cfg=nope\.yaml does not exist"),
    "cfg file with unknown key": (lambda t, ds: ["data", f"cfg={_yaml(t, 'c.yaml', {'trian': 3})}"],
                                  r"'trian' is not a valid key for mode 'data'; did you mean 'train'"),
    "sensitivity_table missing": (lambda t, ds: ["prune", "model=yolo11n.yaml", f"data={ds}",
                                                 "sensitivity_table=old.csv"], r"sensitivity_table=old\.csv does not"),
    # output folders
    "project is a file": (lambda t, ds: ["export", f"project={_yaml(t, 'p.txt', 'x')}"], r"is a file"),
    "project not writable": (lambda t, ds: ["benchmark", f"project={_unwritable(t)}"], r"is not writable"),
    "data out= holds user files": (lambda t, ds: ["data", f"out={ds.parent}", "exist_ok=True", "train=2", "val=1"],
                                   r"holds files that are not a yolo-optim demo dataset .*; choose a new or empty"),
    "data out= is the working folder": (lambda t, ds: ["data", f"out={ds.parent}", "train=2", "val=1"],
                                        r"holds files that are not a yolo-optim demo dataset"),
    "data out= exists": (lambda t, ds: ["data", f"out={_demo(t / 'demo')}", "train=2", "val=1"],
                         r"already exists; pass exist_ok=True"),
    "demo dataset with a user file": (lambda t, ds: ["data", f"out={_demo(t / 'demo', extra='notes.txt')}",
                                                     "exist_ok=True", "train=2", "val=1"], r"also holds notes\.txt"),
    "report of a missing run": (lambda t, ds: ["report", "runs=nowhere/exp"], r"nowhere"),
    # a model whose task the dataset's labels cannot train or validate
    "segment model on box labels": (lambda t, ds: ["prune", "model=yolo11n-seg.yaml", f"data={ds}", "epochs=0"],
                                    r"000000\.txt has rows that are not polygon rows .*which a segment model needs"),
    "obb model on box labels": (lambda t, ds: ["tune", "model=yolo11n-obb.yaml", f"data={ds}"],
                                r"rows that are not oriented boxes .*which an obb model needs"),
    "pose model without kpt_shape": (lambda t, ds: ["benchmark", "model=yolo11n-pose.yaml", f"data={ds}"],
                                     r"has no kpt_shape:, so it is not a pose dataset"),
    "segment model on the demo dataset": (lambda t, ds: ["prune", "model=yolo11n-seg.yaml", "epochs=0"],
                                          r"a segment model needs segment labels and the demo dataset has boxes only"),
}
if not CUDA:
    CASES["device=0 without a GPU"] = (lambda t, ds: ["export", "device=0"], r"device=0 asks for a CUDA GPU but "
                                                                            r"torch sees none here")


def _unwritable(t: Path) -> str:
    """A folder this process cannot write into; root ignores permission bits, so there a read-only filesystem."""
    if os.geteuid() == 0:
        return "/sys/yolo-optim-test"
    p = t / "locked"
    p.mkdir()
    p.chmod(0o555)
    return str(p / "runs")


def _demo(out: Path, extra: str | None = None) -> Path:
    from yolo_optim.data.demo import make_demo_dataset

    make_demo_dataset(out, train=2, val=1, size=32)
    if extra:
        (out / extra).write_text("a user's file")
    return out


# The cases run as real processes with their own exit code and stderr, but forked from one driver that imported
# torch and Ultralytics once: a fresh interpreter per case would spend most of a minute importing them on 2 cores.
# Each child changes into the case's folder, points the cache there, and calls the CLI's main() with its arguments.
DRIVER = r"""
import json, os, sys
import importlib
import torch, ultralytics  # noqa: F401  (imported once, before any thread pool starts, so forking is safe)
from ultralytics.data import utils  # noqa: F401
from yolo_optim.cli import MODES, main
for entry, _, _ in MODES.values():  # the modes' own modules, not the backends they import when they run
    importlib.import_module(entry.split(":")[0])

for line in sys.stdin:
    case = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.chdir(case["cwd"])
        os.environ.update(case["env"])
        err = os.open(case["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(err, 2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        sys.argv = ["yolo-optim", *case["args"]]
        try:
            code = main(case["args"])
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(json.dumps(os.waitstatus_to_exitcode(status)), flush=True)
"""


@pytest.fixture(scope="module")
def cli_driver(tmp_path_factory):
    proc = subprocess.Popen([sys.executable, "-c", DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    logs = tmp_path_factory.mktemp("stderr")

    def run(args: list[str], cwd: Path, cache: Path) -> tuple[int, str]:
        err = logs / f"{len(list(logs.iterdir()))}.txt"
        proc.stdin.write(json.dumps({"args": args, "cwd": str(cwd), "env": {"YOLO_OPTIM_CACHE": str(cache)},
                                     "stderr": str(err)}) + "\n")
        proc.stdin.flush()
        code = json.loads(proc.stdout.readline())
        return code, err.read_text()

    yield run
    proc.stdin.close()
    proc.wait(timeout=60)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, tmp_path, demo_data, cli_driver):
    setup, pattern = CASES[case]
    ds = _dataset(tmp_path / "ds", demo_data)
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    cache.mkdir()
    args = setup(tmp_path, ds)
    before = _tree(tmp_path)
    code, err = cli_driver(args, work, cache)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, f"exit {code}\n{err[-3000:]}"
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("yolo-optim: error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    assert _tree(tmp_path) == before, "a failed command must not write, change or delete anything"


def test_bad_input_in_a_fresh_interpreter(tmp_path, demo_data):
    """The same contract through `python -m yolo_optim` itself, for a label error found deep in the dataset."""
    ds = _dataset(tmp_path / "ds", demo_data)
    _label(ds, "0 0.5 0.5\n", split="val", i=0)
    before = _tree(tmp_path)
    r = subprocess.run([sys.executable, "-m", "yolo_optim", "benchmark", "model=yolo11n.yaml", f"data={ds}"],
                       cwd=tmp_path, env={**os.environ, "YOLO_OPTIM_CACHE": str(tmp_path / "cache")},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [f"yolo-optim: error: data={ds}: labels/val/000000.txt line 1: has 3 values; a box "
                                     "needs 5 (`class x_center y_center width height`), a polygon a class and 3 or "
                                     "more x y pairs"]
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("mode", ["data", "export", "prune", "tune", "benchmark", "report", "baseline", "optimize"])
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_mode_help_lists_the_keys(mode, flag, tmp_path):
    r = subprocess.run([sys.executable, "-m", "yolo_optim", mode, flag], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and not r.stderr, r.stderr
    assert r.stdout.startswith(f"yolo-optim {mode}: ")
    from yolo_optim.config import defaults

    for k, v in defaults(mode).items():
        value = re.escape(str(v)) if v is not None else ""  # a YAML word such as off may be quoted to stay a string
        assert re.search(rf"^  {k}: ?\"?{value}\"?\s+# \(", r.stdout, re.M), k
    assert not list(tmp_path.iterdir())


def test_data_exist_ok_replaces_only_our_demo_dataset(tmp_path):
    from yolo_optim.data.demo import make_demo_dataset
    from yolo_optim.errors import OptimError

    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(OptimError, match="not a yolo-optim demo dataset"):
        make_demo_dataset(mine, train=2, val=1, size=32, exist_ok=True)
    assert (mine / "holiday.jpg").read_bytes() == b"precious" and len(list(mine.iterdir())) == 1
    make_demo_dataset(tmp_path / "demo", train=3, val=1, size=32)
    make_demo_dataset(tmp_path / "demo", train=2, val=1, size=32, exist_ok=True)  # ours: replaced whole
    assert len(list((tmp_path / "demo" / "images" / "train").iterdir())) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    make_demo_dataset(empty, train=1, val=1, size=32)  # an empty folder is written into
    assert (empty / "data.yaml").is_file()


# --- what is written, and how -------------------------------------------------------------------------------------

def test_atomic_writes_honour_the_umask(tmp_path):
    from yolo_optim.paths import atomic_dir, write_text_atomic

    old = os.umask(0o027)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        with atomic_dir(tmp_path / "run") as tmp:
            (tmp / "b.txt").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640  # not mkstemp's 0600
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o750  # not mkdtemp's 0700
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_exist_ok_overwrites_own_files_and_deletes_nothing(tmp_path):
    from yolo_optim.paths import atomic_dir

    run = tmp_path / "exp"
    with atomic_dir(run) as tmp:
        (tmp / "results.json").write_text("old")
        (tmp / "plots").mkdir()
        (tmp / "plots" / "a.png").write_text("old")
    (run / "notes.md").write_text("the user's")
    (run / "plots" / "mine.png").write_text("the user's")
    with pytest.raises(Exception, match="already exists; pass exist_ok=True"):
        with atomic_dir(run) as tmp:
            pass
    with atomic_dir(run, overwrite=True) as tmp:
        (tmp / "results.json").write_text("new")
        (tmp / "plots").mkdir()
        (tmp / "plots" / "a.png").write_text("new")
    assert (run / "results.json").read_text() == "new" and (run / "plots" / "a.png").read_text() == "new"
    assert (run / "notes.md").read_text() == "the user's" and (run / "plots" / "mine.png").read_text() == "the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def test_failed_run_leaves_no_empty_folder(tmp_path):
    from yolo_optim.errors import OptimError
    from yolo_optim.paths import run_folder

    with pytest.raises(KeyboardInterrupt):
        with run_folder(tmp_path / "runs" / "optim" / "exp"):
            raise KeyboardInterrupt
    assert not list(tmp_path.iterdir())
    with pytest.raises(RuntimeError):
        with run_folder(tmp_path / "runs" / "exp") as d:
            (d / "state.json").write_text("{}")
            raise RuntimeError
    assert (tmp_path / "runs" / "exp" / "state.json").is_file(), "a folder with progress in it is kept"
    with pytest.raises(OptimError):
        with run_folder(tmp_path / "refused" / "optim" / "exp", discard_on=(OptimError,)) as d:
            (d / "state.json").write_text("{}")
            raise OptimError("out of reach")
    assert not (tmp_path / "refused").exists(), "a refusal leaves nothing of what the block created"
    with pytest.raises(OptimError):
        with run_folder(tmp_path / "runs" / "exp", discard_on=(OptimError,)) as d:  # exists: the user's or a resume
            raise OptimError("out of reach")
    assert (tmp_path / "runs" / "exp" / "state.json").is_file(), "a folder this call did not create is kept"


def test_waiting_on_a_lock_says_who_holds_it(tmp_path, caplog):
    import logging
    import time

    from yolo_optim.paths import file_lock

    lock = tmp_path / "baseline.lock"
    holder = subprocess.Popen([sys.executable, "-c", f"""
import time
from yolo_optim.paths import file_lock
with file_lock({str(lock)!r}):
    print("held", flush=True)
    time.sleep(3)
"""], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="yolo_optim"):
        with file_lock(lock, what="the demo baseline", notice_after=0.5):
            waited = time.monotonic() - t0
    holder.wait(timeout=30)
    assert waited > 1.0
    notes = [r.getMessage() for r in caplog.records if "waiting for the demo baseline" in r.getMessage()]
    assert len(notes) == 1 and f"pid {holder.pid}" in notes[0] and str(lock) in notes[0], caplog.text


def test_model_without_data_says_it_uses_the_demo_dataset(demo_data, caplog, monkeypatch):
    """The notice is one log line naming the dataset used (the small test dataset stands in for the cached one)."""
    import logging

    from yolo_optim.config import make_config
    from yolo_optim.data import baseline

    monkeypatch.setattr(baseline, "demo_dataset_path", lambda *a, **k: demo_data)
    with caplog.at_level(logging.WARNING, logger="yolo_optim"):
        model, data = baseline.resolve_model_and_data(make_config("benchmark", {"model": "yolo11n.yaml"}))
    assert model == "yolo11n.yaml" and data == str(demo_data)
    notes = [r.getMessage() for r in caplog.records if "data= is empty" in r.getMessage()]
    assert len(notes) == 1 and data in notes[0]


def test_ultralytics_label_cache_is_the_only_file_written_into_a_dataset(tmp_path, demo_data):
    """What the README's Safety section says is written into a user's dataset, checked against Ultralytics itself."""
    from ultralytics import YOLO

    ds = _dataset(tmp_path / "ds", demo_data)
    before = set(_tree(ds.parent))
    YOLO("yolo11n.yaml").val(data=str(ds), imgsz=64, batch=2, plots=False, verbose=False, device="cpu",
                             project=str(tmp_path / "runs"), name="val")
    written = set(_tree(ds.parent)) - before
    assert written == {"labels/val.cache"}
    safety = Path(__file__).parents[1].joinpath("README.md").read_text().split("## Safety", 1)[1].split("\n## ")[0]
    assert "labels/val.cache" in safety and "labels/train.cache" in safety


@pytest.mark.parametrize("text", [
    "0 0.5 0.5 0.1 0.1\r\n1 0.2 0.2 0.1 0.1\r\n",  # Windows line ends
    "\ufeff0 0.5 0.5 0.1 0.1\n",  # a byte-order mark
    "0\t0.5\t0.5\t0.1\t0.1\n\n  \n1 1e-1 0.2 0.1 0.1  \n",  # tabs, blank lines, exponent
    "0 0.1 0.1 0.2 0.1 0.2 0.2\n2 0.3 0.3 0.4 0.3 0.4 0.4 0.3 0.4\n",  # polygons (segment, OBB)
    "0 -0.005 0.5 0.1 0.1\n",  # Ultralytics' 1% tolerance
    "",  # a background image
])
def test_valid_label_files_pass_the_check(text, tmp_path, demo_data):
    from yolo_optim.data.check import check_dataset

    ds = _dataset(tmp_path / "ds", demo_data)
    _label(ds, text.encode("utf-8"))
    assert check_dataset(ds)["nc"] == 3


def test_pose_rows_follow_kpt_shape(tmp_path, demo_data):
    from yolo_optim.data.check import check_dataset

    ds = _dataset(tmp_path / "ds", demo_data)
    _edit_yaml(ds, kpt_shape=[2, 3])
    _label(ds, "0 0.5 0.5 0.1 0.1 0.4 0.4 2 0.6 0.6 1\n")
    assert check_dataset(ds)["kpt_shape"] == [2, 3]


@pytest.mark.parametrize("task,text", [
    ("segment", "0 0.1 0.1 0.2 0.1 0.2 0.2\n2 0.3 0.3 0.4 0.3 0.4 0.4 0.3 0.4\n"),
    ("obb", "0 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2\n"),
    ("detect", "0 0.1 0.1 0.2 0.1 0.2 0.2\n"),  # Ultralytics trains boxes from polygons
])
def test_task_labels_pass_the_task_check(task, text, tmp_path, demo_data):
    from yolo_optim.data.check import check_dataset, check_task
    from yolo_optim.errors import OptimError

    ds = _dataset(tmp_path / "ds", demo_data, n=1)
    for split in ("train", "val"):
        _label(ds, text, split=split, i=0)
    check_task(task, check_dataset(ds), ds)  # raises on a mismatch
    if task == "obb":  # a segment polygon of 3 points is not an oriented box
        _label(ds, "0 0.1 0.1 0.2 0.1 0.2 0.2\n", split="val", i=0)
        with pytest.raises(OptimError, match=r"labels/val/000000\.txt has rows that are not oriented boxes"):
            check_task(task, check_dataset(ds), ds)


def test_device_check_against_the_gpus_torch_sees(monkeypatch):
    """The CUDA branch of the device check, on a pretend machine with two GPUs (torch's own counters are patched)."""
    import torch

    from yolo_optim.errors import OptimError
    from yolo_optim.models import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    for ok in ("0", "1", "0,1", "cuda:1", "cuda", "-1", "CPU", "cpu", ""):
        check_device(ok)
    for bad, why in (("2", "asks for CUDA GPU 2 but torch sees 2"), ("0,3", "GPU 3"), ("gpu", "not a torch device"),
                     ("cuda:x", "not a torch device"), ("0.5", "not a torch device")):
        with pytest.raises(OptimError, match=why):
            check_device(bad)
    check_device("7", available=False)  # a Ray cluster's GPUs are not this machine's: spelling only
