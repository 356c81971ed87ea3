"""`target=tensorrt-jetson`: a deploy bundle whose TensorRT engine is built on the Jetson that runs it.

An engine is tied to the GPU and the TensorRT version that built it, so nothing here builds one. The bundle holds
what the device needs and nothing that must be installed beside JetPack:

    model.onnx        the graph with its precision baked in (Q/DQ INT8, fp16 with fp32 I/O, or fp32)
    metadata.json     class names, imgsz, strides, precision, source sha256, calibration, quantization, and the
                      Ultralytics header the device writes in front of the engine (read by the scripts, stdlib JSON)
    metadata.yaml     the same fields where yolo-optim reads an artifact folder's metadata on the host
    README.md         the device steps
    setup.sh build.sh bench.sh common.sh yolo_optim_jetson.py    the scripts of scripts/jetson/

On the host the bundle's ONNX runs on ONNX Runtime's CPU provider, so the accuracy guard validates the very graph
the device will build.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from ..errors import OptimError
from .base import META_KEY, write_artifact_metadata

BUNDLE_FORMAT = "yolo-optim/jetson-bundle"
BUNDLE_VERSION = 1
KIT_FILES = ("README.md", "common.sh", "setup.sh", "build.sh", "bench.sh", "yolo_optim_jetson.py")
EXECUTABLE = (".sh", ".py")


def kit_dir() -> Path:
    """The folder holding the Jetson scripts: scripts/jetson/ of a source tree, or yolo_optim.jetson_kit installed."""
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / "scripts" / "jetson"]
    try:
        from importlib.resources import files

        candidates.append(Path(str(files("yolo_optim.jetson_kit"))))
    except (ModuleNotFoundError, TypeError):
        pass
    for c in candidates:
        if all((c / f).is_file() for f in KIT_FILES):
            return c
    raise OptimError("the Jetson scripts (scripts/jetson) are missing from this installation; reinstall yolo-optim")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_bundle(graph: Path, folder: Path, header: dict[str, Any], meta: dict[str, Any],
                 strides: list[float]) -> Path:
    """Write the deploy bundle for `graph` into `folder` (inside the export's temporary folder); returns it."""
    kit = kit_dir()
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / "model.onnx"
    shutil.copyfile(graph, onnx_path)
    bundle = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "onnx": onnx_path.name}
    write_artifact_metadata(onnx_path, {**meta, "bundle": bundle})  # the ONNX carries its own record too
    sha = file_sha256(onnx_path)  # after the metadata went in: this is the file the device builds from
    ours = {**meta, "bundle": {**bundle, "onnx_sha256": sha}}
    device_meta = {
        **bundle, "onnx_sha256": sha,
        "precision": meta["precision"], "imgsz": meta["imgsz"], "task": meta.get("task"),
        "names": {str(k): v for k, v in (meta.get("names") or {}).items()},
        "strides": [int(s) for s in strides], "stride": int(max(strides)),
        "source_model": meta.get("source_model"), "source_sha256": meta.get("source_sha256"),
        "calibration": meta.get("calibration"), "quantization": meta.get("quantization"),
        "precision_graph": meta.get("precision_graph"), "onnx_opset": meta.get("onnx_opset"),
        # strongly typed on TensorRT 10 (--stronglyTyped) and 11 (always): the precision is the graph's
        "strongly_typed": True,
        "ultralytics_header": header,
        META_KEY: ours,
    }
    (folder / "metadata.json").write_text(json.dumps(device_meta, indent=2, default=str) + "\n", encoding="utf-8")
    _write_sidecar(folder, header, ours)
    for name in KIT_FILES:
        dest = folder / name
        shutil.copyfile(kit / name, dest)
        if dest.suffix in EXECUTABLE:
            dest.chmod(0o755)
    return folder


def _write_sidecar(folder: Path, header: dict[str, Any], ours: dict[str, Any]) -> None:
    """metadata.yaml: Ultralytics' fields and ours under META_KEY, as yolo-optim reads any artifact folder."""
    import yaml

    plain = json.loads(json.dumps(header, default=str))
    if isinstance(header.get("names"), dict):
        plain["names"] = {int(k): v for k, v in header["names"].items()}
    (folder / "metadata.yaml").write_text(yaml.safe_dump(plain, sort_keys=False, allow_unicode=True),
                                          encoding="utf-8")
    write_artifact_metadata(folder, ours)


def read_bundle(folder: str | Path) -> dict[str, Any]:
    """metadata.json of a bundle, with a one-line error for a folder that is not one."""
    path = Path(folder) / "metadata.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise OptimError(f"{folder} is not a tensorrt-jetson bundle ({type(e).__name__} reading metadata.json)") \
            from None
    if meta.get("format") != BUNDLE_FORMAT:
        raise OptimError(f"{folder} is not a tensorrt-jetson bundle (metadata.json format {meta.get('format')!r})")
    return meta


def bundle_runner(folder: Path, threads: int = 0) -> Any:
    """The bundle's ONNX on ONNX Runtime's CPU provider: the graph the device builds, checked here for accuracy."""
    from .onnxruntime import OnnxRuntimeRunner

    meta = read_bundle(folder)
    onnx_path = folder / meta["onnx"]
    if file_sha256(onnx_path) != meta["onnx_sha256"]:
        raise OptimError(f"{onnx_path} was changed after export (sha256 differs from metadata.json); export again")
    return OnnxRuntimeRunner(onnx_path, threads)
