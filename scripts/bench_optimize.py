"""Optimize figures on the demo baseline: the chosen stacked variant against the source, single techniques and
Ultralytics' own INT8 route, side by side in one run; then the variant chosen for three budgets.

    python scripts/bench_optimize.py [--model best.pt --data data.yaml] [--imgsz 256] [--latency-sizes 640,256]
                                     [--budgets 0.85,0.75,0.65] [--recipe openvino-cpu.yaml] [--out runs/bench_optimize]
                                     [--prune-targets flops:0.6] [--finetune-epochs 30]
                                     [--results scripts/results/bench_optimize.json]

1. `yolo-optim optimize` without a budget (the recipe's candidates, mAP at --imgsz, the size the model was trained at).
2. control: the unpruned source fine-tuned as the pruned models are (the recipe's epochs, lr0 and distillation), so
   pruning is not credited with more or different training.
3. every model of the search (source and each pruned model) at fp32, bf16 (where the CPU has it) and int8, plus
   Ultralytics' `export(format="openvino", int8=True)` on the same calibration images: mAP at --imgsz and latency at
   each --latency-sizes with the benchmark's harness (one `yolo_optim.benchmark` per size, exports cached); then
   every artifact of a size, Ultralytics' included, timed again in alternation, which gives the figures compared.
   Fronts: optimize (every variant), INT8 only (the source at each precision), pruning only (fp32 models), and
   Ultralytics' route; the optimize front dominates one when at every latency in the budget range its best mAP within
   that latency is at least the other's.
4. for each budget fraction f: `yolo-optim optimize budget=<f>x` (f x the source's fp32 latency, as that command
   measures it) as a fresh command with the recipe's `budget` goal only (wall time measured); then the chosen variant
   timed again after the command, in alternation with the source at fp32: within f x that source figure (and within
   the command's budget in ms?), its mAP.
Each finished part is kept in <out>/progress.json: a rerun after a kill continues from there.
Timing runs under /tmp/yolo_optim_timing.lock. Results land in --results (JSON) and <out>/results.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# the one lock every timing script shares
from yolo_optim.core.timing import TIMING_LOCK


def front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(latency, mAP) pairs on the Pareto front, fastest first."""
    best, out = -1.0, []
    for lat, acc in sorted(points):
        if acc > best:
            out.append((lat, acc))
            best = acc
    return out


def dominates(ours: list[tuple[float, float]], theirs: list[tuple[float, float]], lo: float, hi: float) -> str:
    """Compare the best mAP within each latency in [lo, hi] (-inf where nothing fits): "higher" when ours is higher
    at every latency, "never lower" when it ties somewhere, else "lower somewhere"."""
    def best(points: list[tuple[float, float]], at: float) -> float:
        return max((a for lat, a in points if lat <= at), default=float("-inf"))

    checkpoints = sorted({lo, hi, *(lat for lat, _ in ours + theirs if lo <= lat <= hi)})
    pairs = [(best(ours, at), best(theirs, at)) for at in checkpoints]
    if all(o > t for o, t in pairs):
        return "higher"
    return "never lower" if all(o >= t for o, t in pairs) else "lower somewhere"


class Progress:
    """Each finished part of the run (an optimize command, the table, Ultralytics' row, the control), kept in
    <out>/progress.json as soon as it ends: a rerun after a kill skips them. A part's key names its inputs, so a
    rerun with other settings measures again."""

    def __init__(self, out: Path, settings: dict[str, Any]) -> None:
        self.path = Path(out) / "progress.json"
        self.settings = settings
        old = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.done: dict[str, Any] = old.get("done", {}) if old.get("settings") == settings else {}

    def get(self, key: str, make: Any) -> Any:
        if key not in self.done:
            self.done[key] = make()
            from yolo_optim.paths import write_json_atomic

            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, {"settings": self.settings, "done": self.done})
        else:
            print(f"{key}: kept from an earlier run ({self.path})", flush=True)
        return self.done[key]


