"""Stand-ins for the Jetson tools (trtexec, tegrastats, nvpmodel, jetson_clocks, sudo) for running scripts/jetson on
a CPU machine. Each records its arguments, one line per call, in $FAKE_LOG and prints what the real tool prints
(formats from NVIDIA's trtexec and Jetson Linux documentation):

    trtexec:      "&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec ...", "=== Performance summary ===",
                  "[I] Latency: min = 1.1 ms, max = ..., mean = ..., median = ..., percentile(90%) = ..., ...",
                  "[I] Timing trace has N queries over S s", --exportTimes JSON with per-query latencyMs
    tegrastats:   "RAM 2345/7620MB ... VDD_IN 5000mW/5000mW VDD_CPU_GPU_CV 800mW/800mW VDD_SOC 1200mW/1200mW"
    nvpmodel -q:  "NV Power Mode: 15W" then the mode id on its own line
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

TRT_CODES = {"10.3": "100300", "10.7": "100700", "11.1": "110100", "8.6": "80601", "10.2": "100200"}
LATENCIES = [1.0 + 0.01 * (i % 50) for i in range(200)]  # what the fake trtexec reports per query, in ms
QPS = 812.5
VDD_IN_MW = 5000

_TRTEXEC = r'''
import json, os, sys, time
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write("trtexec " + " ".join(args) + "\n")
code = os.environ.get("FAKE_TRT_CODE", "100300")
print(f"&&&& RUNNING TensorRT.trtexec [TensorRT v{code}] # trtexec " + " ".join(args))
opts = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
if "--help" in args:
    print("=== Model Options ===")
    sys.exit(0)
if os.environ.get("FAKE_TRTEXEC_FAIL"):
    print("[E] Error[4]: fake failure")
    print(f"&&&& FAILED TensorRT.trtexec [TensorRT v{code}]")
    sys.exit(1)
if "saveEngine" in opts:
    with open(opts["saveEngine"], "wb") as f:
        f.write(b"FAKE-PLAN-" + code.encode())
    print("[12/01/2026-10:00:00] [I] Engine built in 1.23456 sec.")
if "loadEngine" in opts:
    lat = LATENCIES
    s = sorted(lat)
    time.sleep(float(os.environ.get("FAKE_TRTEXEC_SECONDS", "0.6")))
    p = lambda q: s[min(len(s) - 1, max(0, -(-q * len(s) // 100) - 1))]
    line = (f"min = {s[0]:g} ms, max = {s[-1]:g} ms, mean = {sum(s) / len(s):g} ms, median = "
            f"{(s[99] + s[100]) / 2:g} ms, percentile(90%) = {p(90):g} ms, percentile(95%) = {p(95):g} ms, "
            f"percentile(99%) = {p(99):g} ms")
    print("[12/01/2026-10:00:03] [I] === Performance summary ===")
    print(f"[12/01/2026-10:00:03] [I] Throughput: {QPS} qps")
    print(f"[12/01/2026-10:00:03] [I] Latency: {line}")
    print("[12/01/2026-10:00:03] [I] Enqueue Time: min = 0.01 ms, max = 0.05 ms, mean = 0.02 ms, median = 0.02 ms, "
          "percentile(90%) = 0.03 ms, percentile(95%) = 0.03 ms, percentile(99%) = 0.04 ms")
    print(f"[12/01/2026-10:00:03] [I] GPU Compute Time: {line}")
    print(f"[12/01/2026-10:00:03] [I] Timing trace has {len(lat)} queries over 3.00123 s")
    if "exportTimes" in opts:
        with open(opts["exportTimes"], "w") as f:
            json.dump([{"startComputeMs": i, "endComputeMs": i + v, "computeMs": v, "latencyMs": v}
                       for i, v in enumerate(lat)], f)
print(f"&&&& PASSED TensorRT.trtexec [TensorRT v{code}] # trtexec")
'''

_TEGRASTATS = r'''
import os, sys, time
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write("tegrastats " + " ".join(args) + "\n")
interval = float(args[args.index("--interval") + 1]) / 1000 if "--interval" in args else 1.0
out = open(args[args.index("--logfile") + 1], "a") if "--logfile" in args else sys.stdout
while True:
    out.write(time.strftime("%m-%d-%Y %H:%M:%S") + " RAM 2345/7620MB (lfb 5x4MB) SWAP 0/3810MB (cached 0MB) "
              "CPU [12%@1510,8%@1510,off,off,5%@1510,3%@1510] EMC_FREQ 4%@2133 GR3D_FREQ 97%@[1020] "
              "cpu@47.5C soc2@46.1C gpu@48.2C tj@48.2C "
              f"VDD_IN {VDD_IN_MW}mW/{VDD_IN_MW}mW VDD_CPU_GPU_CV 800mW/800mW VDD_SOC 1200mW/1200mW\n")
    out.flush()
    time.sleep(interval)
'''

_NVPMODEL = r'''
import os, re, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write("nvpmodel " + " ".join(args) + "\n")
state = os.environ["FAKE_STATE"]
conf = open(os.environ["NVPMODEL_CONF"]).read()
names = {m.group(1): m.group(2) for m in re.finditer(r"POWER_MODEL ID=(\d+) NAME=(\S+) >", conf)}
mode = open(state).read().strip() if os.path.exists(state) else "0"
if "-m" in args:
    mode = args[args.index("-m") + 1]
    open(state, "w").write(mode)
    print(f"NVPM WARN: power mode is set to {names[mode]}")
elif "-q" in args:
    print(f"NV Power Mode: {names[mode]}")
    print(mode)
'''

_JETSON_CLOCKS = r'''
import os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write("jetson_clocks " + " ".join(args) + "\n")
if "--show" in args:
    print("SOC family:tegra234  Machine:NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super")
    print("cpu0: Online=1 Governor=schedutil MinFreq=1728000 MaxFreq=1728000 CurrentFreq=1728000")
    print("GPU MinFreq=1020000000 MaxFreq=1020000000 CurrentFreq=1020000000")
    print("EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=3199000000 FreqOverride=1")
'''

NVPMODEL_CONF = """< POWER_MODEL ID=0 NAME=15W >
CPU_ONLINE CORE_0 1
< POWER_MODEL ID=1 NAME=25W >
CPU_ONLINE CORE_0 1
< POWER_MODEL ID=3 NAME=7W >
CPU_ONLINE CORE_0 1
< POWER_MODEL ID=2 NAME=MAXN_SUPER >
CPU_ONLINE CORE_0 1
< PM_CONFIG DEFAULT=0 >
"""
NV_TEGRA_RELEASE = ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, "
                    "DATE: Wed Jan  8 01:49:37 UTC 2025\n")
MODULE = "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"


def install_fakes(root: Path, trt: str = "10.3") -> dict[str, str]:
    """Write the stand-in tools into root/bin and the device files into root; returns the environment to run
    the scripts with (PATH first through root/bin)."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    consts = f"LATENCIES = {LATENCIES!r}\nQPS = {QPS!r}\nVDD_IN_MW = {VDD_IN_MW!r}\n"
    for name, body in (("trtexec", _TRTEXEC), ("tegrastats", _TEGRASTATS), ("nvpmodel", _NVPMODEL),
                       ("jetson_clocks", _JETSON_CLOCKS)):
        tool = bin_dir / name
        tool.write_text(f"#!{sys.executable}\n{consts}{body}")
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    sudo = bin_dir / "sudo"
    sudo.write_text('#!/bin/sh\necho "sudo $*" >> "$FAKE_LOG"\nexec "$@"\n')
    sudo.chmod(0o755)
    (root / "nvpmodel.conf").write_text(NVPMODEL_CONF)
    (root / "nv_tegra_release").write_text(NV_TEGRA_RELEASE)
    (root / "model").write_text(MODULE + "\0")
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_LOG": str(root / "calls.log"),
            "FAKE_STATE": str(root / "nvpmodel.state"), "FAKE_TRT_CODE": TRT_CODES[trt],
            "NVPMODEL_CONF": str(root / "nvpmodel.conf"), "NV_TEGRA_RELEASE": str(root / "nv_tegra_release"),
            "DEVICE_TREE_MODEL": str(root / "model"), "PYTHON": sys.executable}


def calls(env: dict[str, str], tool: str) -> list[list[str]]:
    """The argument lists `tool` was called with, in order."""
    log = Path(env["FAKE_LOG"])
    lines = log.read_text().splitlines() if log.is_file() else []
    return [ln.split()[1:] for ln in lines if ln.split()[0] == tool]
