"""ONNX Runtime backend: FP32 (Ultralytics' ONNX), FP16, INT8 weights-only and INT8 static QDQ, per channel.

INT8 activations are unsigned (U8) and weights signed (S8) on every CPU: ONNX Runtime's x86 int8 kernels (MLAS)
multiply U8 activations by S8 weights (with VNNI/AMX); signed activations fall off that path and run several times
slower than FP32, which is why a naive INT8 ONNX export is slower than FP32. On ARM the int8 dot-product kernels
take either, so U8S8 keeps one format everywhere. What does depend on the CPU is `reduce_range` (see int8_scheme).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..core.cpu import has_int8_dot, is_x86
from ..core.options import ExportOptions
from ..errors import OptimError, missing_extra
from .artifact import LOG, StagedSource, artifact_metadata, artifact_stem, place
from .base import (
    Backend,
    Target,
    onnx_metadata,
    read_artifact_metadata,
    register_backend,
    restore_onnx_metadata,
    write_artifact_metadata,
)
from .calibration import calibration_for
from .graph import find_head_scope, level_grids, onnx_nodes

WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm")


def int8_scheme() -> dict[str, Any]:
    """The INT8 types and format for this CPU (measured in scripts/bench_export.py).

    The types are the same everywhere: U8 activations x S8 weights, QDQ (see the module docstring). The CPU decides
    `reduce_range`: x86 without VNNI/AMX gets 7-bit weights, so the 16-bit intermediate sums of AVX2's vpmaddubsw
    cannot saturate; with VNNI/AMX (and on ARM) the full 8 bits are used.
    """
    vnni = has_int8_dot()
    return {"activation_type": "QUInt8", "weight_type": "QInt8", "format": "QDQ",
            "reduce_range": bool(is_x86() and not vnni), "cpu_int8_dot": "vnni/amx" if vnni else "none"}


@register_backend
class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    devices = ("cpu",)
    precisions = ("fp32", "fp16", "int8w", "int8")
    extra = None  # onnxruntime is a core dependency
    package = "onnxruntime"
    fallbacks = ({"float_scope": 1},)

    def availability(self, device: str = "cpu") -> tuple[bool, str]:
        try:
            import onnxruntime as ort
        except ImportError:
            return False, str(missing_extra("onnxruntime", self.extra))
        if device != "cpu" or "CPUExecutionProvider" not in ort.get_available_providers():
            return False, f"onnxruntime has no execution provider for device '{device}'"
        return True, ""

    def supports(self, target: Target) -> tuple[bool, str]:
        ok, why = super().supports(target)
        if ok and target.precision == "fp16" and not cpu_runs_fp16():
            return False, ("this CPU's onnxruntime has no fp16 kernels (it would cast every layer back to fp32, so "
                           "an 'fp16' label would be false); use precision=fp32, int8w or int8, or openvino-cpu:fp16")
        return ok, why

    # ------------------------------------------------------------------------------------------------ export
    def export(self, yolo: Any, target: Target, options: ExportOptions, out_dir: Path) -> Path:
        self.check(target)
        import onnx

        out_dir = Path(out_dir)
        source = StagedSource(yolo, out_dir, options.verbose)
        fp32 = source.export("onnx", int(options.imgsz))
        rewritten = decompose_inner_softmax(fp32)
        extra: dict[str, Any] = {"graph_rewrites": {"softmax_decomposed": rewritten}} if rewritten else {}
        if target.precision == "fp32":
            produced = fp32
        elif target.precision == "fp16":
            from onnxruntime.transformers.float16 import convert_float_to_float16

            produced = source.work / "fp16.onnx"
            onnx.save(convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True), str(produced))
        elif target.precision == "int8w":
            produced = source.work / "int8w.onnx"
            count = quantize_weights_only(fp32, produced)
            extra["quantization"] = {"method": "weights-only int8, symmetric per output channel (DequantizeLinear)",
                                     "layers": count}
            # Fold the weight dequantization once at load: left in place it runs on every call (about 2x slower)
            extra["session_config"] = {"session.disable_quant_qdq": "1"}
        else:
            produced, extra = self._quantize_static(fp32, source, options)
        props = onnx_metadata(fp32)
        final = place(produced, out_dir / f"{artifact_stem(source, target)}.onnx")
        restore_onnx_metadata(final, props)
        meta = artifact_metadata(target, options, source, self.package, executed_precision=target.precision, **extra)
        write_artifact_metadata(final, meta)
        source.cleanup()
        return final

    def _quantize_static(self, fp32: Path, source: StagedSource,
                         options: ExportOptions) -> tuple[Path, dict[str, Any]]:
        import onnx
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process

        calib = calibration_for(options)
        pre = source.work / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        level = options.float_scope
        scope = find_head_scope(onnx_nodes(onnx.load(str(pre))), level_grids(int(options.imgsz), source.strides))
        excluded = scope.names(level)
        scheme = int8_scheme()
        out = source.work / "int8.onnx"
        with _root_log_level(logging.ERROR):  # onnxruntime.quantization logs per-tensor notes on the root logger
            quantize_static(str(pre), str(out), _CalibrationReader(pre, calib),
                            quant_format=getattr(QuantFormat, scheme["format"]),
                            activation_type=getattr(QuantType, scheme["activation_type"]),
                            weight_type=getattr(QuantType, scheme["weight_type"]), per_channel=True,
                            reduce_range=scheme["reduce_range"], nodes_to_exclude=excluded,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
        return out, {"calibration": calib.info(), "quantization": {
            "method": "static post-training quantization (onnxruntime.quantization), MinMax calibration",
            **scheme, "per_channel": True, "float_scope_level": level, "float_nodes": len(excluded)}}

    # ------------------------------------------------------------------------------------------------ run
    def load_runner(self, artifact: str | Path, threads: int = 0) -> OnnxRuntimeRunner:
        ok, why = self.availability("cpu")
        if not ok:
            raise OptimError(f"cannot run {artifact}: {why}")
        return OnnxRuntimeRunner(Path(artifact), threads)


class OnnxRuntimeRunner:
    """An InferenceSession on the CPU execution provider with all graph optimizations and fixed threads."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        if not path.is_file():
            raise OptimError(f"{path} does not exist; give the .onnx file an export wrote")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        if threads > 0:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        self.metadata = read_artifact_metadata(path)
        for key, value in (self.metadata.get("session_config") or {}).items():
            so.add_session_config_entry(str(key), str(value))
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = tuple(d if isinstance(d, int) else -1 for d in inp.shape)
        self.executed_precision = self.metadata.get("executed_precision", self.metadata.get("precision", "fp32"))
        # read back from the session: 0 there means ONNX Runtime chose the pool size itself and does not report it
        self.threads_used = self.session.get_session_options().intra_op_num_threads or None
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(self.output_names, {self.input_name: x})