def recipe_with_overrides(args: argparse.Namespace) -> Path:
    """--recipe with --prune-targets / --finetune-epochs applied, written into --out (the optimize commands read it)."""
    import yaml

    if args.finetune_epochs is not None and args.finetune_epochs < 0:
        raise SystemExit("--finetune-epochs must be 0 or more")
    recipe = yaml.safe_load(Path(args.recipe).read_text()) if args.recipe else {}
    if args.prune_targets is not None:
        recipe["prune_targets"] = args.prune_targets
    if args.finetune_epochs is not None:
        recipe["finetune_epochs"] = args.finetune_epochs
    path = Path(args.out).resolve() / "recipe.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def budget_recipe(args: argparse.Namespace) -> Path:
    """The bench recipe with only the `budget` pruning goal: what a budget run needs (the front's other pruned
    models are measured once, by the run without a budget)."""
    import yaml

    recipe = yaml.safe_load(Path(args.recipe).read_text()) if args.recipe else {}
    recipe["prune_targets"] = "budget"
    path = Path(args.out) / "budget_recipe.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def optimize_cmd(args: argparse.Namespace, name: str, budget: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "yolo_optim", "optimize", f"model={args.model}", f"data={args.data}",
           f"target={args.target}", f"imgsz={args.imgsz}", f"batch={args.batch}", f"project={args.out}",
           f"name={name}", "exist_ok=True"]
    recipe = budget_recipe(args) if budget is not None else args.recipe
    if recipe:
        cmd.append(f"recipe={recipe}")
    if budget is not None:
        cmd.append(f"budget={budget}")
    return cmd


