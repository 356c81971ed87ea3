"""How fast channel pruning can make the demo baseline on this CPU, and what the accuracy is there; side by side.

    python scripts/bench_prune_floor.py [--out runs/bench_prune_floor] [--removed 0.5,0.6,0.75,0.85]
        [--finetune 0.85:30,0.85:100] [--sensitivity-table CSV] [--results scripts/results/bench_prune_floor.json]

Speed rows (`--removed`): the demo baseline pruned uniformly by weight magnitude (`yolo-optim prune
allocation=uniform epochs=0`, BatchNorm re-estimated, no fine-tuning) until the given fraction of its FLOPs is gone,
with `max_layer_ratio` raised to 0.95 so that deep ratios are reachable (86.5% is the most it allows with `round_to`
16). Accuracy rows (`--finetune removed:epochs`): the same fraction pruned and fine-tuned as the optimize figures'
pruned candidates are (sensitivity allocation at ratio 0.5 on 24 images, distillation from the source, batch 8,
lr0 1e-3), for the given epochs. Every model is exported to OpenVINO at bf16 (the fastest precision of a pruned
model on a CPU with AVX-512 BF16; at int8 the pruned demo models ran slower) and timed at 640 and 256 px in
alternation with the unpruned source at fp32 and bf16, three interleaved rounds, the minimum of the per-round
medians. The speed-ups are read against the source figures of the same loop; mAP50-95 is Ultralytics' validator on
the whole val split at 256 px.

What it answers: which fraction of the FLOPs width pruning must remove for a given speed-up at each input size, the
speed-up it cannot pass however many channels go (the per-layer costs that do not shrink with the width), and how
much accuracy fine-tuning gets back at that fraction. A run saves each finished model and each finished size, and a
rerun skips them; a killed fine-tuning resumes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# the fine-tuning of scripts/bench_optimize.py's 30-epoch runs (bench_optimize_recipe_short.yaml at --finetune-epochs)
FINETUNE = {"allocation": "sensitivity", "sensitivity_ratios": "0.5", "sensitivity_images": 24, "round_to": 16,
            "lr0": 0.001, "distill": True}


def prune_row(base: Path, data: Path, removed: float, out: Path, epochs: int = 0,
              sensitivity_table: str | None = None) -> dict[str, Any]:
    """A `yolo-optim prune` run to `removed` of the FLOPs: uniform and not fine-tuned when `epochs` is 0, else with
    the fine-tuning recipe of the optimize figures (sensitivity allocation, distillation) for `epochs` epochs."""
    from yolo_optim.config import make_config
    from yolo_optim.prune.api import run_prune

    name = f"flops{round(removed * 100)}" + (f"-e{epochs}" if epochs else "")
    run = out / "runs" / name
    values = {"model": str(base), "data": str(data), "target": "flops", "ratio": removed, "epochs": epochs,
              "method": "l2", "max_layer_ratio": 0.95, "imgsz": 256, "batch": 8, "project": str(out / "runs"),
              "name": name, "exist_ok": True,
              **(FINETUNE if epochs else {"allocation": "uniform", "max_drop": 1.0})}
    if epochs and sensitivity_table:
        values["sensitivity_table"] = sensitivity_table
    if not (run / "pruned.pt").exists():
        values["resume"] = (run / "state.json").exists()
        run_prune(make_config("prune", values))
    meta = json.loads((run / "prune.json").read_text())
    return {"name": name, "target_removed": removed, "flops_removed": round(meta["removed"], 4), "epochs": epochs,
            "gflops_256": meta["size"]["gflops_after"], "params": meta["size"]["params_after"],
            "map": meta["metrics"]["map_after"], "map_source": meta["metrics"]["map_before"],
            "seconds": meta.get("seconds"), "weights": str(run / "pruned.pt"),
            "settings": {k: v for k, v in values.items() if k not in ("model", "data", "project", "resume")}}


def time_size(models: dict[str, tuple[str, str]], imgsz: int, rounds: int = 3) -> dict[str, float]:
    """{label: ms} for every (weights, precision) at `imgsz`, timed in alternation; min over rounds of the medians."""
    from yolo_optim.core.deploy import best_side_by_side
    from yolo_optim.core.timing import TimingPlan
    from yolo_optim.export import export
    from yolo_optim.export.base import Target

    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        artifacts = {label: (export(weights, target="openvino-cpu", precision=precision, imgsz=imgsz, project=tmp,
                                    name=f"{label}-{imgsz}", exist_ok=True).path, imgsz)
                     for label, (weights, precision) in models.items()}
        best = best_side_by_side(artifacts, Target.parse("openvino-cpu"), TimingPlan(warmup=10, runs=60, seconds=4),
                                 rounds)
    return {k: round(v, 3) for k, v in best.items()}


def _environment() -> str:
    from yolo_optim.bench.environment import cpu_info

    cpu = cpu_info()
    isa = " and ".join(f for f in ("avx512_bf16", "avx512_vnni", "amx_bf16") if f in cpu.get("isa", []))
    return f"{cpu.get('model', platform.machine())}, {cpu.get('logical_cores', '?')} cores" + (f", {isa}" if isa else "")


def markdown(results: dict[str, Any]) -> str:
    lines = [(f"Demo baseline (yolo11n, {results['source']['gflops_256']:.3f} GFLOPs at 256 px), pruned uniformly "
              "without fine-tuning, or by sensitivity and fine-tuned with distillation; mAP50-95 of the PyTorch "
              "model on the whole val split at 256 px. OpenVINO CPU, raw inference, batch 1, median ms (min over 3 "
              f"interleaved rounds), {results['environment']}. Speed-ups against the unpruned source timed in the "
              "same loop."), "",
             "| model | FLOPs removed | bf16 @640 ms | x fp32 | x bf16 | bf16 @256 ms | x fp32 | x bf16 |",
             "|---|---|---|---|---|---|---|---|"]
    lat = results["latency"]

    def cells(label: str) -> list[str]:
        out = []
        for size in ("640", "256"):
            ms, fp32, bf16 = (lat.get(size, {}).get(k) for k in (label, "source-fp32", "source-bf16"))
            out += [f"{ms:.2f}", f"{fp32 / ms:.2f}x", f"{bf16 / ms:.2f}x"] if ms and fp32 and bf16 else ["-"] * 3
        return out

    lines[-2] = lines[-2].replace("| FLOPs removed |", "| FLOPs removed | mAP50-95 |")
    lines[-1] += "---|"
    source_map = next((r["map_source"] for r in results["rows"]), float("nan"))  # the validator's, as prune ran it
    for label in ("source-fp32", "source-bf16"):
        lines.append(f"| source {label.split('-')[1]} | 0% | {source_map:.4f} | "
                     + " | ".join(cells(label)) + " |")
    for r in sorted(results["rows"], key=lambda r: (r.get("epochs", 0), r["flops_removed"])):
        how = f"sensitivity, {r['epochs']} epochs" if r.get("epochs") else "uniform, no fine-tuning"
        lines.append(f"| {r['name']} bf16 ({how}) | {r['flops_removed']:.1%} | {r['map']:.4f} | "
                     + " | ".join(cells(r["name"])) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/bench_prune_floor")
    ap.add_argument("--removed", default="0.5,0.6,0.75,0.85", help="fractions of the FLOPs to remove, comma list")
    ap.add_argument("--finetune", default="0.85:30,0.85:100",
                    help="removed:epochs comma list of models pruned with the optimize figures' fine-tuning recipe")
    ap.add_argument("--sensitivity-table", default=None, help="sensitivity.csv of an earlier run on the baseline "
                    "(its probes are reused; without one the first fine-tuned row measures them)")
    ap.add_argument("--results", default=None, help="where to copy results.json (e.g. scripts/results/...)")
    args = ap.parse_args()
    from yolo_optim.config import make_config
    from yolo_optim.data.baseline import baseline_result
    from yolo_optim.paths import write_json_atomic
    from yolo_optim.prune.measure import model_size

    t0 = time.time()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"rows": [], "latency": {}}
    base = baseline_result(make_config("baseline"))
    from ultralytics import YOLO

    results.update(command="python scripts/bench_prune_floor.py " + " ".join(sys.argv[1:]),
                   date=datetime.date.today().isoformat(),
                   environment=_environment(),
                   source={"weights": str(base.weights),
                           "gflops_256": model_size(YOLO(str(base.weights)).model, 256).gflops})
    done = {r["name"] for r in results["rows"]}
    plan = [(float(v), 0) for v in args.removed.split(",")]
    plan += [(float(v.split(":")[0]), int(v.split(":")[1])) for v in args.finetune.split(",") if v]
    for removed, epochs in plan:
        if f"flops{round(removed * 100)}" + (f"-e{epochs}" if epochs else "") not in done:
            table = args.sensitivity_table or next((str(p) for p in (out / "runs").glob("*-e*/sensitivity.csv")), None)
            results["rows"].append(prune_row(base.weights, base.data, removed, out, epochs, table))
            write_json_atomic(path, results)
            r = results["rows"][-1]
            print(f"pruned {r['name']}: {r['flops_removed']:.1%} of the FLOPs, mAP50-95 {r['map']:.4f}", flush=True)
    models = {"source-fp32": (str(base.weights), "fp32"), "source-bf16": (str(base.weights), "bf16"),
              **{r["name"]: (r["weights"], "bf16") for r in results["rows"]}}
    for imgsz in (640, 256):
        if set(models) <= set(results["latency"].get(str(imgsz), {})):
            continue
        results["latency"][str(imgsz)] = time_size(models, imgsz)
        write_json_atomic(path, results)
        print(f"timed {imgsz} px: {results['latency'][str(imgsz)]}", flush=True)
    results["seconds"] = round(time.time() - t0 + results.get("seconds", 0), 1)
    results["markdown"] = markdown(results)
    write_json_atomic(path, results)
    if args.results:
        write_json_atomic(Path(args.results), results)
    print(results["markdown"])


if __name__ == "__main__":
    main()
