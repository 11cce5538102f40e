"""MediaPipe BlazeFace full-range face detector (models bundled in the mediapipe wheel).

Why it looks like this:

* ``model_selection=1`` (full range, faces up to ~5 m) through
  ``mediapipe.solutions.face_detection``; mediapipe 0.10.21 ships the graph and the
  tflite model, so nothing is downloaded.
* BlazeFace sees a 192 x 192 input: on a whole 1024-px photo a face under ~30 px is
  invisible to it. With ``tile`` set, it also runs on overlapping tiles of that size,
  so each tile is shrunk far less; cost grows with the tile count (a 1024 x 768 photo
  at 512-px tiles = 1 + 6 runs, still cheaper than one CenterFace pass).
* ``tile`` defaults to ``None`` (whole image only, one run, ~6-14 ms): measured on
  eval/faces next to CenterFace at threshold 0.1, the 512-px tiles added no recall at
  all (0.972 with or without BlazeFace, faces >= 20 px) but cost ~50 ms a photo, added
  false positives (0.055 vs 0.045 of the picture changed outside faces) and made the
  leak gate recheck ~10% of photos. BlazeFace therefore stays in the default policy in
  a cheap role: a second, differently trained opinion on large faces, in detection
  and in the leak gate.
* A mediapipe graph is not safe to call from two threads at once: calls are serialized
  by a lock (the engine parallelizes across items with one detector per process).
* The minimum score is the caller's threshold, set in the graph itself.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

from gateway.anonymize.detectors.base import Availability, DetectorInfo, Region
from gateway.anonymize.detectors.boxes import nms, tiles, to_regions

NAME = "mediapipe"
CODE_VERSION = "1"
_MODEL_FILES = ("face_detection_full_range_cpu.binarypb", "face_detection_full_range_sparse.tflite")
_NMS_IOU = 0.3


def _model_dir() -> Path | None:
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "modules" / "face_detection"


def availability() -> Availability:
    folder = _model_dir()
    if folder is None:
        return Availability(False, "package 'mediapipe' not installed")
    missing = [name for name in _MODEL_FILES if not (folder / name).is_file()]
    if missing:
        return Availability(False, f"model file {missing[0]} missing from package 'mediapipe'")
    return Availability(True)


class MediaPipeFaceDetector:
    """Faces via BlazeFace full range, on the whole image and optionally on tiles."""

    def __init__(self, threshold: float = 0.5, *, tile: int | None = None, overlap: int = 128):
        import mediapipe
        from mediapipe.python.solutions import face_detection  # optional backend

        self._graph = face_detection.FaceDetection(
            min_detection_confidence=threshold, model_selection=1
        )
        self._lock = threading.Lock()
        self.threshold, self.tile, self.overlap = threshold, tile, overlap
        self.info = DetectorInfo(
            name=NAME,
            version=f"{CODE_VERSION}+mediapipe.{mediapipe.__version__}.full_range",
            label="face",
            params={"threshold": threshold, "tile": tile},
        )

    def detect(self, rgb: np.ndarray) -> list[Region]:
        height, width = rgb.shape[:2]
        windows = [(0, 0, width, height)]
        if self.tile and max(width, height) > self.tile:
            windows += tiles(width, height, self.tile, self.overlap)
        found = [self._run(rgb, window) for window in windows]
        boxes = np.concatenate(found)
        return to_regions(nms(boxes, _NMS_IOU), width, height, "face", NAME)

    def _run(self, rgb: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
        """``[x0, y0, x1, y1, score]`` rows in image pixels for one window."""
        x0, y0, x1, y1 = window
        crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
        with self._lock:
            result = self._graph.process(crop)
        rows = []
        for det in result.detections or []:
            box = det.location_data.relative_bounding_box
            bx, by = x0 + box.xmin * (x1 - x0), y0 + box.ymin * (y1 - y0)
            bw, bh = box.width * (x1 - x0), box.height * (y1 - y0)
            rows.append([bx, by, bx + bw, by + bh, float(det.score[0])])
        return np.asarray(rows, np.float32).reshape(-1, 5)

    def close(self) -> None:
        self._graph.close()
