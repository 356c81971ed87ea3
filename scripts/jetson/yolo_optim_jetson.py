#!/usr/bin/env python3
"""The Jetson side of a yolo-optim deploy bundle: what the bash scripts delegate (parsing, JSON, the engine header).

Standard library only, so it runs on a fresh JetPack; `val` also needs Ultralytics (for mAP on the engine).
Subcommands (see --help of each): meta-get, max-perf-mode, setup-json, wrap-engine, parse-trtexec,
parse-tegrastats, val, results.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

SCHEMA = "yolo-optim/benchmark-results"
SCHEMA_VERSION = 1
_NUM = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        fail(f"cannot read {path} ({type(e).__name__}: {e})")
        return {}


def write_json(path: Path, obj: dict) -> None:
    """Written to a temporary name and renamed, so a killed run never leaves half a file."""
    tmp = Path(f"{path}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


# --------------------------------------------------------------------------------------------------- parsing
def parse_trtexec(text: str, section: str = "Latency") -> dict:
    """The `<section>: min = .. ms, max = .., mean = .., median = .., percentile(90%) = .., ...` line of trtexec's
    performance summary, plus throughput (qps) and the query count of the timing trace."""
    out: dict = {}
    line = next((ln for ln in text.splitlines() if re.search(rf"\] {re.escape(section)}: min = ", ln)
                 or ln.startswith(f"{section}: min = ")), None)
    if line is not None:
        for key, name in (("min", "min"), ("max", "max"), ("mean", "mean"), ("median", "median")):
            m = re.search(rf"\b{key} = {_NUM} ms", line)
            if m:
                out[f"{name}_ms"] = float(m.group(1))
        for m in re.finditer(rf"percentile\(({_NUM})%\) = {_NUM} ms", line):
            out[f"p{float(m.group(1)):g}_ms"] = float(m.group(3))
    m = re.search(rf"Throughput: {_NUM} qps", text)
    if m:
        out["throughput_qps"] = float(m.group(1))
    m = re.search(rf"Timing trace has (\d+) queries over {_NUM} s", text)
    if m:
        out["queries"], out["trace_seconds"] = int(m.group(1)), float(m.group(2))
    return out


def latency_stats(summary: dict, times_file: Path | None) -> dict:
    """The benchmark schema's latency object; from trtexec --exportTimes per query when present (exact std),
    else from the summary line (std unknown: 0, flagged by the caller)."""
    values = []
    if times_file is not None and times_file.is_file():
        try:
            values = [float(t["latencyMs"]) for t in json.loads(times_file.read_text(encoding="utf-8"))
                      if "latencyMs" in t]
        except (ValueError, TypeError, KeyError):
            values = []
    if values:
        v = sorted(values)

        def pct(p: float) -> float:  # nearest rank
            return v[min(len(v) - 1, max(0, math.ceil(p / 100 * len(v)) - 1))]

        return {"runs": len(v), "median_ms": statistics.median(v), "p90_ms": pct(90), "p99_ms": pct(99),
                "mean_ms": statistics.fmean(v), "std_ms": statistics.stdev(v) if len(v) > 1 else 0.0,
                "min_ms": v[0], "max_ms": v[-1]}
    need = ("median_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms")
    if not all(k in summary for k in need):
        fail("trtexec's output has no complete 'Latency: min = ...' summary line; see the timing log")
    return {"runs": int(summary.get("queries") or 1), **{k: summary[k] for k in need}, "std_ms": 0.0}


def parse_tegrastats(text: str) -> dict:
    """Mean power of every rail tegrastats reports (`VDD_IN 5000mW/4800mW`: current/average); VDD_IN is the
    module's input power."""
    rails: dict[str, list[float]] = {}
    for line in text.splitlines():
        for m in re.finditer(r"\b([A-Z][A-Z0-9_]+) (\d+)(?:mW)?/(\d+)(?:mW)?\b", line):
            rails.setdefault(m.group(1), []).append(float(m.group(2)))
    means = {k: statistics.fmean(v) for k, v in rails.items() if v}
    return {"samples": max((len(v) for v in rails.values()), default=0), "rails_mean_mw": means,
            "vdd_in_mean_mw": means.get("VDD_IN")}


