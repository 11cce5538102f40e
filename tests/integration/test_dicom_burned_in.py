"""Burned-in text on the real eval ultrasound files: readable before, unreadable after.

Uses ``../shared/eval/dicom/deid-data`` (skipped when the shared folder is absent) and
the Tesseract binary (skipped when not installed). The identifying words are taken from
each file's own header the way ``shared/tools/ocr_dicom.py`` takes them, and read back
the same way: a word counts as readable when it appears anywhere in the OCR text.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from gateway.anonymize.dicom import ocr, pixels
from policies import BurnedInText

pytestmark = pytest.mark.integration

SHARED = Path(__file__).resolve().parents[3] / "shared"
DEID = SHARED / "eval" / "dicom" / "deid-data"
POLICY = BurnedInText(modalities=("US",), image_types=(), sop_classes=(), mask="all",
                      min_confidence=30, padding=2)


def header_words(ds: pydicom.Dataset) -> set[str]:
    """PatientName parts, IDs, institution words and the birth date in printed spellings."""
    words: set[str] = set()
    for keyword in ("PatientName", "PatientID", "AccessionNumber", "InstitutionName"):
        for part in re.split(r"[\^ ,.\-]+", str(ds.get(keyword, "") or "")):
            if len(part) >= 4 and part.upper() not in {"TEST", "NONE", "PATIENT"}:
                words.add(part.upper())
    born = str(ds.get("PatientBirthDate", "") or "")
    if len(born) == 8:
        year, month, day = born[:4], born[4:6], born[6:]
        words |= {born, f"{month}/{day}/{year}", f"{day}.{month}.{year}", f"{month}{day}{year}"}
    return words


def readable(frames: list[np.ndarray], words: set[str]) -> set[str]:
    text = pixels.normalise(" ".join(w.text for f in frames for w in ocr.read_words(f)))
    return {w for w in words if pixels.normalise(w) in text}


@pytest.mark.skipif(not DEID.is_dir(), reason="../shared/eval is not available")
@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract is not installed")
@pytest.mark.parametrize("name", ["GREYSCALE_IMAGE.dcm", "RGB_IMAGE.dcm"])
def test_eval_banner_becomes_unreadable_and_the_picture_stays(
    name: str, tmp_path: Path
) -> None:
    ds = pydicom.dcmread(DEID / name)
    words = header_words(ds)
    before = pixels.decode_frames(ds)
    assert readable(before, words), "the file should start with readable identifiers"

    report = pixels.clean_burned_in_text(ds, sorted(words), POLICY)
    out = tmp_path / name
    ds.save_as(out, enforce_file_format=True)
    after = pixels.decode_frames(pydicom.dcmread(out))

    assert readable(after, words) == set()
    changed = np.mean([(a != b).any(axis=-1).mean() if a.ndim == 3 else (a != b).mean()
                       for a, b in zip(before, after, strict=True)])
    assert 0 < changed < 0.05  # the banner and labels, not the picture
    assert report.frames_cleaned == 1 and report.regions > 0
    if shutil.which("dcmdump"):
        dump = subprocess.run(["dcmdump", "-q", str(out)], capture_output=True, check=False)
        assert dump.returncode == 0
        assert not any(line.startswith(b"E:") for line in (dump.stdout + dump.stderr).splitlines())


@pytest.mark.skipif(not DEID.is_dir(), reason="../shared/eval is not available")
def test_eval_files_round_trip_through_decode_and_encode() -> None:
    for path in sorted(DEID.glob("*.dcm")):
        if path.stat().st_size > 5_000_000:  # the 16-MB X-ray and 43-MB cine: same paths
            continue
        ds = pydicom.dcmread(path)
        frames = pixels.decode_frames(ds)
        pixels.encode_frames(ds, frames)
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        again = pixels.decode_frames(pydicom.dcmread(io.BytesIO(buffer.getvalue())))
        assert all(np.array_equal(a, b) for a, b in zip(frames, again, strict=True)), path.name