class _CalibrationReader:
    """onnxruntime.quantization's CalibrationDataReader over a CalibrationSet (re-iterable via rewind)."""

    def __init__(self, model_path: Path, calib: Any) -> None:
        import onnx

        self.input_name = onnx.load(str(model_path), load_external_data=False).graph.input[0].name
        self.calib = calib
        self.rewind()

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {self.input_name: x}

    def rewind(self) -> None:
        self._it = iter(self.calib)


def decompose_inner_softmax(path: Path) -> int:
    """Rewrite each Softmax over a non-last axis as ReduceMax/Sub/Exp/ReduceSum/Div, in place; returns the count.

    The DFL box decoding takes a softmax over the 16 distance bins, which are not the last axis; onnxruntime's CPU
    Softmax transposes such inputs around a last-axis kernel, single-threaded, and that one node costs several
    milliseconds at 640 px (a fifth of an INT8 model's time). The decomposition is the same arithmetic in
    element-wise, multi-threaded kernels (outputs agree to ~1e-4 px).
    """
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    inferred = onnx.shape_inference.infer_shapes(model).graph.value_info
    ranks = {vi.name: len(vi.type.tensor_type.shape.dim) for vi in inferred}
    nodes, count = [], 0
    for n in model.graph.node:
        axis = next((helper.get_attribute_value(a) for a in n.attribute if a.name == "axis"), -1)
        rank = ranks.get(n.input[0]) if n.op_type == "Softmax" else None
        if not rank or opset < 13 or axis in (-1, rank - 1):
            nodes.append(n)
            continue
        x, y, p = n.input[0], n.output[0], n.name or f"softmax_{count}"
        axes = helper.make_tensor(f"{p}/axes", onnx.TensorProto.INT64, [1], [axis])
        model.graph.initializer.append(axes)
        reduce_max = (helper.make_node("ReduceMax", [x, f"{p}/axes"], [f"{p}/max_out"], name=f"{p}/max", keepdims=1)
                      if opset >= 18 else
                      helper.make_node("ReduceMax", [x], [f"{p}/max_out"], name=f"{p}/max", keepdims=1, axes=[axis]))
        nodes += [reduce_max,
                  helper.make_node("Sub", [x, f"{p}/max_out"], [f"{p}/sub_out"], name=f"{p}/sub"),
                  helper.make_node("Exp", [f"{p}/sub_out"], [f"{p}/exp_out"], name=f"{p}/exp"),
                  helper.make_node("ReduceSum", [f"{p}/exp_out", f"{p}/axes"], [f"{p}/sum_out"], name=f"{p}/sum",
                                   keepdims=1),
                  helper.make_node("Div", [f"{p}/exp_out", f"{p}/sum_out"], [y], name=f"{p}/div")]
        count += 1
    if count:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        onnx.save(model, str(path))
    return count