def max_perf_mode(conf_text: str) -> tuple[int, str]:
    """The highest-performance power mode of /etc/nvpmodel.conf: a MAXN mode (MAXN_SUPER first), else the mode
    with the largest wattage in its name."""
    modes = [(int(m.group(1)), m.group(2)) for m in
             re.finditer(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)\s*>", conf_text)]
    if not modes:
        fail("no '< POWER_MODEL ID=.. NAME=.. >' entries in the nvpmodel configuration")
    for prefix in ("MAXN_SUPER", "MAXN"):
        for mid, name in modes:
            if name.upper().startswith(prefix):
                return mid, name

    def watts(name: str) -> float:
        m = re.search(r"(\d+)W", name.upper())
        return float(m.group(1)) if m else -1.0

    return max(modes, key=lambda mode: watts(mode[1]))


# --------------------------------------------------------------------------------------------------- commands
def cmd_meta_get(a: argparse.Namespace) -> None:
    value = read_json(Path(a.bundle) / "metadata.json").get(a.key)
    print(json.dumps(value) if isinstance(value, (dict, list)) else ("" if value is None else value))


def cmd_max_perf_mode(a: argparse.Namespace) -> None:
    mid, name = max_perf_mode(Path(a.conf).read_text(encoding="utf-8", errors="replace"))
    print(mid, name)


def cmd_setup_json(a: argparse.Namespace) -> None:
    clocks = Path(a.clocks_file).read_text(encoding="utf-8", errors="replace").strip() \
        if a.clocks_file and Path(a.clocks_file).is_file() else None
    write_json(Path(a.out), {
        "module": a.module or None, "l4t": a.l4t or None, "jetpack": a.jetpack or None, "tensorrt": a.trt or None,
        "cuda": a.cuda or None, "power_mode": a.power_mode or None,
        "power_mode_id": int(a.power_mode_id) if a.power_mode_id.isdigit() else None,
        "max_perf": bool(int(a.max_perf)), "jetson_clocks": bool(int(a.max_perf)), "clocks": clocks,
        "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds")})


