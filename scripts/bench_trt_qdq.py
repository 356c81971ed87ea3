"""Figures for the TensorRT path: the Q/DQ INT8 and fp16 ONNX graphs a TensorRT 10.3+/11 engine is built from,
validated on the CPU with ONNX Runtime, against fp32 and against the Q/DQ graph Ultralytics' own TensorRT export
makes (NVIDIA ModelOpt, `ultralytics.utils.export.engine.modelopt_quantize_onnx`) from the same fp32 ONNX and the
same calibration images.

    python scripts/bench_trt_qdq.py --model a.pt --model b.pt --data data.yaml --imgsz 160 \
        --modelopt-site /tmp/modelopt_site

ModelOpt is not a dependency of yolo-optim: `--modelopt-site` names a folder where `nvidia-modelopt[onnx]` was
installed with `pip install --no-deps --target DIR nvidia-modelopt onnx_graphsurgeon polygraphy onnxconverter-common
onnxscript onnx-ir lief cppimport pybind11 PuLP omegaconf regex` (its own pins want onnxruntime-gpu and an older onnx,
which would replace the project's); it runs in a subprocess with that folder first on its path. Without it, the
ModelOpt rows record why they are missing. Every mAP is Ultralytics' validator on the val split, letterboxed square
at --imgsz, batch 1, through the same ONNX Runtime CPU runner. Writes scripts/results/bench_trt_qdq.json, which
`python scripts/render_readme.py` renders into the README.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("YOLO_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from yolo_optim.export.artifact import StagedSource
from yolo_optim.export.calibration import calibration_set
from yolo_optim.export.onnxruntime import OnnxRuntimeRunner
from yolo_optim.export.qdq import convert_fp16, head_float_nodes, inspect_qdq, quantize_qdq_int8
from yolo_optim.export.validate import val_callable
from yolo_optim.models import file_sha256, load_yolo

MODELOPT_SNIPPET = r"""
import json, os, sys, time
import numpy as np, torch
from ultralytics.utils.export.engine import modelopt_quantize_onnx
onnx_file, calib, quantize = sys.argv[1], sys.argv[2], int(sys.argv[3])
images = np.load(calib)  # (N, 3, H, W) uint8, the very images yolo-optim calibrates on
dataset = [{"img": torch.from_numpy(images[i:i + 1])} for i in range(len(images))]
t0 = time.time()
out = modelopt_quantize_onnx(onnx_file, quantize, dataset, tuple(int(d) for d in (1, *images.shape[1:])))
import modelopt
print(json.dumps({"path": out, "seconds": round(time.time() - t0, 1), "modelopt": modelopt.__version__}))
"""


def map_of(path: Path, data: str, imgsz: int, names: dict[int, str]) -> dict[str, float]:
    m = val_callable(OnnxRuntimeRunner(path), data, imgsz, names)
    return {"map50_95": round(m.map50_95, 5), "map50": round(m.map50, 5)}


def modelopt_graph(fp32: Path, calib_npy: Path, quantize: int, site: str | None, work: Path) -> dict[str, Any]:
    """Ultralytics' ModelOpt path on a copy of the fp32 ONNX, in a subprocess with ModelOpt on its path."""
    if not site:
        return {"error": "not run: pass --modelopt-site (nvidia-modelopt[onnx] cannot be installed beside the "
                         "project's pins, see the module docstring)"}
    src = work / f"modelopt{quantize}.onnx"
    shutil.copyfile(fp32, src)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([site, str(ROOT)])}
    r = subprocess.run([sys.executable, "-c", MODELOPT_SNIPPET, str(src), str(calib_npy), str(quantize)], env=env,
                       capture_output=True, text=True, timeout=3600, check=False)
    if r.returncode != 0:
        tail = " | ".join((r.stderr or r.stdout).strip().splitlines()[-3:])
        return {"error": f"ModelOpt failed (exit {r.returncode}): {tail[:400]}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def bench_model(weights: Path, data: str, imgsz: int, n_calib: int, site: str | None, work: Path) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    source = StagedSource(load_yolo(str(weights)), work)
    fp32 = source.export("onnx", imgsz)
    names = source.names
    floats = head_float_nodes(fp32, imgsz, source.strides)
    calib = calibration_set(data, imgsz, n_calib, 0)
    calib_npy = work / "calib.npy"
    np.save(calib_npy, np.concatenate([np.round(x * 255).astype(np.uint8) for x in calib]))
    out: dict[str, Any] = {"model": str(weights), "sha256": file_sha256(weights), "arch": source.yolo.model.yaml.get(
        "yaml_file", ""), "imgsz": imgsz, "calibration": calib.info(), "float_nodes": len(floats), "rows": {}}
    rows = out["rows"]
    rows["fp32"] = {**map_of(fp32, data, imgsz, names)}
    t0 = time.time()
    ours = work / "ours_int8.onnx"
    info = quantize_qdq_int8(fp32, ours, calib, floats)
    rows["yolo-optim int8 (Q/DQ, onnxruntime quantize_static)"] = {
        **map_of(ours, data, imgsz, names), "seconds": round(time.time() - t0, 1), "qdq": info["qdq"]}
    half = work / "ours_fp16.onnx"
    t0 = time.time()
    convert_fp16(fp32, half, floats)
    rows["yolo-optim fp16"] = {**map_of(half, data, imgsz, names), "seconds": round(time.time() - t0, 1)}
    for quantize, label in ((8, "Ultralytics int8 (ModelOpt Q/DQ)"), (16, "Ultralytics fp16 (ModelOpt AutoCast)")):
        got = modelopt_graph(fp32, calib_npy, quantize, site, work)
        if "error" in got:
            rows[label] = got
            continue
        path = Path(got["path"])
        rows[label] = {**map_of(path, data, imgsz, names), "seconds": got["seconds"],
                       "modelopt": got["modelopt"]}
        if quantize == 8:
            rows[label]["qdq"] = inspect_qdq(path, floats).to_dict()
    ref = rows["fp32"]["map50_95"]
    for row in rows.values():
        if "map50_95" in row:
            row["drop"] = round(ref - row["map50_95"], 5)
    source.cleanup()
    return out


def _cpu() -> str:
    try:
        from yolo_optim.bench.environment import cpu_name

        return cpu_name()
    except ImportError:
        return platform.processor() or platform.machine()


def table(results: dict[str, Any]) -> str:
    lines = ["| model | graph | mAP50-95 | drop vs fp32 | mAP50 | Q / DQ nodes | quantized convs | made in |",
             "|---|---|---|---|---|---|---|---|"]
    for m in results["models"]:
        for label, row in m["rows"].items():
            name = Path(m["model"]).parent.parent.name if Path(m["model"]).stem in ("best", "last") \
                else Path(m["model"]).stem
            if "error" in row:
                lines.append(f"| {name} | {label} | - | - | - | - | - | {row['error']} |")
                continue
            q = row.get("qdq") or {}
            nodes = f"{q['quantize_nodes']} / {q['dequantize_nodes']}" if q else ""
            convs = f"{q['quantized_convs']}/{q['convs']}" if q else ""
            made = f"{row['seconds']} s" if "seconds" in row else ""
            lines.append(f"| {name} | {label} | {row['map50_95']:.4f} | {row.get('drop', 0):+.4f} | "
                         f"{row['map50']:.4f} | {nodes} | {convs} | {made} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="trained .pt (repeat for more architectures)")
    p.add_argument("--data", required=True)
    p.add_argument("--imgsz", type=int, default=160)
    p.add_argument("--calib-images", type=int, default=128)
    p.add_argument("--modelopt-site", default=None)
    p.add_argument("--work", default="/tmp/bench_trt_qdq")
    p.add_argument("--out", default=str(ROOT / "scripts" / "results" / "bench_trt_qdq.json"))
    p.add_argument("--append", action="store_true", help="add the models to an existing --out file")
    a = p.parse_args()
    command = " ".join(["python", "scripts/bench_trt_qdq.py", *sys.argv[1:]])
    results: dict[str, Any] = {"command": command, "machine": f"{_cpu()}, {os.cpu_count()} cores",
                               "models": []}
    if a.append and Path(a.out).is_file():
        results = json.loads(Path(a.out).read_text())
        results["command"] = f"{results['command']} && {command}"
    import onnxruntime
    import ultralytics

    results["versions"] = {"onnxruntime": onnxruntime.__version__, "ultralytics": ultralytics.__version__}
    for i, w in enumerate(a.model):
        results["models"].append(bench_model(Path(w), a.data, a.imgsz, a.calib_images, a.modelopt_site,
                                             Path(a.work) / f"m{i}"))
        Path(a.out).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