def quantize_weights_only(src: Path, dst: Path) -> int:
    """Store every conv/gemm weight as int8 (symmetric, per output channel) behind a DequantizeLinear.

    Activations stay float: the compute runs in fp32 with the weights dequantized, the file shrinks about 4x.
    Returns the number of quantized layers.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    if max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0) < 13:
        raise OptimError(f"{src.name} uses ONNX opset < 13, which has no per-channel DequantizeLinear; re-export it")
    inits = {t.name: t for t in model.graph.initializer}
    users: dict[str, int] = {}
    for n in model.graph.node:
        for i in n.input:
            users[i] = users.get(i, 0) + 1
    new_nodes, count = [], 0
    for node in model.graph.node:
        w_name = node.input[1] if node.op_type in WEIGHT_OPS and len(node.input) > 1 else None
        tensor = inits.get(w_name) if w_name else None
        if tensor is None or tensor.data_type != onnx.TensorProto.FLOAT or users.get(w_name, 0) != 1:
            new_nodes.append(node)
            continue
        w = numpy_helper.to_array(tensor).astype(np.float32)
        axis = 1 if node.op_type == "ConvTranspose" or (node.op_type == "Gemm" and not _attr(node, "transB")) else 0
        moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
        scale = np.maximum(np.abs(moved).max(axis=1) / 127.0, 1e-12).astype(np.float32)
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        model.graph.initializer.remove(tensor)
        model.graph.initializer.extend([numpy_helper.from_array(q, f"{w_name}_int8"),
                                        numpy_helper.from_array(scale, f"{w_name}_scale")])
        new_nodes.append(helper.make_node("DequantizeLinear", [f"{w_name}_int8", f"{w_name}_scale"], [w_name],
                                          name=f"{w_name}_dequantize", axis=axis))
        new_nodes.append(node)
        count += 1
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    onnx.save(model, str(dst))
    return count


@contextlib.contextmanager
def _root_log_level(level: int) -> Iterator[None]:
    root = logging.getLogger()
    before = root.level
    root.setLevel(level)
    try:
        yield
    finally:
        root.setLevel(before)


def _attr(node: Any, name: str) -> Any:
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), 0)


@functools.cache
def cpu_runs_fp16() -> bool:
    """Whether onnxruntime's CPU provider runs an fp16 Conv natively (no Cast back to fp32 inserted)."""
    try:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return False
    w = numpy_helper.from_array(np.ones((4, 4, 3, 3), np.float16), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 4, 8, 8])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.log_severity_level = 3
        try:
            ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        except Exception:  # noqa: BLE001 - any failure to build the probe means no usable fp16 kernel
            return False
        ops = [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]
    LOG.debug("onnxruntime fp16 probe ops: %s", ops)
    return "Cast" not in ops
