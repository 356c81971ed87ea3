"""The machine and software a figure was measured on, recorded beside every result so it can be reproduced.

Every probe is best-effort: a missing tool or file leaves its field out, it never fails a benchmark.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

# Instruction-set extensions that change which kernels runtimes pick (VNNI/AMX for INT8, BF16/FP16 paths, NEON).
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "asimd", "asimdhp", "asimddp", "sve", "i8mm", "bf16")
PACKAGES = ("yolo-optim", "ultralytics", "torch", "torchvision", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino",
            "nncf", "tensorrt", "numpy", "torch-pruning")


def _run(cmd: list[str], timeout: float = 10.0) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip("\x00\n ")
    except OSError:
        return None


def cpu_info() -> dict[str, Any]:
    """CPU model, core counts, relevant ISA flags, and the CPU frequency governor when Linux exposes it."""
    text = _read("/proc/cpuinfo") or ""
    model = next((m.group(1).strip() for m in re.finditer(r"^(?:model name|Model|Hardware)\s*:\s*(.+)$", text, re.M)),
                 None) or platform.processor() or platform.machine()
    flags_line = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.M)
    flags = set(flags_line.group(1).split()) if flags_line else set()
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = None
    info: dict[str, Any] = {"model": model, "arch": platform.machine(), "logical_cores": os.cpu_count(),
                            "physical_cores": physical, "isa": [f for f in ISA_FLAGS if f in flags]}
    if hasattr(os, "sched_getaffinity"):
        info["usable_cores"] = len(os.sched_getaffinity(0))
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if governor:
        info["governor"] = governor
    return info


def gpu_info() -> list[dict[str, Any]]:
    """NVIDIA GPUs (name, driver, memory) from nvidia-smi, else from torch; Jetsons report through torch."""
    out = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"])
    gpus = []
    if out:
        for line in out.splitlines():
            name, driver, mem = (p.strip() for p in (line.split(",") + ["", ""])[:3])
            gpus.append({"name": name, "driver": driver, "memory_mb": int(mem) if mem.isdigit() else None})
        return gpus
    try:
        import torch

        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                gpus.append({"name": p.name, "driver": None, "memory_mb": p.total_memory // 2**20,
                             "cuda": torch.version.cuda})
    except Exception:  # a broken CUDA install must not stop the benchmark
        pass
    return gpus


def openvino_devices() -> dict[str, str]:
    """OpenVINO device -> full device name (CPU, GPU, NPU), when OpenVINO is installed."""
    try:
        import openvino as ov

        core = ov.Core()
        return {d: str(core.get_property(d, "FULL_DEVICE_NAME")) for d in core.available_devices}
    except Exception:  # not installed, or a plugin that fails to load
        return {}


def jetson_info() -> dict[str, Any] | None:
    """JetPack/L4T release, board model and nvpmodel power mode on an NVIDIA Jetson; None elsewhere."""
    release = _read("/etc/nv_tegra_release")
    if release is None:
        return None
    info: dict[str, Any] = {"model": _read("/proc/device-tree/model")}
    m = re.search(r"R(\d+)[^,]*,\s*REVISION:\s*([\d.]+)", release)
    info["l4t"] = f"{m.group(1)}.{m.group(2)}" if m else release.splitlines()[0]
    jetpack = _run(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"])
    info["jetpack"] = jetpack.split("-")[0] if jetpack else None
    mode = _run(["nvpmodel", "-q"])
    info["power_mode"] = " ".join(mode.split()) if mode else None
    return info


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def capture_environment() -> dict[str, Any]:
    """Everything that decides a latency figure, as plain JSON-able values."""
    env: dict[str, Any] = {"hostname": socket.gethostname(), "platform": platform.platform(),
                           "cpu": cpu_info(), "gpus": gpu_info(), "openvino_devices": openvino_devices(),
                           "versions": package_versions()}
    try:
        import psutil

        env["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    jetson = jetson_info()
    if jetson:
        env["jetson"] = jetson
    threads_env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
                   if k in os.environ}
    if threads_env:
        env["thread_env"] = threads_env
    return env


def hardware_name(device: str, backend: str, env: dict[str, Any]) -> str | None:
    """The model name of the hardware a target's device is on this machine, for the report's device tables;
    None when this machine has no such device."""
    if device == "cpu":
        return str(env["cpu"]["model"])
    if backend == "openvino":
        name = env.get("openvino_devices", {}).get(device.upper())
        if name:
            return name
    if device == "gpu" and env.get("gpus"):
        return str(env["gpus"][0]["name"])
    return None
