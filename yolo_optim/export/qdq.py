"""Precision baked into the ONNX graph, for TensorRT 10.3+ and 11: a Q/DQ INT8 graph and an fp16 graph, made on a CPU.

TensorRT 11 builds strongly typed networks only: its FP16/INT8 builder flags and INT8 calibrators are gone, so the
precision must already be in the graph. TensorRT 10 builds the same graphs as strongly typed networks too, so one
artifact serves both (and Jetson's JetPack 6, whose TensorRT 10.3 deprecates the calibrator API).

INT8 is ONNX Runtime's static quantization with TensorRT's conventions (its "explicit quantization" guide):
symmetric int8 activations and weights (every zero-point 0, which TensorRT requires), weights per output channel,
Q/DQ pairs only on the inputs of the ops TensorRT runs in int8 (convolutions and matrix products; their outputs stay
float so TensorRT fuses each DQ -> Conv -> activation into one int8 kernel), calibrated with min/max on the training
split. The head's decode (DFL, anchors, strides, sigmoid) and its last convolutions stay float: they are found from
the graph by `graph.find_head_scope`, for any YOLO family.

FP16 is every float tensor in fp16 with fp32 inputs and outputs, the decode kept in fp32 (box coordinates reach the
image size, where fp16 keeps 0.25-0.5 px steps).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base import onnx_metadata, restore_onnx_metadata
from .graph import find_head_scope, level_grids, onnx_nodes

# Ops whose inputs get Q/DQ pairs: what TensorRT runs in int8 and fuses with the DQ of its inputs.
QDQ_OP_TYPES = ("Conv", "ConvTranspose", "MatMul", "Gemm")
WEIGHT_INPUT_OPS = ("Conv", "ConvTranspose", "Gemm")  # ops whose second input is a weight


@dataclass(frozen=True)
class QDQSummary:
    """What a quantized ONNX graph holds: the checks TensorRT's explicit quantization needs, as numbers."""

    quantize_nodes: int  # QuantizeLinear nodes
    dequantize_nodes: int  # DequantizeLinear nodes
    int8_types: bool  # every Q/DQ uses int8 (signed), no uint8
    nonzero_zero_points: int  # zero-point tensors with a value other than 0 (TensorRT needs all 0)
    per_channel_weights: int  # weight DQs with one scale per output channel
    quantized_convs: int  # convolutions whose activation input comes through a DequantizeLinear
    convs: int  # all convolutions
    float_nodes_with_qdq: int  # decode nodes reading a DQ or feeding a Q (should be 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def head_float_nodes(model_path: Path, imgsz: int, strides: list[float], level: int = 0) -> list[str]:
    """Node names kept in float: the decode and the head's prediction convs; level 1 adds the stem."""
    import onnx

    scope = find_head_scope(onnx_nodes(onnx.load(str(model_path))), level_grids(int(imgsz), strides))
    names = list(scope.decode) + [n for n in scope.prediction_convs if n not in scope.decode]
    if level >= 1:
        names += [n for n in scope.stem if n not in names]
    return names


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader over calibration arrays (re-iterable via rewind)."""

    def __init__(self, input_name: str, arrays: Any) -> None:
        self.input_name, self.arrays = input_name, arrays
        self.rewind()

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {self.input_name: x}

    def rewind(self) -> None:
        self._it = iter(self.arrays)


def quantize_qdq_int8(src: Path, dst: Path, calibration: Any, float_nodes: list[str],
                      op_types: tuple[str, ...] = QDQ_OP_TYPES) -> dict[str, Any]:
    """Write a TensorRT-style Q/DQ INT8 graph of `src` to `dst`; returns what the artifact metadata records.

    `calibration` yields (1, 3, H, W) float32 arrays in [0, 1] (a CalibrationSet); `float_nodes` stay float.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dst.with_name(dst.stem + ".pre.onnx")
    # shape inference only: ONNX Runtime's graph optimizations could leave ops TensorRT does not parse
    quant_pre_process(str(src), str(pre), skip_optimization=True, skip_symbolic_shape=True)
    input_name = onnx.load(str(pre), load_external_data=False).graph.input[0].name
    options = {
        "ActivationSymmetric": True,  # zero-points 0: TensorRT supports symmetric quantization only
        "WeightSymmetric": True,
        "QuantizeBias": False,  # TensorRT's Q/DQ take int8 only; an int32 bias DequantizeLinear does not parse
        "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},  # a MatMul weight has its output channels on axis 1
        "OpTypesToExcludeOutputQuantization": list(op_types),  # Q/DQ on inputs only, as TensorRT places them
    }
    with _quiet_root_logger():  # onnxruntime.quantization logs per-tensor notes on the root logger
        quantize_static(str(pre), str(dst), _Reader(input_name, calibration), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(op_types), per_channel=True, reduce_range=False,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=list(float_nodes), calibrate_method=CalibrationMethod.MinMax,
                        extra_options=options)
    pre.unlink(missing_ok=True)
    summary = inspect_qdq(dst, float_nodes)
    return {"method": "explicit quantization: Q/DQ ONNX from onnxruntime.quantization.quantize_static, MinMax "
                      "calibration, symmetric int8 activations and weights, weights per output channel",
            "tool": "onnxruntime", "op_types": list(op_types), "float_nodes": len(float_nodes),
            "qdq": summary.to_dict()}


