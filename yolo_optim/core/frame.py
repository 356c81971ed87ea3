"""One whole frame around a backend Runner: letterbox pre-processing, inference, NMS post-processing.

Built from Ultralytics' own pieces (LetterBox, non_max_suppression, scale_boxes) with the predictor's defaults, so
the end-to-end figure is what a deployed Ultralytics pipeline pays per frame, and it runs the very same Runner
(same threads, same precision) as the inference-only figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import OptimError
from .images import dataset_split_images, letterbox, read_image

PREDICT_CONF = 0.25  # Ultralytics predictor defaults: the thresholds a deployment runs NMS with
PREDICT_IOU = 0.7
PREDICT_MAX_DET = 300


def first_val_image(data: str | Path) -> np.ndarray:
    """The first readable validation image of a dataset (BGR, HWC uint8): a real frame gives NMS a realistic load."""
    for f in dataset_split_images(data, "val"):
        img = read_image(f)
        if img is not None:
            return img
    raise OptimError(f"data={data}: no readable validation image; check the val: entry")


def _first_output(out: Any) -> Any:
    if isinstance(out, dict):
        out = next(iter(out.values()))
    while isinstance(out, (list, tuple)):
        out = out[0]
    return out


def postprocess(raw: Any, input_hw: tuple[int, int], orig_hw: tuple[int, int], end2end: bool | None = None) -> Any:
    """Raw detector output -> boxes (N, 6: xyxy in original pixels, conf, cls) after NMS."""
    import torch
    from ultralytics.utils import nms, ops

    pred = _first_output(raw)
    pred = pred if isinstance(pred, torch.Tensor) else torch.from_numpy(np.asarray(pred))
    if end2end is None:  # (B, max_det, 6) outputs are already NMS-free detections; (B, 4+nc, anchors) are raw
        end2end = pred.ndim == 3 and pred.shape[-1] == 6 and pred.shape[1] > pred.shape[2]
    det = nms.non_max_suppression(pred.float(), PREDICT_CONF, PREDICT_IOU, max_det=PREDICT_MAX_DET,
                                  end2end=end2end)[0]
    det[:, :4] = ops.scale_boxes(input_hw, det[:, :4], orig_hw)
    return det


def end_to_end_callable(runner: Callable[[np.ndarray], Any], img: np.ndarray, imgsz: int | tuple[int, int],
                        end2end: bool | None = None) -> Callable[[], Any]:
    """A no-argument callable doing one whole frame: pre-process `img`, run `runner`, NMS and box scaling."""
    orig_hw = img.shape[:2]

    def frame() -> Any:
        x = letterbox(img, imgsz)
        return postprocess(runner(x), x.shape[2:], orig_hw, end2end)

    return frame
