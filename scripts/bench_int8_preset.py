"""OpenVINO INT8 on the CPU: symmetric against asymmetric activations (NNCF presets), side by side in one run.

    python scripts/bench_int8_preset.py [--model best.pt --data data.yaml] [--imgsz 256] [--latency-sizes 256,640]

The evidence behind yolo_optim.export.openvino.quantization_settings: each preset exports the same source with the
same calibration images through yolo_optim.export (the package's own path; only the preset differs), mAP50-95 with
Ultralytics' validator at --imgsz, batch-1 latency with the benchmark's harness, the presets timed in alternation.
Results: scripts/results/bench_int8_preset.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRESETS = ("performance", "mixed")  # symmetric activations; asymmetric activations (both: symmetric weights)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="weights (.pt); default: the demo baseline")
    ap.add_argument("--data", help="data.yaml; default: the demo dataset")
    ap.add_argument("--imgsz", type=int, default=256, help="size mAP is measured at")
    ap.add_argument("--latency-sizes", default="256,640")
    ap.add_argument("--out", default="runs/bench_int8_preset")
    ap.add_argument("--results", default=str(ROOT / "scripts" / "results" / "bench_int8_preset.json"))
    args = ap.parse_args()
    os.environ["YOLO_OPTIM_CACHE"] = tempfile.mkdtemp(prefix="int8-preset-")  # no artifact reused from a cache
    import nncf
    import numpy as np

    import yolo_optim.export.openvino as openvino_backend
    from yolo_optim.bench.environment import cpu_info
    from yolo_optim.config import make_config
    from yolo_optim.core.timing import TimingPlan, time_interleaved
    from yolo_optim.data.baseline import resolve_model_and_data
    from yolo_optim.export import export, get_backend
    from yolo_optim.export.validate import val_artifact
    from yolo_optim.paths import write_json_atomic

    model, data = resolve_model_and_data(make_config("optimize", {"model": args.model, "data": args.data}))
    sizes = sorted({args.imgsz, *(int(s) for s in args.latency_sizes.split(","))})
    chosen = openvino_backend.quantization_settings
    artifacts: dict[tuple[str, int], Path] = {}
    for preset in PRESETS:
        # Only the preset is replaced; the target device is the one the package picks for this CPU.
        def settings(device: str, p: str = preset) -> dict:
            return {**chosen(device), "preset": getattr(nncf.QuantizationPreset, p.upper())}

        openvino_backend.quantization_settings = settings
        for size in sizes:
            r = export(model, "openvino-cpu", "int8", data=data, imgsz=size, project=str(Path(args.out).resolve()),
                       name=f"{preset}-{size}", exist_ok=True, guard="off")
            artifacts[(preset, size)] = Path(r.path)
    openvino_backend.quantization_settings = chosen
    rows: dict[str, dict] = {}
    for preset in PRESETS:
        m = val_artifact(artifacts[(preset, args.imgsz)], data)
        rows[preset] = {"map50_95": m.map50_95, "map50": m.map50}
    backend = get_backend("openvino")
    for size in sizes:
        x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
        runners = {p: backend.load_runner(artifacts[(p, size)]) for p in PRESETS}
        stats = time_interleaved({p: (lambda r=r: r(x)) for p, r in runners.items()},
                                 TimingPlan(warmup=10, runs=200, seconds=30))
        for p, s in stats.items():
            rows[p][f"ms_{size}"] = s.median_ms
    results = {"command": "python scripts/bench_int8_preset.py " + " ".join(sys.argv[1:]),
               "date": time.strftime("%Y-%m-%d"), "cpu": cpu_info()["model"], "cores": os.cpu_count(),
               "model": str(model), "imgsz": args.imgsz, "presets": rows,
               "default": chosen("cpu")["preset"].value}
    write_json_atomic(Path(args.results), results)
    print(render(results))
    return 0


def render(results: dict) -> str:
    sizes = sorted(int(k[3:]) for k in next(iter(results["presets"].values())) if k.startswith("ms_"))
    head = "| NNCF preset | activations | mAP50-95 | mAP50 | " + " | ".join(f"ms @{s}" for s in sizes) + " |"
    lines = [head, "|---|---|---|---|" + "---|" * len(sizes)]
    for preset, r in results["presets"].items():
        kind = "asymmetric" if preset == "mixed" else "symmetric"
        mark = " (default)" if preset == results.get("default") else ""
        lines.append(f"| {preset}{mark} | {kind} | {r['map50_95']:.4f} | {r['map50']:.4f} | "
                     + " | ".join(f"{r[f'ms_{s}']:.2f}" for s in sizes) + " |")
    return (f"`{results['command'].strip()}` ({results['cpu']}, {results['cores']} cores, OpenVINO INT8, mAP at "
            f"{results['imgsz']} px, batch-1 inference medians):\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
