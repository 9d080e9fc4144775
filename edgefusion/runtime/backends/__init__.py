"""Inference engines behind one interface: :func:`open_backend` -> :class:`Backend`.

Each backend module imports only numpy and its engine (onnxruntime, openvino,
ai_edge_litert / tflite_runtime, tensorrt), and only when opened. See
:mod:`edgefusion.runtime.backends.base` for the tensor contract.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Mapping

from edgefusion.errors import UserError
from edgefusion.runtime.backends.base import Backend, IOSpec

#: backend name -> (module, class)
BACKENDS = {
    "onnxruntime": ("onnxruntime", "OnnxRuntimeBackend"),
    "openvino": ("openvino", "OpenVinoBackend"),
    "litert": ("litert", "LiteRtBackend"),
    "tensorrt": ("tensorrt", "TensorRtBackend"),
}

__all__ = ["BACKENDS", "Backend", "IOSpec", "open_backend"]


def open_backend(
    backend: str,
    model_files: Mapping[str, Path],
    *,
    layout: str = "NCHW",
    io_dtype: str = "float32",
    io_quantization: Mapping | None = None,
    output: str = "fused",
    inputs: tuple[str, ...] = ("ir", "vis"),
    stats_encoding: Mapping | None = None,
    threads: int | None = None,
    device: str | None = None,
) -> Backend:
    """Load ``model_files`` (role -> path, e.g. ``{"model": ..., "weights": ...}``) on ``backend``.

    ``layout``/``io_dtype``/``io_quantization`` describe the model's own
    tensors (manifest fields); :meth:`Backend.run` always speaks NCHW float32.
    ``output`` names the output tensor for integer I/O: ``fused``, or ``maps``
    for analyze-only bundles (read with :meth:`Backend.run_raw`); ``inputs``
    is ``("ir", "vis")`` or, for models that take frame statistics, ``("ir", "vis", "stats")``;
    ``stats_encoding`` (manifest field, :mod:`edgefusion.runtime.stats_encoding`) how they take them.
    ``threads`` caps CPU threads; ``device`` picks a provider/device (backend
    specific, default CPU). ``Backend.provider`` tells what actually runs.
    """
    if backend not in BACKENDS:
        raise UserError(f"unsupported backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise UserError(f"threads must be a positive integer, got {threads!r}")
    io = IOSpec.create(layout, io_dtype, io_quantization, output, inputs, stats_encoding)
    module_name, class_name = BACKENDS[backend]
    module = importlib.import_module(f"edgefusion.runtime.backends.{module_name}")
    return getattr(module, class_name)({k: Path(v) for k, v in model_files.items()}, io, threads=threads, device=device)
