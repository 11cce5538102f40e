"""DICOM frames: decode every frame into one shape, encode cleaned frames back.

* **Frames in one shape.** :func:`decode_frames` gives every frame as H x W (grey, the
  stored integers: no rescale, no VOI) or H x W x 3 RGB, whatever the transfer syntax
  (native little/big endian, deflated, JPEG, JPEG-LS, JPEG 2000, RLE: pydicom with GDCM,
  pylibjpeg and pyjpegls). YBR is converted to RGB by the decoders; palette colour is
  expanded to RGB here. Masking then needs no knowledge of how pixels were stored.
* **Lossless in, lossless out; lossy never twice.** :func:`encode_frames` keeps the
  transfer syntax when it is lossless and an encoder exists (native syntaxes, RLE,
  JPEG-LS lossless, JPEG 2000 lossless) and checks the encoded frames decode to exactly
  the cleaned ones; otherwise (JPEG baseline/extended/lossless, JPEG-LS near-lossless,
  JPEG 2000 that may be lossy, a failed check) it writes uncompressed Explicit VR Little
  Endian rather than compress a second time. A file that was lossy keeps saying so
  (LossyImageCompression "01"). Big endian stays big endian.
"""


from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from pydicom import uid as uids
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_color_lut, pack_bits, pixel_array

from gateway.errors import AnonymizationFailed

# Syntaxes written back as they came (pixel data stored uncompressed).
NATIVE_SYNTAXES = frozenset({
    uids.ExplicitVRLittleEndian,
    uids.ImplicitVRLittleEndian,
    uids.DeflatedExplicitVRLittleEndian,
    uids.ExplicitVRBigEndian,
})
# Lossless syntaxes re-encoded as they came, by this pydicom encoding plugin.
LOSSLESS_ENCODERS: dict[str, str] = {
    uids.RLELossless: "pylibjpeg",
    uids.JPEGLSLossless: "pyjpegls",
    uids.JPEG2000Lossless: "pylibjpeg",
}
# Always lossy: the output says so even if the input forgot to.
LOSSY_SYNTAXES = frozenset({
    uids.JPEGBaseline8Bit, uids.JPEGExtended12Bit, uids.JPEGLSNearLossless,
})


# --------------------------------------------------------------------------- decoding
def decode_frames(ds: Dataset) -> list[np.ndarray]:
    """Every frame of ``ds`` as H x W (grey) or H x W x 3 (RGB), native byte order."""
    if "PixelData" not in ds or "TransferSyntaxUID" not in _meta(ds):
        raise AnonymizationFailed("pixel_decode_failed")
    try:
        frames = _decode(ds)
    except Exception:  # every decoder failure looks alike to the caller: fail closed
        raise AnonymizationFailed("pixel_decode_failed") from None
    if not frames:
        raise AnonymizationFailed("pixel_decode_failed")
    return frames


def _decode(ds: Dataset) -> list[np.ndarray]:
    """Decode all frames at once (pydicom's per-frame iterator fails on some signed J2K).

    Decoder warnings (a J2K stream disagreeing with the header, ...) are silenced: the
    frames are checked by what happens to them next, and warning text may quote values.
    """
    with _quiet():
        arr = pixel_array(ds)
        if photometric(ds) == "PALETTE COLOR":
            arr = apply_color_lut(arr, ds)
    frames = list(arr) if int(ds.get("NumberOfFrames", 1) or 1) > 1 else [arr]
    return [np.array(f, dtype=f.dtype.newbyteorder("="), order="C") for f in frames]


def _same(left: list[np.ndarray], right: list[np.ndarray]) -> bool:
    return len(left) == len(right) and all(
        np.array_equal(a, b) for a, b in zip(left, right, strict=True)
    )


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _meta(ds: Dataset) -> FileMetaDataset:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    return meta


def syntax_of(ds: Dataset) -> uids.UID:
    return uids.UID(str(_meta(ds).get("TransferSyntaxUID", uids.ExplicitVRLittleEndian)))


def photometric(ds: Dataset) -> str:
    return str(ds.get("PhotometricInterpretation", "")).strip().upper()