def convert_fp16(src: Path, dst: Path, float_nodes: list[str]) -> dict[str, Any]:
    """Write `src` with fp16 weights and activations, fp32 inputs/outputs and `float_nodes` kept fp32, to `dst`."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    props = [(p.key, p.value) for p in model.metadata_props]
    half = convert_float_to_float16(model, keep_io_types=True, node_block_list=list(float_nodes),
                                    disable_shape_infer=False)
    del half.metadata_props[:]
    for k, v in props:
        entry = half.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(half, str(dst))
    return {"method": "fp16 ONNX (onnxruntime.transformers.float16, keep_io_types): fp16 weights and activations, "
                      "fp32 inputs and outputs", "float_nodes": len(float_nodes)}


def inspect_qdq(path: Path, float_nodes: list[str] | tuple[str, ...] = ()) -> QDQSummary:
    """Count and check the Q/DQ nodes of an ONNX graph (see QDQSummary)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    q = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    dq = [n for n in graph.node if n.op_type == "DequantizeLinear"]
    int8, nonzero, per_channel = True, 0, 0
    for n in q + dq:
        zp = inits.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if zp is None:  # no zero-point input means uint8 for QuantizeLinear: not what TensorRT wants
            int8 = int8 and n.op_type == "DequantizeLinear" and _input_dtype(n, inits) == onnx.TensorProto.INT8
            continue
        int8 = int8 and zp.data_type == onnx.TensorProto.INT8
        nonzero += int(np.any(numpy_helper.to_array(zp) != 0))
        if n.op_type == "DequantizeLinear" and _is_weight(n.input[0], inits, producer) and \
                n.input[1] in inits and numpy_helper.to_array(inits[n.input[1]]).size > 1:
            per_channel += 1
    convs = [n for n in graph.node if n.op_type == "Conv"]
    quantized = sum(1 for n in convs if (p := producer.get(n.input[0])) is not None and
                    p.op_type == "DequantizeLinear")
    floats = set(float_nodes)
    touching = 0
    for n in graph.node:
        if n.name not in floats:
            continue
        reads_dq = any((p := producer.get(i)) is not None and p.op_type == "DequantizeLinear" for i in n.input)
        feeds_q = any(c.op_type == "QuantizeLinear" for o in n.output for c in consumers.get(o, []))
        touching += int(reads_dq or feeds_q)
    return QDQSummary(len(q), len(dq), int8, nonzero, per_channel, quantized, len(convs), touching)


def _is_weight(name: str, inits: dict[str, Any], producer: dict[str, Any]) -> bool:
    """A constant: an int8 initializer, or a QuantizeLinear of a float initializer (ModelOpt keeps weights float)."""
    if name in inits:
        return True
    p = producer.get(name)
    return p is not None and p.op_type == "QuantizeLinear" and p.input[0] in inits


def _input_dtype(node: Any, inits: dict[str, Any]) -> int | None:
    t = inits.get(node.input[0])
    return t.data_type if t is not None else None


def precision_onnx(fp32: Path, precision: str, options: Any, strides: list[float],
                   work: Path) -> tuple[Path, dict[str, Any]]:
    """The ONNX a TensorRT build starts from for `precision` (fp32: `fp32` itself) and its metadata fields.

    `options` is an ExportOptions (imgsz, float_scope, and for INT8 the calibration set or data to sample it from).
    """
    if precision == "fp32":
        return fp32, {}
    imgsz = int(options.imgsz)
    level = int(getattr(options, "float_scope", 0) or 0)
    float_nodes = head_float_nodes(fp32, imgsz, strides, level)
    if precision == "fp16":
        out = work / "fp16.onnx"
        return out, {"precision_graph": convert_fp16(fp32, out, float_nodes)}
    if precision != "int8":
        raise ValueError(f"no ONNX precision graph for {precision}")
    from .calibration import calibration_for

    calib = calibration_for(options)
    out = work / "int8_qdq.onnx"
    quant = quantize_qdq_int8(fp32, out, calib, float_nodes)
    restore_onnx_metadata(out, onnx_metadata(fp32))
    return out, {"calibration": calib.info(), "quantization": {**quant, "float_scope_level": level}}


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(before)
