"""Identify and safely open an uploaded image.

Why it works this way:

* **Type from content only.** The format is sniffed from magic bytes; a filename or a
  client-supplied content type is never consulted. Each sniffed type is then opened with
  exactly that Pillow plugin class, so PIL never guesses among its ~40 formats either.
* **Size before pixels.** The plugin constructors read headers only. We compare the
  header's width x height with the policy's ``max_pixels`` before any decoding, so a PNG
  claiming 50,000 x 50,000 is refused without allocating. (For WebP, whose decoder
  allocates its canvas while *opening*, the size is read from the RIFF header first.)
* **No global PIL state is changed.** ``Image.open`` would run PIL's decompression-bomb
  check and emit ``DecompressionBombWarning``; constructing the plugin class skips that
  check, and we refuse anything above ``Image.MAX_IMAGE_PIXELS`` ourselves (it acts as a
  second, process-wide ceiling), so PIL's later checks (TIFF tiles) can never warn.
* **Fully decoded or refused.** ``load()`` runs at once with truncated-image tolerance off
  (PIL's default, ``ImageFile.LOAD_TRUNCATED_IMAGES``), so half a JPEG is an
  :class:`InvalidUpload`, not a grey-padded picture handed to the detectors.
* Messages never carry content values (dimensions, metadata, decoder text).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass

from PIL import (
    BmpImagePlugin,
    ExifTags,
    Image,
    ImageFile,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
)

from gateway.errors import InvalidUpload, UnsupportedMediaType

MIME = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "BMP": "image/bmp",
}
_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
MULTI_FRAME = "animated or multi-page images are not supported yet"


@dataclass(frozen=True)
class ImageInfo:
    format: str  # "JPEG" | "PNG" | "WEBP" | "TIFF" | "BMP"
    mime: str
    width: int
    height: int
    frames: int


def sniff(data: bytes) -> str | None:
    """The image format named by the leading bytes, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    bmp = data[:2] == b"BM" and len(data) >= 18
    if bmp and struct.unpack_from("<I", data, 14)[0] in _BMP_HEADER_SIZES:
        return "BMP"
    return None


def inspect_image(data: bytes, max_pixels: int) -> ImageInfo:
    """Validate an upload completely (type, size, decodability) and describe it."""
    info, image = open_image(data, max_pixels)
    image.close()
    return info


def open_image(data: bytes, max_pixels: int) -> tuple[ImageInfo, Image.Image]:
    """Like :func:`inspect_image`, also returning the fully loaded first frame."""
    if not data:
        raise InvalidUpload("the file is empty", reason="empty")
    fmt = sniff(data)
    if fmt is None:
        raise UnsupportedMediaType(
            "not a supported image type (JPEG, PNG, WebP, TIFF or BMP expected)",
            reason="unsupported_type",
        )
    if fmt == "WEBP":
        _check_pixels(_webp_size(data), max_pixels)
    image = _construct(fmt, data)
    _check_pixels(image.size, max_pixels)
    frames = _frame_count(image)
    if frames > 1:
        image.close()
        raise InvalidUpload(MULTI_FRAME, reason="multi_frame")
    _load(image)
    width, height = image.size
    return ImageInfo(fmt, MIME[fmt], width, height, frames), image


def _construct(fmt: str, data: bytes) -> Image.Image:
    """Parse headers with the plugin for ``fmt``; translate PIL's many error types."""
    factory = _factories()[fmt]
    try:
        return factory(io.BytesIO(data))
    except Image.DecompressionBombError:
        limit = Image.MAX_IMAGE_PIXELS or 0
        raise InvalidUpload(_too_large(limit), reason="too_many_pixels") from None
    except Exception:  # PIL raises SyntaxError, OSError, ValueError, struct.error, ...
        raise InvalidUpload("the image header is corrupt or truncated", reason="corrupt") from None


def _factories() -> dict[str, Callable[[io.BytesIO], Image.Image]]:
    from PIL import WebPImagePlugin  # needs Pillow built with libwebp; imported on use

    return {
        "JPEG": JpegImagePlugin.JpegImageFile,
        "PNG": PngImagePlugin.PngImageFile,
        "WEBP": WebPImagePlugin.WebPImageFile,
        "TIFF": TiffImagePlugin.TiffImageFile,
        "BMP": BmpImagePlugin.BmpImageFile,
    }


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    limit = max_pixels
    if Image.MAX_IMAGE_PIXELS is not None:
        limit = min(limit, int(Image.MAX_IMAGE_PIXELS))
    if size[0] * size[1] > limit:
        raise InvalidUpload(_too_large(limit), reason="too_many_pixels")


def _too_large(limit: int) -> str:
    return f"the image has more pixels than the limit of {limit}"


def _frame_count(image: Image.Image) -> int:
    try:
        if not getattr(image, "is_animated", False):
            return 1
        return int(getattr(image, "n_frames", 2))
    except Exception:
        raise InvalidUpload("the image data is corrupt or truncated", reason="corrupt") from None


