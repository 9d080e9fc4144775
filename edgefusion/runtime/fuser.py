"""Fuse images with a deployment bundle: numpy + one backend, no torch.

:class:`Fuser` opens a bundle (folder or ``.zip``, verified by
:func:`edgefusion.runtime.bundle.load_bundle`), loads its model on the
manifest's backend and implements :class:`edgefusion.runtime.frame.PlaneFuser`:

* :meth:`Fuser.fuse` takes raw pixels (uint8/uint16 gray IR, gray or RGB
  visible, any size) and returns a uint8 image through the runtime's frame
  path (:mod:`edgefusion.runtime.frame`: the C kernels of
  :mod:`edgefusion.runtime.native`, or the numpy preprocessing of
  :mod:`edgefusion.preprocess`) with the bundle's thermal stretch.
* :meth:`Fuser.fuse_planes` maps float32 (H, W) planes in [0, 1] to the fused
  luma. Frames are padded to the model's ``stride`` (edge replication) and
  cropped back. Bundles with a ``fixed_shape`` (and frames larger than
  ``tile``) are run as overlapping tiles blended without seams
  (:mod:`edgefusion.runtime.tiling`).
* Bundles with ``"compose": "runtime"`` hold only the student's low-resolution
  ``analyze`` network (output ``maps``, N x 4 x H/4 x W/4); the
  full-resolution composition runs here, in C when the kernels are available
  (untiled frames: normalization into the padded model planes, then
  composition, color restore and uint8 in one pass), else in numpy
  (:mod:`edgefusion.runtime.compose`).
* v2 bundles (manifest ``inputs`` ``ir``, ``vis``, ``stats``) take the frame
  statistics (:func:`edgefusion.runtime.frame_stats.frame_stats`, or its C
  twin), computed here ONCE per frame from the unpadded planes and given to
  every model call, so every tile of a frame sees the whole frame's context
  and a tiled frame matches the frame fused whole. v1 students compute their
  context inside the network from what they see, so their tiles differ from
  the whole frame.

Model outputs, integer-I/O scratch, tiling accumulators, padded planes of the
one-pass C path and composition temporaries are allocated once per frame shape
and reused, so a video loop at a fixed size does not reallocate them (the
numpy preprocessing still allocates its per-frame planes); every call returns
a new array. :meth:`Fuser.fuse_stream` pipelines a sequence of frames (the C
pre- and post-processing on a second thread, beside the network). ``threads``
sets the backend's threads and the frame path's (input pass and composition in
bands of rows); the default leaves the backend its own choice and gives the
frame path every core this process may use. A Fuser serializes its calls with a
lock, so sharing one between threads is safe but not parallel; open one Fuser
per thread for parallel throughput, each with ``threads`` (e.g. 1) so that
they do not all take every core.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from edgefusion import preprocess
from edgefusion.errors import UserError
from edgefusion.runtime import native
from edgefusion.runtime.backends import Backend, open_backend
from edgefusion.runtime.backends.base import log
from edgefusion.runtime.bundle import Bundle, load_bundle
from edgefusion.runtime.compose import SCALE, Composer
from edgefusion.runtime.frame import NativeFrame, fuse_planes_path, native_frame
from edgefusion.runtime.tiling import Tiler

#: Default overlap between tiles, in pixels (a multiple of every stride in use).
DEFAULT_OVERLAP = 64
#: Sanity limits on manifest values (a bad manifest must not make the runtime allocate absurd buffers).
MAX_STRIDE = 256
MAX_SIDE = 16384


class Fuser:
    """A loaded bundle that fuses IR/visible frames (see module docstring)."""

    def __init__(self, bundle: Bundle, backend: Backend, tile: tuple[int, int] | None = None, overlap: int = DEFAULT_OVERLAP,
                 threads: int | None = None) -> None:
        manifest = bundle.manifest
        self.threads = threads
        self.bundle = bundle
        self.backend = backend
        self.manifest = manifest
        self.stride = int(manifest["stride"])
        self.fixed_shape = bundle.fixed_shape
        if self.stride > MAX_STRIDE or (self.fixed_shape and max(self.fixed_shape) > MAX_SIDE):
            raise UserError(f"bundle {bundle.source}: stride {self.stride} or fixed_shape {self.fixed_shape} out of range "
                            f"(stride <= {MAX_STRIDE}, sides <= {MAX_SIDE})")
        self.compose_in_runtime = _compose_in_runtime(manifest, bundle.source)
        self.takes_stats = backend.io.takes_stats
        if bundle.inputs != backend.io.inputs:
            raise UserError(f"bundle {bundle.source}: manifest inputs {list(bundle.inputs)} differ from the backend's {list(backend.io.inputs)}")
        if self.compose_in_runtime and self.stride % SCALE:
            raise UserError(f"bundle {bundle.source}: runtime composition needs a stride that is a multiple of {SCALE}")
        self.tile = self.fixed_shape or (tuple(tile) if tile else None)
        if self.tile and any(t % self.stride for t in self.tile):
            raise UserError(f"tile {self.tile[0]}x{self.tile[1]} is not a multiple of the model stride {self.stride}")
        if overlap % self.stride or overlap < 0:
            raise UserError(f"tile overlap {overlap} must be a non-negative multiple of the model stride {self.stride}")
        if self.tile:  # at most half a tile, so that tiles advance
            overlap = min(overlap, min(self.tile) // 2 // self.stride * self.stride)
        self.overlap = overlap
        self.stretch = _stretch(manifest, bundle.source)
        native.check_prebuilt()  # a refused EDGEFUSION_NATIVE_LIB is reported here, not as a frame's error
        self.name = f"{Path(bundle.source).name} ({manifest['backend']} {manifest['precision']} on {backend.provider})"
        #: Milliseconds spent in the last :meth:`fuse_planes` call by the backend and the numpy composition.
        self.timings = {"backend_ms": 0.0, "compose_ms": 0.0}
        self._lock = threading.Lock()
        self._buffers: dict[tuple, object] = {}

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        threads: int | None = None,
        device: str | None = None,
        tile: tuple[int, int] | None = None,
        overlap: int = DEFAULT_OVERLAP,
    ) -> Fuser:
        """Load and verify a bundle (folder or .zip) and its model; logs the provider/device in use."""
        return cls.from_bundle(load_bundle(path), threads=threads, device=device, tile=tile, overlap=overlap)

    @classmethod
    def from_bundle(
        cls,
        bundle: Bundle,
        threads: int | None = None,
        device: str | None = None,
        tile: tuple[int, int] | None = None,
        overlap: int = DEFAULT_OVERLAP,
    ) -> Fuser:
        """:meth:`open` for a bundle already loaded and verified by :func:`load_bundle` (not hashed again)."""
        m = bundle.manifest
        output = "maps" if _compose_in_runtime(m, bundle.source) else "fused"
        backend = open_backend(
            m["backend"],
            bundle.files,
            layout=m["layout"],
            io_dtype=m["io_dtype"],
            io_quantization=m.get("io_quantization"),
            output=output,
            inputs=bundle.inputs,
            stats_encoding=bundle.stats_encoding,
            threads=threads,
            device=device,
        )
        log.info("bundle %s: %s %s via %s", bundle.source, m["backend"], m["precision"], backend.provider)
        return cls(bundle, backend, tile=tile, overlap=overlap, threads=threads)

    @property
    def provider(self) -> str:
        return self.backend.provider

    def fuse(self, ir: np.ndarray, vis: np.ndarray, stretch: preprocess.ThermalStretch | None = None) -> np.ndarray:
        """Fuse raw pixel arrays (uint8/uint16 IR, gray or RGB visible); uint8 gray or RGB result (a new array).

        ``stretch`` defaults to the bundle's. Analyze-only bundles run untiled frames through the
        one-pass C frame path (:class:`edgefusion.runtime.frame.NativeFrame`) when the kernels are available.
        """
        stretch = stretch or self.stretch
        found = self._native(ir, vis)
        if found is None:
            return fuse_planes_path(self, ir, vis, stretch)
        lib, ir, vis = found
        with self._lock:
            frames = self._buffer(("frame",), lambda: NativeFrame(lib, self.stride, workers=self.frame_threads))
            out = frames.fuse(ir, vis, stretch, self._analyze_frame, with_stats=self.takes_stats)
            self.timings["compose_ms"] = frames.compose_ms
            return out

    def fuse_stream(self, pairs: Iterable[tuple[np.ndarray, np.ndarray]], stretch: preprocess.ThermalStretch | None = None,
                    pipeline: bool | None = None) -> Iterator[np.ndarray]:
        """:meth:`fuse` of every (ir, vis) pair, in order, pipelined for throughput (video).

        With ``pipeline`` (default: when ``threads`` leaves a CPU core to spare), for frames that
        take the one-pass C path a second thread prepares the next frame (normalization,
        statistics, padding) and composes the previous one while the network runs the current
        one, so a frame costs about the network's time. Results are equal to :meth:`fuse`'s; the
        pipeline holds up to two frames (their ``vis`` arrays are read until their result is
        yielded, so do not change them in place earlier).
        """
        stretch = stretch or self.stretch
        if not (self._spare_core() if pipeline is None else pipeline):
            for ir, vis in pairs:
                yield self.fuse(ir, vis, stretch)
            return
        frames = [None, None]  # two NativeFrames of this stream, used in turn
        with ThreadPoolExecutor(1, thread_name_prefix="edgefusion-stream") as helper:
            done = None  # future: the previous frame's result
            ahead = None  # (future of prepare, frame) of the next frame, prepared on the helper
            items = iter(pairs)
            while True:
                current = ahead or self._prepare_ahead(helper, frames, items, stretch)
                if current is None:
                    break
                if current[0] is None:  # not a one-pass frame: fuse it in order, on this thread
                    if done is not None:
                        yield done.result()
                        done = None
                    yield self.fuse(*current[1], stretch)
                    ahead = None
                    continue
                ahead = self._prepare_ahead(helper, frames, items, stretch)
                prepared, frame = current
                inputs, stats = prepared.result()
                with self._lock:
                    maps = self._analyze_frame(inputs[0], inputs[1], stats)
                finished = helper.submit(frame.finish, maps)
                if done is not None:
                    yield done.result()
                done = finished
            if done is not None:
                yield done.result()

    def _prepare_ahead(self, helper, frames: list, items: Iterator, stretch):
        """The next pair, submitted for preparation on ``helper`` in the free NativeFrame:
        (future, frame); (None, pair) for a frame outside the one-pass path; None at the end."""
        pair = next(items, None)
        if pair is None:
            return None
        found = self._native(*pair)
        if found is None:
            return None, pair
        lib, ir, vis = found
        frames.reverse()  # the other frame than the one in the network (whose finish runs before this prepare)
        if frames[0] is None:
            frames[0] = NativeFrame(lib, self.stride, workers=self.frame_threads)
        return helper.submit(frames[0].prepare, ir, vis, stretch, self.takes_stats), frames[0]

    @property
    def frame_threads(self) -> int:
        """Threads of the frame path around the network (input pass, composition) of analyze-only bundles:
        ``threads``, else every core this process may use (as the C runtime's default); 1 for other bundles."""
        return (self.threads or _usable_cores()) if self.compose_in_runtime else 1

    def _spare_core(self) -> bool:
        """Whether the backend's threads leave a CPU core of this process free (``threads`` below the count)."""
        return self.threads is not None and self.threads < _usable_cores()

    def _native(self, ir: np.ndarray, vis: np.ndarray):
        """:func:`native_frame` for pairs the one-pass path runs (analyze-only bundle, untiled), else None."""
        found = native_frame(ir, vis) if self.compose_in_runtime else None
        return found if found is not None and self._runs_whole(found[1].shape) else None

    def _runs_whole(self, shape: tuple[int, int]) -> bool:
        """Whether a frame of ``shape`` runs as one model call (no fixed shape, padded frame within the tile)."""
        if self.fixed_shape:
            return False
        return not self.tile or all(-(-n // self.stride) * self.stride <= t for n, t in zip(shape, self.tile))

    def fuse_planes(self, ir: np.ndarray, vis_y: np.ndarray) -> np.ndarray:
        """Fused luma (H, W) float32 in [0, 1] from IR and visible-luma planes of the same shape."""
        ir = np.asarray(ir, dtype=np.float32)
        vis_y = np.asarray(vis_y, dtype=np.float32)
        if ir.ndim != 2 or ir.shape != vis_y.shape:
            raise UserError(f"fuse_planes needs two (H, W) planes of one shape, got {ir.shape} and {vis_y.shape}")
        h, w = ir.shape
        with self._lock:
            self.timings = {"backend_ms": 0.0, "compose_ms": 0.0}
            stats = native.frame_stats_auto(ir, vis_y)[None] if self.takes_stats else None  # the whole, unpadded frame
            ir_p = preprocess.pad_to_multiple(ir, self.stride)
            vis_p = preprocess.pad_to_multiple(vis_y, self.stride)
            if self.fixed_shape and (ir_p.shape[0] < self.tile[0] or ir_p.shape[1] < self.tile[1]):
                multiple = tuple(t if n < t else 1 for n, t in zip(ir_p.shape, self.tile))  # pad up to the model's shape
                ir_p = preprocess.pad_to_multiple(ir_p, multiple)
                vis_p = preprocess.pad_to_multiple(vis_p, multiple)
            if self.tile and (ir_p.shape[0] > self.tile[0] or ir_p.shape[1] > self.tile[1]):
                fused = self._run_tiled(ir_p, vis_p, stats)
            else:
                fused = self._run_whole(ir_p, vis_p, stats)
            return fused[:h, :w].copy()

    def _buffer(self, key: tuple, factory):
        if key not in self._buffers:
            self._buffers[key] = factory()
        return self._buffers[key]

    def _composer(self, h: int, w: int):
        """The composition of (h, w) planes: one at a time, replaced (its threads stopped) when the size changes."""
        composer = self._buffers.get(("composer",))
        if composer is None or composer.shape != (h, w):
            if composer is not None:
                composer.close()
            composer = self._buffers[("composer",)] = _new_composer(h, w, self.frame_threads)
        return composer

    def _run_whole(self, ir: np.ndarray, vis: np.ndarray, stats: np.ndarray | None) -> np.ndarray:
        shape = ir.shape
        out = self._buffer(("out",) + shape, lambda: np.empty((1, 1) + shape, np.float32))
        self._run_model(ir[None, None], vis[None, None], out, stats)
        return out[0, 0]

    def _run_tiled(self, ir: np.ndarray, vis: np.ndarray, stats: np.ndarray | None) -> np.ndarray:
        th, tw = self.tile
        shape = ir.shape
        tiler = self._buffer(("tiler",) + shape, lambda: Tiler(*shape, tile=(th, tw), overlap=self.overlap, align=self.stride))
        out = self._buffer(("tiled",) + shape, lambda: np.empty(shape, np.float32))
        return tiler(lambda t_ir, t_vis, t_out: self._run_model(t_ir, t_vis, t_out, stats), ir, vis, out)  # one frame's stats for every tile

    def _run_model(self, ir: np.ndarray, vis: np.ndarray, out: np.ndarray, stats: np.ndarray | None = None) -> np.ndarray:
        """One model call on NCHW (1, 1, H, W) inputs (+ the frame's (1, 6) stats for v2 bundles),
        composing in numpy for analyze-only bundles."""
        ir = np.ascontiguousarray(ir)
        vis = np.ascontiguousarray(vis)
        start = time.perf_counter()
        if not self.compose_in_runtime:
            self.backend.run(ir, vis, out=out, stats=stats)
            self.timings["backend_ms"] += (time.perf_counter() - start) * 1e3
            return out
        h, w = ir.shape[2:]
        maps = self._analyze(ir, vis, stats)
        middle = time.perf_counter()
        composer = self._composer(h, w)
        composer(ir[0, 0], vis[0, 0], maps[0], out[0, 0])
        self.timings["compose_ms"] += (time.perf_counter() - middle) * 1e3
        return out

    def _analyze(self, ir: np.ndarray, vis: np.ndarray, stats: np.ndarray | None = None) -> np.ndarray:
        """The analyze-only model on NCHW (1, 1, H, W) planes (+ the frame's (1, 6) stats for v2 bundles):
        maps (1, 4, H/4, W/4), shape checked."""
        h, w = ir.shape[2:]
        start = time.perf_counter()
        maps = self.backend.run_raw(ir, vis, stats)
        self.timings["backend_ms"] += (time.perf_counter() - start) * 1e3
        if maps.shape != (1, 4, h // SCALE, w // SCALE):
            raise UserError(f"analyze model returned maps of shape {maps.shape} for a {h}x{w} input; expected (1, 4, {h // SCALE}, {w // SCALE})")
        return maps

    def _analyze_frame(self, ir: np.ndarray, vis: np.ndarray, stats: np.ndarray | None = None) -> np.ndarray:
        """:meth:`_analyze` of one whole frame, with fresh :attr:`timings`."""
        self.timings = {"backend_ms": 0.0, "compose_ms": 0.0}
        return self._analyze(ir, vis, stats)


def _usable_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _new_composer(h: int, w: int, threads: int):
    """The C composition when the kernels are available, else numpy's; bands on ``threads`` threads when > 1."""
    lib = native.kernels()
    return native.Composer(lib, h, w, workers=threads) if lib is not None else Composer(h, w, workers=threads)


def _compose_in_runtime(manifest: dict, source) -> bool:
    """The manifest's optional ``compose``: ``model`` (default) or ``runtime`` (analyze-only model)."""
    value = manifest.get("compose", "model")
    if value not in ("model", "runtime"):
        raise UserError(f"bundle {source}: compose must be 'model' or 'runtime', got {value!r}")
    return value == "runtime"


def _stretch(manifest: dict, source) -> preprocess.ThermalStretch:
    """The manifest's ``preprocessing.thermal_stretch`` [low, high] percentiles (default 0.5, 99.5)."""
    table = manifest.get("preprocessing") or {}
    value = table.get("thermal_stretch", [0.5, 99.5]) if isinstance(table, dict) else None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise UserError(f"bundle {source}: preprocessing.thermal_stretch must be [low, high] percentiles, got {value!r}")
    return preprocess.ThermalStretch(float(value[0]), float(value[1]))
