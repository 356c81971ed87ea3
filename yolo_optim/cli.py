"""`yolo-optim MODE key=value ...`: parse, validate, dispatch; user errors become one line and exit code 2.

Heavy backends are imported only inside the mode that needs them, so `help`, `version`, `cfg` and `MODE -h` start
fast and work without the optional extras.
"""

from __future__ import annotations

import difflib
import errno
import importlib
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

from .errors import OptimError, one_line

# mode -> ("module:function" taking the mode's config and returning a Path or an object with save_dir, summary, example)
MODES: dict[str, tuple[str, str, str]] = {
    "data": ("yolo_optim.data.demo:run_data", "write the offline demo dataset",
             "yolo-optim data out=datasets/demo train=400 val=100"),
    "baseline": ("yolo_optim.data.baseline:run_baseline", "the demo model: shipped, or trained once and cached",
                 "yolo-optim baseline retrain"),
    "export": ("yolo_optim.export.api:run_export", "FP32/BF16/FP16/INT8 export per target",
               "yolo-optim export model=best.pt data=data.yaml target=openvino-cpu precision=int8"),
    "benchmark": ("yolo_optim.bench.api:run_benchmark", "mAP and latency of every variant",
                  "yolo-optim benchmark model=best.pt targets=all"),
    "report": ("yolo_optim.report.api:run_report", "merge runs from several machines",
               "yolo-optim report runs=jetson/exp,server/exp"),
    "prune": ("yolo_optim.prune.api:run_prune", "structured channel pruning + fine-tuning",
              "yolo-optim prune model=best.pt data=data.yaml ratio=0.5"),
    "tune": ("yolo_optim.tune.api:run_tune", "hyperparameter search on Ray Tune",
             "yolo-optim tune model=yolo11n.yaml data=data.yaml search=bayes"),
    "optimize": ("yolo_optim.optimize.api:run_optimize", "most accurate variant within a budget",
                 "yolo-optim optimize model=best.pt data=data.yaml target=openvino-cpu budget=8ms"),
}
INFO_MODES = {"cfg": "print every key with its default and meaning", "version":
              "print the versions of yolo-optim and its backends", "help": "print this help (MODE -h: one mode's keys)"}
HELP_WORDS = ("-h", "--help", "help")

HELP = "\n".join([
    "yolo-optim: make an Ultralytics YOLO detector fast on its target device, and prove it.",
    "",
    "Usage:  yolo-optim MODE key=value ...        yolo-optim MODE -h   (the keys of MODE, with defaults)",
    "",
    "Modes:",
    *(f"  {m:10s} {summary:40s} {example}" for m, (_, summary, example) in MODES.items()),
    *(f"  {m:10s} {summary}" for m, summary in INFO_MODES.items()),
    "",
    "cfg=my.yaml overrides the defaults, key=value overrides both; a bare key means key=True (e.g. verbose).",
    "Outputs go to project/name (default runs/optim/<mode>/exp). Empty model/data use the cached demo baseline.",
    "",
])


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


def mode_help(mode: str) -> str:
    """One mode's keys with their defaults and meanings, as cfg/default.yaml documents them."""
    from .config import defaults
    from .paths import cfg_dir

    documented: dict[str, dict[str, str]] = {}
    section = None
    # The YAML itself, not config.cfg_help(): asking every registry imports torch and Ray, and help must be instant.
    for line in (cfg_dir() / "default.yaml").read_text(encoding="utf-8").splitlines():
        if m := re.match(r"^(\w+):\s*(#.*)?$", line):
            section = m.group(1)
            documented[section] = {}
        elif section and (m := re.match(r"^\s+(\w+):", line)):
            documented[section][m.group(1)] = line.strip()
    _, summary, example = MODES[mode]
    lines = [f"yolo-optim {mode}: {summary}", "", f"Usage:    yolo-optim {mode} key=value ...", f"Example:  {example}",
             "", "Keys (key: default  # (type) meaning; `yolo-optim cfg` also lists the registered names):"]
    for k in defaults(mode):
        lines.append("  " + (documented.get(mode, {}).get(k) or documented.get("common", {}).get(k) or f"{k}:"))
    return "\n".join(lines) + "\n"


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
    from .paths import check_writable

    config = make_config(mode, overrides, cfg_file)
    # Before any work (a demo baseline trains for minutes first): an unwritable output folder fails now.
    if hasattr(config, "project"):
        check_writable(config.project or Path("runs") / "optim" / mode)
    module, func = MODES[mode][0].split(":")
    return getattr(importlib.import_module(module), func)(config)


class CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to sys.stderr as it is at each record: main() may run again after a caller replaced the stream
    (a notebook, a test's capture), and a handler bound to the old one would write to a closed file."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _show_progress(verbose: bool) -> None:
    """Send yolo_optim's log records (pruning steps, sensitivity progress, latency search) to stderr.

    Only the command line does this: as a library, yolo_optim leaves logging configuration to the application.
    """
    logger = logging.getLogger("yolo_optim")
    if not logger.handlers:
        handler = CurrentStderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def _os_error(e: OSError) -> str | None:
    """A one-line message for an OSError the user's environment caused (permissions, full disk); None for others."""
    where = f" {e.filename}" if e.filename else ""
    if isinstance(e, PermissionError) or e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"no permission to write or read{where} ({e.strerror}); choose a folder you can write with "
                "project= (or YOLO_OPTIM_CACHE= for the cache)")
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device{where} ({e.strerror}); free some space or choose another project="
    return None


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in ("verbose", "verbose=True", "verbose=true", "--verbose") for a in args)
    try:
        if not args or args[0] in HELP_WORDS:
            print(mode_help(args[1]) if len(args) > 1 and args[1] in MODES else HELP)  # `help export` too
            return 0
        mode, rest = args[0], args[1:]
        if mode in ("version", "--version"):
            print(_versions())
            return 0
        if mode == "cfg":
            from .config import cfg_help

            print(cfg_help())
            return 0
        if mode not in MODES:
            close = difflib.get_close_matches(mode, [*MODES, *INFO_MODES], n=1)
            hint = f"did you mean '{close[0]}'?" if close else "run `yolo-optim help`"
            raise OptimError(f"unknown mode '{mode}'; {hint}")
        if any(a in HELP_WORDS for a in rest):
            print(mode_help(mode))
            return 0
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
    except MemoryError as e:  # a size the machine cannot hold; no traceback helps here
        if verbose or os.environ.get("YOLO_OPTIM_DEBUG"):
            raise
        print(f"yolo-optim: error: out of memory{': ' + one_line(e) if str(e) else ''}; use a smaller imgsz, batch "
              "or size", file=sys.stderr)
        return 2
    except Exception as e:  # an internal bug: one line unless verbose asks for the traceback
        if verbose or os.environ.get("YOLO_OPTIM_DEBUG"):
            raise
        if isinstance(e, OSError) and (text := _os_error(e)):
            print(f"yolo-optim: error: {text}", file=sys.stderr)
            return 2
        print(f"yolo-optim: internal error: {type(e).__name__}: {one_line(e, 300)} (rerun with verbose=True for the "
              "traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
