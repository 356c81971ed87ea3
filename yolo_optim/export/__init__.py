"""FP32 / BF16 / FP16 / INT8 export per target, one module per backend behind `base.Backend`.

Importing this package imports no runtime: each backend imports openvino / onnxruntime / tensorrt inside its methods.
"""

from ..core.options import ExportOptions
from .api import ExportResult, export, run_export
from .base import (
    PRECISIONS,
    Backend,
    Runner,
    Target,
    all_precisions,
    all_runtimes,
    get_backend,
    list_backends,
    read_artifact_metadata,
    register_backend,
)

__all__ = ["PRECISIONS", "Backend", "ExportOptions", "ExportResult", "Runner", "Target", "all_precisions",
           "all_runtimes", "export", "get_backend", "list_backends", "read_artifact_metadata", "register_backend",
           "run_export"]


class _CallableModule(__import__("types").ModuleType):
    """`yolo_optim.export` is both this package and the public function: importing the package binds the name
    `export` on `yolo_optim` to the package, so calling the package runs the function."""

    def __call__(self, *args, **kwargs) -> ExportResult:
        return export(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
