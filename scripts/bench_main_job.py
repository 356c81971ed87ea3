"""Wall time of the README's main job as a new user runs it: from an empty folder, with an empty cache.

    python scripts/bench_main_job.py [--workdir DIR] [--results scripts/results/bench_main_job.json]

The command is read from the README's quick start (the `yolo-optim ...` part of its first shell block, after the
install), so the figure is of what the README tells a user to type. It runs with the `yolo-optim` console script of
this environment in a new folder, with YOLO_OPTIM_CACHE and Ultralytics' settings folder pointed at empty folders
inside it: the demo dataset is generated and the shipped baseline unpacked as on a fresh machine (the installation
itself, pip and its downloads, is not timed). Recorded: the wall time, the exit code, the lines the command ends
with (chosen variant, speed-up, mAP change, report), whether any training of the baseline happened, and the run's
optimize.json summary. Run it alone on the machine: the search times every candidate.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def readme_main_job(readme: Path) -> list[str]:
    """The `yolo-optim ...` command of the quick start's first shell block."""
    text = readme.read_text(encoding="utf-8")
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", text, re.S)
    if not block:
        raise SystemExit(f"{readme} has no ```bash block under '## Quick start'")
    parts = [p.strip() for p in block.group(1).replace("\\\n", " ").split("&&")]
    command = next((p for p in parts if p.startswith("yolo-optim")), None)
    if command is None:
        raise SystemExit(f"the quick start's first shell block has no yolo-optim command: {block.group(1)!r}")
    return command.split()


def run(workdir: Path, argv: list[str]) -> dict[str, Any]:
    exe = shutil.which(argv[0]) or str(Path(sys.executable).with_name(argv[0]))
    if not Path(exe).is_file():
        raise SystemExit(f"{argv[0]} is not installed in this environment: pip install -e . first")
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_OPTIM_CACHE": str(workdir / "cache"),
           "YOLO_CONFIG_DIR": str(workdir / "ultralytics-settings")}
    t0 = time.time()
    proc = subprocess.run([exe, *argv[1:]], cwd=workdir / "project", env=env, text=True, capture_output=True,
                          check=False)
    wall = time.time() - t0
    (workdir / "stdout.txt").write_text(proc.stdout)
    (workdir / "stderr.txt").write_text(proc.stderr)
    states = sorted((workdir / "project").rglob("optimize.json"))
    state = json.loads(states[-1].read_text()) if states else {}
    chosen = state.get("chosen") or {}
    trained = [p for p in (workdir / "cache").rglob("results.csv")]  # an Ultralytics training run in the cache
    return {"wall_s": round(wall, 1), "exit_code": proc.returncode,
            "last_lines": [ln for ln in proc.stdout.strip().splitlines() if ln.split(":")[0] in
                           ("Chosen", "Deploy", "Report", "Budget not met", "Planned")],
            "error": proc.stderr.strip().splitlines()[-1] if proc.returncode else None,
            "baseline_trained": bool(trained), "status": state.get("status"),
            "chosen": {k: chosen.get(k) for k in ("model", "runtime", "precision", "imgsz", "map50_95")}
            if chosen else None,
            "stage_seconds": stage_seconds(state.get("stages") or []),
            "search_seconds": state.get("seconds")}


def stage_seconds(stages: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds each stage of the search took (its tasks' own times, summed)."""
    out: dict[str, float] = {}
    for s in stages:
        out[s["stage"]] = round(out.get(s["stage"], 0.0) + float(s.get("seconds") or 0.0), 1)
    return out


def render(results: dict[str, Any]) -> str:
    minutes = results["wall_s"] / 60
    lines = [f"`{results['command']}` from an empty folder with an empty cache (`python scripts/bench_main_job.py`, "
             f"{results['date']}, {results['cpu']}, {results['cores']} cores): **{minutes:.1f} min**, exit code "
             f"{results['exit_code']}, baseline " + ("trained at first use" if results["baseline_trained"] else
                                                     "unpacked from the shipped weights (no training)") + ". It ended:",
             "", "```", *results["last_lines"], "```"]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--workdir", type=Path, help="an empty folder to run in (default: a new temporary folder)")
    ap.add_argument("--results", type=Path, default=ROOT / "scripts" / "results" / "bench_main_job.json")
    args = ap.parse_args()
    argv = readme_main_job(args.readme)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="yolo-optim-main-job-"))
    if workdir.exists() and any(workdir.iterdir()):
        raise SystemExit(f"--workdir {workdir} is not empty: a fresh run needs an empty folder")
    (workdir / "project").mkdir(parents=True, exist_ok=True)
    from yolo_optim.bench.environment import cpu_info
    from yolo_optim.paths import write_json_atomic

    print(f"running `{' '.join(argv)}` in {workdir / 'project'} (fresh cache)", flush=True)
    results = {"command": " ".join(argv), "date": time.strftime("%Y-%m-%d"), "cpu": cpu_info().get("model"),
               "cores": os.cpu_count(), "workdir": str(workdir), **run(workdir, argv)}
    write_json_atomic(args.results, results)
    print(render(results))
    return 0 if results["exit_code"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
