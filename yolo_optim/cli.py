"""`yolo-optim MODE key=value ...`: parse, validate, dispatch; user errors become one line and exit code 2.

Heavy backends are imported only inside the mode that needs them, so `help`, `version` and `cfg` start fast and
work without the optional extras.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from pathlib import Path
from typing import Any

from .errors import OptimError

# mode -> "module:function"; the function takes the mode's config and returns a Path or an object with save_dir.
RUNNERS: dict[str, str | None] = {
    "data": "yolo_optim.data.demo:run_data",
    "baseline": "yolo_optim.data.baseline:run_baseline",
    "export": "yolo_optim.export.api:run_export",
    "benchmark": "yolo_optim.bench.api:run_benchmark",
    "prune": "yolo_optim.prune.api:run_prune",
    "tune": "yolo_optim.tune.api:run_tune",
    "report": "yolo_optim.report.api:run_report",
    "optimize": "yolo_optim.optimize.api:run_optimize",
}
INFO_MODES = ("help", "version", "cfg")

HELP = """\
yolo-optim: make an Ultralytics YOLO detector fast on its target device, and prove it.

Usage:  yolo-optim MODE key=value ...

Modes:
  data       write the offline demo dataset            yolo-optim data out=datasets/demo train=400 val=100
  baseline   train (once) and cache the demo model     yolo-optim baseline epochs=30
  export     FP32/BF16/FP16/INT8 export per target      yolo-optim export model=best.pt data=data.yaml target=openvino-cpu precision=int8
  benchmark  mAP and latency of every variant           yolo-optim benchmark model=best.pt targets=all
  report     merge runs from several machines          yolo-optim report runs=jetson/exp,server/exp
  prune      structured channel pruning + fine-tuning   yolo-optim prune model=best.pt data=data.yaml ratio=0.5
  tune       hyperparameter search on Ray Tune          yolo-optim tune model=yolo11n.yaml data=data.yaml search=bayes
  optimize   the most accurate model within a budget   yolo-optim optimize model=best.pt data=data.yaml target=openvino-cpu budget=8ms
  cfg        print every key with its default and meaning
  version    print the versions of yolo-optim and its backends
  help       print this help

cfg=my.yaml overrides the defaults, key=value overrides both; a bare key means key=True (e.g. verbose).
Outputs go to project/name (default runs/optim/<mode>/exp). Empty model/data use the cached demo baseline.
"""


def parse_args(args: list[str]) -> tuple[dict[str, Any], str | None]:
    """Split `key=value` words into overrides and the optional cfg= file."""
    from .config import parse_value

    overrides: dict[str, Any] = {}
    cfg = None
    for word in args:
        if "=" in word:
            k, v = word.split("=", 1)
            k = k.strip().lstrip("-").replace("-", "_")
            if not k:
                raise OptimError(f"'{word}' has no key before '='; write key=value")
            if k == "cfg":
                cfg = v
            else:
                overrides[k] = parse_value(v)
        else:
            overrides[word.lstrip("-").replace("-", "_")] = True  # a bare key is a boolean switch
    return overrides, cfg


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    lines = []
    for pkg in ("yolo-optim", "ultralytics", "torch", "torchvision", "onnx", "onnxruntime", "openvino", "nncf",
                "torch-pruning", "ray", "optuna", "tensorrt"):
        try:
            lines.append(f"{pkg:14s} {version(pkg)}")
        except PackageNotFoundError:
            lines.append(f"{pkg:14s} not installed")
    return "\n".join(lines)


def _run_mode(mode: str, overrides: dict[str, Any], cfg_file: str | None) -> Any:
    from .config import make_config

    target = RUNNERS[mode]
    if target is None:
        raise OptimError(f"mode '{mode}' is not available in this version yet; available: "
                         f"{', '.join(m for m, t in RUNNERS.items() if t)}")
    config = make_config(mode, overrides, cfg_file)
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)(config)


def _show_progress(verbose: bool) -> None:
    """Send yolo_optim's log records (pruning steps, sensitivity progress, latency search) to stderr.

    Only the command line does this: as a library, yolo_optim leaves logging configuration to the application.
    """
    import logging

    logger = logging.getLogger("yolo_optim")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in ("verbose", "verbose=True", "verbose=true", "--verbose") for a in args)
    try:
        if not args or args[0] in ("help", "-h", "--help"):
            print(HELP)
            return 0
        mode, rest = args[0], args[1:]
        if mode == "version" or mode == "--version":
            print(_versions())
            return 0
        if mode == "cfg":
            from .config import cfg_help

            print(cfg_help())
            return 0
        if mode not in RUNNERS:
            close = difflib.get_close_matches(mode, [*RUNNERS, *INFO_MODES], n=1)
            hint = f"did you mean '{close[0]}'?" if close else "run `yolo-optim help`"
            raise OptimError(f"unknown mode '{mode}'; {hint}")
        overrides, cfg_file = parse_args(rest)
        _show_progress(verbose)
        result = _run_mode(mode, overrides, cfg_file)
        where = result if isinstance(result, (str, Path)) else getattr(result, "save_dir", None)
        if where is not None:
            print(f"Results saved to {Path(where).resolve()}")
        return int(getattr(result, "exit_code", 0))  # optimize: 3 when no variant meets the budget
    except OptimError as e:
        print(f"yolo-optim: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `yolo-optim cfg | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("yolo-optim: interrupted; progress saved so far is kept (rerun to resume)", file=sys.stderr)
        return 130
    except Exception as e:  # an internal bug: one line unless verbose asks for the traceback
        if verbose or os.environ.get("YOLO_OPTIM_DEBUG"):
            raise
        print(f"yolo-optim: internal error: {type(e).__name__}: {e} (rerun with verbose=True for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
