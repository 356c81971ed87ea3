"""mAP of an artifact run *the way its metadata says* (e.g. OpenVINO at f32), through Ultralytics' own validator.

`YOLO(path).val()` compiles an OpenVINO model with the runtime's defaults, which on a bfloat16-capable CPU means
bf16; an fp32 artifact must be measured in f32. Ultralytics' validator accepts any torch.nn.Module as the model, so
the artifact's runner is wrapped in one: pre- and post-processing, matching and mAP stay Ultralytics' own.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core.tasks import MapResult, read_map, validator_class

__all__ = ["MapResult", "val_artifact", "val_callable", "val_checkpoint"]


def _module(infer: Callable[[np.ndarray], Any], names: dict[int, str], task: str,
            kpt_shape: Any = None) -> Any:
    import torch

    class ArtifactModule(torch.nn.Module):
        """A foreign module for Ultralytics' validator: numpy in, the runtime's raw outputs back as tensors."""

        def __init__(self) -> None:
            super().__init__()
            self.names, self.task = names, task
            self.register_buffer("stride", torch.tensor([32.0]))
            if kpt_shape is not None:
                self.kpt_shape = list(kpt_shape)

        def forward(self, x: Any, *args: Any, **kwargs: Any) -> Any:
            outs = infer(np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32))
            outs = [torch.from_numpy(np.asarray(o, dtype=np.float32)) for o in
                    (outs if isinstance(outs, (list, tuple)) else [outs])]
            return outs[0] if len(outs) == 1 else outs

    return ArtifactModule()


def val_callable(infer: Callable[[np.ndarray], Any], data: str | Path, imgsz: int, names: dict[int, str],
                 task: str = "detect", kpt_shape: Any = None, workers: int = 0) -> MapResult:
    """mAP of a raw-inference callable (NCHW float32 [0, 1] in, the model's raw outputs out) on data's val split."""
    from .artifact import quiet_ultralytics

    with tempfile.TemporaryDirectory(prefix="yolo-optim-val-") as tmp, quiet_ultralytics():
        args = {"data": str(data), "imgsz": int(imgsz), "batch": 1, "rect": False, "plots": False, "verbose": False,
                "save_json": False, "device": "cpu", "workers": workers, "task": task, "mode": "val",
                "project": tmp, "name": "val", "exist_ok": True}
        validator = validator_class(task)(args=args)
        stats = validator(model=_module(infer, {int(k): v for k, v in names.items()}, task, kpt_shape))
    return read_map(stats, task)


def val_artifact(artifact: str | Path, data: str | Path, threads: int = 0, workers: int = 0) -> MapResult:
    """mAP of an exported artifact, run through its backend's runner at the precision its metadata records."""
    from .base import backend_of_artifact, get_backend, read_artifact_metadata

    meta = read_artifact_metadata(artifact)
    runner = get_backend(backend_of_artifact(artifact)).load_runner(artifact, threads=threads)
    imgsz = meta.get("imgsz")
    imgsz = int(imgsz[0] if isinstance(imgsz, (list, tuple)) else imgsz)
    return val_callable(runner, data, imgsz, meta["names"], meta.get("task", "detect"), meta.get("kpt_shape"),
                        workers)


def val_checkpoint(weights: str | Path, data: str | Path, imgsz: int, batch: int = 16, device: str = "cpu",
                   workers: int = 0) -> MapResult:
    """mAP of the PyTorch source, letterboxed square (rect=False) like the static-shape exports it is compared to."""
    from ultralytics import YOLO

    from .artifact import quiet_ultralytics

    with tempfile.TemporaryDirectory(prefix="yolo-optim-val-") as tmp, quiet_ultralytics():
        yolo = YOLO(str(weights))
        m = yolo.val(data=str(data), imgsz=int(imgsz), batch=batch, rect=False, plots=False, verbose=False,
                     save_json=False, device=device, workers=workers, project=tmp, name="val", exist_ok=True)
    return read_map(m.results_dict, yolo.task)