def run_optimize(args: argparse.Namespace, name: str, budget: str | None) -> dict[str, Any]:
    """One optimize command, fresh (its folder removed first) so the wall time covers the whole search."""
    shutil.rmtree(Path(args.out) / name, ignore_errors=True)
    t0 = time.time()
    proc = subprocess.run(optimize_cmd(args, name, budget), text=True, capture_output=True, check=False)
    wall = time.time() - t0
    state = json.loads((Path(args.out) / name / "optimize.json").read_text())
    if proc.returncode not in (0, 3):
        raise SystemExit(f"optimize {name} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    print(proc.stdout.strip().splitlines()[-3:], flush=True)
    return {"name": name, "budget": budget, "budget_ms": state.get("budget_ms"), "wall_s": round(wall, 1), "exit_code": proc.returncode,
            "status": state["status"], "chosen": state.get("chosen"), "closest": state.get("closest"),
            "notes": state.get("notes"), "command": " ".join(optimize_cmd(args, name, budget)[2:])}


def budget_run(args: argparse.Namespace, f: float) -> dict[str, Any]:
    """A fresh `optimize budget=<f>x` (f x the source's fp32 latency, as that command measures it)."""
    b = run_optimize(args, f"budget{f:g}", f"{f:g}x")
    b["fraction"] = f
    return b


def budget_rerun(args: argparse.Namespace, b: dict[str, Any]) -> dict[str, Any]:
    """The chosen variant timed again after its command ended, side by side with the source at fp32 (in alternation,
    as optimize times its candidates): a budget given as a fraction of the source's fp32 latency is checked against
    the source measured in the same loop, and the budget in ms as the command resolved it is checked too."""
    c = b.get("chosen")
    if not c:
        return {}
    from yolo_optim.optimize.candidates import Timing
    from yolo_optim.optimize.retime import RetimeTask, run_retime
    from yolo_optim.paths import file_lock

    stages = Path(args.out) / f"budget{b['fraction']:g}" / "stages"
    fp32 = [row for p in sorted(stages.glob(f"bench-source-fp32-{c['imgsz']}-*/results.json"))
            for row in json.loads(p.read_text())["rows"] if row.get("artifact") and row["status"] == "ok"]
    if not fp32:
        raise SystemExit(f"no source fp32 artifact under {stages} to time the budget choice against")
    runtime = f"{c['backend']}-{c['device']}"
    task = RetimeTask(name="rerun", runtime=runtime, artifacts=(("chosen", c["artifact"], c["imgsz"]),
                                                                ("source:fp32", fp32[0]["artifact"], c["imgsz"])),
                      timing=Timing(warmup=5, runs=args.runs, seconds=args.seconds, threads=0, metric="inference"))
    with file_lock(TIMING_LOCK):
        ms = {k: v["median_ms"] for k, v in run_retime(task)["latency"].items()}
    budget_now = b["fraction"] * ms["source:fp32"]
    return {"rerun_ms": round(ms["chosen"], 3), "rerun_source_fp32_ms": round(ms["source:fp32"], 3),
            "rerun_budget_ms": round(budget_now, 3), "within": ms["chosen"] <= budget_now,
            "within_ms": ms["chosen"] <= b["budget_ms"], "rerun": "side by side with the source at fp32"}


def control_map(args: argparse.Namespace, recipe: Any) -> float | None:
    """mAP50-95 of the unpruned source fine-tuned exactly as the pruned candidates are (the recipe's epochs, batch,
    learning rate and distillation, `yolo-optim prune`'s amp=auto), so pruning is credited with neither more nor
    different training."""
    epochs = recipe.finetune_epochs
    if epochs <= 0:
        return None
    from ultralytics import YOLO

    from yolo_optim.prune.evaluate import primary_map, val_map
    from yolo_optim.prune.retrain import finetune

    train_args: dict[str, Any] = {"lr0": recipe.lr0}
    if recipe.distill:  # the source distils into itself, as it distils into each pruned model
        train_args["distill_model"] = str(args.model)
    weights = finetune(Path(args.model), Path(args.data), epochs, Path(args.out) / "control", args.imgsz,
                       recipe.prune_batch(args.batch), resume=True, train_args=train_args, amp="auto")
    return primary_map(val_map(YOLO(str(weights)).model, Path(args.data), args.imgsz), "detect")


def ultralytics_int8(args: argparse.Namespace, imgsz: int, work: Path) -> Path:
    """Ultralytics' own OpenVINO INT8 export, calibrated on the same images as ours (a list file as its train split)."""
    from ultralytics import YOLO

    from yolo_optim.export.calibration import calibration_dataset_yaml, calibration_set

    calib = calibration_set(args.data, imgsz, 300, 0)
    data = calibration_dataset_yaml(calib.images, args.data, work)
    staged = work / f"source-{imgsz}.pt"
    shutil.copyfile(args.model, staged)
    return Path(YOLO(str(staged)).export(format="openvino", int8=True, data=str(data), split="train", imgsz=imgsz,
                                         batch=1, dynamic=False, device="cpu", verbose=False))


def ultralytics_row(args: argparse.Namespace, sizes: list[int]) -> dict[str, Any]:
    """Latency at each size and mAP at --imgsz of Ultralytics' INT8 route, timed with the benchmark's harness."""
    from ultralytics import YOLO

    from yolo_optim.core.deploy import time_artifact
    from yolo_optim.core.timing import TimingPlan
    from yolo_optim.export.base import Target
    from yolo_optim.paths import file_lock

    row: dict[str, Any] = {"model": "ultralytics-int8", "latency": {}}
    for size in sorted(set(sizes) | {args.imgsz}):
        path = ultralytics_int8(args, size, Path(args.out) / "ultralytics" / str(size))
        if size == args.imgsz:
            metrics = YOLO(str(path), task="detect").val(data=args.data, imgsz=size, batch=1, verbose=False,
                                                         plots=False, rect=False)
            row["map50_95"] = float(metrics.box.map)
        if size in sizes:
            with file_lock(TIMING_LOCK):
                t = time_artifact(path, Target("openvino", "cpu", "int8"), size,
                                  TimingPlan(warmup=10, runs=args.runs, seconds=args.seconds))
            row["latency"][str(size)] = round(t.inference.median_ms, 3)
    return row


def measure_all(args: argparse.Namespace, models: dict[str, str], precisions: list[str],
                sizes: list[int]) -> dict[str, dict[str, Any]]:
    """{label:precision: {map50_95, latency: {size: ms}}} for every model at every precision, one benchmark per size."""
    import yolo_optim
    from yolo_optim.paths import file_lock

    out: dict[str, dict[str, Any]] = {}
    label_of = {str(Path(p).resolve()): label for label, p in models.items()}
    for size in sorted(set(sizes) | {args.imgsz}):
        with file_lock(TIMING_LOCK):
            report = yolo_optim.benchmark(list(models.values()), args.data,
                                          targets=",".join(f"{args.target}:{p}" for p in precisions), imgsz=size,
                                          accuracy=size == args.imgsz, project=str(Path(args.out) / "tables"),
                                          name=f"at{size}", exist_ok=True, runs=args.runs, seconds=args.seconds,
                                          batch=args.batch)
        for r in report.measured():
            key = f"{label_of.get(str(Path(r.model_path).resolve()), r.model)}:{r.precision}"
            entry = out.setdefault(key, {"latency": {}, "executed": r.executed_precision})
            if size in sizes:
                entry["latency"][str(size)] = round(r.latency(), 3)
            if size == args.imgsz:
                entry["map50_95"] = r.map50_95
    return out


def artifacts_by_key(args: argparse.Namespace, models: dict[str, str], sizes: list[int]) -> dict[str, dict[str, str]]:
    """{label:precision: {size: artifact}}: what each size's benchmark (measure_all) timed, and Ultralytics' exports."""
    label_of = {str(Path(p).resolve()): label for label, p in models.items()}
    out: dict[str, dict[str, str]] = {}
    for size in sizes:
        report = json.loads((Path(args.out) / "tables" / f"at{size}" / "results.json").read_text())
        for r in report["rows"]:
            if r.get("status") == "ok" and r.get("artifact"):
                key = f"{label_of.get(str(Path(r['model_path']).resolve()), r['model'])}:{r['precision']}"
                out.setdefault(key, {})[str(size)] = r["artifact"]
        theirs = sorted((Path(args.out) / "ultralytics" / str(size)).glob("*_int8_openvino_model"))
        if theirs:
            out.setdefault("ultralytics-int8:int8", {})[str(size)] = str(theirs[0])
    return out


def retime(args: argparse.Namespace, artifacts: dict[str, dict[str, str]], sizes: list[int]) -> dict[str, Any]:
    """Every artifact at each size timed again in alternation (a, b, c, a, b, c, ...), so all of them see the same
    machine load. The benchmark times variants one after another, and on a shared machine a latency taken minutes
    apart can differ by 15% or more, which is more than some of the gaps the fronts compare."""
    import numpy as np

    from yolo_optim.core.timing import TimingPlan, time_interleaved
    from yolo_optim.export.base import get_backend
    from yolo_optim.paths import file_lock

    backend = get_backend(args.target.split("-")[0])
    out: dict[str, Any] = {}
    for size in sizes:
        runners = {k: backend.load_runner(a[str(size)]) for k, a in artifacts.items() if str(size) in a}
        x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
        with file_lock(TIMING_LOCK):
            stats = time_interleaved({k: (lambda r=r, x=x: r(x)) for k, r in runners.items()},
                                     TimingPlan(warmup=10, runs=args.runs, seconds=args.seconds))
        for k, st in stats.items():
            out.setdefault(k, {})[str(size)] = round(st.median_ms, 3)
        print(f"interleaved @{size}: " + ", ".join(f"{k} {v[str(size)]:.2f} ms" for k, v in out.items()), flush=True)
    return out


def markdown(res: dict[str, Any]) -> str:
    sizes = res["latency_sizes"]
    control = res["control_map"]
    lines = [f"Source fp32 mAP50-95 {res['source_map']:.4f}; control (unpruned, fine-tuned {res['epochs']} epochs) "
             + ("not run" if control is None else f"{control:.4f}") + ". Latency: batch-1 raw inference, median ms, "
             "every artifact of a size timed in alternation with the others.", "",
             "| variant | mAP50-95 | " + " | ".join(f"ms @{s} | x fp32 @{s}" for s in sizes) + " |",
             "|---|---|" + "---|---|" * len(sizes)]
    base = res["table"].get("source:fp32", {}).get("latency", {})
    for key, row in sorted(res["table"].items(), key=lambda kv: kv[1]["latency"].get(str(sizes[0]), 1e9)):
        mark = " **(chosen)**" if key == res["chosen_key"] else ""
        cells = []
        for s in sizes:
            ms = row["latency"].get(str(s))
            ref = base.get(str(s))
            cells += ["–" if ms is None else f"{ms:.2f}", "–" if not (ms and ref) else f"{ref / ms:.2f}x"]
        m = row.get("map50_95")
        lines.append(f"| {key}{mark} | {'–' if m is None else f'{m:.4f}'} | " + " | ".join(cells) + " |")
    lines += ["", "mAP of the optimize front against each single-technique front, at every latency in the budget "
              "range: " + ", ".join(f"{k} @{s}: {v}" for s, d in res["dominates"].items() for k, v in d.items()), "",
        "| budget | chosen | latency (rerun) | within | mAP50-95 | wall time |", "|---|---|---|---|---|---|"]
    side_by_side = any("rerun_source_fp32_ms" in b for b in res["budgets"])
    if side_by_side:  # the rerun timed the choice beside the source at fp32: both budget readings are shown
        lines[-2:] = [("| budget | chosen | latency (rerun) | source fp32 (rerun) | budget on the rerun | within | "
                       "within the command's ms | mAP50-95 | wall time |"), "|---|---|---|---|---|---|---|---|---|"]
    for b in res["budgets"]:
        c = b.get("chosen") or {}
        rerun = f"{b.get('rerun_ms', float('nan')):.2f} ms | "
        if side_by_side:
            rerun += (f"{b.get('rerun_source_fp32_ms', float('nan')):.2f} ms | "
                      f"{b['fraction']}x = {b.get('rerun_budget_ms', float('nan')):.2f} ms | {b.get('within')} | "
                      f"{b.get('within_ms')}")
        else:
            rerun += f"{b.get('within')}"
        near = b.get("closest") or {}
        what = f"{c['model']}:{c['precision']}" if c else "none" + (
            f" (closest: {near['model']}:{near['precision']}, {near['inference']['median_ms']:.2f} ms, mAP50-95 "
            f"{near['map50_95']:.4f})" if near.get("inference") and near.get("map50_95") is not None else "")
        lines.append(f"| {b['fraction']}x = {b['budget_ms']:.2f} ms | {what} | {rerun} | "
                     f"{c.get('map50_95', float('nan')):.4f} | {b['wall_s'] / 60:.1f} min |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="source .pt (default: the demo baseline)")
    ap.add_argument("--data", help="data.yaml (default: the demo dataset)")
    ap.add_argument("--target", default="openvino-cpu")
    ap.add_argument("--imgsz", type=int, default=256, help="the size the model was trained at: mAP is measured here")
    ap.add_argument("--latency-sizes", default="640,256")
    ap.add_argument("--budgets", default="0.85,0.75,0.65",
                    help="fractions of the source's fp32 latency (at 256 px on a 2-core CPU, fixed per-layer costs "
                         "keep even the most pruned INT8 model near 0.5x, so the defaults stay above that)")
    ap.add_argument("--recipe", default=str(ROOT / "scripts" / "bench_optimize_recipe.yaml"),
                    help="recipe YAML (default: scripts/bench_optimize_recipe.yaml); the budget runs use it with "
                         "prune_targets: budget")
    ap.add_argument("--prune-targets", help="replaces the recipe's prune_targets (e.g. flops:0.6)")
    ap.add_argument("--finetune-epochs", type=int, help="replaces the recipe's finetune_epochs")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--out", default="runs/bench_optimize")
    ap.add_argument("--results", default=str(ROOT / "scripts" / "results" / "bench_optimize.json"))
    args = ap.parse_args()
    if not args.model:
        from yolo_optim.config import make_config
        from yolo_optim.data.baseline import resolve_model_and_data

        args.model, args.data = resolve_model_and_data(make_config("optimize", {"data": args.data}))
    sizes = [int(s) for s in args.latency_sizes.split(",")]
    if args.prune_targets is not None or args.finetune_epochs is not None:
        args.recipe = str(recipe_with_overrides(args))
    from yolo_optim.export.base import Target, get_backend
    from yolo_optim.optimize.recipe import load_recipe

    recipe = load_recipe(args.target, args.recipe)
    precisions = [p for p in recipe.precision_list()
                  if get_backend(args.target.split("-")[0]).supports(Target.parse(args.target, precision=p))[0]]
    t0 = time.time()
    # the recipe's content, not only its path, decides whether earlier parts still hold
    progress = Progress(Path(args.out), {**{k: v for k, v in vars(args).items() if k not in ("results", "out")},
                                         "recipe_content": recipe.to_dict()})
    main_run = progress.get("optimize:nobudget", lambda: run_optimize(args, "nobudget", None))
    stages = Path(args.out) / "nobudget" / "stages"
    pruned = {json.loads(p.read_text())["weights"]: p.parent.name for p in stages.glob("prune-*/done.json")}
    models = {"source": args.model, **{name.split("-")[1] + "-" + name.split("-")[2]: w for w, name in pruned.items()}}
    table = progress.get("table", lambda: measure_all(args, models, precisions, sizes))
    table["ultralytics-int8:int8"] = progress.get("ultralytics", lambda: ultralytics_row(args, sizes))
    interleaved = progress.get("interleaved", lambda: retime(args, artifacts_by_key(args, models, sizes), sizes))
    for key, entry in table.items():  # the side-by-side figures replace the one-after-another ones, kept beside
        if key in interleaved:
            entry["latency_sequential"] = entry.get("latency_sequential", entry["latency"])
            entry["latency"] = interleaved[key]
    chosen = main_run["chosen"] or {}
    chosen_key = next((k for k in table if k.endswith(f":{chosen.get('precision')}")
                       and k.split(":")[0] in chosen.get("model", "")), None)
    groups = {"optimize": [k for k in table if not k.startswith("ultralytics")], "int8-only": [k for k in table if k.startswith("source:")],
              "pruning-only": [k for k in table if k.endswith(":fp32") and not k.startswith("ultra")],
              "ultralytics": ["source:fp32", "ultralytics-int8:int8"]}
    dom: dict[str, dict[str, str]] = {}
    for s in sizes:
        pts = {g: front([(table[k]["latency"][str(s)], table[k]["map50_95"]) for k in keys
                         if str(s) in table.get(k, {}).get("latency", {}) and table[k].get("map50_95") is not None])
               for g, keys in groups.items()}
        # the budget range: from the tightest budget fraction of the source's fp32 latency up to that latency
        hi = table["source:fp32"]["latency"][str(s)]
        lo = hi * min(float(x) for x in args.budgets.split(",") if x)
        dom[str(s)] = {g: dominates(pts["optimize"], p, lo, hi) for g, p in pts.items() if g != "optimize"}
    budgets = []
    results = json.loads((Path(args.out) / "nobudget" / "results.json").read_text())
    source_rows = [r for r in results["rows"]
                   if r["model"] == "source" and r["precision"] == "fp32" and r["status"] == "ok"]
    fp32_ms = source_rows[0]["inference"]["median_ms"] if source_rows else None
    for f in [float(x) for x in args.budgets.split(",") if x] if fp32_ms else []:
        b = dict(progress.get(f"budget:{f:g}", lambda f=f: budget_run(args, f)))
        b.update(progress.get(f"budget-rerun:{f:g}", lambda b=b: budget_rerun(args, b)))
        budgets.append(b)
    res = {"command": " ".join(sys.argv), "model": args.model, "data": args.data, "imgsz": args.imgsz,
           "latency_sizes": sizes, "epochs": recipe.finetune_epochs, "recipe": recipe.to_dict(),
           "source_map": table["source:fp32"].get("map50_95"),
           "control_map": progress.get("control", lambda: control_map(args, recipe)),
           "optimize": main_run, "table": table, "chosen_key": chosen_key, "dominates": dom, "budgets": budgets,
           "environment": results["runs"][0].get("environment") if results["runs"] else None, "seconds": round(time.time() - t0, 1)}
    if chosen_key:
        c = table[chosen_key]
        res["chosen_vs"] = {s: {p: round(table[f"source:{p}"]["latency"][str(s)] / c["latency"][str(s)], 3)
                                for p in ("fp32", "bf16") if f"source:{p}" in table} for s in sizes}
        if res["control_map"] is not None and c.get("map50_95") is not None:
            res["chosen_vs_control_points"] = round(100 * (c["map50_95"] - res["control_map"]), 2)
    from yolo_optim.paths import write_json_atomic, write_text_atomic

    write_json_atomic(Path(args.results), res)
    write_text_atomic(Path(args.out) / "results.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
