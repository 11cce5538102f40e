"""inspect_image: type from content, size before pixels, fully decoded or refused."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import ExifTags, Image, PngImagePlugin

from gateway.anonymize.inspect import (
    MULTI_FRAME,
    inspect_image,
    metadata_names,
    open_image,
    sniff,
)
from gateway.errors import InvalidUpload, UnsupportedMediaType

pytestmark = pytest.mark.unit

LIMIT = 80_000_000
SECRET = "Jane Q. Patient"  # a content value that must never reach a message


def encode(fmt: str, mode: str = "RGB", size: tuple[int, int] = (64, 48), **params) -> bytes:
    rng = np.random.default_rng(0)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    pixels = rng.integers(0, 255, (size[1], size[0], channels), dtype=np.uint8).squeeze()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A syntactically valid PNG header for a huge image with almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("WEBP", "image/webp"),
        ("TIFF", "image/tiff"),
        ("BMP", "image/bmp"),
    ],
)
def test_each_supported_format_is_identified_from_content(fmt: str, mime: str) -> None:
    info = inspect_image(encode(fmt), LIMIT)
    assert (info.format, info.mime, info.width, info.height, info.frames) == (fmt, mime, 64, 48, 1)


def test_big_endian_tiff_is_identified() -> None:
    data = encode("TIFF")
    assert sniff(data[:4]) == "TIFF"
    assert sniff(b"MM\x00*" + data[4:]) == "TIFF"


def test_empty_input_is_refused() -> None:
    with pytest.raises(InvalidUpload, match="the file is empty"):
        inspect_image(b"", LIMIT)


@pytest.mark.parametrize(
    "data",
    [
        b"hello, this is plain text",  # text
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",  # a PDF
        b"GIF89a" + b"\x00" * 20,  # GIF is not supported (animated more often than not)
        b"BM" + b"\x00" * 40,  # "BM" without a valid BMP header size
        bytes(range(256)),  # noise
    ],
)
def test_unknown_content_is_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType):
        inspect_image(data, LIMIT)


def test_huge_png_header_is_refused_before_decoding() -> None:
    data = png_claiming(50_000, 50_000)
    start = time.perf_counter()
    with pytest.raises(InvalidUpload) as caught:
        inspect_image(data, LIMIT)
    assert time.perf_counter() - start < 1.0
    assert caught.value.extensions["reason"] == "too_many_pixels"
    assert caught.value.status == 422
    assert "50000" not in caught.value.detail


def test_pil_ceiling_applies_even_when_the_policy_allows_more() -> None:
    # 20,000 x 10,000 = 200 MP: above PIL's own limit; refused, no DecompressionBomb warning
    with pytest.raises(InvalidUpload, match="more pixels"):
        inspect_image(png_claiming(20_000, 10_000), 10**12)


def test_policy_limit_is_applied_to_header_dimensions() -> None:
    with pytest.raises(InvalidUpload, match="more pixels"):
        inspect_image(encode("PNG", size=(100, 100)), 9_999)
    assert inspect_image(encode("PNG", size=(100, 100)), 10_000).width == 100


def test_huge_webp_canvas_is_refused_before_the_decoder_runs() -> None:
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4
    vp8x += (16_000 - 1).to_bytes(3, "little") + (16_000 - 1).to_bytes(3, "little")
    data = b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x
    with pytest.raises(InvalidUpload, match="more pixels"):
        inspect_image(data, LIMIT)


def test_truncated_jpeg_is_refused_without_echoing_content() -> None:
    data = encode("JPEG", size=(256, 256), comment=SECRET.encode())
    with pytest.raises(InvalidUpload, match="corrupt or truncated") as caught:
        inspect_image(data[: len(data) // 2], LIMIT)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "BMP"])
def test_truncated_files_of_every_format_are_refused(fmt: str) -> None:
    data = encode(fmt, size=(128, 128))
    with pytest.raises(InvalidUpload):
        inspect_image(data[: len(data) // 2], LIMIT)


def test_png_with_corrupt_pixel_data_is_refused() -> None:
    data = bytearray(encode("PNG", size=(128, 128)))
    data[60:400] = b"\x00" * 340
    with pytest.raises(InvalidUpload):
        inspect_image(bytes(data), LIMIT)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_animated_or_multi_page_images_are_refused_for_now(fmt: str) -> None:
    frames = [Image.new("RGB", (32, 32), color) for color in ("red", "blue", "green")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:])
    with pytest.raises(InvalidUpload, match=MULTI_FRAME):
        inspect_image(buffer.getvalue(), LIMIT)


def test_open_image_returns_the_loaded_first_frame() -> None:
    info, image = open_image(encode("PNG", mode="RGBA"), LIMIT)
    with image:
        assert image.mode == "RGBA"
        assert image.size == (info.width, info.height)


# --- metadata names: names only, never values ----------------------------------------------


def jpeg_with_everything() -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "ACME"
    exif[ExifTags.Base.Artist] = SECRET
    exif[ExifTags.IFD.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "N"}
    return encode(
        "JPEG",
        exif=exif,
        comment=SECRET.encode(),
        xmp=f"<x:xmpmeta>{SECRET}</x:xmpmeta>".encode(),
    )


def names_of(data: bytes) -> list[str]:
    info, image = open_image(data, LIMIT)
    with image:
        return metadata_names(image, data, info.format)


def test_jpeg_metadata_is_named_without_values() -> None:
    names = names_of(jpeg_with_everything())
    for expected in ("exif", "exif.GPSInfo", "exif.Make", "exif.Artist", "comment", "xmp"):
        assert expected in names
    assert not any(SECRET in name or "ACME" in name for name in names)


def test_png_text_chunks_are_named_by_chunk_type() -> None:
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", SECRET)  # tEXt
    text.add_text("Comment", SECRET, zip=True)  # zTXt
    text.add_itxt("Description", SECRET)  # iTXt
    names = names_of(encode("PNG", pnginfo=text))
    assert {"png.tEXt", "png.zTXt", "png.iTXt"} <= set(names)
    assert not any(SECRET in name for name in names)


def test_plain_images_report_no_metadata() -> None:
    assert names_of(encode("BMP")) == []
    assert names_of(encode("PNG")) == []
