"""The ONNX graphs a TensorRT engine is built from, checked on the CPU with ONNX Runtime: the Q/DQ INT8 graph's
structure (int8, zero-points 0, per-channel weights, Q/DQ on conv inputs, decode free of Q/DQ), the fp16 graph's
types, and both graphs' outputs and mAP against fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from yolo_optim.export.qdq import convert_fp16, head_float_nodes, inspect_qdq, quantize_qdq_int8

IMGSZ = 64


@pytest.fixture(scope="module")
def graphs(tiny_model, demo_data, tmp_path_factory) -> dict[str, object]:
    """The tiny model's fp32 ONNX and its Q/DQ INT8 and fp16 graphs, made as the TensorRT backend makes them."""
    from yolo_optim.export.artifact import StagedSource
    from yolo_optim.export.calibration import calibration_set
    from yolo_optim.models import load_yolo

    out = tmp_path_factory.mktemp("trt-onnx")
    source = StagedSource(load_yolo(str(tiny_model)), out)
    fp32 = source.export("onnx", IMGSZ)
    floats = head_float_nodes(fp32, IMGSZ, source.strides)
    calib = calibration_set(demo_data, IMGSZ, 8, 0)
    int8, fp16 = out / "int8.onnx", out / "fp16.onnx"
    info = quantize_qdq_int8(fp32, int8, calib, floats)
    convert_fp16(fp32, fp16, floats)
    return {"fp32": fp32, "int8": int8, "fp16": fp16, "floats": floats, "info": info, "calib": calib}


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def test_qdq_graph_follows_tensorrt_explicit_quantization(graphs):
    import onnx

    s = inspect_qdq(graphs["int8"], graphs["floats"])
    assert s.int8_types and s.nonzero_zero_points == 0  # symmetric int8: TensorRT takes zero zero-points only
    assert s.quantize_nodes > 0 and s.per_channel_weights == s.quantized_convs
    float_convs = [n for n in graphs["floats"] if n.endswith("Conv")]
    assert s.quantized_convs == s.convs - len(float_convs) and len(float_convs) >= 7  # 6 prediction convs + DFL
    assert s.float_nodes_with_qdq == 0
    graph = onnx.load(str(graphs["int8"])).graph
    producer = {o: n for n in graph.node for o in n.output}
    for n in graph.node:
        if n.op_type == "QuantizeLinear":  # activations are quantized only where a conv/matmul reads them
            consumers = [c.op_type for c in graph.node if n.output[0] in c.input]
            assert consumers and set(consumers) == {"DequantizeLinear"}
        if n.op_type == "Conv" and n.name not in graphs["floats"]:
            assert producer[n.input[0]].op_type == producer[n.input[1]].op_type == "DequantizeLinear"
            assert len(n.input) < 3 or n.input[2] not in producer  # bias stays float
    assert graphs["info"]["qdq"] == s.to_dict()


def test_qdq_and_fp16_outputs_follow_fp32(graphs):
    x = next(iter(graphs["calib"]))
    ref = _run(graphs["fp32"], x)
    boxes, scores = ref[0, :4], ref[0, 4:]
    for name, box_tol, score_tol in (("fp16", 0.5, 0.01), ("int8", 4.0, 0.1)):
        out = _run(graphs[name], x)
        assert out.dtype == np.float32 and out.shape == ref.shape
        assert np.abs(out[0, :4] - boxes).max() <= box_tol, name  # pixels at 64 px
        assert np.abs(out[0, 4:] - scores).max() <= score_tol, name


def test_fp16_graph_has_fp32_io_and_fp16_weights(graphs):
    import onnx

    model = onnx.load(str(graphs["fp16"]))
    float_t, half_t = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    assert all(t.type.tensor_type.elem_type == float_t for t in (*model.graph.input, *model.graph.output))
    conv_weights = {n.input[1] for n in model.graph.node if n.op_type == "Conv"}
    inits = {t.name: t.data_type for t in model.graph.initializer}
    kinds = {inits[w] for w in conv_weights if w in inits}
    assert half_t in kinds
    assert {p.key for p in model.metadata_props} >= {"stride", "names", "imgsz"}  # YOLO(path) still loads it


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_trained_model_keeps_its_accuracy(trained_baseline, precision, tmp_path):
    """The Jetson bundle's graph, validated on the CPU through the benchmark's accuracy path, against fp32."""
    from yolo_optim.export import export
    from yolo_optim.export.validate import val_artifact, val_checkpoint

    baseline = trained_baseline
    result = export(str(baseline.weights), f"tensorrt-jetson:{precision}", data=str(baseline.data),
                    imgsz=baseline.imgsz, project=str(tmp_path), guard="off", calib_images=64)
    ref = val_checkpoint(baseline.weights, baseline.data, baseline.imgsz)
    got = val_artifact(result.path, baseline.data)
    assert ref.map50_95 > 0.2
    assert got.map50_95 >= ref.map50_95 - (0.01 if precision == "int8" else 0.002), (got, ref)
