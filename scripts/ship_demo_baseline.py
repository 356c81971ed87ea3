"""Turn a `baseline` training run into the demo baseline shipped in the package, with its recipe and curve.

    python scripts/ship_demo_baseline.py RUN_DIR [--epochs 200 --patience 20 ...]   # the recipe RUN_DIR was trained with

Writes yolo_optim/data/assets/demo_baseline.{pth,yaml,json} (tensors-only weights, model YAML, manifest) and
scripts/results/demo_baseline.json (the training curve the README renders). The recipe arguments must be the ones
the run was trained with: they become the `baseline` settings that select the shipped weights, and what
`yolo-optim baseline retrain` trains again. A run that has not finished is refused unless --snapshot is given (then
the manifest says which epoch of how many it is).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAP = "metrics/mAP50-95(B)"
MAP50 = "metrics/mAP50(B)"


def read_curve(run: Path) -> list[dict[str, float]]:
    from yolo_optim.training.history import epoch_rows

    return [{"epoch": int(float(r["epoch"])), "map50_95": float(r[MAP]), "map50": float(r[MAP50]),
             "seconds": float(r.get("time") or 0)} for r in epoch_rows(run)]


def plateau(curve: list[dict[str, float]], window: int = 20) -> dict[str, float | bool]:
    """Converged when the best mAP50-95 of the last `window` epochs beats the best before them by < 0.5 point."""
    if len(curve) <= window:
        return {"window": window, "gain_last_window": float("nan"), "converged": False}
    before = max(c["map50_95"] for c in curve[:-window])
    last = max(c["map50_95"] for c in curve[-window:])
    return {"window": window, "gain_last_window": last - before, "converged": last - before < 0.005}


def table(results: dict) -> str:
    curve = results["curve"]
    step = max(1, len(curve) // 8)
    picks = [c for i, c in enumerate(curve) if i % step == 0 or i == len(curve) - 1]
    lines = ["| epoch | " + " | ".join(str(c["epoch"]) for c in picks) + " |",
             "|---|" + "---|" * len(picks),
             "| mAP50-95 | " + " | ".join(f"{c['map50_95']:.3f}" for c in picks) + " |"]
    p = results["plateau"]
    state = ("converged" if p["converged"] else "not converged") + \
        (f" (best of the last {p['window']} epochs {p['gain_last_window'] * 100:+.2f} points over the best before)"
         if p["gain_last_window"] == p["gain_last_window"] else "")
    r = results["recipe"]
    snapshot = "" if results.get("finished", True) else " (a snapshot: the run was still training)"
    head = (f"Demo baseline: {r['arch']} trained {results['epochs_trained']} of {r['epochs']} epochs{snapshot} at "
            f"{r['imgsz']} px "
            f"(batch {r['batch']}, seed {r['seed']}, amp={r['amp']} -> {results['precision']}), "
            f"{results['train_hours']:.1f} h on {results.get('machine', '?')}; final mAP50-95 "
            f"{results['metrics'].get(MAP, float('nan')):.4f}, {state}:")
    return head + "\n\n" + "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path, help="the training folder (weights/best.pt, results.csv, baseline.json)")
    p.add_argument("--arch", default="yolo11n.yaml")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--imgsz", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--amp", default="off")
    p.add_argument("--patience", type=int, default=20)
    p.add_argument("--data", default="400,100,6,256", help="demo dataset train,val,classes,size")
    p.add_argument("--snapshot", action="store_true", help="ship an unfinished run's best.pt, marked as such")
    p.add_argument("--assets", type=Path, default=None, help="default: yolo_optim/data/assets")
    p.add_argument("--results", type=Path, default=ROOT / "scripts" / "results" / "demo_baseline.json")
    a = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from yolo_optim.data.shipped import write_shipped_assets
    from yolo_optim.training.history import training_seconds
    from yolo_optim.training.trainers import read_amp_record

    run = a.run.resolve()
    info = json.loads((run / "baseline.json").read_text()) if (run / "baseline.json").exists() else None
    if info is None and not a.snapshot:
        raise SystemExit(f"{run} has no baseline.json: the run has not finished (pass --snapshot to ship it anyway)")
    train, val, classes, size = (int(x) for x in a.data.split(","))
    recipe = dict(arch=a.arch, epochs=a.epochs, imgsz=a.imgsz, batch=a.batch, seed=a.seed, amp=a.amp,
                  patience=a.patience, data_train=train, data_val=val, data_classes=classes, data_size=size)
    curve = read_curve(run)
    best = max(curve, key=lambda c: c["map50_95"])  # Ultralytics 8.4 keeps best.pt by mAP50-95 alone
    metrics = (info or {}).get("metrics") or {MAP: best["map50_95"], MAP50: best["map50"]}
    amp = read_amp_record(run) or (info or {}).get("amp") or {}
    import platform

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    results = {"recipe": recipe, "metrics": metrics, "curve": curve, "plateau": plateau(curve),
               "epochs_trained": len(curve), "finished": info is not None, "best_epoch": best["epoch"],
               "precision": amp.get("precision", "fp32"), "amp": amp,
               "train_hours": (training_seconds(run) or 0.0) / 3600, "machine": f"{cpu}, {os.cpu_count()} cores"}
    shipped = write_shipped_assets(run / "weights" / "best.pt",
                                   {k: v for k, v in results.items() if k not in ("curve",)}, a.assets)
    a.results.parent.mkdir(parents=True, exist_ok=True)
    a.results.write_text(json.dumps({**results, "sha256": shipped.manifest["sha256"]}, indent=1) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
