"""The head's decode is found from the graph for several YOLO families; calibration samples the training split."""

from __future__ import annotations

from pathlib import Path

import pytest

from yolo_optim.export.graph import (
    CONV_TYPES,
    find_head_scope,
    level_grids,
    onnx_nodes,
    openvino_nodes,
)

IMGSZ = 64


def _onnx_of(arch: str, tmp_path: Path) -> tuple[object, list[float]]:
    import onnx
    from ultralytics import YOLO

    from yolo_optim.export.artifact import quiet_ultralytics

    model = YOLO(arch)
    model.save(str(tmp_path / "m.pt"))
    staged = YOLO(str(tmp_path / "m.pt"))
    with quiet_ultralytics():
        path = staged.export(format="onnx", imgsz=IMGSZ, batch=1, dynamic=False, simplify=True, verbose=False)
    return onnx.load(path), [float(s) for s in staged.model.model[-1].stride]


@pytest.mark.parametrize("arch", ["yolov8n.yaml", "yolo11n-seg.yaml", "yolo11n-pose.yaml", "yolo12n.yaml"])
def test_decode_found_for_yolo_families(arch, tmp_path):
    model, strides = _onnx_of(arch, tmp_path)
    nodes = onnx_nodes(model)
    scope = find_head_scope(nodes, level_grids(IMGSZ, strides))
    by_name = {n.name: n for n in nodes}
    ops = {by_name[n].op for n in scope.decode}
    assert "Sigmoid" in ops and "Concat" in ops  # score activation and level concat are in the float scope
    assert "Softmax" in ops  # DFL box decoding
    # the head's decode holds no feature convolution: only the DFL's 1x1 expectation conv may appear
    convs = [by_name[n] for n in scope.decode if by_name[n].op in CONV_TYPES]
    assert all(c.in_shapes[0] is not None and c.in_shapes[0][1] <= 32 for c in convs)
    # every graph output that carries per-anchor predictions is produced inside the decode
    producers = {out: n.name for n in model.graph.node for out in n.output}
    assert producers[model.graph.output[0].name] in scope.decode
    if "seg" in arch:  # the mask prototypes are a convolution branch, quantized as usual
        proto = [o for o in model.graph.output if producers[o.name] not in scope.decode]
        assert len(proto) == 1 and len(proto[0].type.tensor_type.shape.dim) == 4
    assert len(scope.prediction_convs) >= 6 and scope.stem
    assert set(scope.names(0)) < set(scope.names(1))


def test_openvino_graph_gives_the_same_decode(tiny_model, tmp_path):
    import openvino as ov
    from ultralytics import YOLO

    from yolo_optim.export.artifact import quiet_ultralytics

    staged = tmp_path / "m.pt"
    staged.write_bytes(Path(tiny_model).read_bytes())
    with quiet_ultralytics():
        folder = YOLO(str(staged)).export(format="openvino", imgsz=IMGSZ, batch=1, dynamic=False, verbose=False)
    model = ov.Core().read_model(str(next(Path(folder).glob("*.xml"))))
    nodes = openvino_nodes(model)
    scope = find_head_scope(nodes, level_grids(IMGSZ, [8, 16, 32]))
    ops = {n.op for n in nodes if n.name in set(scope.decode)}
    assert {"Sigmoid", "Softmax", "Concat"} <= ops
    assert not any(n.op in CONV_TYPES and n.in_shapes[0][1] > 32 for n in nodes if n.name in set(scope.decode))


def test_no_head_is_a_clear_error():
    from yolo_optim.export.graph import Node

    with pytest.raises(ValueError, match="no YOLO detection head"):
        find_head_scope([Node("c", "Conv", [], [(1, 3, 8, 8)], [(1, 8, 8, 8)])], {(8, 8)})


def test_calibration_uses_the_training_split_with_a_fixed_seed(demo_data):
    from yolo_optim.export.calibration import (
        calibration_set,
        dataset_info,
        split_images,
    )

    a = calibration_set(demo_data, IMGSZ, n=5, seed=0)
    b = calibration_set(demo_data, IMGSZ, n=5, seed=0)
    c = calibration_set(demo_data, IMGSZ, n=5, seed=1)
    assert a.images == b.images and a.fingerprint == b.fingerprint and a.images != c.images
    val = set(split_images(dataset_info(demo_data), "val"))
    assert len(a) == 5 and not set(a.images) & val and all("train" in str(p) for p in a.images)
    everything = calibration_set(demo_data, IMGSZ, n=10_000, seed=0)
    assert len(everything) == a.split_size == 24  # all images when fewer than asked
    x = next(iter(a))
    assert x.shape == (1, 3, IMGSZ, IMGSZ) and x.dtype.name == "float32" and 0.0 <= x.min() <= x.max() <= 1.0


def test_calibration_dataset_yaml_gives_ultralytics_exactly_the_chosen_images(demo_data, tmp_path, monkeypatch):
    """Written into a relative folder (as `--out runs/...` gives it), Ultralytics still finds the list of images."""
    from ultralytics.data.utils import check_det_dataset

    from yolo_optim.export.calibration import calibration_dataset_yaml, calibration_set

    monkeypatch.chdir(tmp_path)
    chosen = calibration_set(demo_data, IMGSZ, n=5, seed=0).images
    data = calibration_dataset_yaml(chosen, demo_data, Path("runs") / "calib")
    parsed = check_det_dataset(str(data), autodownload=False)
    listed = Path(parsed["train"]).read_text().split()
    assert [Path(p) for p in listed] == [Path(p).resolve() for p in chosen]
    assert all(Path(p).is_file() for p in listed)
    assert len(parsed["names"]) == 3
