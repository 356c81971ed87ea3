"""Pruning figures on the demo baseline: mAP after a short fine-tune and OpenVINO latency, side by side.

    python scripts/bench_prune.py [--out runs/bench_prune] [--epochs 9] [--quick] [--report-only]

Rows (FLOPs removed 50% for the method comparison; 25/50/70% of the FLOPs kept for the table):
  default (importance l2, sensitivity allocation), l1 + uniform, random + uniform, l2 + global ranking, and
  baseline-ft: the unpruned baseline fine-tuned with the same recipe, so a row's mAP can be told apart from the gain
  of simply training longer (none, once the baseline has converged).
Each row is a real `yolo-optim prune` run (fine-tuned for --epochs, short next to the baseline's training), saved as
soon as it finishes; a rerun skips finished rows and resumes an interrupted one. Latency: every model exported with
yolo_optim.export and timed with the benchmark's harness (yolo_optim.core.timing), raw inference at batch 1, in
interleaved rounds (min of the per-round medians, so another process stealing the shared CPU in one round does not
decide the figure), under /tmp/yolo_optim_timing.lock. Accuracy: Ultralytics validator on the whole val split at
256 px. Everything lands in <out>/results.json and <out>/results.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = {
    "default": {},  # the `prune:` defaults of cfg/default.yaml
    "l1-uniform": {"method": "l1", "allocation": "uniform"},
    "random-uniform": {"method": "random", "allocation": "uniform"},
    "l2-global": {"method": "l2", "allocation": "global"},
}
# (method, fraction of FLOPs removed); the first rows are the side-by-side comparison at 50% of the FLOPs
ROWS = [("default", 0.5), ("l1-uniform", 0.5), ("random-uniform", 0.5), ("l2-global", 0.5), ("default", 0.75),
        ("default", 0.3), ("l1-uniform", 0.75), ("l1-uniform", 0.3), ("l2-global", 0.75)]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {"rows": {}, "latency": {}}


def save(results: dict[str, Any], path: Path) -> None:
    from yolo_optim.paths import write_json_atomic

    write_json_atomic(path, results)


def prune_row(method: str, removed: float, base: Path, data: Path, out: Path, epochs: int) -> dict[str, Any]:
    from yolo_optim.config import make_config
    from yolo_optim.prune.api import run_prune

    name = f"{method}-{round(removed * 100)}"
    run = out / "runs" / name
    if not (run / "pruned.pt").exists():
        resume = (run / "state.json").exists()
        values = {"model": str(base), "data": str(data), "target": "flops", "ratio": removed, "epochs": epochs,
                  "imgsz": 256, "batch": 8, "project": str(out / "runs"), "name": name, "resume": resume,
                  **METHODS[method]}
        table = out / "runs" / "default-50" / "sensitivity.csv"  # one sensitivity analysis serves every ratio
        if make_config("prune", values).allocation == "sensitivity" and table.exists() and name != "default-50":
            values["sensitivity_table"] = str(table)
        run_prune(make_config("prune", values))
    meta = json.loads((run / "prune.json").read_text())
    return {"name": name, "method": method, "importance": meta["method"], "allocation": meta["allocation"],
            "flops_removed": round(meta["removed"], 4), "flops_kept": round(1 - meta["removed"], 4),
            "gflops_256": meta["size"]["gflops_after"], "params": meta["size"]["params_after"],
            "map_before": meta["metrics"]["map_before"], "map_after": meta["metrics"]["map_after"],
            "drop_points": round(100 * (meta["metrics"]["map_before"] - meta["metrics"]["map_after"]), 2),
            "epochs": epochs, "seconds": meta.get("seconds"), "weights": str(run / "pruned.pt")}


def control_row(base: Path, data: Path, out: Path, epochs: int) -> dict[str, Any]:
    """The unpruned baseline fine-tuned with the same recipe: how much of a row's mAP is just more training."""
    from ultralytics import YOLO

    from yolo_optim.prune.evaluate import primary_map, val_map
    from yolo_optim.prune.measure import model_size
    from yolo_optim.prune.retrain import finetune

    weights = finetune(base, data, epochs, out / "runs" / "baseline-ft", 256, 8, resume=True)
    module = YOLO(str(weights)).model
    size = model_size(module, 256)
    return {"name": "baseline-ft", "method": "no pruning", "importance": "-", "allocation": "-",
            "flops_removed": 0.0, "flops_kept": 1.0, "gflops_256": size.gflops, "params": size.params,
            "map_after": primary_map(val_map(module, data, 256), "detect"), "epochs": epochs,
            "weights": str(weights)}


