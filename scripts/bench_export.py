"""Export figures: size, mAP50-95 and batch-1 latency of every export variant, side by side in one run.

    python scripts/bench_export.py                      # the demo baseline, accuracy at 256, latency at 640 and 256
    python scripts/bench_export.py --model best.pt --data data.yaml --acc-imgsz 640 --lat-imgsz 640

Rows: OpenVINO fp32/bf16/fp16/int8w/int8, ONNX Runtime fp32/fp16/int8w/int8, and Ultralytics' own INT8 exports
(OpenVINO and ONNX) calibrated on the very same training images, for reference. Accuracy: every artifact through
Ultralytics' validator at the precision it records. Latency: raw inference, fixed threads, warm-up, then
`--cycles` interleaved passes timing a burst of every variant in turn (so a slow spell on a shared machine hits
all rows alike); the figure is the median of the burst medians. Timing holds /tmp/yolo_optim_timing.lock.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("YOLO_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yolo_optim.core.timing import TIMING_LOCK, TimingPlan, time_callable
from yolo_optim.errors import OptimError
from yolo_optim.export import export, get_backend, read_artifact_metadata
from yolo_optim.export.artifact import quiet_ultralytics
from yolo_optim.export.calibration import calibration_set
from yolo_optim.export.validate import val_artifact, val_callable, val_checkpoint
from yolo_optim.paths import file_lock

OURS = ["openvino-cpu:fp32", "openvino-cpu:bf16", "openvino-cpu:fp16", "openvino-cpu:int8w", "openvino-cpu:int8",
        "onnxruntime-cpu:fp32", "onnxruntime-cpu:fp16", "onnxruntime-cpu:int8w", "onnxruntime-cpu:int8"]
THEIRS = ["ultralytics-openvino:int8", "ultralytics-openvino:int8@bf16", "ultralytics-onnx:int8"]


def size_mb(path: Path) -> float:
    files = [q for q in path.rglob("*") if q.is_file()] if path.is_dir() else [path]
    return sum(q.stat().st_size for q in files if q.suffix != ".yaml") / 2**20


def ultralytics_int8(model: Path, fmt: str, imgsz: int, calib_images: list[Path], work: Path) -> Path:
    """Ultralytics' own INT8 export, calibrated on exactly our calibration images (a list file as its train split)."""
    from ultralytics import YOLO

    from yolo_optim.export.calibration import calibration_dataset_yaml

    data = calibration_dataset_yaml(calib_images, args.data, work)
    staged = work / f"{fmt}-{imgsz}.pt"
    shutil.copyfile(model, staged)
    with quiet_ultralytics():
        out = YOLO(str(staged)).export(format=fmt, quantize=8, data=str(data), split="train", imgsz=imgsz, batch=1,
                                       dynamic=False, device="cpu", verbose=False)
    return Path(out)


def openvino_callable(path: Path, hint: str, threads: int) -> Callable[[np.ndarray], Any]:
    import openvino as ov

    xml = path if path.suffix == ".xml" else next(path.glob("*.xml"))
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads}
    compiled = ov.Core().compile_model(str(xml), "CPU", config)
    request = compiled.create_infer_request()
    return lambda x: list(request.infer({0: x}, share_inputs=True).values())


def make_variants(imgsz: int, calib: Any, root: Path) -> dict[str, dict[str, Any]]:
    """Export every variant at imgsz; unsupported ones are recorded with the reason."""
    rows: dict[str, dict[str, Any]] = {}
    for name in OURS:
        t0 = time.perf_counter()
        try:
            res = export(str(args.model), name, data=str(args.data), imgsz=imgsz, calib_images=args.calib,
                         guard="off", project=str(root / str(imgsz)), name=name.replace(":", "-"), exist_ok=True)
        except OptimError as e:
            rows[name] = {"error": str(e)}
            print(f"[{imgsz}] {name}: {e}", flush=True)
            continue
        meta = read_artifact_metadata(res.path)
        rows[name] = {"path": res.path, "executed_precision": meta.get("executed_precision"),
                      "inference_precision_hint": meta.get("inference_precision_hint"), "size_mb": size_mb(res.path),
                      "export_s": round(time.perf_counter() - t0, 1), "quantization": meta.get("quantization")}
        print(f"[{imgsz}] {name}: exported in {rows[name]['export_s']} s", flush=True)
    for name, fmt in (("ultralytics-openvino:int8", "openvino"), ("ultralytics-onnx:int8", "onnx")):
        t0 = time.perf_counter()
        path = ultralytics_int8(Path(args.model), fmt, imgsz, list(calib.images), root / str(imgsz) / "ultralytics")
        rows[name] = {"path": path, "size_mb": size_mb(path), "export_s": round(time.perf_counter() - t0, 1)}
        print(f"[{imgsz}] {name}: exported in {rows[name]['export_s']} s", flush=True)
    # the same Ultralytics IR as its own runtime runs it by default on this CPU: the float remainder in bf16
    rows["ultralytics-openvino:int8@bf16"] = {**rows["ultralytics-openvino:int8"], "hint": "bf16"}
    return rows


