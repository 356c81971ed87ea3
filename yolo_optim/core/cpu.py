"""The CPU's instruction-set flags: they decide which INT8 and BF16 kernels a runtime has on this machine."""

from __future__ import annotations

import functools
import platform
from pathlib import Path


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo 'flags' on x86, 'Features' on ARM); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")


def has_int8_dot() -> bool:
    """x86 VNNI or AMX int8: the instructions that make u8 x s8 convolutions faster than fp32."""
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def has_bf16() -> bool:
    """Native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16 on x86, BF16 on ARM)."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16", "bf16"})
