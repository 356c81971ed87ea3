"""Fine-tuning a pruned model: learning rate, batch and epochs, one model pruned once, every setting from the same
start. The evidence behind the recipes' `lr0` and `finetune_batch`.

    python scripts/bench_finetune_recipe.py [--model best.pt --data data.yaml] [--imgsz 256] [--flops 0.6]
                                            [--settings "lr0=0.001,batch=16,epochs=10;lr0=0.001,batch=8,epochs=10"]

1. `yolo-optim prune` the source once (structured L2, sensitivity allocation, --flops of the FLOPs removed, no
   fine-tuning), with the bench recipe's pruning keys.
2. For each setting: fine-tune that pruned model with `yolo_optim.prune.retrain.finetune`, the trainer `yolo-optim
   prune` uses (AdamW, distillation from the source, amp=auto), and validate the result at --imgsz.
Each finished setting is kept in <out>/results.json: a rerun after a kill continues with the next one.
Results: scripts/results/bench_finetune_recipe.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_SETTINGS = ("lr0=0.001,batch=16,epochs=10;lr0=0.001,batch=8,epochs=10;lr0=0.003,batch=8,epochs=10;"
                    "lr0=0.0003,batch=8,epochs=10;lr0=0.001,batch=8,epochs=30")


def parse_settings(text: str) -> list[dict]:
    out = []
    for item in text.split(";"):
        if not item.strip():
            continue
        try:
            kv = dict(p.split("=", 1) for p in item.replace(" ", "").split(","))
            s = {"lr0": float(kv.pop("lr0")), "batch": int(kv.pop("batch")), "epochs": int(kv.pop("epochs"))}
        except (KeyError, ValueError):
            raise SystemExit(f"--settings entry '{item}' must be lr0=<float>,batch=<int>,epochs=<int>") from None
        if kv or s["lr0"] <= 0 or s["batch"] < 1 or s["epochs"] < 1:
            raise SystemExit(f"--settings entry '{item}' must be lr0=<float>,batch=<int>,epochs=<int>, all positive")
        out.append(s)
    if not out:
        raise SystemExit("--settings is empty")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="weights (.pt); default: the demo baseline")
    ap.add_argument("--data", help="data.yaml; default: the demo dataset")
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--flops", type=float, default=0.6, help="fraction of the FLOPs pruning removes")
    ap.add_argument("--settings", default=DEFAULT_SETTINGS, help="';'-separated lr0=..,batch=..,epochs=.. settings")
    ap.add_argument("--out", default="runs/bench_finetune_recipe")
    ap.add_argument("--results", default=str(ROOT / "scripts" / "results" / "bench_finetune_recipe.json"))
    args = ap.parse_args()
    settings = parse_settings(args.settings)
    if not 0 < args.flops < 1:
        ap.error("--flops must be in (0, 1)")
    from ultralytics import YOLO

    from yolo_optim.bench.environment import cpu_info
    from yolo_optim.config import make_config
    from yolo_optim.data.baseline import resolve_model_and_data
    from yolo_optim.paths import write_json_atomic
    from yolo_optim.prune.api import prune
    from yolo_optim.prune.evaluate import primary_map, val_map
    from yolo_optim.prune.retrain import finetune

    model, data = resolve_model_and_data(make_config("optimize", {"model": args.model, "data": args.data}))
    out = Path(args.out).resolve()
    record = out / "results.json"
    done = json.loads(record.read_text()) if record.is_file() else {}
    pruned = out / "pruned" / "pruned.pt"
    if not pruned.is_file():
        prune(str(model), data=str(data), target="flops", ratio=args.flops, allocation="sensitivity",
                         sensitivity_ratios="0.5", sensitivity_images=24, round_to=16, max_layer_ratio=0.8, epochs=0,
                         imgsz=args.imgsz, project=str(out), name="pruned", exist_ok=True)
    meta = json.loads((out / "pruned" / "prune.json").read_text())
    rows = done.setdefault("rows", {})
    for s in settings:
        name = f"lr{s['lr0']:g}-b{s['batch']}-e{s['epochs']}"
        if name in rows:
            continue
        t0 = time.time()
        weights = finetune(pruned, Path(data), s["epochs"], out / name, args.imgsz, s["batch"], resume=True,
                           train_args={"lr0": s["lr0"], "distill_model": str(model)}, amp="auto")
        m = primary_map(val_map(YOLO(str(weights)).model, Path(data), args.imgsz), "detect")
        rows[name] = {**s, "map50_95": round(m, 4), "minutes": round((time.time() - t0) / 60, 1)}
        done.update(command="python scripts/bench_finetune_recipe.py " + " ".join(sys.argv[1:]),
                    cpu=cpu_info()["model"], cores=os.cpu_count(), model=str(model), imgsz=args.imgsz,
                    flops_removed=meta.get("removed", args.flops), map_pruned=meta["metrics"].get("map_after"),
                    map_source=meta["metrics"].get("map_before"))
        write_json_atomic(record, done)
        print(name, rows[name], flush=True)
    write_json_atomic(Path(args.results), done)
    print(render(done))
    return 0


def render(results: dict) -> str:
    lines = ["| lr0 | batch | epochs | mAP50-95 | minutes |", "|---|---|---|---|---|"]
    for r in results["rows"].values():
        lines.append(f"| {r['lr0']:g} | {r['batch']} | {r['epochs']} | {r['map50_95']:.4f} | {r['minutes']:.1f} |")
    removed = results.get("flops_removed")
    head = (f"`{results['command'].strip()}` ({results['cpu']}, {results['cores']} cores; one pruned model"
            + (f", {removed:.1%} of the FLOPs removed" if isinstance(removed, (int, float)) else "")
            + f", mAP50-95 at {results['imgsz']} px: source {results.get('map_source') or float('nan'):.4f}, pruned "
            f"before fine-tuning {results.get('map_pruned') or float('nan'):.4f}; AdamW, distillation from the source, "
            "bf16 where the CPU has it):")
    return head + "\n\n" + "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
