"""Which 16-bit precision training runs in, and why: `amp=auto|fp16|bf16|off` resolved against the hardware.

Mixed precision computes the network in 16 bits while the master weights and optimizer state stay fp32. fp16 needs
loss scaling (its small gradients underflow); bf16 has fp32's exponent range and does not. Ultralytics runs fp16 AMP
on CUDA only and turns it off on CPUs, yet CPUs with AMX or AVX-512 BF16 run bf16 matrix work several times faster
than fp32. Without those instructions PyTorch emulates bf16 and it is much slower than fp32, so `auto` picks it only
where the CPU has them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import OptimError

AMP_MODES = ("auto", "fp16", "bf16", "off")


@dataclass(frozen=True)
class AmpPolicy:
    """The precision a training run computes in, decided once before training starts."""

    requested: str  # what the user asked for: auto, fp16, bf16 or off
    precision: str  # what runs: fp16, bf16 or fp32
    device_type: str  # torch device type the autocast region runs on: cpu, cuda, ...
    reason: str  # one sentence: why this precision, for logs and run metadata

    @property
    def autocast_bf16(self) -> bool:
        """bf16 autocast is applied by our trainer hooks (Ultralytics' own AMP is fp16 on CUDA only)."""
        return self.precision == "bf16"

    @property
    def ultralytics_amp(self) -> bool:
        """The value handed to Ultralytics' `amp=`: its fp16 autocast with dynamic loss scaling on CUDA."""
        return self.precision == "fp16"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalize_amp(value: Any) -> str:
    """Accept the old boolean spelling: True -> auto, False -> off."""
    if value is True:
        return "auto"
    if value is False or value is None:
        return "off"
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return "auto"
    if text in ("false", "0", "fp32", "none"):
        return "off"
    if text not in AMP_MODES:
        raise OptimError(f"amp={value} is not valid; choose one of {', '.join(AMP_MODES)}")
    return text


def cpu_bf16_instructions() -> list[str]:
    """The CPU's native bf16 instruction sets (AMX-BF16, AVX-512 BF16, ARM BF16), from its feature flags."""
    return list(_cpu_bf16_flags())


def _cpu_bf16_flags() -> tuple[str, ...]:
    from ..core.cpu import cpu_flags

    names = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX-512 BF16", "bf16": "ARM BF16"}
    flags = cpu_flags()
    return tuple(name for flag, name in names.items() if flag in flags)


def resolve_amp(requested: Any, device: str | int | None = "cpu") -> AmpPolicy:
    """Decide the training precision for `requested` on `device` (a torch device string such as cpu, 0, cuda:1)."""
    mode = normalize_amp(requested)
    dev = str(device if device is not None else "cpu").strip().lower()
    is_cuda = dev not in ("cpu", "mps", "npu", "") and not dev.startswith(("cpu", "mps", "npu"))
    device_type = "cuda" if is_cuda else ("mps" if dev.startswith("mps") else "cpu")
    if mode == "off":
        return AmpPolicy(mode, "fp32", device_type, "amp=off: training in fp32")
    if device_type == "cuda":
        return _resolve_cuda(mode)
    if device_type == "mps":
        if mode == "auto":
            return AmpPolicy(mode, "fp32", "mps", "amp=auto: no mixed precision on Apple MPS here; training in fp32")
        raise OptimError(f"amp={mode} is not supported on device={device}; use amp=off or a CUDA device")
    if mode == "fp16":
        raise OptimError("amp=fp16 needs a CUDA GPU (fp16 on a CPU has no fast kernels and needs loss scaling); "
                         "on a CPU use amp=bf16 or amp=off")
    native = cpu_bf16_instructions()
    if native:
        return AmpPolicy(mode, "bf16", "cpu", f"amp={mode}: bf16 autocast on this CPU's {' and '.join(native)}")
    if mode == "auto":
        return AmpPolicy(mode, "fp32", "cpu", "amp=auto: this CPU has no AMX or AVX-512 BF16, where bf16 is emulated "
                                              "and slower than fp32; training in fp32")
    return AmpPolicy(mode, "bf16", "cpu", "amp=bf16 as asked, but this CPU has no AMX or AVX-512 BF16: bf16 is "
                                          "emulated and usually slower than fp32")


def _resolve_cuda(mode: str) -> AmpPolicy:
    import torch

    if not torch.cuda.is_available():
        raise OptimError(f"amp={mode} with a CUDA device, but PyTorch sees no CUDA GPU here; use device=cpu")
    bf16_ok = torch.cuda.is_bf16_supported()
    if mode == "bf16":
        if not bf16_ok:
            raise OptimError("amp=bf16: this GPU has no native bf16 (it needs compute capability 8.0 or newer); "
                             "use amp=fp16 or amp=auto")
        return AmpPolicy(mode, "bf16", "cuda", "amp=bf16: bf16 autocast on the GPU (no loss scaling needed)")
    return AmpPolicy(mode, "fp16", "cuda", f"amp={mode}: fp16 autocast with dynamic loss scaling on the GPU")
