"""What every backend shares: the model I/O contract and its native encoding.

Contract (see :mod:`edgefusion.preprocess`): :meth:`Backend.run` takes ``ir``
and ``vis`` as NCHW float32 ``(1, 1, H, W)`` arrays in [0, 1] and returns the
fused NCHW float32 ``(1, 1, H, W)`` array clipped to [0, 1]. The model inside
may use another encoding, described by :class:`IOSpec`:

* ``layout`` ``NHWC``: tensors are ``(1, H, W, 1)``; with one channel this is
  a reshape of the NCHW array, never a copy.
* ``dtype`` ``uint8``/``int8``: integer tensors with affine quantization
  ``real = (q - zero_point) * scale`` per tensor name (``ir``, ``vis``,
  ``fused``); encoding rounds half to even and saturates.

A backend instance keeps per-shape scratch buffers, so it is not thread-safe:
use one per thread (or serialize calls, as :class:`edgefusion.runtime.Fuser` does).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from edgefusion.errors import UserError

log = logging.getLogger("edgefusion.runtime")

LAYOUTS = ("NCHW", "NHWC")
IO_DTYPES = {"float32": np.float32, "uint8": np.uint8, "int8": np.int8}
INPUT_NAMES = ("ir", "vis")


@dataclass(frozen=True)
class Quant:
    """Affine quantization of one tensor: ``real = (q - zero_point) * scale``."""

    scale: float
    zero_point: int


@dataclass(frozen=True)
class IOSpec:
    """How the model stores the contract's tensors (layout, element type, quantization)."""

    layout: str = "NCHW"
    dtype: str = "float32"
    quantization: Mapping[str, Quant] = field(default_factory=dict)
    output: str = "fused"

    @classmethod
    def create(
        cls, layout: str = "NCHW", io_dtype: str = "float32", io_quantization: Mapping | None = None, output: str = "fused"
    ) -> IOSpec:
        """Validate the manifest-style arguments of :func:`open_backend` (``output``: ``fused`` or ``maps``)."""
        if layout not in LAYOUTS:
            raise UserError(f"unsupported model layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
        if io_dtype not in IO_DTYPES:
            raise UserError(f"unsupported model I/O type {io_dtype!r}; expected one of {', '.join(IO_DTYPES)}")
        quant: dict[str, Quant] = {}
        if io_dtype != "float32":
            table = io_quantization or {}
            for name in (*INPUT_NAMES, output):
                entry = table.get(name)
                if not isinstance(entry, Mapping) or not {"scale", "zero_point"} <= set(entry):
                    raise UserError(f"{io_dtype} model I/O needs io_quantization.{name} = {{scale, zero_point}}")
                try:
                    scale, zero = float(entry["scale"]), int(entry["zero_point"])
                except (TypeError, ValueError, OverflowError):
                    raise UserError(f"io_quantization.{name} must hold a number scale and an integer zero_point") from None
                info = np.iinfo(IO_DTYPES[io_dtype])
                if not (np.isfinite(scale) and scale > 0 and info.min <= zero <= info.max):
                    raise UserError(f"io_quantization.{name}: scale must be > 0 and zero_point within {io_dtype}, got {scale}, {zero}")
                quant[name] = Quant(scale, zero)
        return cls(layout, io_dtype, quant, output)

    @property
    def np_dtype(self) -> type:
        return IO_DTYPES[self.dtype]

    def native_shape(self, height: int, width: int) -> tuple[int, int, int, int]:
        return (1, 1, height, width) if self.layout == "NCHW" else (1, height, width, 1)


class Backend:
    """One loaded model on one inference engine; subclasses implement :meth:`_infer`.

    Attributes: ``name`` (backend name), ``version`` (engine version),
    ``provider`` (which execution provider / device actually runs the model),
    ``io`` (:class:`IOSpec`).
    """

    name = ""
    version = ""
    provider = ""

    def __init__(self, io: IOSpec) -> None:
        self.io = io
        self._scratch: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def run(self, ir: np.ndarray, vis: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Fuse NCHW float32 (1, 1, H, W) planes in [0, 1]; returns (1, 1, H, W) float32 in [0, 1].

        ``out``, when given, is a float32 (1, 1, H, W) array that receives the result.
        """
        h, w = ir.shape[2:] if ir.ndim == 4 else (0, 0)
        if out is None:
            out = np.empty((1, 1, h, w), dtype=np.float32)
        native_out = out.reshape(self.io.native_shape(h, w)) if self.io.dtype == "float32" else None
        result = self._infer_checked(ir, vis, native_out)
        if result.size != h * w:
            raise UserError(
                f"{self.name} model returned shape {tuple(result.shape)} for a {h}x{w} input; "
                "the model has a fixed shape (set fixed_shape in the manifest)"
            )
        result = result.reshape(1, 1, h, w)
        if self.io.dtype == "float32":
            return np.clip(result, 0.0, 1.0, out=out)
        self._decode(result, out)
        return np.clip(out, 0.0, 1.0, out=out)

    def run_raw(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        """The model's output as a new NCHW float32 array, dequantized but not clipped (e.g. ``maps``)."""
        result = self._infer_checked(ir, vis)
        if self.io.layout == "NHWC" and result.ndim == 4:
            result = result.transpose(0, 3, 1, 2)
        out = np.empty(result.shape, dtype=np.float32)
        return self._decode(result, out)

    def _infer_checked(self, ir: np.ndarray, vis: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        _check_input(ir, "ir")
        _check_input(vis, "vis")
        if ir.shape != vis.shape:
            raise UserError(f"ir and vis tensors differ in shape: {ir.shape} vs {vis.shape}")
        return self._infer(self._encode("ir", ir), self._encode("vis", vis), out)

    def _decode(self, result: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Native output -> float32 ``out`` (dequantized with the output's scale and zero point)."""
        if self.io.dtype == "float32":
            np.copyto(out, result)
        else:
            q = self.io.quantization[self.io.output]
            np.subtract(result, np.float32(q.zero_point), out=out, dtype=np.float32)
            np.multiply(out, np.float32(q.scale), out=out)
        return out

    def _encode(self, name: str, x: np.ndarray) -> np.ndarray:
        """Contract tensor -> native tensor (layout reshape, quantization into a reused buffer)."""
        h, w = x.shape[2:]
        shape = self.io.native_shape(h, w)
        if self.io.dtype == "float32":
            return np.ascontiguousarray(x, dtype=np.float32).reshape(shape)
        q = self.io.quantization[name]
        key = (name, shape)
        if key not in self._scratch:
            self._scratch[key] = (np.empty(shape, dtype=np.float32), np.empty(shape, dtype=self.io.np_dtype))
        real, quantized = self._scratch[key]
        info = np.iinfo(self.io.np_dtype)
        np.divide(x.reshape(shape), np.float32(q.scale), out=real)
        np.rint(real, out=real)
        np.add(real, np.float32(q.zero_point), out=real)
        np.clip(real, info.min, info.max, out=real)
        np.copyto(quantized, real, casting="unsafe")
        return quantized

    def _infer(self, ir: np.ndarray, vis: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Run the model on native tensors; returns the native output tensor.

        ``out`` (float32, native layout) may receive the output directly when
        the engine supports it; the returned array is then ``out``.
        """
        raise NotImplementedError


def _check_input(x: np.ndarray, name: str) -> None:
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[:2] != (1, 1) or x.dtype != np.float32:
        got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise UserError(f"{name} must be a float32 (1, 1, H, W) array, got {got}")


def model_file(model_files: Mapping[str, Path], key: str, backend: str, suffixes: tuple[str, ...]) -> Path:
    """The existing file ``model_files[key]`` with one of ``suffixes``, else a one-line UserError."""
    path = model_files.get(key)
    if path is None:
        raise UserError(f"{backend} bundle lists no '{key}' file (files: {', '.join(model_files) or 'none'})")
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise UserError(f"{backend} cannot load {path.name}; expected a {' or '.join(suffixes)} file")
    if not path.is_file():
        raise UserError(f"model file not found: {path}")
    return path


def match_names(names: list[str], backend: str) -> list[int]:
    """Positions of ``ir`` and ``vis`` among the model's input names.

    Exact names (after dropping a ``serving_default_`` prefix and ``:0``
    suffix) win; otherwise inputs are taken in order (converters such as
    litert-torch name them ``args_0``, ``args_1`` in ``forward`` order).
    """
    if len(names) != 2:
        raise UserError(f"{backend} model has {len(names)} inputs ({', '.join(names)}); expected 2 (ir, vis)")
    clean = [n.removeprefix("serving_default_").split(":")[0] for n in names]
    if set(clean) == {"ir", "vis"}:
        return [clean.index("ir"), clean.index("vis")]
    return [0, 1]
