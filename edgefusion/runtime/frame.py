"""The frame path of the runtime: raw pixels -> model planes -> fused uint8 pixels.

Every fuser maps the model planes of :mod:`edgefusion.preprocess` (IR and
visible luma, float32 (H, W) in [0, 1]) to a fused luma plane of the same
shape (:class:`PlaneFuser`); :func:`fuse_arrays` adds the shared pre- and
post-processing. Both steps run in the C kernels of
:mod:`edgefusion.runtime.native` when they are available and the pixels are
8-bit (gray, RGB) or 16-bit gray, else in numpy (:mod:`edgefusion.preprocess`);
the two agree within one gray level. :class:`NativeFrame` is the one-pass path
for analyze-only bundles: normalize straight into the padded model planes,
run the network, then compose, restore color and round to uint8 in one pass.
"""

from __future__ import annotations

import time
from typing import Callable, Protocol

import numpy as np

from edgefusion import preprocess
from edgefusion.runtime import native


class PlaneFuser(Protocol):
    """Fuses IR and visible-luma planes, float32 (H, W) in [0, 1], into a fused luma plane."""

    name: str

    def fuse_planes(self, ir: np.ndarray, vis_y: np.ndarray) -> np.ndarray: ...


def fuse_arrays(
    fuser: PlaneFuser,
    ir: np.ndarray,
    vis: np.ndarray,
    stretch: preprocess.ThermalStretch = preprocess.DEFAULT_STRETCH,
) -> np.ndarray:
    """Fuse raw pixel arrays (uint8/uint16, gray or RGB); returns a uint8 image.

    The result is gray when the visible input is gray, else RGB with the
    visible image's chroma. A fuser with its own whole-frame path (a bundle's
    :class:`edgefusion.runtime.Fuser`: ``fuse(ir, vis, stretch)``, the one-pass C
    path of firmware and ``bench``) takes it; any other fuser gets
    :func:`fuse_planes_path`.
    """
    whole_frame = getattr(fuser, "fuse", None)
    if callable(whole_frame):
        return whole_frame(ir, vis, stretch)
    return fuse_planes_path(fuser, ir, vis, stretch)


def fuse_planes_path(
    fuser: PlaneFuser,
    ir: np.ndarray,
    vis: np.ndarray,
    stretch: preprocess.ThermalStretch = preprocess.DEFAULT_STRETCH,
) -> np.ndarray:
    """The shared pre- and post-processing around ``fuser.fuse_planes`` (see :func:`fuse_arrays`)."""
    pair = prepare_pair(ir, vis, stretch)
    fused_y = fuser.fuse_planes(pair.ir, pair.vis_y)
    return finish(fused_y, pair.vis_cbcr)


