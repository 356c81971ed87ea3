"""OpenVINO INT8 on the CPU: the layers kept in float (yolo_optim's float scopes) against Ultralytics' own INT8
export, side by side in one run.

    python scripts/bench_int8_scope.py [--model best.pt --data data.yaml] [--imgsz 256] [--latency-sizes 256,640]
                                       [--rounds 2]

The same source and the same calibration images (yolo_optim's sample of the train split, handed to Ultralytics as a
list file) through: yolo_optim's OpenVINO backend with float_scope 0 (the default: the head's decode stays float)
and 1 (also the prediction convolutions and the stem), and Ultralytics' `export(format="openvino", int8=True)`,
whose ignored scope is the Detect module's own ops and every Sigmoid. The fp32 IR is the reference. mAP50-95 with
Ultralytics' validator at --imgsz; batch-1 raw inference timed in alternation, --rounds times over.
Results: scripts/results/bench_int8_scope.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {"fp32": "fp32 IR (reference)", "scope0": "yolo_optim INT8, float_scope 0 (default)",
            "scope1": "yolo_optim INT8, float_scope 1", "ultralytics": "Ultralytics INT8 export"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="weights (.pt); default: the demo baseline")
    ap.add_argument("--data", help="data.yaml; default: the demo dataset")
    ap.add_argument("--imgsz", type=int, default=256, help="size mAP is measured at")
    ap.add_argument("--latency-sizes", default="256,640")
    ap.add_argument("--rounds", type=int, default=2, help="alternating timing loops per size")
    ap.add_argument("--out", default="runs/bench_int8_scope")
    ap.add_argument("--results", default=str(ROOT / "scripts" / "results" / "bench_int8_scope.json"))
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    os.environ["YOLO_OPTIM_CACHE"] = tempfile.mkdtemp(prefix="int8-scope-")  # no artifact reused from a cache
    import numpy as np
    from ultralytics import YOLO

    from yolo_optim.bench.environment import cpu_info
    from yolo_optim.config import make_config
    from yolo_optim.core.options import ExportOptions
    from yolo_optim.core.timing import TimingPlan, time_interleaved
    from yolo_optim.data.baseline import resolve_model_and_data
    from yolo_optim.export import get_backend
    from yolo_optim.export.base import Target
    from yolo_optim.export.calibration import calibration_dataset_yaml, calibration_set
    from yolo_optim.export.validate import val_artifact
    from yolo_optim.paths import write_json_atomic

    model, data = resolve_model_and_data(make_config("optimize", {"model": args.model, "data": args.data}))
    out = Path(args.out).resolve()
    sizes = sorted({args.imgsz, *(int(s) for s in args.latency_sizes.split(","))})
    backend = get_backend("openvino")
    artifacts: dict[tuple[str, int], Path] = {}
    for size in sizes:
        calib = calibration_set(data, size, 300, 0)
        for name, precision, scope in (("fp32", "fp32", 0), ("scope0", "int8", 0), ("scope1", "int8", 1)):
            folder = out / f"{name}-{size}"
            folder.mkdir(parents=True, exist_ok=True)
            options = ExportOptions(imgsz=size, data=str(data), calibration=calib, float_scope=scope)
            artifacts[(name, size)] = backend.export(YOLO(str(model)), Target("openvino", "cpu", precision), options,
                                                     folder)
        work = out / f"ultralytics-{size}"
        work.mkdir(parents=True, exist_ok=True)
        staged = work / Path(model).name  # Ultralytics writes its export beside the weights: a copy, not the user's
        shutil.copyfile(model, staged)
        listed = calibration_dataset_yaml(calib.images, data, work)
        artifacts[("ultralytics", size)] = Path(YOLO(str(staged)).export(
            format="openvino", int8=True, data=str(listed), split="train", imgsz=size, batch=1, dynamic=False,
            device="cpu", verbose=False))
    rows: dict[str, dict] = {}
    for name in VARIANTS:
        m = val_artifact(artifacts[(name, args.imgsz)], data)
        rows[name] = {"label": VARIANTS[name], "map50_95": m.map50_95, "map50": m.map50}
    for size in sizes:
        x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
        runners = {n: backend.load_runner(artifacts[(n, size)]) for n in VARIANTS}
        for _ in range(args.rounds):
            stats = time_interleaved({n: (lambda r=r: r(x)) for n, r in runners.items()},
                                     TimingPlan(warmup=10, runs=200, seconds=10))
            for n, s in stats.items():
                rows[n].setdefault(f"rounds_{size}", []).append(round(s.median_ms, 3))
        for n in VARIANTS:
            rows[n][f"ms_{size}"] = statistics.median(rows[n][f"rounds_{size}"])
    results = {"command": "python scripts/bench_int8_scope.py " + " ".join(sys.argv[1:]),
               "date": time.strftime("%Y-%m-%d"), "cpu": cpu_info()["model"], "cores": os.cpu_count(),
               "isa": cpu_info().get("isa"), "model": str(model), "imgsz": args.imgsz, "rounds": args.rounds,
               "variants": rows}
    write_json_atomic(Path(args.results), results)
    print(render(results))
    return 0


def render(results: dict) -> str:
    rows = results["variants"]
    sizes = sorted(int(k[3:]) for k in next(iter(rows.values())) if k.startswith("ms_"))
    ref = rows["fp32"]
    lines = ["| variant | mAP50-95 | mAP50 | " + " | ".join(f"ms @{s} (rounds)" for s in sizes) + " |",
             "|---|---|---|" + "---|" * len(sizes)]
    for r in rows.values():
        cells = [f"{r[f'ms_{s}']:.2f} ({', '.join(f'{v:.2f}' for v in r[f'rounds_{s}'])}), "
                 f"{ref[f'ms_{s}'] / r[f'ms_{s}']:.2f}x fp32" for s in sizes]
        lines.append(f"| {r['label']} | {r['map50_95']:.4f} | {r['map50']:.4f} | " + " | ".join(cells) + " |")
    return (f"`{results['command'].strip()}` ({results['cpu']}, {results['cores']} cores, OpenVINO, mAP at "
            f"{results['imgsz']} px, batch-1 inference medians, all variants of a size timed in alternation, "
            f"{results['rounds']} rounds):\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
