"""An installed wheel (not only an editable checkout) finds cfg/ and runs the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_cfg_and_runs(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(wheels.glob("yolo_optim-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # The fresh environment borrows this one's dependencies by path (no download); yolo_optim comes only from the wheel.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = ("import yolo_optim, yolo_optim.paths as p, yolo_optim.config as c; "
             "print(yolo_optim.__file__); print(p.cfg_dir()); print(c.make_config('export').imgsz)")
    r = subprocess.run([str(py), "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    module_file, cfg, imgsz = r.stdout.split()
    assert module_file.startswith(str(site)) and cfg.startswith(str(site)), r.stdout
    assert (Path(cfg) / "default.yaml").is_file() and imgsz == "256"
    r = subprocess.run([str(venv / "bin" / "yolo-optim"), "cfg"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "common:" in r.stdout, r.stderr