def _plain(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) view: a single-channel last axis is dropped."""
    return image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image


def native_frame(ir: np.ndarray, vis: np.ndarray):
    """The kernels and the (ir, vis) arrays when the C path handles this pair, else None.

    C handles IR uint8/uint16 gray and visible uint8 gray/RGB or uint16 gray, of equal non-empty size.
    """
    lib = native.kernels()
    if lib is None:
        return None
    ir, vis = _plain(np.asarray(ir)), _plain(np.asarray(vis))
    if ir.ndim != 2 or ir.dtype not in (np.uint8, np.uint16) or ir.shape != vis.shape[:2] or not ir.size:
        return None
    if not (vis.ndim == 2 and vis.dtype in (np.uint8, np.uint16) or vis.ndim == 3 and vis.shape[2] == 3 and vis.dtype == np.uint8):
        return None
    return lib, np.ascontiguousarray(ir), np.ascontiguousarray(vis)


def _normalize(lib, image: np.ndarray, stretch: preprocess.ThermalStretch, out: np.ndarray) -> None:
    """Gray uint8 / uint16 pixels into the float plane ``out`` (preprocess.to_unit_float)."""
    if image.dtype == np.uint8:
        native.unit_u8(lib, image, out)
    else:
        native.stretch_u16(lib, image, stretch.low, stretch.high, out)


def _gray_if_equal(lib, vis: np.ndarray) -> np.ndarray:
    """``vis``, or its one channel when it is a gray frame stored in color (three equal channels)."""
    if vis.ndim == 3 and native.channels_identical(lib, vis):
        return np.ascontiguousarray(vis[..., 0])
    return vis


def _planes(lib, ir, vis, stretch, ir_out, vis_out, cbcr_out=None) -> np.ndarray | None:
    """Write the model planes of a supported pair into ``ir_out``, ``vis_out`` (and CbCr into
    ``cbcr_out`` when given); returns the 8-bit color source, or None for a gray visible frame."""
    _normalize(lib, ir, stretch, ir_out)
    vis = _gray_if_equal(lib, vis)
    if vis.ndim == 2:
        _normalize(lib, vis, stretch, vis_out)
        return None
    native.ycbcr_u8(lib, vis, native.RGB, vis_out, cbcr_out)
    return vis


def prepare_pair(ir: np.ndarray, vis: np.ndarray, stretch: preprocess.ThermalStretch = preprocess.DEFAULT_STRETCH
                 ) -> preprocess.PreparedPair:
    """:func:`edgefusion.preprocess.prepare_pair`, in C when :func:`native_frame` accepts the pair."""
    found = native_frame(ir, vis)
    if found is None:
        return preprocess.prepare_pair(ir, vis, stretch)
    lib, ir, vis = found
    h, w = ir.shape
    ir_plane, vis_y = np.empty((h, w), np.float32), np.empty((h, w), np.float32)
    cbcr = np.empty((2, h, w), np.float32) if vis.ndim == 3 else None
    color = _planes(lib, ir, vis, stretch, ir_plane, vis_y, cbcr)
    return preprocess.PreparedPair(ir=ir_plane, vis_y=vis_y, vis_cbcr=cbcr if color is not None else None)


def finish(fused_y: np.ndarray, vis_cbcr: np.ndarray | None) -> np.ndarray:
    """uint8 gray or RGB: ``preprocess.to_uint8(preprocess.restore_color(fused_y, vis_cbcr))``."""
    lib = native.kernels()
    fused_y = np.asarray(fused_y)
    if lib is None or fused_y.dtype != np.float32 or fused_y.ndim != 2 or not fused_y.size:
        return preprocess.to_uint8(preprocess.restore_color(fused_y, vis_cbcr))
    fused_y = np.ascontiguousarray(fused_y)
    h, w = fused_y.shape
    if vis_cbcr is None:
        return native.restore_u8(lib, fused_y, None, np.empty((h, w), np.uint8))
    cbcr = np.ascontiguousarray(vis_cbcr, dtype=np.float32)
    if cbcr.shape != (2, h, w):  # numpy reports the mismatch
        return preprocess.to_uint8(preprocess.restore_color(fused_y, vis_cbcr))
    return native.restore_u8(lib, fused_y, native.chroma(cbcr=cbcr), np.empty((h, w, 3), np.uint8))


#: ``analyze(ir, vis, stats)``: NCHW (1, 1, PH, PW) padded planes and the frame's (1, 6)
#: statistics (None unless asked for) -> maps (1, 4, PH/4, PW/4).
Analyze = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], np.ndarray]


class NativeFrame:
    """One-pass C frame path of an analyze-only bundle with model stride ``stride`` (a multiple of 4).

    Buffers (padded planes, composition scratch) are allocated once per frame
    size; the input pass of 8-bit frames and the composition run in bands on
    ``workers`` threads (the same bytes for any number). ``compose_ms``
    is the last call's composition + color + uint8 time. Not thread-safe: the
    owning Fuser serializes calls.
    """

    def __init__(self, lib, stride: int, workers: int = 1) -> None:
        self.lib = lib
        self.stride = stride
        self.workers = workers
        self.compose_ms = 0.0
        self._size: tuple[int, int] | None = None
        self._color: np.ndarray | None = None

    def _resize(self, h: int, w: int) -> None:
        if self._size == (h, w):
            return
        ph, pw = -(-h // self.stride) * self.stride, -(-w // self.stride) * self.stride
        self.inputs = np.empty((2, 1, 1, ph, pw), np.float32)
        self.composer = native.Composer(self.lib, ph, pw, workers=self.workers)
        self._partials = np.empty(self.lib.ef_prepare_partials_bytes(h), np.uint8)  # the banded input pass's sums
        self._size = (h, w)

    def fuse(self, ir: np.ndarray, vis: np.ndarray, stretch: preprocess.ThermalStretch, analyze: Analyze,
             with_stats: bool = False) -> np.ndarray:
        """uint8 fused frame (gray, or RGB like ``vis``) of a pair accepted by :func:`native_frame`.

        ``with_stats``: also compute the student-v2 frame statistics of the unpadded planes
        (C twin of ``edgefusion.runtime.frame_stats``) and pass them to ``analyze``.
        """
        inputs, stats = self.prepare(ir, vis, stretch, with_stats)
        return self.finish(analyze(inputs[0], inputs[1], stats))

    def prepare(self, ir: np.ndarray, vis: np.ndarray, stretch: preprocess.ThermalStretch,
                with_stats: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """First half of :meth:`fuse`: the padded planes (2, 1, 1, PH, PW) (views of this object's
        buffers, valid until its next ``prepare``) and the (1, 6) statistics or None.

        ``vis`` is read again by :meth:`finish` (its chroma): keep it unchanged until then.
        """
        h, w = ir.shape
        self._resize(h, w)
        ir_p, vis_p = self.inputs[0, 0, 0], self.inputs[1, 0, 0]
        if vis.dtype == np.uint8:  # one pass over the rows (16-bit IR: stretched into its plane first)
            if ir.dtype != np.uint8:
                _normalize(self.lib, ir, stretch, ir_p[:h, :w])
            source = _gray_if_equal(self.lib, vis)
            self._color = source if source.ndim == 3 else None
            stats = native.prepare_u8(self.lib, ir if ir.dtype == np.uint8 else None, source, ir_p, vis_p, with_stats,
                                      workers=self.composer, partials=self._partials)
            return self.inputs, None if stats is None else stats[None]
        self._color = _planes(self.lib, ir, vis, stretch, ir_p[:h, :w], vis_p[:h, :w])
        stats = self._stats(ir, ir_p[:h, :w], vis_p[:h, :w]) if with_stats else None
        native.pad_edge(self.lib, ir_p, w, h)
        native.pad_edge(self.lib, vis_p, w, h)
        return self.inputs, stats

    def finish(self, maps: np.ndarray) -> np.ndarray:
        """Second half of :meth:`fuse`: composition, color and uint8 of the prepared frame, given the
        network's maps (1, 4, PH/4, PW/4); a new array."""
        h, w = self._size
        color = self._color
        out = np.empty((h, w) if color is None else (h, w, 3), np.uint8)
        chroma = native.chroma(src=color) if color is not None else None
        start = time.perf_counter()
        self.composer.to_u8(self.inputs[0, 0, 0], self.inputs[1, 0, 0], maps[0], chroma, out)
        self.compose_ms = (time.perf_counter() - start) * 1e3
        return out

    def _stats(self, ir: np.ndarray, ir_plane: np.ndarray, vis_y: np.ndarray) -> np.ndarray:
        """Frame statistics (1, 6) of the unpadded planes; a uint8 IR frame is read as its 8-bit source (exact sums)."""
        if ir.dtype == np.uint8:
            return native.frame_stats_u8(self.lib, ir, vis_y)[None]
        return native.frame_stats(self.lib, ir_plane, vis_y)[None]