def measure_latency(models: dict[str, str], cases: list[tuple[str, int]], data: Path,
                    rounds: int = 3) -> dict[str, dict[str, float]]:
    """{model: {"<precision>@<imgsz>": median ms}} with interleaved rounds (min over rounds)."""
    import numpy as np

    from yolo_optim.core.timing import TIMING_LOCK, TimingPlan, time_callable
    from yolo_optim.export import export
    from yolo_optim.export.base import Target, get_backend
    from yolo_optim.paths import file_lock

    backend = get_backend("openvino")
    plan = TimingPlan(warmup=10, runs=60, seconds=6)
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-prune-") as tmp:
        for precision, imgsz in cases:
            ok, why = backend.supports(Target("openvino", "cpu", precision))
            if not ok:  # e.g. bf16 on a CPU without AVX-512 BF16 / AMX: recorded, not timed
                for label in models:
                    out.setdefault(label, {})[f"{precision}@{imgsz}:skipped"] = why
                print(f"latency {precision}@{imgsz}: skipped ({why})", flush=True)
                continue
            runners, executed = {}, {}
            for label, weights in models.items():
                kw = {"data": str(data), "calib_images": 200, "guard": "off"} if precision == "int8" else {}
                r = export(weights, target="openvino-cpu", precision=precision, imgsz=imgsz,
                           project=tmp, name=f"{label}-{precision}-{imgsz}", exist_ok=True, **kw)
                runners[label] = backend.load_runner(r.path)
                executed[label] = runners[label].executed_precision
            x = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
            best = {k: float("inf") for k in runners}
            with file_lock(TIMING_LOCK):
                for _ in range(rounds):
                    for label, run in runners.items():
                        best[label] = min(best[label], time_callable(lambda run=run, x=x: run(x), plan).median_ms)
            for label in runners:
                out.setdefault(label, {})[f"{precision}@{imgsz}"] = round(best[label], 3)
                out[label][f"{precision}@{imgsz}:executed"] = executed[label]
            print(f"latency {precision}@{imgsz}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in best.items()),
                  flush=True)
    return out


def report(results: dict[str, Any], path: Path) -> None:
    path.write_text(f"# Pruning on the demo baseline ({results['environment']})\n\n{markdown(results)}")


