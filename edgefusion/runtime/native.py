"""The C frame-path kernels (``edgefusion/native/src``) for the Python runtime, through ctypes.

On first use the sources are compiled with the system C compiler (``$CC`` or
``cc``; ``-O3 -std=c99``, plus ``-march=x86-64-v3`` on x86-64 CPUs with
AVX2/FMA/BMI2, else ``-march=x86-64-v2`` with SSE4.2: the library is built on the
machine that runs it, and the flags are part of its cache name) into a shared library in a per-user cache folder
(``$EDGEFUSION_NATIVE_CACHE``, else ``$XDG_CACHE_HOME/edgefusion/native`` or
``~/.cache/edgefusion/native``), named by the hash of the sources and flags and
written by atomic rename, so concurrent first uses are safe.
``EDGEFUSION_NATIVE=0`` disables the kernels; ``EDGEFUSION_NATIVE_CFLAGS``
adds compiler flags (e.g. ``-march=native``, opt-in). Without a compiler the
callers use their numpy path (one debug log line says why).
``EDGEFUSION_NATIVE_LIB`` loads a prebuilt kernel library instead of compiling
(devices without a compiler: the CMake project's ``ef_kernels`` target,
cross-built for the device). It must be built from this installation's kernel
sources (:func:`source_id` against its ``ef_kernels_source()``); a library that
cannot be loaded or was built from other sources is a :class:`UserError`.

The wrappers take numpy arrays whose rows are contiguous and follow each other
upwards in memory (any row stride of at least a row; a[::-1] or a broadcast view is
refused: copy it) and write into caller-owned, writable outputs; see
``ef_kernels.h`` for the math.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from edgefusion.errors import UserError
from edgefusion.runtime.backends.base import log
from edgefusion.runtime.compose import BandWorkers
from edgefusion.runtime.frame_stats import N_STATS
from edgefusion.runtime.frame_stats import frame_stats as numpy_frame_stats

SOURCES = Path(__file__).resolve().parent.parent / "native" / "src"
#: Flags of any program built from the kernels: ISO C99, no FMA contraction (the same bytes on every target).
PROGRAM_FLAGS = ("-O3", "-std=c99", "-ffp-contract=off")
BASE_FLAGS = (*PROGRAM_FLAGS, "-fPIC", "-shared")
GRAY, RGB, BGR = 1, 3, 4
#: Rows per strip of the input pass (EF_K_STRIP): where its bands on threads may start.
STRIP = 16

_lock = threading.Lock()
_state: dict[str, object] = {}


def enabled() -> bool:
    """True unless ``EDGEFUSION_NATIVE=0``."""
    return os.environ.get("EDGEFUSION_NATIVE", "1").strip() != "0"


def kernels() -> ctypes.CDLL | None:
    """The loaded kernel library, building it on first use; None when disabled or not buildable."""
    if not enabled():
        return None
    with _lock:
        if "lib" not in _state:
            _state["lib"] = _load()
        return _state["lib"]  # type: ignore[return-value]


def kernels_isa() -> str:
    """What runs the frame path in this process: "avx2" or "portable" (the C kernels' ``ef_kernels_isa``), or "numpy"
    (no C kernels: disabled, or no compiler)."""
    lib = kernels()
    return "numpy" if lib is None else lib.ef_kernels_isa().decode()


#: CPU flags (``/proc/cpuinfo``) of the x86-64-v3 level (AVX2 with FMA, BMI, F16C, MOVBE, LZCNT).
X86_64_V3 = frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "abm", "xsave"})


def _flags() -> list[str]:
    return [*BASE_FLAGS, *target_flags()]


def target_flags() -> list[str]:
    """The instruction-set flags for this CPU (x86-64-v3 with AVX2, else v2 on x86) plus ``EDGEFUSION_NATIVE_CFLAGS``."""
    flags = []
    if platform.machine().lower() in ("x86_64", "amd64"):
        cpu = _cpu_flags()
        if X86_64_V3 <= cpu:
            flags.append("-march=x86-64-v3")
        elif "sse4_2" in cpu:
            flags.append("-march=x86-64-v2")
    return flags + shlex.split(os.environ.get("EDGEFUSION_NATIVE_CFLAGS", ""))


def _cpu_flags() -> frozenset[str]:
    """The first processor's feature flags in ``/proc/cpuinfo`` (empty where unreadable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("flags"):
                return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def _cache_dir() -> Path:
    if os.environ.get("EDGEFUSION_NATIVE_CACHE"):
        return Path(os.environ["EDGEFUSION_NATIVE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgefusion" / "native"


def source_id() -> str:
    """"c=<SHA-256 of ef_kernels.c>,h=<SHA-256 of ef_kernels.h>" of this installation's kernel sources, as a prebuilt
    library's ``ef_kernels_source()`` must report it."""
    digest = {name: hashlib.sha256((SOURCES / f"ef_kernels.{name}").read_bytes()).hexdigest() for name in ("c", "h")}
    return f"c={digest['c']},h={digest['h']}"


def _prebuilt_path() -> str:
    """``EDGEFUSION_NATIVE_LIB`` ("" when unset)."""
    return os.environ.get("EDGEFUSION_NATIVE_LIB", "").strip()


def check_prebuilt() -> None:
    """Load ``EDGEFUSION_NATIVE_LIB`` now when it is set (and the kernels are enabled): its UserError is the caller's."""
    if _prebuilt_path():
        kernels()


def _load_prebuilt(path: Path) -> ctypes.CDLL:
    """The kernel library at ``path`` (``EDGEFUSION_NATIVE_LIB``; relative to the working folder, ``~`` expanded), after
    checking that it was built from these sources."""
    path = path.expanduser().absolute()  # a bare name would make the dynamic loader search its own paths
    where = f"EDGEFUSION_NATIVE_LIB={path}"
    if not path.is_file():
        raise UserError(f"{where}: no such file")
    try:
        lib = ctypes.CDLL(str(path))
        lib.ef_kernels_source.restype = ctypes.c_char_p
        built_from = (lib.ef_kernels_source() or b"").decode(errors="replace")
    except (OSError, AttributeError) as exc:
        raise UserError(f"{where}: not a kernel library this machine can load ({str(exc).splitlines()[0] if str(exc) else exc})") from None
    expected = source_id()
    if built_from != expected:
        raise UserError(f"{where} was built from other kernel sources ({built_from or 'unrecorded'}) than this edgefusion's "
                        f"({expected}); rebuild it from {SOURCES.parent} (CMake target ef_kernels)")
    try:
        return _declare(lib)
    except AttributeError as exc:
        raise UserError(f"{where}: {exc}") from None


def _load() -> ctypes.CDLL | None:
    prebuilt = _prebuilt_path()
    if prebuilt:
        return _load_prebuilt(Path(prebuilt))
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    sources = sorted(SOURCES.glob("*.c"))
    if sys.platform == "win32" or not compiler or not sources:
        log.debug("native kernels unavailable (no C compiler or sources); using numpy")
        return None
    flags = _flags()
    digest = hashlib.sha256("\0".join([compiler, platform.machine(), *flags]).encode())
    for path in sorted(SOURCES.glob("*.[ch]")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    target = _cache_dir() / f"libef_kernels-{digest.hexdigest()[:20]}.so"
    try:
        if not target.exists():
            _build(compiler, flags, sources, target)
        return _declare(ctypes.CDLL(str(target)))
    except (OSError, AttributeError, subprocess.SubprocessError) as exc:  # AttributeError: a symbol is missing
        log.debug("native kernels unavailable (%s); using numpy", str(exc).splitlines()[0] if str(exc) else exc)
        return None


def _build(compiler: str, flags: list[str], sources: list[Path], target: Path) -> None:
    """Compile into a temporary file beside ``target`` and rename it into place (atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        cmd = [compiler, *flags, "-o", tmp, *map(str, sources), "-lm"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode:
            raise OSError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


_P = ctypes.c_void_p
_Z = ctypes.c_size_t
_I = ctypes.c_int
_D = ctypes.c_double


class Chroma(ctypes.Structure):
    """``ef_chroma``: an 8-bit RGB/BGR source, planar float Cb/Cr, or neither (gray)."""

    _fields_ = [("src", _P), ("src_stride", _Z), ("order", _I), ("cb", _P), ("cr", _P), ("ld", _Z)]


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    signatures = {
        "ef_normalize_u8": (_P, _Z, _I, _I, _P, _Z),
        "ef_percentiles_u16": (_P, _Z, _I, _I, _D, _D, _P, ctypes.POINTER(_D), ctypes.POINTER(_D)),
        "ef_stretch_u16": (_P, _Z, _I, _I, _D, _D, _P, _Z),
        "ef_channels_identical_u8": (_P, _Z, _I, _I),
        "ef_ycbcr_u8": (_P, _Z, _I, _I, _I, _P, _Z, _P, _P, _Z),
        "ef_frame_stats": (_P, _P, _Z, _I, _I, _P),
        "ef_frame_stats_u8": (_P, _Z, _P, _Z, _I, _I, _P),
        "ef_pad_edge": (_P, _Z, _I, _I, _I, _I),
        "ef_prepare_u8": (_P, _Z, _P, _Z, _I, _I, _I, _I, _I, _P, _P, _Z, _P),
        "ef_prepare_u8_rows": (_P, _Z, _P, _Z, _I, _I, _I, _I, _I, _I, _I, _P, _P, _Z, _P),
        "ef_prepare_u8_strip_stats": (_P, _Z, _I, _I, _I, _P, _P, _Z, _P),
        "ef_prepare_u8_finish": (_I, _I, _I, _I, _I, _P, _P, _Z, _P, _P),
        "ef_prepare_partials_bytes": (_I,),
        "ef_restore_u8": (_P, _Z, _I, _I, ctypes.POINTER(Chroma), _P, _Z, _I),
        "ef_compose_scratch_bytes": (_I, _I),
        "ef_compose_f32_rows": (_P, _P, _Z, _I, _I, _P, _I, _I, _I, _I, _P, _Z, _P),
        "ef_compose_u8_rows": (_P, _P, _Z, _I, _I, _P, _I, _I, _I, _I, ctypes.POINTER(Chroma), _P, _Z, _I, _P),
    }
    for name, args in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = _I
    lib.ef_percentiles_scratch_bytes.argtypes = ()
    lib.ef_percentiles_scratch_bytes.restype = _Z
    lib.ef_compose_scratch_bytes.restype = _Z
    lib.ef_prepare_partials_bytes.restype = _Z
    for name in ("ef_kernels_isa", "ef_kernels_source"):
        getattr(lib, name).argtypes = ()
        getattr(lib, name).restype = ctypes.c_char_p
    return lib


# ---- thin wrappers (arrays with contiguous rows; outputs preallocated by the caller) ----


def _rows(a: np.ndarray, dtype, channels: int = 1, out: bool = False) -> tuple[int, int]:
    """(pointer, row stride in bytes) of a non-empty 2-D (or (H, W, channels)) array with contiguous rows that follow
    each other upwards in memory (the kernels' strides are unsigned: a negative one would wrap); writable when ``out``."""
    row = a.itemsize * math.prod(a.shape[1:])
    stride = a.strides[0] if a.shape[0] > 1 else row  # numpy may give a single row any stride
    if (a.dtype != dtype or not a.size or a.ndim not in (2, 3) or a.shape[2:] not in ((), (channels,)) or not a[:1].flags.c_contiguous
            or stride < row):
        raise ValueError(f"native kernels need non-empty {np.dtype(dtype)} (H, W) or (H, W, {channels}) arrays with contiguous rows "
                         f"in increasing memory order, got {a.dtype} {a.shape} with strides {a.strides}")
    if out and not a.flags.writeable:
        raise ValueError(f"native kernels cannot write into a read-only {a.dtype} {a.shape} array")
    return a.ctypes.data, stride


def _ld(a: np.ndarray, out: bool = False) -> tuple[int, int]:
    """(pointer, row stride in floats) of a float32 plane (written when ``out``)."""
    ptr, stride = _rows(a, np.float32, out=out)
    return ptr, stride // 4


def _covers(h: int, w: int, *arrays: np.ndarray) -> None:
    """Every (H, W) or (H, W, C) array spans at least h x w pixels (the kernels trust the sizes they get)."""
    for a in arrays:
        if a.shape[0] < h or a.shape[1] < w:
            raise ValueError(f"array of shape {a.shape} is smaller than {h}x{w} pixels")


def _check(code: int, name: str) -> None:
    if code:
        raise ValueError(f"{name}: invalid arguments")


def unit_u8(lib, src: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = src / 255`` for a gray uint8 frame."""
    h, w = src.shape
    _covers(h, w, out)
    _check(lib.ef_normalize_u8(*_rows(src, np.uint8), w, h, *_ld(out, out=True)), "ef_normalize_u8")
    return out


def stretch_u16(lib, src: np.ndarray, low: float, high: float, out: np.ndarray) -> np.ndarray:
    """Percentile stretch of a gray uint16 frame (preprocess.ThermalStretch ``low``/``high``)."""
    lo, hi = percentiles_u16(lib, src, low, high)
    h, w = src.shape
    _covers(h, w, out)
    _check(lib.ef_stretch_u16(*_rows(src, np.uint16), w, h, lo, hi, *_ld(out, out=True)), "ef_stretch_u16")
    return out


def percentiles_u16(lib, src: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """``np.percentile(src, [low, high])`` of a uint16 (H, W) or (H, W, C) array, via a histogram."""
    src = src.reshape(src.shape[0], -1) if src.ndim == 3 and src.flags.c_contiguous else src
    h, w = src.shape
    scratch = np.empty(lib.ef_percentiles_scratch_bytes(), np.uint8)
    lo, hi = _D(), _D()
    ptr, stride = _rows(src, np.uint16)
    _check(lib.ef_percentiles_u16(ptr, stride, w, h, low, high, scratch.ctypes.data, ctypes.byref(lo),
                                  ctypes.byref(hi)), "ef_percentiles_u16")
    return lo.value, hi.value


def channels_identical(lib, src: np.ndarray) -> bool:
    """True when every pixel of an 8-bit (H, W, 3) frame has three equal channels."""
    h, w, _ = src.shape
    return bool(lib.ef_channels_identical_u8(*_rows(src, np.uint8, 3), w, h))


def ycbcr_u8(lib, src: np.ndarray, order: int, y: np.ndarray, cbcr: np.ndarray | None = None) -> None:
    """BT.601 Y (and planar CbCr (2, H, W) when given) of an 8-bit RGB/BGR frame, on the 0..1 scale."""
    h, w, _ = src.shape
    _covers(h, w, y)
    cb = cr = None
    ld_c = 0
    if cbcr is not None:
        _covers(h, w, cbcr[0], cbcr[1])
        (cb, ld_c), (cr, _) = _ld(cbcr[0], out=True), _ld(cbcr[1], out=True)
    _check(lib.ef_ycbcr_u8(*_rows(src, np.uint8, 3), order, w, h, *_ld(y, out=True), cb, cr, ld_c), "ef_ycbcr_u8")


def frame_stats(lib, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """The 6 frame statistics of student v2 (edgefusion.runtime.frame_stats) of two planes of one shape."""
    if ir.shape != vis.shape or ir.strides != vis.strides:
        raise ValueError("frame_stats needs two planes of one shape and stride")
    out = np.empty(N_STATS, np.float32)
    h, w = ir.shape
    ptr, ld = _ld(ir)
    _check(lib.ef_frame_stats(ptr, _ld(vis)[0], ld, w, h, out.ctypes.data), "ef_frame_stats")
    return out


def frame_stats_auto(ir: np.ndarray, vis_y: np.ndarray) -> np.ndarray:
    """(6,) frame statistics of two (H, W) planes in [0, 1]: :func:`frame_stats` when the C kernels are available
    (float32 planes with contiguous rows are read in place, others converted), else numpy's
    :func:`edgefusion.runtime.frame_stats.frame_stats`, which also reports bad shapes (the same values within float32
    rounding)."""
    ir, vis_y = np.asarray(ir), np.asarray(vis_y)
    lib = kernels()
    if lib is None or ir.ndim != 2 or ir.shape != vis_y.shape or ir.size == 0:
        return numpy_frame_stats(ir, vis_y)
    planes = [p if p.dtype == np.float32 and p.strides[1] == 4 and p.strides[0] >= 4 * p.shape[1] else np.ascontiguousarray(p, dtype=np.float32)
              for p in (ir, vis_y)]
    if planes[0].strides != planes[1].strides:  # the kernel reads both planes with one row stride
        planes = [np.ascontiguousarray(p) for p in planes]
    return frame_stats(lib, *planes)


def frame_stats_u8(lib, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """:func:`frame_stats` with the IR plane given as its uint8 (H, W) source (ir = src / 255, exact integer sums)."""
    h, w = ir.shape
    _covers(h, w, vis)
    out = np.empty(N_STATS, np.float32)
    ptr, ld = _ld(vis)
    _check(lib.ef_frame_stats_u8(*_rows(ir, np.uint8), ptr, ld, w, h, out.ctypes.data), "ef_frame_stats_u8")
    return out


def pad_edge(lib, plane: np.ndarray, w: int, h: int) -> np.ndarray:
    """Fill ``plane`` (PH, PW) outside its top-left ``h`` x ``w`` by edge replication, in place."""
    ph, pw = plane.shape
    ptr, ld = _ld(plane, out=True)
    _check(lib.ef_pad_edge(ptr, ld, w, h, pw, ph), "ef_pad_edge")
    return plane


def band_rows(h: int, bands: int, unit: int) -> list[tuple[int, int]]:
    """Rows ``y0 .. y1 - 1`` of up to ``bands`` non-empty bands covering ``h`` rows, each starting at a multiple of
    ``unit`` (as ``band_rows`` of the C runtime: whole units shared out evenly)."""
    units = -(-h // unit)
    edges = [min(units * b // bands * unit, h) for b in range(bands + 1)]
    return [(y0, y1) for y0, y1 in zip(edges, edges[1:]) if y0 < y1]


def prepare_u8(lib, ir: np.ndarray | None, vis: np.ndarray, ir_plane: np.ndarray, vis_plane: np.ndarray,
               with_stats: bool, order: int = RGB, workers: BandWorkers | None = None,
               partials: np.ndarray | None = None) -> np.ndarray | None:
    """The input pass in one walk over the rows (``ef_prepare_u8``): IR uint8 (H, W) / 255 into
    ``ir_plane`` (``ir`` None: ``ir_plane`` already holds the unpadded IR plane), the visible uint8
    frame (gray (H, W), or (H, W, 3) in ``order``) as luma into ``vis_plane``, both padded planes
    (PH, PW) of one stride filled by edge replication; returns the (6,) frame statistics of the
    unpadded planes when ``with_stats``, else None.

    ``workers`` with more than one thread: bands of rows at once (``ef_prepare_u8_rows``), the same
    planes and statistics bit for bit; their per-strip sums go to ``partials`` (uint8, at least
    ``ef_prepare_partials_bytes(h)`` bytes; allocated here when None)."""
    h, w = vis.shape[:2]
    ph, pw = ir_plane.shape
    if vis_plane.shape != ir_plane.shape or vis_plane.strides != ir_plane.strides or ph < h or pw < w:
        raise ValueError(f"planes {ir_plane.shape}, {vis_plane.shape} for a {h}x{w} frame")
    ir_ptr, ir_stride = (None, 0) if ir is None else _rows(ir, np.uint8)
    if ir is not None:
        _covers(h, w, ir)
    channels = 3 if vis.ndim == 3 else 1
    vis_ptr, vis_stride = _rows(vis, np.uint8, channels)
    fmt = order if channels == 3 else GRAY
    stats = np.empty(N_STATS, np.float32) if with_stats else None
    stats_ptr = None if stats is None else stats.ctypes.data
    (ptr_i, ld), ptr_v = _ld(ir_plane, out=True), _ld(vis_plane, out=True)[0]
    bands = band_rows(h, workers.workers, STRIP) if workers is not None else [(0, h)]
    if len(bands) == 1:
        _check(lib.ef_prepare_u8(ir_ptr, ir_stride, vis_ptr, vis_stride, fmt, w, h, pw, ph, ptr_i, ptr_v, ld, stats_ptr),
               "ef_prepare_u8")
        return stats
    sums = None
    if with_stats:
        size = lib.ef_prepare_partials_bytes(h)
        if partials is None:
            partials = np.empty(size, np.uint8)
        if partials.dtype != np.uint8 or not partials.flags.c_contiguous or partials.size < size:
            raise ValueError(f"partials of {partials.size} bytes for a {h}-row frame ({size} needed)")
        sums = partials.ctypes.data
    codes = workers.map(lambda y0, y1: lib.ef_prepare_u8_rows(ir_ptr, ir_stride, vis_ptr, vis_stride, fmt, w, h, pw, y0, y1, 0,
                                                              ptr_i, ptr_v, ld, sums), bands)
    _check(max(codes, key=abs), "ef_prepare_u8_rows")
    if with_stats:  # each later band's first strip: its vertical differences read the row above, written by another band
        codes = workers.map(lambda y0: lib.ef_prepare_u8_strip_stats(ir_ptr, ir_stride, w, h, y0, ptr_i, ptr_v, ld, sums),
                            [(y0,) for y0, _ in bands[1:]])
        _check(max(codes, key=abs), "ef_prepare_u8_strip_stats")
    _check(lib.ef_prepare_u8_finish(int(ir is not None), w, h, pw, ph, ptr_i, ptr_v, ld, sums, stats_ptr), "ef_prepare_u8_finish")
    return stats


def chroma(src: np.ndarray | None = None, order: int = RGB, cbcr: np.ndarray | None = None) -> Chroma | None:
    """Chroma for the restore kernels: the 8-bit color source, or planar float CbCr (2, H, W), or None."""
    if src is not None:
        ptr, stride = _rows(src, np.uint8, 3)
        color = Chroma(ptr, stride, order, None, None, 0)
    elif cbcr is not None:
        (cb, ld), (cr, _) = _ld(cbcr[0]), _ld(cbcr[1])
        color = Chroma(None, 0, 0, cb, cr, ld)
    else:
        return None
    color.keep = (src, cbcr)  # the struct holds raw pointers: keep the arrays alive with it
    return color


def _chroma_ref(color: Chroma | None, h: int, w: int):
    """ctypes reference to ``color`` (or None) after checking that its arrays cover h x w pixels."""
    if color is None:
        return None
    src, cbcr = color.keep
    _covers(h, w, *([src] if src is not None else [cbcr[0], cbcr[1]]))
    return ctypes.byref(color)


def _out_format(out: np.ndarray, order: int) -> int:
    return GRAY if out.ndim == 2 else order


def restore_u8(lib, y: np.ndarray, color: Chroma | None, out: np.ndarray, order: int = RGB) -> np.ndarray:
    """uint8 gray (H, W) or RGB/BGR (H, W, 3) ``out`` from the fused luma ``y`` and ``color``."""
    h, w = out.shape[:2]
    _covers(h, w, y)
    ref = _chroma_ref(color, h, w)
    _check(lib.ef_restore_u8(*_ld(y), w, h, ref, *_rows(out, np.uint8, 3, out=True), _out_format(out, order)),
           "ef_restore_u8")
    return out


class Composer(BandWorkers):
    """C composition for padded planes of one shape (PH, PW), multiples of 4.

    ``workers`` > 1 composes that many bands of rows on threads (ctypes
    releases the GIL during the calls), each with its own scratch. One
    Composer must not be called from two threads at once.
    """

    def __init__(self, lib, height: int, width: int, workers: int = 1) -> None:
        self.lib = lib
        self.shape = (height, width)
        self.workers = max(1, min(workers, height // 4))
        self._scratch = [np.empty(lib.ef_compose_scratch_bytes(width, height), np.uint8) for _ in range(self.workers)]
        super().__init__(self.workers)

    def __call__(self, ir: np.ndarray, vis: np.ndarray, maps: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Fused luma into ``out`` (h, w) <= (PH, PW) from padded ``ir``, ``vis`` and maps (4, PH/4, PW/4)."""
        ptr_i, ld, ptr_v, pw, ph, maps = self._inputs(ir, vis, maps)
        h, w = out.shape
        ptr_o, ld_o = _ld(out, out=True)
        self._bands(h, lambda y0, y1, scratch: self.lib.ef_compose_f32_rows(
            ptr_i, ptr_v, ld, pw, ph, maps.ctypes.data, w, h, y0, y1, ptr_o, ld_o, scratch), "ef_compose_f32_rows")
        return out

    def to_u8(self, ir: np.ndarray, vis: np.ndarray, maps: np.ndarray, color: Chroma | None, out: np.ndarray,
              order: int = RGB) -> np.ndarray:
        """Composition, color restore and uint8 conversion in one pass into ``out`` (h, w[, 3])."""
        ptr_i, ld, ptr_v, pw, ph, maps = self._inputs(ir, vis, maps)
        h, w = out.shape[:2]
        ref = _chroma_ref(color, h, w)
        ptr_o, stride = _rows(out, np.uint8, 3, out=True)
        fmt = _out_format(out, order)
        self._bands(h, lambda y0, y1, scratch: self.lib.ef_compose_u8_rows(
            ptr_i, ptr_v, ld, pw, ph, maps.ctypes.data, w, h, y0, y1, ref, ptr_o, stride, fmt, scratch),
            "ef_compose_u8_rows")
        return out

    def _bands(self, h: int, run, name: str) -> None:
        """``run(y0, y1, scratch)`` over bands of rows (starts at multiples of 4), on the threads when there are any."""
        bands = [(y0, y1, scratch.ctypes.data) for (y0, y1), scratch in zip(band_rows(h, self.workers, 4), self._scratch)]
        _check(max(self.map(run, bands), key=abs), name)

    def _inputs(self, ir, vis, maps):
        if ir.shape != self.shape or vis.shape != self.shape or ir.strides != vis.strides:
            raise ValueError(f"composer for {self.shape} got planes {ir.shape}, {vis.shape}")
        ph, pw = self.shape
        maps = np.ascontiguousarray(maps, dtype=np.float32)
        if maps.shape != (4, ph // 4, pw // 4):
            raise ValueError(f"maps of shape {maps.shape} for planes {self.shape}")
        ptr_i, ld = _ld(ir)
        return ptr_i, ld, _ld(vis)[0], pw, ph, maps
