"""yolo-optim: tuning, pruning, FP16/INT8 export and mAP-versus-latency benchmarks for Ultralytics YOLO.

The public API is imported lazily so `import yolo_optim` stays cheap and works without optional backends.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# Ultralytics probes the network (hub, fonts, version checks) unless told it is offline; many edge sites are
# air-gapped, and nothing here needs the network. A user can still set YOLO_OFFLINE=0 explicitly.
os.environ.setdefault("YOLO_OFFLINE", "1")

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "OptimError": "yolo_optim.errors",
    "make_config": "yolo_optim.config",
    "make_demo_dataset": "yolo_optim.data.demo",
    "DemoDataset": "yolo_optim.data.demo",
    "demo_baseline": "yolo_optim.data.baseline",
    "check_dataset": "yolo_optim.data.check",
    "load_yolo": "yolo_optim.models",
    "prune": "yolo_optim.prune.api",
    "PruneResult": "yolo_optim.prune.api",
    "export": "yolo_optim.export",
    "ExportResult": "yolo_optim.export",
    "Target": "yolo_optim.export",
    "tune": "yolo_optim.tune.api",
    "benchmark": "yolo_optim.bench.api",
    "Report": "yolo_optim.report.report",
    "merge_reports": "yolo_optim.report.merge",
    "optimize": "yolo_optim.optimize.api",
    "OptimizeResult": "yolo_optim.optimize.api",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'yolo_optim' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(__all__)
