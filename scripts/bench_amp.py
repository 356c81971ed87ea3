"""Training step time, fp32 against bf16 autocast, side by side in one run on this machine's CPU.

One step is what Ultralytics' trainer does per batch: forward with the loss, backward, an AdamW step. bf16 runs
through the same forward hooks the project's trainers install (`yolo_optim.training.trainers`), so the figure is
the one `amp=bf16` gets. Each (imgsz, batch) pair runs its two precisions in alternating rounds so that machine load
drifts hit both alike; the median step of each is reported with their ratio.

    python scripts/bench_amp.py --out scripts/results/bench_amp.json      # then: python scripts/render_readme.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")


def make_batch(batch: int, imgsz: int, seed: int = 0) -> dict:
    import torch

    g = torch.Generator().manual_seed(seed)
    boxes_per_image = 4
    n = batch * boxes_per_image
    xy = torch.rand(n, 2, generator=g) * 0.6 + 0.2
    wh = torch.rand(n, 2, generator=g) * 0.2 + 0.05
    return {"img": torch.rand(batch, 3, imgsz, imgsz, generator=g),
            "batch_idx": torch.arange(batch).repeat_interleave(boxes_per_image).float(),
            "cls": torch.randint(0, 6, (n, 1), generator=g).float(), "bboxes": torch.cat([xy, wh], 1)}


def time_steps(arch: str, imgsz: int, batch: int, rounds: int, steps: int) -> dict:
    import torch
    from ultralytics import YOLO
    from ultralytics.cfg import get_cfg

    from yolo_optim.training.trainers import install_bf16_autocast

    data = make_batch(batch, imgsz)
    nets, opts, handles = {}, {}, {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        net = YOLO(arch).model
        net.args = get_cfg()
        net.nc = 6
        net.train()
        nets[precision] = net
        opts[precision] = torch.optim.AdamW(net.parameters(), lr=1e-3)
        if precision == "bf16":
            handles[precision] = install_bf16_autocast(net, "cpu")
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    losses: dict[str, float] = {}
    for r in range(rounds + 1):  # round 0 warms up both (first-call allocation, oneDNN kernel choice)
        for precision in ("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32"):
            net, opt = nets[precision], opts[precision]
            for _ in range(steps):
                t0 = time.perf_counter()
                loss, _items = net(data)
                loss.sum().backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                dt = time.perf_counter() - t0
                if r:
                    times[precision].append(dt)
                losses[precision] = float(loss.sum().detach())
    med = {p: statistics.median(v) for p, v in times.items()}
    return {"imgsz": imgsz, "batch": batch, "fp32_ms": med["fp32"] * 1e3, "bf16_ms": med["bf16"] * 1e3,
            "speedup": med["fp32"] / med["bf16"], "steps_timed": len(times["fp32"]),
            "final_loss": losses}


def table(results: dict) -> str:
    lines = ["| imgsz | batch | fp32 step | bf16 step | bf16 speed-up |", "|---|---|---|---|---|"]
    for r in results["rows"]:
        lines.append(f"| {r['imgsz']} | {r['batch']} | {r['fp32_ms']:.0f} ms | {r['bf16_ms']:.0f} ms | "
                     f"{r['speedup']:.2f}x |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="yolo11n.yaml")
    p.add_argument("--sizes", default="256,640")
    p.add_argument("--batches", default="8,16")
    p.add_argument("--rounds", type=int, default=2, help="timed rounds per precision (alternating order)")
    p.add_argument("--steps", type=int, default=2, help="steps per round")
    p.add_argument("--out", type=Path, default=Path("scripts/results/bench_amp.json"))
    a = p.parse_args()
    import torch

    from yolo_optim.core.cpu import cpu_flags
    from yolo_optim.training.amp import cpu_bf16_instructions, resolve_amp

    torch.manual_seed(0)
    rows = []
    for imgsz in (int(s) for s in a.sizes.split(",")):
        for batch in (int(b) for b in a.batches.split(",")):
            row = time_steps(a.arch, imgsz, batch, a.rounds, a.steps)
            rows.append(row)
            print(f"imgsz {imgsz} batch {batch}: fp32 {row['fp32_ms']:.0f} ms, bf16 {row['bf16_ms']:.0f} ms, "
                  f"{row['speedup']:.2f}x", flush=True)
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else "?"
    results = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), "arch": a.arch,
               "cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__,
               "bf16_instructions": cpu_bf16_instructions(), "avx512": any(f.startswith("avx512") for f in cpu_flags()),
               "amp_auto": resolve_amp("auto", "cpu").to_dict(), "rows": rows}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
