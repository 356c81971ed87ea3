"""How well a latency-goal pruning run hits a speed-up goal on a noisy machine: candidates timed beside the source
against candidates timed alone after one timing of the source; side by side in one run.

    python scripts/bench_latency_goal.py [--goal 1.5] [--repeats 3] [--precision bf16] [--imgsz 256]
        [--out runs/bench_latency_goal] [--results scripts/results/bench_latency_goal.json]

Each repeat runs two `yolo-optim prune` commands on the demo baseline (uniform L2 allocation, no fine-tuning, so a
run takes a minute or two and only the latency search differs):
- beside: `target=latency:openvino-cpu:<precision>:<goal>x`, where the search times every candidate in alternation
  with the source (the source exported once);
- apart: `target=latency:openvino-cpu:<precision>:<ms>ms`, with ms the source's latency timed once just before,
  divided by the goal: every candidate is then timed alone against that figure, as speed-up goals were read before.
Afterwards every pruned model and the source are exported again and timed in one interleaved loop (3 rounds, the
minimum of the per-round medians); a model's real speed-up is the source's figure over its own. The figures: for
each way, the FLOPs fraction each run chose and the real speed-up it reached, against the goal. A killed run keeps
the finished prune runs (a rerun skips them).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def prune_run(base: Path, data: Path, target: str, out: Path, name: str, imgsz: int) -> dict[str, Any]:
    from yolo_optim.config import make_config
    from yolo_optim.prune.api import run_prune

    run = out / "runs" / name
    if not (run / "pruned.pt").exists():
        values = {"model": str(base), "data": str(data), "target": target, "epochs": 0, "allocation": "uniform",
                  "method": "l2", "max_drop": 1.0, "round_to": 16, "max_layer_ratio": 0.8, "imgsz": imgsz,
                  "latency_imgsz": imgsz, "batch": 8, "project": str(out / "runs"), "name": name, "exist_ok": True}
        run_prune(make_config("prune", values))
    meta = json.loads((run / "prune.json").read_text())
    state = json.loads((run / "state.json").read_text())
    return {"name": name, "target": target, "flops_removed": round(meta["removed"], 4),
            "search": state.get("latency_search"), "seconds": meta.get("seconds"), "weights": str(run / "pruned.pt")}


def source_ms(base: Path, target: Any, imgsz: int) -> float:
    """The source timed alone, once: what a goal in ms was computed from."""
    from ultralytics import YOLO

    from yolo_optim.prune.latency import LatencyGoal, measure_latency
    from yolo_optim.prune.structured import prepare

    return measure_latency(prepare(YOLO(str(base)).model)[0], LatencyGoal(target, 0.0), imgsz)


def time_all(models: dict[str, str], target: Any, imgsz: int, rounds: int = 3) -> dict[str, float]:
    """{label: ms}, every model exported for `target` and all timed in one alternating loop per round."""
    from yolo_optim.core.deploy import best_side_by_side, export_artifact
    from yolo_optim.core.options import ExportOptions
    from yolo_optim.core.timing import TimingPlan

    with tempfile.TemporaryDirectory(prefix="bench-latency-goal-") as tmp:
        options = ExportOptions(imgsz=imgsz)
        artifacts = {k: (export_artifact(w, target, options, Path(tmp) / k), imgsz) for k, w in models.items()}
        best = best_side_by_side(artifacts, target, TimingPlan(warmup=10, runs=60, seconds=4), rounds)
    return {k: round(v, 3) for k, v in best.items()}


def markdown(res: dict[str, Any]) -> str:
    lines = [(f"Goal {res['goal']}x the source's speed at {res['precision']} and {res['imgsz']} px (OpenVINO CPU, "
              f"{res['environment']}); uniform L2 pruning, no fine-tuning. Real speed-up: the source's latency "
              "over the pruned model's, all timed in one interleaved loop after the runs."), "",
             "| way | run | source timed alone first (ms) | FLOPs removed | real speed-up |", "|---|---|---|---|---|"]
    source = res["latency"]["source"]
    for way in ("beside", "apart"):
        for r in (r for r in res["rows"] if r["way"] == way):
            alone = f"{r['source_alone_ms']:.2f}" if r.get("source_alone_ms") else "-"
            if "error" in r:
                lines.append(f"| {way} | {r['name']} | {alone} | failed: {r['error']} | - |")
                continue
            lines.append(f"| {way} | {r['name']} | {alone} | {r['flops_removed']:.1%} | "
                         f"{source / res['latency'][r['name']]:.2f}x |")
    lines.append("")
    for way, s in res["summary"].items():
        failed = f", {s['failed']} run(s) failed" if s["failed"] else ""
        lines.append(f"- {way}{failed}: FLOPs removed {s['flops_min']:.1%} to {s['flops_max']:.1%}; real speed-up "
                     f"{s['speedup_min']:.2f}x to {s['speedup_max']:.2f}x (median {s['speedup_median']:.2f}x) "
                     f"for a {res['goal']}x goal")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--goal", type=float, default=1.5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--out", default="runs/bench_latency_goal")
    ap.add_argument("--results", default=None, help="where to copy results.json (e.g. scripts/results/...)")
    args = ap.parse_args()
    from yolo_optim.bench.environment import cpu_info
    from yolo_optim.config import make_config
    from yolo_optim.data.baseline import baseline_result
    from yolo_optim.errors import OptimError
    from yolo_optim.export.base import Target
    from yolo_optim.paths import write_json_atomic

    t0 = time.time()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    res: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"rows": []}
    base = baseline_result(make_config("baseline"))
    target = Target.parse("openvino-cpu", precision=args.precision)
    cpu = cpu_info()
    res.update(command="python scripts/bench_latency_goal.py " + " ".join(sys.argv[1:]),
               date=datetime.date.today().isoformat(), goal=args.goal, precision=args.precision, imgsz=args.imgsz,
               environment=f"{cpu.get('model', '?')}, {cpu.get('logical_cores', '?')} cores")
    done = {r["name"] for r in res["rows"]}
    for i in range(args.repeats):  # the two ways alternate, so both meet the same spells of load
        for way in ("beside", "apart"):
            name = f"{way}-{i + 1}"
            if name in done:
                continue
            alone = None
            if way == "beside":
                goal = f"latency:openvino-cpu:{args.precision}:{args.goal:g}x"
            else:
                alone = source_ms(base.weights, target, args.imgsz)
                goal = f"latency:openvino-cpu:{args.precision}:{alone / args.goal:.3f}ms"
            try:
                row = {"way": way, "source_alone_ms": alone, **prune_run(base.weights, base.data, goal, out, name,
                                                                          args.imgsz)}
            except OptimError as e:  # e.g. a goal in ms "already met" because the machine sped up since
                row = {"way": way, "source_alone_ms": alone, "name": name, "target": goal, "error": str(e)}
            res["rows"].append(row)
            write_json_atomic(path, res)
            print(f"{name}: {goal} -> {row.get('flops_removed', row.get('error'))}", flush=True)
    ran = [r for r in res["rows"] if "error" not in r]
    models = {"source": str(base.weights), **{r["name"]: r["weights"] for r in ran}}
    if set(models) - set(res.get("latency", {})):
        res["latency"] = time_all(models, target, args.imgsz)
    res["summary"] = {}
    for way in ("beside", "apart"):
        rows = [r for r in ran if r["way"] == way]
        ups = [res["latency"]["source"] / res["latency"][r["name"]] for r in rows]
        if not rows:
            continue
        res["summary"][way] = {"failed": sum(r["way"] == way for r in res["rows"]) - len(rows), "flops_min": min(r["flops_removed"] for r in rows),
                               "flops_max": max(r["flops_removed"] for r in rows),
                               "speedup_min": round(min(ups), 4), "speedup_max": round(max(ups), 4),
                               "speedup_median": round(statistics.median(ups), 4)}
    res["seconds"] = round(time.time() - t0 + res.get("seconds", 0), 1)
    res["markdown"] = markdown(res)
    write_json_atomic(path, res)
    if args.results:
        write_json_atomic(Path(args.results), res)
    print(res["markdown"])


if __name__ == "__main__":
    main()
