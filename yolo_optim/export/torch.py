"""The un-exported PyTorch model as a backend: the benchmark's baseline row (torch-cpu:fp32, torch-gpu:fp16)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..core.options import ExportOptions
from ..errors import OptimError
from .artifact import StagedSource, artifact_metadata, artifact_stem
from .base import META_KEY, Backend, Target, read_artifact_metadata, register_backend


@register_backend
class TorchBackend(Backend):
    name = "torch"
    devices = ("cpu", "gpu")
    precisions = ("fp32", "fp16")
    extra = None
    package = "torch"

    def availability(self, device: str = "cpu") -> tuple[bool, str]:
        if device == "cpu":
            return True, ""
        import torch

        if device == "gpu" and torch.cuda.is_available():
            return True, ""
        return False, "no CUDA GPU visible to torch here"

    def supports(self, target: Target) -> tuple[bool, str]:
        ok, why = super().supports(target)
        if ok and target.precision == "fp16" and target.device == "cpu":
            return False, "PyTorch runs fp16 convolutions on the CPU far slower than fp32; use torch-gpu:fp16"
        return ok, why

    def export(self, yolo: Any, target: Target, options: ExportOptions, out_dir: Path) -> Path:
        """The checkpoint itself, copied, with our metadata stored in it (the weights are unchanged)."""
        import torch

        self.check(target)
        out_dir = Path(out_dir)
        source = StagedSource(yolo, out_dir, options.verbose)
        final = out_dir / f"{artifact_stem(source, target)}.pt"
        ckpt = torch.load(str(source.path), map_location="cpu", weights_only=False)
        ckpt[META_KEY] = artifact_metadata(target, options, source, self.package, executed_precision=target.precision)
        torch.save(ckpt, str(final))
        shutil.rmtree(source.work, ignore_errors=True)
        return final

    def load_runner(self, artifact: str | Path, threads: int = 0) -> TorchRunner:
        return TorchRunner(Path(artifact), threads)


class TorchRunner:
    """The fused model in eval mode under no_grad; fp16 only on a GPU."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        import torch

        from ..models import load_yolo

        if not path.is_file():
            raise OptimError(f"{path} does not exist; give a .pt checkpoint")
        meta = read_artifact_metadata(path)
        self.device = torch.device("cuda:0" if meta.get("device") == "gpu" else "cpu")
        half = meta.get("precision") == "fp16" and self.device.type == "cuda"
        model = load_yolo(str(path)).model.fuse().eval().to(self.device)
        self.model = model.half() if half else model.float()
        self.dtype = torch.float16 if half else torch.float32
        self.executed_precision = "fp16" if half else "fp32"
        imgsz = meta.get("imgsz") or 640
        imgsz = imgsz[0] if isinstance(imgsz, (list, tuple)) else imgsz
        self.input_shape = (-1, 3, -1, -1)  # any batch and size (multiple of the stride)
        self.imgsz = int(imgsz)  # threads: set by the caller with torch.set_num_threads (process-wide in torch)

    def __call__(self, x: np.ndarray) -> Any:
        import torch

        with torch.inference_mode():
            y = self.model(torch.from_numpy(x).to(self.device, self.dtype))
            y = y[0] if isinstance(y, (list, tuple)) else y
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            return y.float().cpu().numpy()
