"""tensorrt-jetson: latency measured on the Jetson itself. The Jetson runs `yolo-optim benchmark` on the candidate
checkpoints and its results.json comes back here (`results=`); the choice is made from those rows, and deploy/ holds
the chosen variant's deploy bundle (`yolo_optim.export(..., "tensorrt-jetson:<precision>")`), whose engine is built on
the device: engines are tied to the GPU and TensorRT version that built them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import OptimError
from .recipe import JETSON, Recipe
from .select import usable

BUILD_NOTE = ("the engine is built on the Jetson from the bundle (its README.md and build.sh); engines are tied to the "
              "GPU and TensorRT version that build them")
LOG = logging.getLogger("yolo_optim.optimize")


def run_jetson(cfg: Any, recipe: Recipe, budget: float | None, t0: float) -> Any:
    from ..models import file_sha256
    from ..paths import run_dir, write_json_atomic
    from ..report.report import Report
    from .api import finish

    if not cfg.results:
        raise OptimError(f"target={JETSON} takes its latencies from the Jetson: run `yolo-optim benchmark model=... "
                         "targets=tensorrt-gpu:fp16,tensorrt-gpu:int8` there and pass results=<its results.json>")
    measured = Report.load(cfg.results)
    rows = [r for r in measured.rows if r.backend == "tensorrt"]
    if not usable(rows, cfg.metric):
        raise OptimError(f"results={cfg.results} holds no measured TensorRT row with mAP and latency; benchmark "
                         "with accuracy=True on the Jetson")
    wanted = set(recipe.precision_list())
    rows = [r for r in rows if r.precision in wanted] or rows
    source = cfg.model or rows[0].model_path
    sha = file_sha256(source) if Path(source).is_file() else rows[0].model_sha256
    own = [r for r in usable(rows, cfg.metric) if r.model_sha256 == sha] or usable(rows, cfg.metric)
    reference = max(own, key=lambda r: (r.map50_95, -r.latency(cfg.metric)))
    folder = run_dir("optimize", cfg.project, cfg.name, cfg.exist_ok)
    folder.mkdir(parents=True, exist_ok=True)
    state = {"status": "running", "config": cfg.to_dict(), "target": JETSON, "source": source}
    write_json_atomic(folder / "optimize.json", state)

    def bundle_of(row: Any) -> Path:
        """The Jetson deploy bundle of the chosen checkpoint at the chosen precision (the checkpoint itself where
        this installation cannot write bundles)."""
        p = Path(row.model_path)
        if not p.is_file() or (row.model_sha256 and file_sha256(p) != row.model_sha256):
            raise OptimError(f"the chosen checkpoint {row.model_path} (sha256 {str(row.model_sha256)[:12]}) is not "
                             "on this machine; run optimize where the candidates were written")
        from .candidates import _public

        try:
            done = _public("export")(str(p), f"tensorrt-jetson:{row.precision}", data=cfg.data, imgsz=row.imgsz,
                                     project=str(folder / "stages"), name="jetson-bundle", exist_ok=True,
                                     guard="off")
            return Path(done.path)
        except OptimError as e:
            LOG.warning("optimize: no Jetson bundle written (%s); deploy/ holds the checkpoint", e)
            return p

    return finish(cfg, folder, rows, measured.runs, reference, [f"latencies from {cfg.results}"], [], source, JETSON,
                  budget, state, t0, deploy_artifact=bundle_of, deploy_note=BUILD_NOTE)