def callables(rows: dict[str, dict[str, Any]], hint_theirs: str) -> dict[str, Callable[[np.ndarray], Any]]:
    """Runners at each artifact's recorded precision; Ultralytics' OpenVINO INT8 at the hint our INT8 runs at."""
    out = {}
    for name, row in rows.items():
        if "error" in row:
            continue
        if name.startswith("ultralytics-openvino"):
            out[name] = openvino_callable(row["path"], row.get("hint", hint_theirs), args.threads)
        elif name == "ultralytics-onnx:int8":
            out[name] = get_backend("onnxruntime").load_runner(row["path"], threads=args.threads)
        else:
            out[name] = get_backend(name.split("-")[0]).load_runner(row["path"], threads=args.threads)
    return out


def measure_latency(rows: dict[str, dict[str, Any]], imgsz: int, hint_theirs: str) -> None:
    """Interleaved timing: `--cycles` passes, each timing a short burst of every variant in turn.

    On a shared machine the load changes within seconds; bursts in rotation spread it evenly over all rows, so
    their ratios stay meaningful. A row's figure is the median over its burst medians.
    """
    runners = callables(rows, hint_theirs)
    x = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    burst = TimingPlan(warmup=2, runs=args.burst, seconds=60.0, min_runs=args.burst)
    per_burst: dict[str, list[float]] = {k: [] for k in runners}
    with file_lock(TIMING_LOCK):
        for fn in runners.values():
            time_callable(lambda fn=fn: fn(x), TimingPlan(warmup=args.warmup, runs=1, seconds=1.0, min_runs=1))
        for c in range(args.cycles):
            for name, fn in runners.items():
                per_burst[name].append(time_callable(lambda fn=fn: fn(x), burst).median_ms)
            if (c + 1) % 10 == 0:
                print(f"[{imgsz}] latency cycle {c + 1}/{args.cycles}: " +
                      ", ".join(f"{k}={np.median(v):.2f}" for k, v in per_burst.items()), flush=True)
    for name, values in per_burst.items():
        rows[name]["latency_ms"] = float(np.median(values))
        rows[name]["latency_iqr_ms"] = [round(float(q), 3) for q in np.percentile(values, [25, 75])]


def measure_accuracy(rows: dict[str, dict[str, Any]], imgsz: int, hint_theirs: str) -> float:
    ref = val_checkpoint(args.model, args.data, imgsz, batch=16)
    meta = None
    for name, row in rows.items():
        if "error" in row:
            continue
        if name.startswith("ultralytics-"):
            meta = meta or read_artifact_metadata(rows["openvino-cpu:fp32"]["path"])
            fn = callables({name: row}, hint_theirs)[name]
            m = val_callable(fn, args.data, imgsz, meta["names"], meta.get("task", "detect"))
        else:
            m = val_artifact(row["path"], args.data)
        row["map50_95"], row["map50"], row["drop"] = m.map50_95, m.map50, ref.map50_95 - m.map50_95
        print(f"[{imgsz}] {name}: mAP50-95 {m.map50_95:.4f} (FP32 torch {ref.map50_95:.4f})", flush=True)
    return ref.map50_95


