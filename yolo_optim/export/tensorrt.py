"""TensorRT backend: FP32, FP16 and calibrated INT8 engines, built on the GPU that will run them.

The engine file follows Ultralytics' layout (4-byte length, JSON metadata, serialized engine) so `YOLO(path)` loads
it. INT8 calibration is cached under the cache folder, keyed by the source model's hash, the calibration images'
fingerprint, the input shape and the TensorRT version, so rebuilding an engine skips the calibration pass.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OptimError, missing_extra
from ..paths import cache_dir
from .artifact import LOG, StagedSource, artifact_metadata, artifact_stem
from .base import (
    Backend,
    Target,
    _engine_header,
    read_artifact_metadata,
    register_backend,
)
from .calibration import calibration_for
from .graph import find_head_scope, level_grids, onnx_nodes

WORKSPACE_GIB = 4


@register_backend
class TensorRTBackend(Backend):
    name = "tensorrt"
    devices = ("gpu",)
    precisions = ("fp32", "fp16", "int8")
    extra = "tensorrt"
    package = "tensorrt"
    fallbacks = ({"float_scope": 1},)

    def availability(self, device: str = "gpu") -> tuple[bool, str]:
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return False, str(missing_extra("tensorrt", self.extra))
        except Exception as e:  # noqa: BLE001 - a wheel without its CUDA libraries fails with OSError and friends
            return False, f"tensorrt cannot be imported ({type(e).__name__}: {e})"
        try:
            import torch

            if not torch.cuda.is_available():
                return False, "no CUDA GPU is visible here (TensorRT engines are built and run on the GPU)"
        except Exception as e:  # noqa: BLE001 - availability never raises, it reports
            return False, f"CUDA cannot be initialised ({type(e).__name__}: {e})"
        return True, ""

    def supports(self, target: Target) -> tuple[bool, str]:
        ok, why = super().supports(target)
        if ok and target.precision in ("fp16", "int8"):
            import tensorrt as trt

            builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
            fast = builder.platform_has_fast_fp16 if target.precision == "fp16" else builder.platform_has_fast_int8
            if not fast:
                return False, f"this GPU has no fast {target.precision} kernels"
        return ok, why

    # ------------------------------------------------------------------------------------------------ export
    def export(self, yolo: Any, target: Target, cfg: Any, out_dir: Path) -> Path:
        self.check(target)
        import onnx
        import tensorrt as trt

        out_dir = Path(out_dir)
        source = StagedSource(yolo, out_dir, bool(getattr(cfg, "verbose", False)))
        onnx_path = source.export("onnx", int(cfg.imgsz))
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise OptimError(f"TensorRT cannot parse the ONNX graph: {errors[:300]}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_GIB << 30)
        extra: dict[str, Any] = {}
        if target.precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if target.precision == "int8":
            calib = calibration_for(cfg)
            config.set_flag(trt.BuilderFlag.INT8)
            level = int(getattr(cfg, "float_scope", 0))
            scope = find_head_scope(onnx_nodes(onnx.load(str(onnx_path))), level_grids(int(cfg.imgsz),
                                                                                        source.strides))
            kept = _keep_float(network, set(scope.names(level)), trt)
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
            cache = calibration_cache_path(source.sha256, calib.fingerprint, int(cfg.imgsz), 1, trt.__version__)
            config.int8_calibrator = _calibrator(calib, cache, trt)
            extra = {"calibration": {**calib.info(), "cache": str(cache)},
                     "quantization": {"method": "TensorRT implicit INT8, entropy calibration (IInt8EntropyCalibrator2)",
                                      "float_scope_level": level, "float_layers": kept}}
        blob = builder.build_serialized_network(network, config)
        if blob is None:
            raise OptimError(f"TensorRT could not build a {target.precision} engine for this model on this GPU")
        final = out_dir / f"{artifact_stem(source, target)}.engine"
        header = _ultralytics_metadata(onnx_path)
        import torch

        meta = artifact_metadata(target, cfg, source, self.package, executed_precision=target.precision,
                                 gpu=torch.cuda.get_device_name(0), **extra)
        header["yolo_optim"] = meta
        text = json.dumps(header, default=str).encode()
        final.write_bytes(len(text).to_bytes(4, byteorder="little", signed=True) + text + bytes(blob))
        source.cleanup()
        return final

    def load_runner(self, artifact: str | Path, threads: int = 0) -> TensorRTRunner:
        ok, why = self.availability("gpu")
        if not ok:
            raise OptimError(f"cannot run {artifact}: {why}")
        return TensorRTRunner(Path(artifact))


def calibration_cache_path(model_sha: str, data_fingerprint: str, imgsz: int, batch: int, trt_version: str) -> Path:
    """Where the INT8 calibration table of this model, data, shape and TensorRT version is kept."""
    key = hashlib.sha256(f"{model_sha}|{data_fingerprint}|{imgsz}|{batch}|{trt_version}".encode()).hexdigest()[:24]
    return cache_dir() / "tensorrt" / f"calib-{key}.cache"


def _keep_float(network: Any, names: set[str], trt: Any) -> int:
    """Pin the head's decode layers (ONNX node names survive parsing as layer names) to fp32."""
    kept = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if layer.name in names and outputs and all(o.dtype in (trt.float32, trt.float16) for o in outputs):
            layer.precision = trt.float32  # shape arithmetic (int32) is left alone
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
            kept += 1
    return kept


