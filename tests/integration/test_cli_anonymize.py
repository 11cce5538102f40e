"""`gateway anonymize`: the offline batch CLI, run as a real subprocess on real images.

Contract under test: outputs mirror the input tree with the same names and formats, no
metadata survives, faces are masked; unsupported content is *skipped*, a corrupt image is
*quarantined* (no output file, exit 3); usage errors exit 2 with one plain line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FACE = (slice(80, 170), slice(190, 260))  # rows, cols inside the astronaut's face
GPS_IFD = 0x8825


def _cli(*args: str | Path, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "anonymize", *map(str, args)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )


def _astronaut() -> Image.Image:
    return Image.fromarray(skdata.astronaut())


def _plain(size: tuple[int, int] = (96, 64)) -> Image.Image:
    ramp = np.linspace(0, 255, size[0], dtype=np.uint8)
    return Image.fromarray(np.dstack([np.tile(ramp, (size[1], 1))] * 3))


def _save_with_gps(image: Image.Image, path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    gps = exif.get_ifd(GPS_IFD)
    gps.update({1: "N", 2: (52.0, 22.0, 1.0), 3: "E", 4: (4.0, 53.0, 2.0)})
    image.save(path, "JPEG", exif=exif, quality=95)
    with Image.open(path) as check:  # the fixture really carries GPS
        assert check.getexif().get_ifd(GPS_IFD)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """photos/ with a face JPEG (EXIF GPS), a nested PNG, a PNG named .jpg, text files."""
    root = tmp_path / "photos"
    (root / "trip" / "day1").mkdir(parents=True)
    _save_with_gps(_astronaut(), root / "astronaut.jpg")
    _astronaut().resize((256, 256)).save(root / "trip" / "day1" / "portrait.png")
    _plain().save(root / "trip" / "mislabelled.jpg", "PNG")  # content decides, not the name
    (root / "trip" / "notes.txt").write_text("not an image\n")
    (root / "fake.png").write_text("also not an image\n")
    _plain().save(root / ".hidden.png")
    return root


def test_folder_is_mirrored_anonymized_and_reported(tree: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "out", tmp_path / "report.json"
    run = _cli(tree, "--out", out, "--report", report, "--workers", "2")
    assert run.returncode == 0, run.stderr
    assert "3 anonymized, 0 quarantined, 3 skipped" in run.stdout
    assert "Traceback" not in run.stderr

    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["astronaut.jpg", "trip/day1/portrait.png", "trip/mislabelled.jpg"]
    for rel, fmt in [("astronaut.jpg", "JPEG"), ("trip/day1/portrait.png", "PNG"),
                     ("trip/mislabelled.jpg", "PNG")]:
        with Image.open(out / rel) as img:
            assert img.format == fmt
            assert not img.getexif() and "exif" not in img.info

    with Image.open(tree / "astronaut.jpg") as src, Image.open(out / "astronaut.jpg") as dst:
        before = np.asarray(src.convert("RGB"), dtype=np.int16)[FACE]
        after = np.asarray(dst.convert("RGB"), dtype=np.int16)[FACE]
    assert np.abs(before - after).mean() > 40  # the face is masked, not merely re-encoded

    doc = json.loads(report.read_text())
    assert set(doc) == {"policy", "summary", "items"}
    assert doc["policy"]["id"] == "default" and len(doc["policy"]["sha256"]) == 64
    summary = doc["summary"]
    assert {k: summary[k] for k in ("processed", "quarantined", "skipped")} == {
        "processed": 3, "quarantined": 0, "skipped": 3}
    assert summary["seconds"] > 0 and summary["images_per_second"] > 0
    items = {item["input"]: item for item in doc["items"]}
    assert set(items) == {"astronaut.jpg", "fake.png", ".hidden.png", "trip/notes.txt",
                          "trip/day1/portrait.png", "trip/mislabelled.jpg"}
    assert all(set(item) == {"input", "output", "status", "reason", "report"}
               for item in doc["items"])
    face = items["astronaut.jpg"]
    assert face["status"] == "ok" and face["output"] == "astronaut.jpg"
    assert face["reason"] is None and face["report"]["regions"]
    assert items["trip/notes.txt"] == {"input": "trip/notes.txt", "output": None,
                                       "status": "skipped", "reason": "unsupported_type",
                                       "report": None}
    assert items["fake.png"]["reason"] == "unsupported_type"
    assert items[".hidden.png"]["status"] == "skipped"
    text = report.read_text()
    assert "SecretCam" not in text and "52.0" not in text  # nothing from file content


def test_corrupt_image_is_quarantined_without_output(tmp_path: Path) -> None:
    """Invalid or corrupt images are quarantined with the engine's reason (exit 3);
    only content that is not an image at all is skipped."""
    src = tmp_path / "in"
    src.mkdir()
    _plain().save(src / "good.png")
    _astronaut().save(src / "broken.jpg", "JPEG")
    whole = (src / "broken.jpg").read_bytes()
    (src / "broken.jpg").write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "out"
    out.mkdir()
    (out / "broken.jpg").write_bytes(whole)  # a stale output from an earlier run
    report = tmp_path / "report.json"

    run = _cli(src, "--out", out, "--report", report, "--workers", "1")
    assert run.returncode == 3, run.stderr
    assert "quarantined: broken.jpg (corrupt)" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (out / "broken.jpg").exists()
    assert [p.name for p in out.iterdir()] == ["good.png"]  # no temp files left either
    items = {i["input"]: i for i in json.loads(report.read_text())["items"]}
    assert items["broken.jpg"] == {"input": "broken.jpg", "output": None,
                                   "status": "quarantined", "reason": "corrupt", "report": None}
    assert items["good.png"]["status"] == "ok"


def test_single_file_goes_directly_under_out(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    _plain().save(nested / "one.png")
    run = _cli(nested / "one.png", "--out", tmp_path / "out")
    assert run.returncode == 0, run.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["one.png"]


def test_bad_policy_names_the_field(tree: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "id: p\nversion: 1\nimage:\n"
        "  detectors: [{name: centerface, threshold: 0.5}]\n"
        "  mask: {style: blur, padding: 0.1}\n"
        "  leak_gate: {enabled: true, threshold: 0.6}\n"
        "  max_pixels: 1000000\n"
    )
    run = _cli(tree, "--out", tmp_path / "out", "--policy", policy)
    assert run.returncode == 2
    assert "image.mask.style" in run.stderr and "blur" in run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["inside", "same", "overwrite", "missing"])
def test_usage_errors_exit_2_and_touch_nothing(tree: Path, tmp_path: Path, where: str) -> None:
    args: dict[str, list[str | Path]] = {
        "inside": [tree, "--out", tree / "trip" / "anon"],
        "same": [tree, "--out", tree],
        "overwrite": [tree / "astronaut.jpg", "--out", tree],  # out/astronaut.jpg is the input
        "missing": [tmp_path / "nope", "--out", tmp_path / "out"],
    }
    before = sorted(p.as_posix() for p in tree.rglob("*"))
    run = _cli(*args[where])
    assert run.returncode == 2
    assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1
    assert sorted(p.as_posix() for p in tree.rglob("*")) == before