def _load(image: Image.Image) -> None:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Someone in this process relaxed PIL's check; we cannot tell truncation apart.
        raise InvalidUpload("image decoding is misconfigured (truncated images allowed)",
                            reason="decoder_misconfigured")
    try:
        image.load()
    except Exception:
        image.close()
        raise InvalidUpload("the image data is corrupt or truncated", reason="corrupt") from None


def _webp_size(data: bytes) -> tuple[int, int]:
    """Canvas size from the first RIFF chunk (VP8X, VP8L or VP8), before any decoder runs."""
    chunk = data[12:16]
    try:
        if chunk == b"VP8X":
            w = int.from_bytes(data[24:27], "little") + 1
            return w, int.from_bytes(data[27:30], "little") + 1
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8 ":
            w, h = struct.unpack_from("<HH", data, 26)
            return w & 0x3FFF, h & 0x3FFF
    except (struct.error, ValueError):
        pass
    raise InvalidUpload("the image header is corrupt or truncated", reason="corrupt")


# --- which metadata the input carries (names only, never values) -------------------------

# TIFF tags that describe the pixels themselves; every other tag is metadata.
# fmt: off
_TIFF_STRUCTURAL = {
    254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 282, 283,
    284, 290, 291, 296, 317, 318, 319, 320, 322, 323, 324, 325, 338, 339, 340, 341, 347,
    529, 530, 531, 532, 34675,
}
# fmt: on
_TIFF_NAMED = {700: "xmp", 33723: "iptc", 34377: "photoshop", 34665: "exif", 34853: "exif.GPSInfo"}
_PNG_KEPT = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"iCCP"}
_WEBP_KEPT = {b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ICCP", b"ANIM", b"ANMF"}
_WEBP_NAMED = {b"EXIF": "exif", b"XMP ": "xmp"}


def metadata_names(image: Image.Image, data: bytes, fmt: str) -> list[str]:
    """Names of the metadata segments and fields in the input (ICC profile excluded)."""
    container = {
        "JPEG": lambda: _jpeg_names(image),
        "PNG": lambda: _png_names(data),
        "WEBP": lambda: _webp_names(data),
        "TIFF": lambda: _tiff_names(image),
        "BMP": set,
    }[fmt]
    try:
        return sorted(container() | _exif_names(image, fmt))
    except Exception:  # unparseable metadata is still dropped; say so without detail
        return ["unparsed"]


def _jpeg_names(image: Image.Image) -> set[str]:
    names = set()
    for marker, payload in getattr(image, "applist", []):
        if marker == "COM":
            names.add("comment")
        elif marker == "APP1" and payload.startswith(b"Exif\x00"):
            names.add("exif")
        elif marker == "APP1" and payload.startswith(b"http://ns.adobe.com/x"):
            names.add("xmp")
        elif marker == "APP13":
            names.add("iptc" if b"8BIM\x04\x04" in payload else "photoshop")
        elif marker == "APP2" and payload.startswith(b"MPF"):
            names.add("mpf")
        elif not (marker in ("APP0", "APP14") or payload.startswith(b"ICC_PROFILE")):
            names.add(f"jpeg.{marker.lower()}")
    return names


def _png_names(data: bytes) -> set[str]:
    names, pos = set(), 8
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"IEND":
            break
        if kind not in _PNG_KEPT:
            names.add("exif" if kind == b"eXIf" else f"png.{kind.decode('latin-1')}")
        pos += 12 + size
    return names


def webp_chunks(data: bytes) -> list[bytes]:
    """The FourCCs of a WebP file's RIFF chunks, in order."""
    kinds, pos = [], 12
    while pos + 8 <= len(data):
        kind, size = struct.unpack_from("<4sI", data, pos)
        kinds.append(kind)
        pos += 8 + size + (size & 1)
    return kinds


def _webp_names(data: bytes) -> set[str]:
    return {
        _WEBP_NAMED.get(kind, f"webp.{kind.decode('latin-1').strip()}")
        for kind in webp_chunks(data)
        if kind not in _WEBP_KEPT
    }


def _tiff_names(image: Image.Image) -> set[str]:
    tags = getattr(image, "tag_v2", {})
    names = set()
    for tag in tags:
        if tag not in _TIFF_STRUCTURAL:
            names.add(_TIFF_NAMED.get(tag) or f"tiff.{_tag_name(tag)}")
    return names


def _exif_names(image: Image.Image, fmt: str) -> set[str]:
    exif = image.getexif()
    if not exif:
        return set()
    names = set()
    if fmt != "TIFF":  # for TIFF, IFD0 is the image's own tag list (see _tiff_names)
        names = {"exif"} | {f"exif.{_tag_name(t)}" for t in exif}
    for ifd in (ExifTags.IFD.Exif, ExifTags.IFD.Interop):
        names |= {f"exif.{_tag_name(t)}" for t in exif.get_ifd(ifd)}
    if exif.get_ifd(ExifTags.IFD.GPSInfo):
        names.add("exif.GPSInfo")
    if exif.get_ifd(ExifTags.IFD.IFD1):
        names.add("exif.thumbnail")
    return names


def _tag_name(tag: int) -> str:
    return ExifTags.TAGS.get(tag) or f"0x{tag:04X}"