def table(results: dict[str, Any]) -> str:
    acc, lat = results["accuracy_imgsz"], results["latency_imgsz"]
    lines = [f"| variant | runs at | size MB | mAP50-95 @{acc} | drop | " +
             " | ".join(f"ms @{s} | x same-backend fp32 @{s}" for s in lat) + " |",
             "|---|---|---|---|---|" + "---|---|" * len(lat)]
    for name in [*OURS, *THEIRS]:
        a = results["sizes"][str(acc)].get(name, {})
        if "error" in a:
            # the variant column already names the target: keep the reason whole, without the "cannot export to" lead
            reason = a["error"].split(": ", 1)[1] if a["error"].startswith("cannot export to") else a["error"]
            lines.append(f"| {name} | not supported: {reason} |")
            continue
        runs_at = a.get("executed_precision") or "int8"
        if runs_at in ("int8", "int8w") and "openvino" in name:
            runs_at += f" ({a.get('inference_precision_hint') or a.get('hint') or results['hint_theirs']} rest)"
        cells = [name, runs_at,
                 f"{a.get('size_mb', float('nan')):.2f}", f"{a.get('map50_95', float('nan')):.4f}",
                 f"{a.get('drop', float('nan')):+.4f}"]
        for s in lat:
            row = results["sizes"][str(s)].get(name, {})
            base = results["sizes"][str(s)].get(("openvino" if "openvino" in name else "onnxruntime") + "-cpu:fp32", {})
            ms = row.get("latency_ms")
            ratio = f"{ms / base['latency_ms']:.2f}" if ms and base.get("latency_ms") else "-"
            cells += [f"{ms:.2f}" if ms else "-", ratio]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    global args
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="weights (.pt); default: the demo baseline")
    p.add_argument("--data", help="dataset YAML; default: the demo baseline's dataset")
    p.add_argument("--acc-imgsz", type=int, default=256, help="image size for accuracy (the training size)")
    p.add_argument("--lat-imgsz", default="640,256", help="comma list of image sizes for latency")
    p.add_argument("--calib", type=int, default=300, help="calibration images from the training split")
    p.add_argument("--threads", type=int, default=2, help="inference threads for every runtime")
    p.add_argument("--cycles", type=int, default=30, help="interleaved timing passes over all variants")
    p.add_argument("--burst", type=int, default=10, help="timed calls per variant and pass")
    p.add_argument("--warmup", type=int, default=20, help="untimed calls per variant before timing")
    p.add_argument("--out", default="runs/optim/bench_export", help="output folder")
    p.add_argument("--retime", action="store_true",
                   help="reuse the artifacts and accuracy of a previous run in --out; measure latency again")
    args = p.parse_args()
    if args.retime:
        saved = json.loads((Path(args.out) / "results.json").read_text())
        args.model, args.data = saved["model"], saved["data"]
    if not args.model:
        from yolo_optim.config import make_config
        from yolo_optim.data.baseline import baseline_result

        base = baseline_result(make_config("baseline"))
        args.model, args.data = str(base.weights), str(args.data or base.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lat = [int(s) for s in args.lat_imgsz.split(",")]
    sizes = sorted({args.acc_imgsz, *lat})
    results: dict[str, Any] = {"model": args.model, "data": args.data, "accuracy_imgsz": args.acc_imgsz,
                               "latency_imgsz": lat, "threads": args.threads, "calib_images": args.calib,
                               "cpu": platform.processor() or platform.machine(), "sizes": {}}
    previous = json.loads((out / "results.json").read_text()) if args.retime else None
    if previous:
        results.update({k: previous[k] for k in ("fp32_torch_map50_95", "hint_theirs") if k in previous})
    for imgsz in sizes:
        if previous:  # same artifacts, same accuracy: only the timing is repeated
            rows = {k: {kk: (Path(vv) if kk == "path" else vv) for kk, vv in v.items()}
                    for k, v in previous["sizes"][str(imgsz)].items()}
        else:
            rows = make_variants(imgsz, calibration_set(args.data, imgsz, args.calib, 0), out / "artifacts")
        hint = rows.get("openvino-cpu:int8", {}).get("inference_precision_hint") or "f32"
        results["hint_theirs"] = hint
        if imgsz in lat:
            measure_latency(rows, imgsz, hint)
        if imgsz == args.acc_imgsz and not previous:
            results["fp32_torch_map50_95"] = measure_accuracy(rows, imgsz, hint)
        results["sizes"][str(imgsz)] = {k: {kk: (str(vv) if isinstance(vv, Path) else vv) for kk, vv in v.items()}
                                        for k, v in rows.items()}
        (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    md = table(results)
    (out / "results.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