def _calibrator(calib: Any, cache: Path, trt: Any) -> Any:
    import torch

    class Calibrator(trt.IInt8EntropyCalibrator2):
        """Feeds the calibration images one at a time from GPU memory; reads/writes the keyed cache."""

        def __init__(self) -> None:
            super().__init__()
            self.it = iter(calib)
            self.buffer: torch.Tensor | None = None

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            x = next(self.it, None)
            if x is None:
                return None
            self.buffer = torch.from_numpy(x).cuda().contiguous()
            return [int(self.buffer.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            if cache.is_file():
                LOG.info("TensorRT: reusing calibration cache %s", cache)
                return cache.read_bytes()
            return None

        def write_calibration_cache(self, blob: Any) -> None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".tmp-{id(self)}")
            tmp.write_bytes(bytes(blob))
            tmp.replace(cache)

    return Calibrator()


def _ultralytics_metadata(onnx_path: Path) -> dict[str, Any]:
    """Ultralytics' metadata from its ONNX export, with literal values parsed back (the engine header is JSON)."""
    import onnx

    out: dict[str, Any] = {}
    for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props:
        try:
            out[p.key] = ast.literal_eval(p.value)
        except (ValueError, SyntaxError):
            out[p.key] = p.value
    return out


class TensorRTRunner:
    """An execution context with device buffers kept between calls; copies in and out are part of a call."""

    def __init__(self, path: Path) -> None:
        import tensorrt as trt
        import torch

        if not path.is_file():
            raise OptimError(f"{path} does not exist; give the .engine file an export wrote")
        offset, _ = _engine_header(path)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(path.read_bytes()[offset:])
        if self.engine is None:
            raise OptimError(f"{path} cannot be loaded by TensorRT {trt.__version__} on this GPU; rebuild it here")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.buffers: dict[str, torch.Tensor] = {}
        self.inputs, self.outputs = [], []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))
            dtype = torch.from_numpy(np.empty(0, trt.nptype(self.engine.get_tensor_dtype(name)))).dtype
            self.buffers[name] = torch.empty(shape, dtype=dtype, device="cuda")
            self.context.set_tensor_address(name, int(self.buffers[name].data_ptr()))
            (self.inputs if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else self.outputs).append(name)
        self.input_shape = tuple(self.buffers[self.inputs[0]].shape)
        self.executed_precision = read_artifact_metadata(path).get("precision", "fp32")

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        import torch

        with torch.cuda.stream(self.stream):
            self.buffers[self.inputs[0]].copy_(torch.from_numpy(x), non_blocking=False)
            self.context.execute_async_v3(self.stream.cuda_stream)
            outs = [self.buffers[n].float().cpu().numpy() for n in self.outputs]
        self.stream.synchronize()
        return outs