def cmd_wrap_engine(a: argparse.Namespace) -> None:
    """Prefix trtexec's plan with Ultralytics' header (4-byte little-endian length, JSON) so YOLO(engine) loads it."""
    meta = read_json(Path(a.bundle) / "metadata.json")
    header = dict(meta.get("ultralytics_header") or {})
    ours = dict(meta.get("yolo_optim") or {})
    ours.update({"tensorrt_version": a.trt_version, "built_on": platform.node(), "dla_core": a.dla,
                 "built": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    header["yolo_optim"] = ours
    if a.dla is not None:
        header["dla"] = str(a.dla)  # Ultralytics' AutoBackend sets the runtime's DLA core from this key
    blob = json.dumps(header, default=str).encode()
    plan = Path(a.plan).read_bytes()
    tmp = Path(f"{a.engine}.tmp-{os.getpid()}")
    tmp.write_bytes(len(blob).to_bytes(4, byteorder="little", signed=True) + blob + plan)
    tmp.replace(a.engine)
    write_json(Path(a.engine).with_name("build.json"), {
        "tensorrt": a.trt_version, "command": a.command, "dla_core": a.dla, "precision": meta.get("precision"),
        "strongly_typed": a.strongly_typed == "1", "plan": Path(a.plan).name, "engine": Path(a.engine).name})


def cmd_parse_trtexec(a: argparse.Namespace) -> None:
    print(json.dumps(parse_trtexec(Path(a.log).read_text(encoding="utf-8", errors="replace"), a.section)))


def cmd_parse_tegrastats(a: argparse.Namespace) -> None:
    print(json.dumps(parse_tegrastats(Path(a.log).read_text(encoding="utf-8", errors="replace"))))


def cmd_val(a: argparse.Namespace) -> None:
    """mAP of the engine with Ultralytics' validator (letterboxed square, batch 1: the engine's static shape)."""
    try:
        from ultralytics import YOLO
    except ImportError:
        fail("mAP needs Ultralytics on the Jetson (pip install ultralytics); or run bench.sh without --data")
    meta = read_json(Path(a.bundle) / "metadata.json")
    m = YOLO(a.engine, task=meta.get("task") or "detect").val(
        data=a.data, imgsz=int(meta["imgsz"]), batch=1, rect=False, device=0, plots=False, verbose=False,
        project=str(Path(a.out).parent), name="val", exist_ok=True)
    rd = m.results_dict
    write_json(Path(a.out), {"map50_95": float(rd["metrics/mAP50-95(B)"]), "map50": float(rd["metrics/mAP50(B)"]),
                             "val_images": int(getattr(m, "seen", 0) or 0) or None, "data": a.data})


def cmd_results(a: argparse.Namespace) -> None:
    """results.json in yolo-optim's benchmark schema: one measured row, its run and this device's environment."""
    run_dir, bundle = Path(a.run), Path(a.bundle)
    meta = read_json(bundle / "metadata.json")
    timing_text = (run_dir / "timing.log").read_text(encoding="utf-8", errors="replace")
    summary = parse_trtexec(timing_text, "Latency")
    stats = latency_stats(summary, run_dir / "times.json")
    compute = parse_trtexec(timing_text, "GPU Compute Time")
    setup = read_json(run_dir / "setup.json") if (run_dir / "setup.json").is_file() else {}
    build = read_json(run_dir / "build.json") if (run_dir / "build.json").is_file() else {}
    power = None
    if (run_dir / "tegrastats.log").is_file():
        power = parse_tegrastats((run_dir / "tegrastats.log").read_text(encoding="utf-8", errors="replace"))
        run_summary = parse_trtexec((run_dir / "power_run.log").read_text(encoding="utf-8", errors="replace")) \
            if (run_dir / "power_run.log").is_file() else {}
        qps = run_summary.get("throughput_qps")
        power["throughput_qps"] = qps
        vdd = power.get("vdd_in_mean_mw")
        power["energy_per_inference_mj"] = vdd / qps if vdd and qps else None  # mW / (1/s) = mJ
    acc = read_json(run_dir / "map.json") if (run_dir / "map.json").is_file() else {}
    mode_now = (run_dir / "power_mode.txt").read_text(encoding="utf-8").split() \
        if (run_dir / "power_mode.txt").is_file() else []
    precision, imgsz = meta["precision"], int(meta["imgsz"])
    source = meta.get("source_model") or "model"
    label = a.label or Path(source).stem
    sha = meta.get("source_sha256") or ""
    target = f"tensorrt-jetson:{precision}"
    module = setup.get("module") or _read("/proc/device-tree/model") or "NVIDIA Jetson"
    jetson = {"model": module, "l4t": setup.get("l4t"), "jetpack": setup.get("jetpack"),
              "power_mode": " ".join(mode_now) or setup.get("power_mode"), "max_perf": setup.get("max_perf"),
              "clocks": setup.get("clocks"), "cuda": setup.get("cuda")}
    run_id = f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    engine = run_dir / "model.plan"
    row = {
        "key": f"{label}@{sha[:12]}|{target}|{imgsz}", "run_id": run_id, "model": label, "model_path": source,
        "model_sha256": sha or None, "target": target, "backend": "tensorrt", "device": "jetson",
        "precision": precision, "imgsz": imgsz, "status": "ok", "hardware": module, "threads": 0,
        "executed_precision": precision, "artifact": str(run_dir / "model.engine"), "artifact_reused": False,
        "map50_95": acc.get("map50_95"), "map50": acc.get("map50"), "val_images": acc.get("val_images"),
        "inference": stats, "end_to_end": None, "throughput": None,
        "size_mb": round(engine.stat().st_size / 2**20, 3) if engine.is_file() else None,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "extra": {"timing": {"tool": "trtexec", "flags": "--useCudaGraph --noDataTransfers --separateProfileRun",
                             "std_from": "exportTimes" if (run_dir / "times.json").is_file() else "unavailable",
                             "throughput_qps": summary.get("throughput_qps"), "gpu_compute": compute},
                  "power": power, "build": build, "quantization": meta.get("quantization"),
                  "calibration": meta.get("calibration")},
    }
    run = {"run_id": run_id, "created": row["finished"], "command": a.command or "bench.sh", "argv": sys.argv,
           "seed": 0, "settings": {"imgsz": imgsz, "duration_s": a.duration, "metric": "inference",
                                   "data": acc.get("data"), "schema_version": SCHEMA_VERSION, "targets": target},
           "environment": {"hostname": platform.node(), "platform": platform.platform(),
                           "cpu": {"model": _cpu_model(), "arch": platform.machine(),
                                   "logical_cores": os.cpu_count()},
                           "gpus": [{"name": module, "driver": None, "memory_mb": None}],
                           "versions": {"python": platform.python_version(), "tensorrt": build.get("tensorrt")
                                        or setup.get("tensorrt"), "jetpack": setup.get("jetpack"),
                                        "cuda": setup.get("cuda")},
                           "jetson": jetson}}
    write_json(Path(a.out), {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "complete": True,
                             "metric": "inference", "runs": [run], "rows": [row]})
    print(f"{target} on {module}: median {stats['median_ms']:.3f} ms, p99 {stats['p99_ms']:.3f} ms"
          + (f", {power['vdd_in_mean_mw'] / 1000:.2f} W" if power and power.get("vdd_in_mean_mw") else "")
          + (f", mAP50-95 {acc['map50_95']:.4f}" if acc.get("map50_95") is not None else ""))


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip("\x00\n ") or None
    except OSError:
        return None


def _cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    m = re.search(r"^(?:model name|Model|Hardware)\s*:\s*(.+)$", text, re.MULTILINE)
    return m.group(1).strip() if m else (platform.processor() or platform.machine())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("meta-get", help="print one field of the bundle's metadata.json")
    s.add_argument("key")
    s.add_argument("--bundle", default=".")
    s = sub.add_parser("max-perf-mode", help="print 'ID NAME' of the fastest mode in nvpmodel.conf")
    s.add_argument("conf")
    s = sub.add_parser("setup-json", help="record the device's versions and power settings")
    for k in ("out", "module", "l4t", "jetpack", "trt", "cuda", "power-mode", "power-mode-id", "clocks-file"):
        s.add_argument(f"--{k}", default="")
    s.add_argument("--max-perf", default="0")
    s = sub.add_parser("wrap-engine", help="write the engine with Ultralytics' header in front of trtexec's plan")
    for k in ("bundle", "plan", "engine", "trt-version"):
        s.add_argument(f"--{k}", required=True)
    s.add_argument("--dla", type=int, default=None)
    s.add_argument("--command", default="")
    s.add_argument("--strongly-typed", default="1")
    s = sub.add_parser("parse-trtexec", help="trtexec's latency summary as JSON")
    s.add_argument("log")
    s.add_argument("--section", default="Latency")
    s = sub.add_parser("parse-tegrastats", help="mean power per rail from a tegrastats log, as JSON")
    s.add_argument("log")
    s = sub.add_parser("val", help="mAP of the engine with Ultralytics' validator")
    for k in ("bundle", "engine", "data", "out"):
        s.add_argument(f"--{k}", required=True)
    s = sub.add_parser("results", help="write results.json in yolo-optim's benchmark schema")
    for k in ("bundle", "run", "out"):
        s.add_argument(f"--{k}", required=True)
    s.add_argument("--label", default="")
    s.add_argument("--command", default="")
    s.add_argument("--duration", type=float, default=None)
    a = p.parse_args(argv)
    t0 = time.time()
    {"meta-get": cmd_meta_get, "max-perf-mode": cmd_max_perf_mode, "setup-json": cmd_setup_json,
     "wrap-engine": cmd_wrap_engine, "parse-trtexec": cmd_parse_trtexec, "parse-tegrastats": cmd_parse_tegrastats,
     "val": cmd_val, "results": cmd_results}[a.cmd](a)
    if os.environ.get("YOLO_OPTIM_JETSON_DEBUG"):
        print(f"{a.cmd}: {time.time() - t0:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
