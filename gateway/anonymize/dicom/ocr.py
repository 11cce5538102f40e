"""Tesseract behind one function: the only module that imports ``pytesseract``.

``read_words(frame)`` returns every word Tesseract reads in a decoded DICOM frame, with
its confidence and its box in *frame* pixels. Why it is built this way:

* **An 8-bit view of what a viewer would show.** Tesseract reads 8-bit images. 8-bit
  grey is read as stored; anything deeper or signed (CT, MR, 12-bit X-ray, 16-bit
  palette colour) is windowed between its 1st and 99.9th percentiles, so annotation
  drawn at the top of the range (the usual way) saturates to white whatever the body's
  values are. Colour is read as luminance. MONOCHROME1 is inverted, so the view is
  what a viewer shows (the passes below expect light annotation to look light).
* **Two passes: global and local thresholds, both polarities.** Burned-in annotation
  is mostly light text on a dark background, sometimes dark text on a light one, and
  often sits on a grey banner next to a black image. Tesseract's default (global Otsu)
  binarisation turns such a banner into one block of ink and reads nothing in it, so
  each frame is read twice: the view as is with Otsu (dark text, and anything the
  global split handles), and the inverted view with Sauvola's local threshold
  (``thresholding_method=2``: light text whatever its surroundings). The words of both
  passes are returned. Measured on six eval frames (words read at confidence >= 60 out
  of those any variant read): Otsu both polarities 111/152, Sauvola both 129/152,
  Otsu + inverted Sauvola 133/152 at the same cost (~1 s per 1024 x 768 frame); on a
  palette-colour frame with a grey banner 14, 23 and 27 of 30. On 40 synthetic frames
  (206 names, dates and IDs in 4 fonts on black, banners, ramps, ultrasound and photo
  crops, light and dark text): Otsu both polarities 0.77 of the words, morphological
  top-hat/black-hat views 0.85, Otsu + inverted Sauvola 0.89; a third (top-hat) pass
  reached 0.90 at 1.4x the time and was left out.
* **Sparse text (``--psm 11``).** Annotation is scattered labels in corners, not a
  page of paragraphs; ``psm 11`` finds each label wherever it is.
* **2x upscale for ordinary frames.** Annotation fonts are 10-16 px tall; Tesseract is
  best at ~20-30 px. Frames up to :data:`UPSCALE_MAX_SIDE` px on their long side are
  read at 2x (cubic). Larger frames (photographs, X-ray) are read as they are: their
  text is larger and a 2x view would cost 4x the time.
* **One thread per Tesseract process.** Tesseract's OpenMP threads cost more than they
  bring on small images: measured on a 2-core machine, one 2048 x 1536 pass took 1.7 s
  with the default threads and 0.66 s with ``OMP_THREAD_LIMIT=1``. The server already
  runs one item per core, so the limit is set for the child processes this module
  starts unless the operator set it (pytesseract passes ``os.environ`` on).
* **Fail closed, opaquely.** A missing binary, a crash or a timeout raises
  :class:`OcrUnavailable`; the caller turns it into a quarantine reason. Tesseract's
  own messages are not forwarded (they may echo content).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np
import pytesseract

PSM = 11
OTSU, SAUVOLA = 0, 2  # Tesseract's thresholding_method values
UPSCALE_MAX_SIDE = 1600  # frames whose long side is at most this are read at 2x
TIMEOUT_SECONDS = 120  # one Tesseract pass; a hung process must not hold a worker forever
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)

os.environ.setdefault("OMP_THREAD_LIMIT", "1")


class OcrUnavailable(RuntimeError):
    """Tesseract is not installed, or a run of it failed."""


@dataclass(frozen=True)
class Word:
    """One word read by Tesseract; the box is in the frame's own pixels."""

    text: str
    conf: float  # Tesseract's confidence, 0-100
    x: int
    y: int
    w: int
    h: int
    line: tuple[int, int, int, int]  # (pass, block, paragraph, line): shared by a text line


def tesseract_available() -> bool:
    """Whether the Tesseract binary can be run (a cheap ``tesseract --version``)."""
    try:
        pytesseract.get_tesseract_version()
    except (pytesseract.TesseractNotFoundError, pytesseract.TesseractError, OSError):
        return False
    return True


MIN_SIDE = 8  # px: below this no glyph of any font is legible


def read_words(frame: np.ndarray, *, monochrome1: bool = False) -> list[Word]:
    """Every non-empty word Tesseract reads in ``frame``, from both passes.

    A frame lower or narrower than :data:`MIN_SIDE` pixels cannot show a legible word
    (and Tesseract refuses such images): nothing is read there.
    """
    if min(frame.shape[:2]) < MIN_SIDE:
        return []
    view = to_view(frame, monochrome1=monochrome1)
    scale = 2 if max(view.shape[:2]) <= UPSCALE_MAX_SIDE else 1
    if scale != 1:
        view = cv2.resize(view, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    words = _read(view, 0, scale, OTSU)
    return words + _read(255 - view, 1, scale, SAUVOLA)


def to_view(frame: np.ndarray, *, monochrome1: bool = False) -> np.ndarray:
    """An 8-bit grey view of ``frame`` (H x W grey or H x W x 3 RGB, any integer depth),
    as displayed: MONOCHROME1 (low values shown white) is inverted."""
    view = _grey8(frame)
    return 255 - view if monochrome1 else view


def _grey8(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 3:
        if frame.dtype == np.uint8:
            return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        return _window(frame.astype(np.float32) @ _LUMA)
    if frame.dtype == np.uint8:
        return np.ascontiguousarray(frame)
    return _window(frame.astype(np.float32))


def _window(values: np.ndarray) -> np.ndarray:
    """Stretch the 1st..99.9th percentile range to 0..255 (annotation saturates to white)."""
    low, high = np.percentile(values, (1.0, 99.9))
    span = max(float(high - low), 1e-6)
    out = np.clip((values - low) * (255.0 / span), 0, 255)
    return out.round().astype(np.uint8)


def _read(image: np.ndarray, index: int, scale: int, thresholding: int) -> list[Word]:
    """One Tesseract pass over ``image``; boxes are divided back by ``scale``."""
    try:
        data = pytesseract.image_to_data(
            image,
            config=f"--psm {PSM} -c thresholding_method={thresholding}",
            output_type=pytesseract.Output.DICT,
            timeout=TIMEOUT_SECONDS,
        )
    except (pytesseract.TesseractNotFoundError, pytesseract.TesseractError, OSError,
            RuntimeError) as exc:
        raise OcrUnavailable("tesseract failed") from exc
    return [
        _word(data, i, index, scale) for i, text in enumerate(data["text"]) if str(text).strip()
    ]


def _word(data: dict[str, list[object]], i: int, index: int, scale: int) -> Word:
    def number(key: str) -> int:
        return int(float(str(data[key][i])))

    x0, y0 = number("left") // scale, number("top") // scale
    x1 = -(-(number("left") + number("width")) // scale)
    y1 = -(-(number("top") + number("height")) // scale)
    return Word(
        text=str(data["text"][i]).strip(),
        conf=float(str(data["conf"][i])),
        x=x0,
        y=y0,
        w=x1 - x0,
        h=y1 - y0,
        line=(index, number("block_num"), number("par_num"), number("line_num")),
    )