def markdown(results: dict[str, Any]) -> str:
    """The pruning table with the baseline it starts from (README block and results.md)."""
    rows = results["rows"]
    lat = results["latency"]
    base = results["baseline"]
    lines = [(f"Baseline yolo11n: mAP50-95 {base['map'] * 100:.2f} at 256 px, {base['gflops_256']:.3f} GFLOPs at "
              f"256 px, {base['params']:,} params. Fine-tune: {results['epochs']} epochs. Latency: OpenVINO CPU, "
              "raw inference, batch 1, median ms (min over interleaved rounds)."), "",
             ("baseline-ft is the unpruned baseline fine-tuned with the same recipe: the mAP a row would have without "
              "pruning. 'vs ft' is a row's mAP change against it, in points. A bf16/int8 speed-up is against the baseline "
              "at the same precision."), "",
             ("| model | FLOPs kept | params | mAP50-95 | drop (points) | vs ft | fp32@640 ms | speed-up | fp32@256 ms "
              "| speed-up | bf16@640 | int8@640 |"), "|" + "---|" * 12]
    control = rows.get("baseline-ft", {}).get("map_after")

    def cell(label: str, key: str) -> str:
        v = lat.get(label, {}).get(key)
        return f"{v:.2f}" if isinstance(v, (int, float)) else "-"

    def speed(label: str, key: str) -> str:
        v, b = lat.get(label, {}).get(key), lat.get("baseline", {}).get(key)
        return f"{b / v:.2f}x" if isinstance(v, (int, float)) and isinstance(b, (int, float)) else "-"

    def with_speed(label: str, key: str) -> str:
        return f"{cell(label, key)} ({speed(label, key)})" if label in lat and key in lat[label] else "-"

    def versus_control(m: float) -> str:
        return f"{100 * (m - control):+.2f}" if control is not None else "-"

    lines.append(f"| baseline | 100% | {base['params']:,} | {base['map'] * 100:.2f} | 0 | {versus_control(base['map'])} | "
                 f"{cell('baseline', 'fp32@640')} | 1.00x | {cell('baseline', 'fp32@256')} | 1.00x | "
                 f"{cell('baseline', 'bf16@640')} | {cell('baseline', 'int8@640')} |")
    for name, r in sorted(rows.items(), key=lambda kv: (-kv[1]["flops_kept"], kv[0])):
        label = name if name == "baseline-ft" else f"{name} ({r['importance']}, {r['allocation']})"
        lines.append(f"| {label} | {r['flops_kept']:.1%} | {r['params']:,} | {r['map_after'] * 100:.2f} | "
                     f"{r['drop_points']:.2f} | {versus_control(r['map_after'])} | {cell(name, 'fp32@640')} | "
                     f"{speed(name, 'fp32@640')} | {cell(name, 'fp32@256')} | {speed(name, 'fp32@256')} | "
                     f"{with_speed(name, 'bf16@640')} | {with_speed(name, 'int8@640')} |")
    skipped = sorted({f"{key.split(':')[0]}: {why}" for values in lat.values() for key, why in values.items()
                      if key.endswith(":skipped")})
    lines += ["", *(f"Not timed, {s}." for s in skipped)] if skipped else []
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/bench_prune")
    ap.add_argument("--epochs", type=int, default=9)
    ap.add_argument("--quick", action="store_true", help="one row, one epoch: a smoke test of the script")
    ap.add_argument("--report-only", action="store_true", help="rewrite results.md from results.json")
    args = ap.parse_args()
    from yolo_optim.config import make_config
    from yolo_optim.data.baseline import baseline_result
    from yolo_optim.prune.evaluate import primary_map, val_map
    from yolo_optim.prune.measure import model_size

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = load(results_path)
    if args.report_only:
        report(results, out / "results.md")
        print((out / "results.md").read_text())
        return
    base = baseline_result(make_config("baseline"))
    results.update(epochs=args.epochs, environment=f"{platform.processor() or platform.machine()}, "
                   f"{__import__('os').cpu_count()} CPUs", baseline_weights=str(base.weights))
    if "baseline" not in results:
        from ultralytics import YOLO

        module = YOLO(str(base.weights)).model
        size = model_size(module, 256)
        results["baseline"] = {"map": primary_map(val_map(module, base.data, 256), "detect"),
                               "gflops_256": size.gflops, "params": size.params}
        save(results, results_path)
    rows = ROWS[:1] if args.quick else ROWS
    for method, removed in rows:
        t0 = time.time()
        row = prune_row(method, removed, base.weights, base.data, out, 1 if args.quick else args.epochs)
        results["rows"][row["name"]] = row
        save(results, results_path)
        print(f"row {row['name']}: FLOPs kept {row['flops_kept']:.1%}, mAP50-95 {row['map_after']:.4f} "
              f"(drop {row['drop_points']:.2f} points) [{time.time() - t0:.0f} s]", flush=True)
    if not args.quick and "baseline-ft" not in results["rows"]:
        row = control_row(base.weights, base.data, out, args.epochs)
        row["drop_points"] = round(100 * (results["baseline"]["map"] - row["map_after"]), 2)
        row["map_before"] = results["baseline"]["map"]
        results["rows"]["baseline-ft"] = row
        save(results, results_path)
        print(f"row baseline-ft (no pruning, {args.epochs} more epochs): mAP50-95 {row['map_after']:.4f}", flush=True)
    models = {"baseline": str(base.weights),
              **{k: v["weights"] for k, v in results["rows"].items() if k != "baseline-ft"}}
    head = {k: models[k] for k in ("baseline", "default-50") if k in models}
    for group, cases in ((models, [("fp32", 640), ("fp32", 256)]), (head, [("bf16", 640), ("int8", 640)])):
        for case in cases:  # one case at a time, saved as it finishes: a rerun times only the missing ones
            key = f"{case[0]}@{case[1]}"
            if all(key in results["latency"].get(k, {}) or f"{key}:skipped" in results["latency"].get(k, {})
                   for k in group):
                continue
            for label, values in measure_latency(group, [case], base.data).items():
                results["latency"].setdefault(label, {}).update(values)
            save(results, results_path)
    report(results, out / "results.md")
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
