"""`yolo-optim MODE key=value`: info modes, dispatch, and one-line errors with exit code 2 that write nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from yolo_optim.cli import main


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def run_cli(args, cwd, capsys):
    """Run the CLI in-process from `cwd`; return (exit code, stdout, stderr)."""
    old = os.getcwd()
    os.chdir(cwd)
    try:
        code = main(args)
    finally:
        os.chdir(old)
    out, err = capsys.readouterr()
    return code, out, err


def test_help_version_cfg(tmp_path, capsys):
    code, out, _ = run_cli([], tmp_path, capsys)
    assert code == 0 and "yolo-optim MODE key=value" in out
    code, out, _ = run_cli(["version"], tmp_path, capsys)
    assert code == 0 and "ultralytics" in out and "openvino" in out
    code, out, _ = run_cli(["cfg"], tmp_path, capsys)
    assert code == 0 and "imgsz:" in out and "export:" in out


def test_help_starts_without_heavy_imports(tmp_path):
    """help, MODE -h and a config error never import torch, Ultralytics or a backend: they answer at once."""
    code = ("import sys\n"
            "from yolo_optim.cli import main\n"
            "codes = [main(['help']), main(['export', '-h']), main(['help', 'prune']), main(['data', 'size=0'])]\n"
            "heavy = sorted(m for m in ('torch', 'ultralytics', 'openvino', 'onnxruntime', 'ray') if m in sys.modules)\n"
            "print(codes, heavy)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.stdout.strip().splitlines()[-1] == "[0, 0, 0, 2] []", r.stdout[-500:] + r.stderr
    assert "yolo-optim prune: structured channel pruning" in r.stdout


def test_data_mode_writes_dataset(tmp_path, capsys):
    code, out, err = run_cli(["data", "out=ds", "train=3", "val=2", "size=64", "classes=2"], tmp_path, capsys)
    assert code == 0, err
    assert (tmp_path / "ds" / "data.yaml").is_file()
    assert f"Results saved to {(tmp_path / 'ds').resolve()}" in out


def _not_a_checkpoint(tmp_path: Path) -> str:
    p = tmp_path / "fake.pt"
    p.write_bytes(b"this is not a pickle")
    return str(p)


def _data_yaml(tmp_path: Path, text: str) -> str:
    p = tmp_path / "data.yaml"
    p.write_text(text)
    return str(p)


MISSING_FOLDERS = "path: /nonexistent/x\ntrain: images\nval: images\nnames: [a]\n"
BAD = {
    "unknown mode": (lambda t: ["exprot"], r"unknown mode 'exprot'; did you mean 'export'"),
    "unknown key": (lambda t: ["data", "trian=3"], r"'trian' is not a valid key for mode 'data'; did you mean 'train'"),
    "wrong type": (lambda t: ["data", "train=many"], r"train='many' has the wrong type; expected int"),
    "zero size": (lambda t: ["data", "size=0"], r"size=0 is too small"),
    "negative count": (lambda t: ["data", "val=-4"], r"val=-4 is too small"),
    "missing model": (lambda t: ["baseline", "model=nope.pt"], r"model=nope.pt does not exist"),
    "not a checkpoint": (lambda t: ["baseline", f"model={_not_a_checkpoint(t)}"], r"is not a YOLO checkpoint"),
    "missing data": (lambda t: ["baseline", "data=missing.yaml"], r"data=missing.yaml does not exist"),
    "malformed data": (lambda t: ["baseline", f"data={_data_yaml(t, 'names: [a, b')}"], r"is not valid YAML"),
    "data without names": (lambda t: ["baseline", f"data={_data_yaml(t, 'train: a')}"], r"has neither 'names'"),
    "data folders missing": (lambda t: ["baseline", f"data={_data_yaml(t, MISSING_FOLDERS)}"],
                             r"is not usable: Dataset .* images not found"),
    "out is a file": (lambda t: ["data", f"out={_data_yaml(t, 'x')}"], r"is a file"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path):
    make_args, pattern = BAD[case]
    args = make_args(tmp_path)
    before = _tree(tmp_path)
    # A real process: the exit code, and stderr exactly as a user sees it (Ultralytics logs go to stdout).
    r = subprocess.run([sys.executable, "-m", "yolo_optim", *args], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    code, err = r.returncode, r.stderr
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("yolo-optim: error: "), err
    assert "Traceback" not in err
    import re

    assert re.search(pattern, lines[0]), lines[0]
    assert _tree(tmp_path) == before, "a failed command must not write anything"


def test_real_process_exit_code_and_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "yolo_optim", "data", "classes=12"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["yolo-optim: error: classes=12 is too large; it must be < 9"]


def test_progress_lines_follow_sys_stderr_when_it_is_replaced(monkeypatch):
    """main() may run again after a caller swapped sys.stderr (a notebook, a test's capture): its log lines go to
    the stream in use now, never to the closed one of an earlier call."""
    import io
    import logging

    from yolo_optim.cli import _show_progress

    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    _show_progress(False)
    logging.getLogger("yolo_optim.test").info("one")
    first.close()
    monkeypatch.setattr("sys.stderr", second)
    _show_progress(False)
    logging.getLogger("yolo_optim.test").info("two")
    assert second.getvalue().strip().splitlines()[-1] == "two"
