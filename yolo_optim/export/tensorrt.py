"""TensorRT backend for TensorRT 10.3+ and 11.x: the precision lives in the ONNX graph, the engine is strongly typed.

TensorRT 11 removed every weakly typed precision control (BuilderFlag.FP16/INT8, OBEY_PRECISION_CONSTRAINTS, INT8
calibrators, platform_has_fast_fp16/int8, per-layer precision); TensorRT 10.3 (JetPack 6) deprecates the calibrator.
So FP16 and INT8 are written into the ONNX graph on the CPU first (`qdq.py`: an fp16 graph with fp32 I/O, or a
Q/DQ INT8 graph calibrated on the training split), and the engine is built from it as a strongly typed network
with no precision flag on either version. `tensorrt-gpu` builds the engine here, on the GPU that `device=` names;
`tensorrt-jetson` writes a deploy bundle (`jetson.py`) whose engine is built on the Jetson by its scripts.

The engine file follows Ultralytics' layout (4-byte length, JSON metadata, serialized engine) so `YOLO(path)` loads it.
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OptimError, missing_extra, one_line
from .artifact import StagedSource, artifact_metadata, artifact_stem
from .base import META_KEY, Backend, Target, _engine_header, read_artifact_metadata, register_backend
from .qdq import precision_onnx

WORKSPACE_GIB = 4
MIN_VERSION = (10, 3)  # JetPack 6's TensorRT; older releases lack parts of strong typing's Q/DQ support
JETSON_HINT = ("use target=tensorrt-jetson to write a deploy bundle (Q/DQ or fp16 ONNX and scripts) whose engine "
               "is built on the device")
JETSON_REASON = ("tensorrt-jetson engines are built and timed on the Jetson itself: `yolo-optim export "
                 "target=tensorrt-jetson` writes the deploy bundle, its bench.sh measures it there, and "
                 "`yolo-optim report runs=host,jetson` merges the results")


@register_backend
class TensorRTBackend(Backend):
    name = "tensorrt"
    devices = ("gpu", "jetson")
    precisions = ("fp32", "fp16", "int8")
    extra = "tensorrt"
    package = "tensorrt"
    fallbacks = ({"float_scope": 1},)

    def availability(self, device: str = "gpu") -> tuple[bool, str]:
        if device == "jetson":  # nothing here runs a Jetson engine; the bundle itself is written anywhere
            return False, JETSON_REASON
        try:  # the GPU first: without one, installing TensorRT would not help
            import torch

            if not torch.cuda.is_available():
                return False, (f"no CUDA GPU is visible here, and TensorRT builds engines on the GPU that runs "
                               f"them; {JETSON_HINT}")
        except Exception as e:  # noqa: BLE001 - availability never raises, it reports
            return False, f"CUDA cannot be initialised ({type(e).__name__}: {e}); {JETSON_HINT}"
        try:
            import tensorrt as trt
        except ImportError:
            return False, f"{missing_extra('tensorrt', self.extra)}; or {JETSON_HINT}"
        except Exception as e:  # noqa: BLE001 - a wheel without its CUDA libraries fails with OSError and friends
            return False, f"tensorrt cannot be imported ({type(e).__name__}: {e}); or {JETSON_HINT}"
        if trt_version(trt) < MIN_VERSION:
            return False, (f"TensorRT {trt.__version__} is too old: yolo-optim builds strongly typed engines "
                           f"with TensorRT 10.3 or newer (10.x and 11.x)")
        return True, ""

    def check(self, target: Target) -> None:
        if target.device != "jetson":
            return super().check(target)
        if target.precision not in self.precisions:  # the bundle needs no runtime here, only a known precision
            raise OptimError(f"cannot export to {target.name}: tensorrt does not support precision "
                             f"{target.precision} (it supports {', '.join(self.precisions)})")
        return None

    # ------------------------------------------------------------------------------------------------ export
    def export(self, yolo: Any, target: Target, options: Any, out_dir: Path) -> Path:
        self.check(target)
        out_dir = Path(out_dir)
        source = StagedSource(yolo, out_dir, bool(getattr(options, "verbose", False)))
        fp32 = source.export("onnx", int(options.imgsz))
        graph, extra = precision_onnx(fp32, target.precision, options, source.strides, source.work)
        extra = {**extra, "onnx_opset": _opset(graph), "strongly_typed": True}
        if target.device == "jetson":
            from .jetson import write_bundle

            meta = artifact_metadata(target, options, source, self.package, executed_precision=target.precision,
                                     **extra)
            final = write_bundle(graph, out_dir / f"{artifact_stem(source, target)}_jetson", ultralytics_header(
                graph), meta, source.strides)
        else:
            final = self._build(graph, out_dir / f"{artifact_stem(source, target)}.engine", source, target, options,
                                extra)
        source.cleanup()
        return final

    def _build(self, graph: Path, final: Path, source: StagedSource, target: Target, options: Any,
               extra: dict[str, Any]) -> Path:
        import tensorrt as trt

        index = cuda_index(getattr(options, "device", "cpu"))
        with cuda_device(index) as gpu:
            blob = build_engine(graph, trt)
        meta = artifact_metadata(target, options, source, self.package, executed_precision=target.precision,
                                 gpu=gpu, cuda_device=index, tensorrt_version=trt.__version__, **extra)
        write_engine(final, {**ultralytics_header(graph), META_KEY: meta}, blob)
        return final

    def load_runner(self, artifact: str | Path, threads: int = 0) -> Any:
        path = Path(artifact)
        if path.is_dir():  # a Jetson bundle: its ONNX graph on ONNX Runtime's CPU provider, for accuracy checks
            from .jetson import bundle_runner

            return bundle_runner(path, threads)
        ok, why = self.availability("gpu")
        if not ok:
            raise OptimError(f"cannot run {artifact}: {why}")
        return TensorRTRunner(path)


# ------------------------------------------------------------------------------------------------------ builder
def trt_version(trt: Any) -> tuple[int, int]:
    """(major, minor) of an imported tensorrt module."""
    m = re.match(r"(\d+)\.(\d+)", str(getattr(trt, "__version__", "0.0")))
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def network_flags(trt: Any) -> int:
    """create_network() flags for a strongly typed network.

    TensorRT 10 opts in with STRONGLY_TYPED; on 11 every network is strongly typed and the flag is deprecated
    (accepted, ignored), so none is passed.
    """
    if trt_version(trt) >= (11, 0):
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def build_engine(onnx_path: Path, trt: Any, workspace_gib: int = WORKSPACE_GIB) -> bytes:
    """Serialized engine of an ONNX graph whose tensors carry their precision (fp32, fp16 or Q/DQ INT8).

    Sets no precision flag, calibrator or per-layer precision: all are removed in TensorRT 11, and a strongly typed
    network on TensorRT 10 rejects them.
    """
    if trt_version(trt) < MIN_VERSION:
        raise OptimError(f"TensorRT {trt.__version__} is too old; install TensorRT 10.3 or newer")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise OptimError(f"TensorRT {trt.__version__} cannot parse {onnx_path.name}: {one_line(errors, 300, all_lines=True)}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_gib << 30)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise OptimError(f"TensorRT {trt.__version__} could not build an engine from {onnx_path.name} on this GPU "
                         f"(its log above says why)")
    return bytes(blob)


def cuda_index(device: Any) -> int:
    """The CUDA device index `device=` names: cpu/empty (the config default) -> 0, `1`, `cuda:1`, `0,1` -> first."""
    text = "" if device is None else str(device).strip().lower()
    if text in ("", "cpu", "cuda", "-1"):
        return 0
    m = re.fullmatch(r"(?:cuda:)?(\d+)(?:,\d+)*", text)
    if not m:
        raise OptimError(f"device={device} does not name a CUDA GPU; TensorRT engines are built on one "
                         f"(use device=0, 1 or cuda:1)")
    return int(m.group(1))


@contextlib.contextmanager
def cuda_device(index: int) -> Iterator[str]:
    """Make GPU `index` current (TensorRT builds and deserializes on the current device); yields its name."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if index >= count:
        raise OptimError(f"device={index} asks for CUDA GPU {index}, but this machine has {count}")
    with torch.cuda.device(index):
        yield torch.cuda.get_device_name(index)


