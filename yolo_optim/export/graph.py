"""Find a YOLO detection head's decoding in an exported graph, so INT8 quantization can keep it in float.

Every YOLO head (v3u/v5u/v8/v9/v10/11/12/26: detect, segment, pose, obb) ends the same way: the last convolution of
each pyramid level gives a (N, C, h, w) map, the head flattens it over its h*w anchors, concatenates the levels and
decodes boxes (DFL softmax, anchor offsets, stride scaling) and scores (sigmoid), then optionally selects top-k.
Those decode ops carry pixel coordinates and probabilities whose ranges a single 8-bit scale cannot hold, so they
are what a quantizer must leave alone. They are found here from tensor shapes alone, for ONNX and OpenVINO graphs
alike, without relying on node names:

* the *boundary* nodes are Reshape/Flatten nodes that turn a level's (N, C, h, w) map into a tensor of another rank;
* a boundary is kept only if no convolution downstream of it reads a level-grid feature map again (that rules out
  the flatten of an attention block inside the backbone, as in YOLO12 or YOLO11's C2PSA);
* the decode tail is everything downstream of the kept boundaries.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

CONV_TYPES = {"Conv", "Convolution", "ConvTranspose", "GroupConvolution", "ConvolutionBackpropData"}
RESHAPE_TYPES = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}


@dataclass
class Node:
    """One operation of a graph, reduced to what the head analysis needs."""

    name: str  # node name (ONNX) or friendly name (OpenVINO)
    op: str  # operation type
    inputs: list[str]  # names of the nodes producing its inputs (graph inputs and initializers left out)
    in_shapes: list[tuple[int, ...] | None] = field(default_factory=list)  # static input shapes where known
    out_shapes: list[tuple[int, ...] | None] = field(default_factory=list)  # static output shapes where known


@dataclass(frozen=True)
class HeadScope:
    """The float-kept parts of a YOLO graph: the decode tail, and optionally the head's last convolutions."""

    decode: tuple[str, ...]  # decode ops downstream of the per-level flattens
    prediction_convs: tuple[str, ...]  # the final 1x1 convolutions of each head branch (and their bias adds)
    stem: tuple[str, ...]  # the first convolution (it sees raw pixels)

    def names(self, level: int = 0) -> list[str]:
        """Level 0: the decode only; level 1: also the prediction convolutions and the stem (a wider float scope)."""
        out = list(self.decode)
        if level >= 1:
            out += [n for n in (*self.prediction_convs, *self.stem) if n not in out]
        return out


def level_grids(imgsz: int | tuple[int, int], strides: Iterable[float]) -> set[tuple[int, int]]:
    """The (h, w) of every pyramid level a head reads, from the input size and the head's strides."""
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    return {(int(h // s), int(w // s)) for s in strides}


def find_head_scope(nodes: list[Node], grids: set[tuple[int, int]]) -> HeadScope:
    """The decode tail, prediction convolutions and stem of a YOLO graph (see the module docstring)."""
    by_name = {n.name: n for n in nodes}
    consumers: dict[str, list[str]] = {n.name: [] for n in nodes}
    for n in nodes:
        for i in n.inputs:
            if i in consumers:
                consumers[i].append(n.name)

    def descendants(start: str) -> set[str]:
        seen, todo = {start}, deque([start])
        while todo:
            for c in consumers.get(todo.popleft(), []):
                if c not in seen:
                    seen.add(c)
                    todo.append(c)
        return seen

    def reads_level_map(n: Node) -> bool:
        return n.op in CONV_TYPES and any(_is_level_map(s, grids) for s in n.in_shapes[:1])

    boundaries, tail = [], set()
    for n in nodes:
        if n.op not in RESHAPE_TYPES or not n.in_shapes or not _is_level_map(n.in_shapes[0], grids):
            continue
        out = n.out_shapes[0] if n.out_shapes else None
        if out is None or len(out) == 4:
            continue  # a 4-D to 4-D reshape stays a feature map (attention blocks), not a head flatten
        below = descendants(n.name)
        if any(reads_level_map(by_name[d]) for d in below if d != n.name):
            continue  # the network goes on convolving feature maps after it: not the head's end
        boundaries.append(n)
        tail |= below
    if not boundaries:
        raise ValueError("no YOLO detection head found in the graph (no per-level flatten feeding the outputs)")

    preds: list[str] = []
    for b in boundaries:  # walk up from each flatten through bias/concat/shape ops to the convs that fed it
        todo = deque((i, 0) for i in b.inputs)
        while todo:
            name, depth = todo.popleft()
            cur = by_name.get(name)
            if cur is None or depth > 3 or name in preds:
                continue
            if cur.op in CONV_TYPES:
                preds.append(name)
            elif cur.op in {"Add", "Concat", "Reshape"}:
                preds.append(name)
                todo.extend((i, depth + 1) for i in cur.inputs)
        preds = [p for p in preds if by_name[p].op in CONV_TYPES or _feeds_conv_chain(by_name[p], by_name)]
    stem = next(([n.name] for n in nodes if n.op in CONV_TYPES), [])
    order = {n.name: i for i, n in enumerate(nodes)}
    return HeadScope(tuple(sorted(tail, key=order.__getitem__)), tuple(dict.fromkeys(preds)), tuple(stem))


def _feeds_conv_chain(node: Node, by_name: dict[str, Node]) -> bool:
    """A bias add / concat kept with the prediction convs only when one of its inputs is such a conv."""
    return any(by_name[i].op in CONV_TYPES for i in node.inputs if i in by_name)


def _is_level_map(shape: tuple[int, ...] | None, grids: set[tuple[int, int]]) -> bool:
    return shape is not None and len(shape) == 4 and (shape[2], shape[3]) in grids


# --------------------------------------------------------------------------------------------------- adapters
def onnx_nodes(model: Any) -> list[Node]:
    """Nodes of an ONNX ModelProto with inferred static shapes."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes: dict[str, tuple[int, ...] | None] = {}
    for vi in (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = tuple(d.dim_value for d in dims) if dims and all(d.HasField("dim_value") for d in dims) \
            else None
    producer = {o: n.name for n in inferred.graph.node for o in n.output}
    return [Node(n.name, n.op_type, [producer[i] for i in n.input if i in producer],
                 [shapes.get(i) for i in n.input], [shapes.get(o) for o in n.output]) for n in inferred.graph.node]


def openvino_nodes(model: Any) -> list[Node]:
    """Nodes of an openvino.Model (static shapes)."""
    out = []
    for op in model.get_ordered_ops():
        ins = [op.input_value(i) for i in range(op.get_input_size())]
        out.append(Node(
            op.get_friendly_name(), op.get_type_name(),
            [v.get_node().get_friendly_name() for v in ins if v.get_node().get_type_name() != "Constant"],
            [_ov_shape(v.get_partial_shape()) for v in ins],
            [_ov_shape(op.get_output_partial_shape(i)) for i in range(op.get_output_size())]))
    return out


def _ov_shape(ps: Any) -> tuple[int, ...] | None:
    return tuple(d.get_length() for d in ps) if ps.rank.is_static and ps.is_static else None
