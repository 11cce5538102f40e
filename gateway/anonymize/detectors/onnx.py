"""One way to open a shipped ONNX model: CPU, bounded threads, quiet logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_model(path: Path | None, name: str) -> bytes:
    """The model file's bytes; ``FileNotFoundError`` naming it when the package lacks it."""
    if path is None or not path.is_file():
        raise FileNotFoundError(name)
    return path.read_bytes()


def cpu_session(model: bytes, intra_op_num_threads: int) -> Any:
    """An onnxruntime CPU session (imported only here, when a detector is built)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op_num_threads
    opts.inter_op_num_threads = 1  # the server parallelizes across items, not within one
    opts.log_severity_level = 3  # warnings only; errors still raise
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