def ultralytics_header(onnx_path: Path) -> dict[str, Any]:
    """Ultralytics' metadata from its ONNX export, literal values parsed back (the engine header is JSON)."""
    import onnx

    out: dict[str, Any] = {}
    for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props:
        if p.key == META_KEY:
            continue
        try:
            out[p.key] = ast.literal_eval(p.value)
        except (ValueError, SyntaxError):
            out[p.key] = p.value
    return out


def write_engine(path: Path, header: dict[str, Any], blob: bytes) -> None:
    """Ultralytics' engine layout: 4-byte little-endian length of the JSON header, the header, the engine."""
    text = json.dumps(header, default=str).encode()
    path.write_bytes(len(text).to_bytes(4, byteorder="little", signed=True) + text + bytes(blob))


def _opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


# ------------------------------------------------------------------------------------------------------ runner
class TensorRTRunner:
    """An execution context with device buffers kept between calls; copies in and out are part of a call."""

    def __init__(self, path: Path) -> None:
        import tensorrt as trt
        import torch

        if not path.is_file():
            raise OptimError(f"{path} does not exist; give the .engine file an export wrote")
        offset, _ = _engine_header(path)
        meta = read_artifact_metadata(path)
        self.device = torch.device("cuda", int(meta.get("cuda_device") or 0))
        with cuda_device(self.device.index):
            runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            self.engine = runtime.deserialize_cuda_engine(path.read_bytes()[offset:])
            if self.engine is None:
                raise OptimError(f"{path} cannot be loaded by TensorRT {trt.__version__} on this GPU; rebuild it here")
            self.context = self.engine.create_execution_context()
            self.stream = torch.cuda.Stream(self.device)
            self.buffers: dict[str, torch.Tensor] = {}
            self.inputs, self.outputs = [], []
            for i in range(self.engine.num_io_tensors):
                name = self.engine.get_tensor_name(i)
                shape = tuple(self.engine.get_tensor_shape(name))
                dtype = torch.from_numpy(np.empty(0, trt.nptype(self.engine.get_tensor_dtype(name)))).dtype
                self.buffers[name] = torch.empty(shape, dtype=dtype, device=self.device)
                self.context.set_tensor_address(name, int(self.buffers[name].data_ptr()))
                is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
                (self.inputs if is_input else self.outputs).append(name)
        self.input_shape = tuple(self.buffers[self.inputs[0]].shape)
        self.executed_precision = meta.get("precision", "fp32")

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        import torch

        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            self.buffers[self.inputs[0]].copy_(torch.from_numpy(x), non_blocking=False)
            self.context.execute_async_v3(self.stream.cuda_stream)
            outs = [self.buffers[n].float().cpu().numpy() for n in self.outputs]
        self.stream.synchronize()
        return outs
