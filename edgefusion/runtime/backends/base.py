"""What every backend shares: the model I/O contract and its native encoding.

Contract (see :mod:`edgefusion.preprocess`): :meth:`Backend.run` takes ``ir``
and ``vis`` as NCHW float32 ``(1, 1, H, W)`` arrays in [0, 1] and returns the
fused NCHW float32 ``(1, 1, H, W)`` array clipped to [0, 1]. Models with the
inputs :data:`STATS_INPUTS` (v2 students) also take ``stats``, the (1, 6)
float32 frame statistics of :mod:`edgefusion.runtime.frame_stats`, computed
once per frame by the caller. The model inside may use another encoding,
described by :class:`IOSpec`:

* ``layout`` ``NHWC``: tensors are ``(1, H, W, 1)``; with one channel this is
  a reshape of the NCHW array, never a copy.
* ``dtype`` ``uint8``/``int8``: integer tensors with affine quantization
  ``real = (q - zero_point) * scale`` per tensor name (``ir``, ``vis``,
  ``fused``); encoding rounds half to even and saturates. ``stats`` is
  quantized only when ``io_quantization`` has a ``stats`` entry, else fed as float32.
* ``stats_scale`` (manifest ``stats_encoding``, :mod:`edgefusion.runtime.stats_encoding`):
  the model takes ``stats * stats_scale`` (before any quantization); None: raw.

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
from edgefusion.runtime.frame_stats import N_STATS
from edgefusion.runtime.stats_encoding import stats_scale

log = logging.getLogger("edgefusion.runtime")

LAYOUTS = ("NCHW", "NHWC")
IO_DTYPES = {"float32": np.float32, "uint8": np.uint8, "int8": np.int8}
INPUT_NAMES = ("ir", "vis")
#: Inputs of a v2 (frame-context) model: the planes plus the (1, 6) frame statistics.
STATS_INPUTS = ("ir", "vis", "stats")


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
    inputs: tuple[str, ...] = INPUT_NAMES
    stats_scale: tuple[float, ...] | None = None

    @classmethod
    def create(
        cls, layout: str = "NCHW", io_dtype: str = "float32", io_quantization: Mapping | None = None, output: str = "fused",
        inputs: tuple[str, ...] = INPUT_NAMES, stats_encoding: Mapping | None = None,
    ) -> IOSpec:
        """Validate the manifest-style arguments of :func:`open_backend` (``output``: ``fused`` or ``maps``;
        ``inputs``: :data:`INPUT_NAMES` or :data:`STATS_INPUTS`; ``stats_encoding``: the manifest's, or None)."""
        inputs = tuple(inputs)
        if inputs not in (INPUT_NAMES, STATS_INPUTS):
            raise UserError(f"unsupported model inputs {list(inputs)}; expected {list(INPUT_NAMES)} or {list(STATS_INPUTS)}")
        encoding = stats_scale(stats_encoding, "model", takes_stats=inputs == STATS_INPUTS)
        if layout not in LAYOUTS:
            raise UserError(f"unsupported model layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
        if io_dtype not in IO_DTYPES:
            raise UserError(f"unsupported model I/O type {io_dtype!r}; expected one of {', '.join(IO_DTYPES)}")
        quant: dict[str, Quant] = {}
        if io_dtype != "float32":
            table = io_quantization or {}
            optional = {"stats"}  # absent: the model takes float32 statistics
            for name in (*inputs, output):
                entry = table.get(name)
                if entry is None and name in optional:
                    continue
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
        return cls(layout, io_dtype, quant, output, inputs, encoding)

    @property
    def np_dtype(self) -> type:
        return IO_DTYPES[self.dtype]

    @property
    def takes_stats(self) -> bool:
        return self.inputs == STATS_INPUTS

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

    def run(self, ir: np.ndarray, vis: np.ndarray, out: np.ndarray | None = None, stats: np.ndarray | None = None) -> np.ndarray:
        """Fuse NCHW float32 (1, 1, H, W) planes in [0, 1]; returns (1, 1, H, W) float32 in [0, 1].

        ``out``, when given, is a float32 (1, 1, H, W) array that receives the result.
        ``stats`` (float32 (1, 6)) is required by models that take frame statistics and refused by others.
        """
        h, w = ir.shape[2:] if ir.ndim == 4 else (0, 0)
        if out is None:
            out = np.empty((1, 1, h, w), dtype=np.float32)
        native_out = out.reshape(self.io.native_shape(h, w)) if self.io.dtype == "float32" else None
        result = self._infer_checked(ir, vis, stats, native_out)
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

    def run_raw(self, ir: np.ndarray, vis: np.ndarray, stats: np.ndarray | None = None) -> np.ndarray:
        """The model's output as a new NCHW float32 array, dequantized but not clipped (e.g. ``maps``)."""
        result = self._infer_checked(ir, vis, stats)
        if self.io.layout == "NHWC" and result.ndim == 4:
            result = result.transpose(0, 3, 1, 2)
        out = np.empty(result.shape, dtype=np.float32)
        return self._decode(result, out)

    def _infer_checked(self, ir: np.ndarray, vis: np.ndarray, stats: np.ndarray | None, out: np.ndarray | None = None) -> np.ndarray:
        _check_input(ir, "ir")
        _check_input(vis, "vis")
        if ir.shape != vis.shape:
            raise UserError(f"ir and vis tensors differ in shape: {ir.shape} vs {vis.shape}")
        feeds = [self._encode("ir", ir), self._encode("vis", vis)]
        if self.io.takes_stats:
            _check_stats(stats)
            feeds.append(self._encode_stats(stats))
        elif stats is not None:
            raise UserError(f"this {self.name} model takes no frame statistics (inputs {', '.join(self.io.inputs)})")
        return self._infer(feeds, out)

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

    def _encode_stats(self, stats: np.ndarray) -> np.ndarray:
        """Statistics (1, 6) -> native tensor: encoded when ``stats_scale`` is set, then float32,
        or quantized when ``io_quantization`` has ``stats``."""
        if self.io.stats_scale is not None:
            stats = stats * np.asarray(self.io.stats_scale, dtype=np.float32)
        q = self.io.quantization.get("stats")
        if q is None:
            return np.ascontiguousarray(stats, dtype=np.float32)
        info = np.iinfo(self.io.np_dtype)
        return np.clip(np.rint(stats / np.float32(q.scale)) + q.zero_point, info.min, info.max).astype(self.io.np_dtype)

    def _infer(self, inputs: list[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        """Run the model on native tensors (``io.inputs`` order: ir, vis[, stats]); returns the native output tensor.

        ``out`` (float32, native layout) may receive the output directly when
        the engine supports it; the returned array is then ``out``.
        """
        raise NotImplementedError


def _check_input(x: np.ndarray, name: str) -> None:
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[:2] != (1, 1) or x.dtype != np.float32:
        got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise UserError(f"{name} must be a float32 (1, 1, H, W) array, got {got}")


def _check_stats(stats) -> None:
    if not isinstance(stats, np.ndarray) or stats.shape != (1, N_STATS) or stats.dtype != np.float32:
        got = f"{stats.dtype} {stats.shape}" if isinstance(stats, np.ndarray) else type(stats).__name__
        raise UserError(f"stats must be a float32 (1, {N_STATS}) array of frame statistics, got {got}")


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


def check_planes(backend: str, io: IOSpec, planes: list[tuple[tuple, str]]) -> None:
    """UserError unless the model's ``ir`` and ``vis`` inputs are what the bundle manifest says: rank 4 with a
    static 1 on the ``layout``'s channel axis, element type ``io_dtype``. ``planes``: per input, its shape
    (None for a dynamic dimension) and its numpy dtype name, in the order ``ir``, ``vis``."""
    axis = 1 if io.layout == "NCHW" else 3
    for name, (shape, dtype) in zip(INPUT_NAMES, planes):
        if len(shape) != 4 or shape[axis] != 1:
            dims = "x".join("?" if d is None else str(d) for d in shape)
            raise UserError(f"the {backend} model's {name} input is {dims}, not one channel in the {io.layout} layout the bundle manifest says")
        if dtype != io.dtype:
            raise UserError(f"the {backend} model's {name} input is {dtype}, the bundle manifest says {io.dtype}")


def match_names(names: list[str], backend: str, expected: tuple[str, ...] = INPUT_NAMES) -> list[int]:
    """Positions of the ``expected`` inputs (``ir``, ``vis`` and maybe ``stats``) among the model's input names.

    Exact names (after dropping a ``serving_default_`` prefix and ``:0``
    suffix) win; otherwise inputs are taken in order (converters such as
    litert-torch name them ``args_0``, ``args_1``, ... in ``forward`` order).
    """
    if len(names) != len(expected):
        raise UserError(
            f"{backend} model has {len(names)} inputs ({', '.join(names)}); the bundle expects {len(expected)} ({', '.join(expected)})"
        )
    clean = [n.removeprefix("serving_default_").split(":")[0] for n in names]
    if set(clean) == set(expected):
        return [clean.index(n) for n in expected]
    return list(range(len(expected)))
