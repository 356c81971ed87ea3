"""Fine-tune the demo baseline in fp32 and in bf16 autocast with the same recipe, and compare mAP50-95 and time.

    python scripts/bench_amp_finetune.py [--model best.pt --data data.yaml] [--epochs 20] [--imgsz 256] [--batch 8]
                                         [--precisions off,bf16] [--fraction 1.0] [--out runs/bench_amp_finetune]
                                         [--results scripts/results/bench_amp_finetune.json]

Each precision is one fine-tune through `yolo_optim.prune.retrain.finetune` (the trainer every fine-tune of the
project uses, with its `amp=`: bf16 runs through the same autocast hooks as `amp=bf16` everywhere else), from the
same weights, seed and recipe. The two runs go one after the other (not side by side: each uses every core); a
rerun keeps a finished precision (its done.json) and resumes a killed one from its last epoch. Reported per
precision: mAP50-95 and mAP50 of the fine-tuned weights on the val split, the training wall time summed over its
epochs (Ultralytics' results.csv, validation included), the precision the trainer actually used, and how many
optimizer steps it skipped for non-finite gradients. On a CPU without AMX or AVX-512 BF16, bf16 is emulated: its numbers (the accuracy question) are real,
its time is not what a bf16 CPU gets (that is scripts/bench_amp.py's figure on such a CPU), and it is slow enough
(about 11 s a step on a 2-core AVX2 CPU) that `--fraction` (Ultralytics' train `fraction=`: the first part of the
train split, the same images for every precision) may be needed to fit both runs into a working session.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("YOLO_OFFLINE", "1")


def run_precision(args: argparse.Namespace, amp: str) -> dict[str, Any]:
    from yolo_optim.prune.retrain import finetune
    from yolo_optim.training.trainers import read_amp_record

    out = Path(args.out) / amp
    done = out / "done.json"
    settings = {k: str(v) for k, v in vars(args).items() if k not in ("out", "results", "precisions")}
    if done.is_file() and json.loads(done.read_text()).get("settings") == settings:
        print(f"amp={amp}: kept from an earlier run ({done})", flush=True)
        return json.loads(done.read_text())["row"]
    weights = finished_weights(out, args.epochs) or finetune(args.model, args.data, args.epochs, out, args.imgsz,
                                                             args.batch, resume=True, amp=amp, seed=args.seed,
                                                             train_args=train_args(args))
    from ultralytics import YOLO

    metrics = measure_map(YOLO(str(weights)), args)
    from yolo_optim.training.history import training_seconds

    seconds = training_seconds(out) or 0.0
    row = {"amp": amp, "map50_95": round(metrics.map50_95, 4), "map50": round(metrics.map50, 4),
            "train_seconds": round(seconds, 1), "seconds_per_epoch": round(seconds / args.epochs, 1),
            "record": read_amp_record(out), "weights": str(weights)}
    from yolo_optim.paths import write_json_atomic

    write_json_atomic(done, {"settings": settings, "row": row})  # a rerun keeps this precision's finished run
    return row


def train_args(args: argparse.Namespace) -> dict[str, Any]:
    return {"fraction": args.fraction} if args.fraction < 1.0 else {}


def finished_weights(out: Path, epochs: int) -> Path | None:
    """best.pt of a fine-tune that trained all its epochs but was stopped before done.json was written."""
    from yolo_optim.training.history import epoch_rows

    best = out / "weights" / "best.pt"
    rows = epoch_rows(out)
    if not best.is_file() or not rows or int(float(rows[-1]["epoch"])) < epochs:
        return None
    print(f"{out}: all {epochs} epochs trained earlier; measuring its best.pt", flush=True)
    return best


def measure_map(yolo: Any, args: argparse.Namespace) -> Any:
    """mAP50-95 and mAP50 on the val split with Ultralytics' validator (the task's primary output)."""
    from yolo_optim.core.tasks import read_map
    from yolo_optim.prune.evaluate import val_map

    return read_map(val_map(yolo.model, Path(args.data), args.imgsz), yolo.task, primary=True)


def table(results: dict[str, Any]) -> str:
    rows = results["rows"]
    lines = ["| precision | mAP50-95 | mAP50 | training time | per epoch | skipped steps |", "|---|---|---|---|---|---|"]
    for r in rows:
        rec = r.get("record") or {}
        used = rec.get("precision", "fp32")
        skipped = f"{rec.get('skipped_steps', 0)} of {rec['optimizer_steps']}" if rec.get("optimizer_steps") else "0"
        lines.append(f"| amp={r['amp']} ({used}) | {r['map50_95']:.4f} | {r['map50']:.4f} | "
                     f"{r['train_seconds'] / 60:.1f} min | {r['seconds_per_epoch']:.0f} s | {skipped} |")
    text = "\n".join(lines) + "\n"
    if "diff_points" in results:
        text += (f"\nmAP50-95 bf16 minus fp32: {results['diff_points']:+.2f} points; source before fine-tuning "
                 f"{results['source_map50_95']:.4f}. {results.get('note', '')}\n")
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="source .pt (default: the demo baseline)")
    ap.add_argument("--data", help="data.yaml (default: the demo dataset)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precisions", default="off,bf16", help="amp= values, comma-separated")
    ap.add_argument("--fraction", type=float, default=1.0, help="part of the train split to fine-tune on (0-1]")
    ap.add_argument("--out", default="runs/bench_amp_finetune")
    ap.add_argument("--results", default=str(ROOT / "scripts" / "results" / "bench_amp_finetune.json"))
    args = ap.parse_args()
    if not 0.0 < args.fraction <= 1.0:
        ap.error(f"--fraction={args.fraction} is not in (0, 1]: give the part of the train split to use, e.g. 0.5")
    if not args.model or not args.data:
        from yolo_optim.config import make_config
        from yolo_optim.data.baseline import resolve_model_and_data

        # An empty model is the demo baseline on its dataset; a model without data is measured on the demo dataset.
        cfg = make_config("optimize", {"model": args.model, "data": args.data})
        args.model, args.data = resolve_model_and_data(cfg)
    from ultralytics import YOLO

    from yolo_optim.bench.environment import cpu_info
    from yolo_optim.paths import write_json_atomic
    from yolo_optim.training.amp import cpu_bf16_instructions

    source = measure_map(YOLO(str(args.model)), args)
    rows = [run_precision(args, amp) for amp in args.precisions.split(",") if amp]
    native = cpu_bf16_instructions()
    results = {"command": "python scripts/bench_amp_finetune.py " + " ".join(sys.argv[1:]), "model": str(args.model),
               "epochs": args.epochs, "fraction": args.fraction, "imgsz": args.imgsz, "batch": args.batch, "seed": args.seed,
               "cpu": cpu_info().get("model"), "threads": os.cpu_count(), "python": platform.python_version(),
               "bf16_native": native, "source_map50_95": round(source.map50_95, 4), "rows": rows}
    by_amp = {r["amp"]: r for r in rows}
    if "off" in by_amp and "bf16" in by_amp:
        results["diff_points"] = round(100 * (by_amp["bf16"]["map50_95"] - by_amp["off"]["map50_95"]), 2)
        results["note"] = ("bf16 ran on this CPU's " + " and ".join(native) if native else
                           "This CPU has no AMX or AVX-512 BF16: bf16 was emulated, so its time is not a bf16 CPU's.")
    write_json_atomic(Path(args.results), results)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
