"""Sensitivity probes of `optimize` on one process against a two-node Ray cluster on this machine, side by side.

The probes (each channel group of the model pruned alone, then validated) are the slow part of
`prune_allocation: sensitivity`. `optimize address=...` splits them into one shard per task slot of the cluster; this
script times the same probes (a) as one shard in this process, as optimize runs them without `address=`, and (b) as
two shards on a cluster of two 1-CPU nodes started on 127.0.0.1 (cluster start-up not counted, the driver's
connection counted), then checks that both measured the same table.

    python scripts/bench_optimize_ray.py --out scripts/results/bench_optimize_ray.json   # then render_readme.py

Model and data default to the shipped demo baseline and the demo dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def probe_tasks(model: str, data: str, keys: dict, shards: int, imgsz: int, batch: int) -> list:
    from yolo_optim.models import file_sha256
    from yolo_optim.optimize.candidates import ProbeTask

    return [ProbeTask(name="sensitivity", model=model, model_sha256=file_sha256(model), data=data, data_sha256="-",
                      imgsz=imgsz, options=keys, shard=i, shards=shards, batch=batch) for i in range(shards)]


def run(executor, tasks: list, root: Path) -> tuple[float, list, list]:
    """Wall seconds of the whole stage, the merged rows, and where each shard ran."""
    from yolo_optim.optimize.candidates import run_task
    from yolo_optim.prune.sensitivity import read_table

    t0 = time.perf_counter()
    results = list(executor.map(run_task, str(root), tasks))
    wall = time.perf_counter() - t0
    errors = [e for _, _, e in results if e]
    if errors:
        raise SystemExit(f"a probe shard failed: {errors[0]}")
    rows = sorted((r for _, res, _ in results for r in read_table(Path(res["table"]))), key=lambda r: (r.group, r.ratio))
    return wall, rows, [{"shard": t.shard, "node": res["node"], "seconds": res["seconds"],
                         "probes": res["probes"]} for t, res, _ in results]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="a .pt checkpoint (default: the shipped demo baseline)")
    p.add_argument("--data", help="dataset YAML (default: the demo dataset)")
    p.add_argument("--imgsz", type=int, default=256)
    p.add_argument("--ratios", default="0.5", help="sensitivity_ratios")
    p.add_argument("--images", type=int, default=24, help="sensitivity_images: val images per probe")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--out", type=Path, default=ROOT / "scripts" / "results" / "bench_optimize_ray.json")
    a = p.parse_args()

    from yolo_optim.optimize.cluster import local_cluster
    from yolo_optim.optimize.parallel import LocalExecutor, RayExecutor

    if a.model and a.data:
        model, data = a.model, a.data
    else:
        from yolo_optim.config import make_config
        from yolo_optim.data.baseline import baseline_result

        base = baseline_result(make_config("baseline"))
        model, data = str(base.weights), str(base.data)
    keys = {"method": "l2", "sensitivity_ratios": a.ratios, "sensitivity_images": a.images, "round_to": 32}
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        local_s, local_rows, local_shards = run(LocalExecutor(), probe_tasks(model, data, keys, 1, a.imgsz, a.batch),
                                                Path(tmp) / "local")
        print(f"one process: {len(local_rows)} probes in {local_s:.1f} s", flush=True)
        with local_cluster(nodes=2, cpus=1, logs=Path(tmp) / "logs") as address:
            t0 = time.perf_counter()
            ray_exec = RayExecutor(address, cpus=1)
            connect_s = time.perf_counter() - t0
            try:
                ray_s, ray_rows, ray_shards = run(ray_exec, probe_tasks(model, data, keys, ray_exec.slots, a.imgsz,
                                                                        a.batch), Path(tmp) / "ray")
            finally:
                ray_exec.close()
        print(f"two-node cluster: {len(ray_rows)} probes in {ray_s:.1f} s (+{connect_s:.1f} s to connect)",
              flush=True)
    same = [(x.group, x.ratio) for x in local_rows] == [(x.group, x.ratio) for x in ray_rows]
    worst = max((abs(x.map - y.map) for x, y in zip(local_rows, ray_rows, strict=False)), default=float("nan"))
    import torch

    results = {
        "command": "python scripts/bench_optimize_ray.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"), "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "model": Path(model).name, "imgsz": a.imgsz, "ratios": a.ratios,
        "images_per_probe": a.images, "torch": torch.__version__,
        "local": {"seconds": round(local_s, 1), "probes": len(local_rows), "shards": local_shards},
        "ray": {"nodes": 2, "cpus_per_node": 1, "seconds": round(ray_s, 1), "connect_seconds": round(connect_s, 1),
                "probes": len(ray_rows), "shards": ray_shards},
        "speedup": round(local_s / (ray_s + connect_s), 3), "speedup_excluding_connect": round(local_s / ray_s, 3),
        "same_probes": same, "max_map_difference": round(worst, 6),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = a.out.with_name(a.out.name + ".tmp")
    tmp_out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    tmp_out.replace(a.out)
    print(render(results))
    return 0


def render(r: dict) -> str:
    nodes = ", ".join(f"shard {s['shard'] + 1}: {s['probes']} probes in {s['seconds']:.0f} s" for s in r["ray"]["shards"])
    return "\n".join([
        f"`{r['command']}` ({r['date']}, {r['cores']} cores, {r['model']} at {r['imgsz']} px, ratios {r['ratios']}, "
        f"{r['images_per_probe']} val images per probe):", "",
        "| where the probes ran | probes | wall time | speed-up |", "|---|---:|---:|---:|",
        f"| this process (no `address=`) | {r['local']['probes']} | {r['local']['seconds']:.1f} s | 1.00x |",
        f"| two 1-CPU Ray nodes on 127.0.0.1, 2 shards | {r['ray']['probes']} | {r['ray']['seconds']:.1f} s "
        f"(+{r['ray']['connect_seconds']:.1f} s to connect) | {r['speedup']:.2f}x "
        f"({r['speedup_excluding_connect']:.2f}x without connecting) |", "",
        f"Same probes both ways: {'yes' if r['same_probes'] else 'NO'}; largest mAP difference between the two "
        f"tables {r['max_map_difference']:.4f}. Per shard: {nodes}.", ""])


if __name__ == "__main__":
    sys.exit(main())
