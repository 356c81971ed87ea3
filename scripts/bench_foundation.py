"""Figures for the foundation: demo-data generation speed, the demo baseline's accuracy, cached-baseline latency.

Usage: python scripts/bench_foundation.py [--images 500] [--out runs/optim/scripts/foundation.json]
Trains the demo baseline on first use (yolo11n, 30 epochs, 256 px; tens of minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from yolo_optim.config import make_config
from yolo_optim.data.baseline import baseline_result
from yolo_optim.data.demo import make_demo_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=500, help="total images to generate (80%% train, 20%% val)")
    ap.add_argument("--out", default="runs/optim/scripts/foundation.json")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        make_demo_dataset(Path(tmp) / "ds", train=args.images * 4 // 5, val=args.images // 5, size=256)
        gen_s = time.perf_counter() - t0

    result = baseline_result(make_config("baseline"))  # trains once, then cached
    t0 = time.perf_counter()
    baseline_result(make_config("baseline"))
    cached_s = time.perf_counter() - t0

    figures = {
        "generate_images": args.images, "generate_seconds": round(gen_s, 2),
        "baseline_weights": str(result.weights),
        "baseline_mAP50-95": round(result.metrics.get("metrics/mAP50-95(B)", float("nan")), 4),
        "baseline_mAP50": round(result.metrics.get("metrics/mAP50(B)", float("nan")), 4),
        "cached_baseline_seconds": round(cached_s, 4),
        "cpu": platform.processor() or platform.machine(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