# --------------------------------------------------------------------------- encoding
def encode_frames(ds: Dataset, frames: list[np.ndarray]) -> str:
    """Write ``frames`` into ``ds`` (see the module notes); returns the syntax written."""
    if not frames or any(f.shape != frames[0].shape for f in frames):
        raise AnonymizationFailed("pixel_encode_failed")
    source = syntax_of(ds)
    try:
        _set_image_pixel_module(ds, frames)
        if source in LOSSY_SYNTAXES:
            ds.LossyImageCompression = "01"
        if source in LOSSLESS_ENCODERS and _compress(ds, source, frames):
            return str(source)
        target = source if source in NATIVE_SYNTAXES else uids.ExplicitVRLittleEndian
        _write_native(ds, frames, target)
    except AnonymizationFailed:
        raise
    except Exception:
        raise AnonymizationFailed("pixel_encode_failed") from None
    return str(target)


def _set_image_pixel_module(ds: Dataset, frames: list[np.ndarray]) -> None:
    """Image Pixel module elements that describe ``frames`` exactly."""
    first = frames[0]
    samples = 3 if first.ndim == 3 else 1
    source_pi = photometric(ds)
    if source_pi == "PALETTE COLOR":
        _drop_palette(ds)
    if samples == 3:
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
    else:
        ds.PhotometricInterpretation = source_pi if source_pi.startswith("MONO") else "MONOCHROME2"
        if "PlanarConfiguration" in ds:
            del ds.PlanarConfiguration
    ds.SamplesPerPixel = samples
    one_bit = int(ds.get("BitsAllocated", 0) or 0) == 1 and first.dtype == np.uint8
    allocated = 1 if one_bit else first.dtype.itemsize * 8
    stored = _bits_stored(int(ds.get("BitsStored", allocated) or allocated), frames, allocated)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = allocated, stored, stored - 1
    ds.PixelRepresentation = 1 if first.dtype.kind == "i" else 0
    if len(frames) > 1 or "NumberOfFrames" in ds:
        ds.NumberOfFrames = len(frames)


def _bits_stored(declared: int, frames: list[np.ndarray], allocated: int) -> int:
    """The input's BitsStored if every value still fits in it, else the allocated bits."""
    if not 0 < declared <= allocated:
        return allocated
    low = min(int(f.min()) for f in frames)
    high = max(int(f.max()) for f in frames)
    if frames[0].dtype.kind == "i":
        fits = -(2 ** (declared - 1)) <= low and high < 2 ** (declared - 1)
    else:
        fits = high < 2**declared
    return declared if fits else allocated


def _drop_palette(ds: Dataset) -> None:
    """Palette LUT elements (0028,1100-1223) describe indices the RGB output no longer has."""
    for tag in [e.tag for e in ds if e.tag.group == 0x0028 and 0x1100 <= e.tag.element <= 0x1223]:
        del ds[tag]


def _compress(ds: Dataset, syntax: uids.UID, frames: list[np.ndarray]) -> bool:
    """Re-encode losslessly in ``syntax``; True only if the result decodes to ``frames``.

    Colour JPEG 2000 uses the reversible colour transform, which PS3.5 8.2.4 says to
    declare as YBR_RCT (the decoders give RGB back); anything else keeps RGB.
    """
    arr = frames[0] if len(frames) == 1 else np.stack(frames)
    if syntax == uids.JPEG2000Lossless and frames[0].ndim == 3:
        ds.PhotometricInterpretation = "YBR_RCT"
    try:
        with _quiet():
            ds.compress(syntax, arr, encoding_plugin=LOSSLESS_ENCODERS[syntax],
                        generate_instance_uid=False)
        same = _same(_decode(ds), frames)
    except Exception:  # no encoder for this kind of data: fall back to uncompressed
        same = False
    if not same and frames[0].ndim == 3:
        ds.PhotometricInterpretation = "RGB"
    return same


def _write_native(ds: Dataset, frames: list[np.ndarray], syntax: uids.UID) -> None:
    arr = np.stack(frames)
    if ds.BitsAllocated == 1:
        data = pack_bits(arr.ravel())
    else:
        order = ">" if syntax == uids.ExplicitVRBigEndian else "<"
        data = arr.astype(arr.dtype.newbyteorder(order)).tobytes()
    if len(data) % 2:
        data += b"\x00"
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            del ds[keyword]
    ds.PixelData = data
    element = ds["PixelData"]
    element.VR = "OB" if ds.BitsAllocated <= 8 else "OW"
    element.is_undefined_length = False
    _meta(ds).TransferSyntaxUID = syntax
