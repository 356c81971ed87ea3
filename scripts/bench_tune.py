"""Bayesian search + ASHA on Ray Tune against Ultralytics' built-in `model.tune()`, same budget, on the demo data.

Both tuners fine-tune the cached demo baseline on the demo dataset with the same trials x epochs, image size,
training subset, seed and search space (Ultralytics' 26 hyperparameters and ranges, AdamW as model.tune() sets it).
Ultralytics runs its genetic tuner: one trial after another, each using every core. yolo-optim runs Optuna TPE
with ASHA early stopping, `concurrency` trials at once sharing the cores. Reported: wall time of each whole call
(Ray start-up included) and the best fitness (mAP50-95) each reached, in results.json beside the two runs.

    python scripts/bench_tune.py --prepare          # build the demo baseline once (slow, untimed)
    flock /tmp/yolo_optim_timing.lock python scripts/bench_tune.py > bench_tune.log 2>&1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")


def _baseline_and_data() -> tuple[Path, Path]:
    from yolo_optim.config import make_config
    from yolo_optim.data.baseline import baseline_result

    base = baseline_result(make_config("baseline"))
    return base.weights, base.data


def _ultralytics_tune(model: Path, data: Path, a: argparse.Namespace, out: Path) -> dict:
    from ultralytics import YOLO

    for old in (out / "ultralytics", *out.glob("multitrain*")):  # its tuner would resume, or number new folders
        shutil.rmtree(old, ignore_errors=True)
    t0 = time.perf_counter()
    YOLO(str(model)).tune(data=str(data), epochs=a.epochs, iterations=a.trials, imgsz=a.imgsz, batch=a.batch,
                          fraction=a.fraction, device="cpu", workers=0, seed=a.seed, plots=False, val=True,
                          project=str(out), name="ultralytics", exist_ok=True)
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (out / "ultralytics" / "tune_results.ndjson").read_text().splitlines()
            if line.strip()]
    fitness = [float(r["fitness"]) for r in rows]
    return {"wall_s": round(wall, 1), "best_fitness": max(fitness), "trials": len(rows), "fitness": fitness,
            "epochs_trained": a.trials * a.epochs}


def _yolo_optim_tune(model: Path, data: Path, a: argparse.Namespace, out: Path) -> dict:
    import yolo_optim
    from yolo_optim.tune.space import load_space

    space = load_space("spaces/default.yaml").to_yaml_dict()
    space.update(optimizer="AdamW", fraction=a.fraction)  # the same space and subset as model.tune()
    t0 = time.perf_counter()
    result = yolo_optim.tune(str(model), str(data), space=space, search="bayes", scheduler="asha", trials=a.trials,
                             epochs=a.epochs, imgsz=a.imgsz, batch=a.batch, seed=a.seed, concurrency=a.concurrency,
                             project=str(out), name="yolo_optim", exist_ok=True)
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 1), "search_wall_s": round(result.wall_s, 1), "best_fitness": result.best_objective,
            "trials": len(result.trials), "fitness": [t.objective for t in result.trials],
            "epochs_trained": sum(t.epochs for t in result.trials), "statuses": result.counts()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepare", action="store_true", help="only build the demo baseline (untimed)")
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--imgsz", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--fraction", type=float, default=0.25, help="share of the training images each trial uses")
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/optim/bench_tune")
    p.add_argument("--model", help="start from these weights instead of the demo baseline")
    p.add_argument("--data", help="dataset YAML (with --model)")
    p.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results" / "bench_tune.json",
                   help="where the results JSON the README table renders from is kept")
    a = p.parse_args()
    model, data = (Path(a.model), Path(a.data)) if a.model else _baseline_and_data()
    if a.prepare:
        print(f"baseline {model}, data {data}")
        return 0
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    load = [os.getloadavg()[0]]
    ours = _yolo_optim_tune(model, data, a, out)
    load.append(os.getloadavg()[0])
    theirs = _ultralytics_tune(model, data, a, out)
    load.append(os.getloadavg()[0])
    report = {
        "command": " ".join([sys.executable, *sys.argv]), "settings": vars(a), "model": str(model), "data": str(data),
        "yolo_optim": ours, "ultralytics_model_tune": theirs,
        "wall_time_ratio": round(ours["wall_s"] / theirs["wall_s"], 3),
        "reaches_best_fitness": ours["best_fitness"] >= theirs["best_fitness"],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg_1min": load},
        "versions": {k: version(k) for k in ("ultralytics", "torch", "ray", "optuna")},
    }
    report["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in report["settings"].items()}
    for path in (out / "results.json", a.results):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        tmp.replace(path)
    print(table(report))
    return 0


def table(r: dict) -> str:
    """The comparison as the README shows it."""
    s = r["settings"]
    ours, theirs = r["yolo_optim"], r["ultralytics_model_tune"]
    lines = [(f"{s['trials']} trials x {s['epochs']} epochs, {s['imgsz']} px, batch {s['batch']}, "
              f"{s['fraction']:.0%} of the training images, seed {s['seed']}, on {r['machine']['cpus']} CPUs "
              f"(load {', '.join(f'{x:.1f}' for x in r['machine']['load_avg_1min'])}):"), "",
             "| tuner | wall time | epochs trained | trials | best fitness (mAP50-95) |", "|---|---:|---:|---:|---:|",
             (f"| yolo-optim (Optuna TPE + ASHA, {s['concurrency']} at once) | {ours['wall_s']:.0f} s | "
              f"{ours['epochs_trained']} | {ours['trials']} | {ours['best_fitness']:.4f} |"),
             (f"| Ultralytics `model.tune()` (genetic) | {theirs['wall_s']:.0f} s | {theirs['epochs_trained']} | "
              f"{theirs['trials']} | {theirs['best_fitness']:.4f} |"), "",
             (f"Wall time ratio {r['wall_time_ratio']:.2f}; yolo-optim reaches Ultralytics' best fitness: "
              f"{'yes' if r['reaches_best_fitness'] else 'no'}.")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
