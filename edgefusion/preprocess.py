"""The one preprocessing definition shared by training, export, calibration and runtime.

Conventions
-----------
* Pixel values are float32 in [0, 1]. 8-bit inputs are divided by 255.
* 16-bit inputs (radiometric thermal cameras store 14-bit counts in 16-bit
  files) are mapped by a robust percentile stretch: the ``low``-th and
  ``high``-th percentiles (default 0.5 and 99.5) go to 0 and 1, values outside
  are clipped. See :class:`ThermalStretch`.
* The model sees two single-channel planes: the IR intensity and the visible
  luma Y (BT.601, :mod:`edgefusion.io.color`). Model tensors are NCHW float32,
  inputs named ``ir`` and ``vis``, output ``fused``, all in [0, 1].
* Color comes back from the visible image's CbCr (:func:`restore_color`).
* Frames are padded to a multiple of the model's stride by edge replication
  and cropped back after the model (:func:`pad_to_multiple`).

This module needs numpy only, so the device runtime can import it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgefusion.errors import UserError
from edgefusion.io.color import rgb_to_ycbcr, ycbcr_to_rgb


@dataclass(frozen=True)
class ThermalStretch:
    """Percentile stretch for 16-bit frames: percentiles ``low``..``high`` map to 0..1."""

    low: float = 0.5
    high: float = 99.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.low < self.high <= 100.0:
            raise UserError(f"thermal stretch percentiles must satisfy 0 <= low < high <= 100, got {self.low}, {self.high}")


DEFAULT_STRETCH = ThermalStretch()


def to_unit_float(image: np.ndarray, stretch: ThermalStretch = DEFAULT_STRETCH) -> np.ndarray:
    """Convert uint8, uint16 or float [0, 1] pixels to float32 in [0, 1].

    uint16 data is percentile-stretched per frame (``stretch``); a constant
    16-bit frame maps to 0.
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255.0)
    if image.dtype == np.uint16:
        lo, hi = np.percentile(image, [stretch.low, stretch.high])
        if hi <= lo:
            return np.zeros(image.shape, dtype=np.float32)
        scaled = (image.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo)
        return np.clip(scaled, 0.0, 1.0, out=scaled)
    if image.dtype in (np.float32, np.float64):
        if image.size and (not np.isfinite(image).all() or image.min() < 0.0 or image.max() > 1.0):
            raise UserError("float images must hold finite values in [0, 1]")
        return image.astype(np.float32, copy=False)
    raise UserError(f"unsupported pixel type {image.dtype}; expected uint8, uint16 or float in [0, 1]")


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 plane: gray stays, identical-channel RGB takes one channel, RGB takes BT.601 luma."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return rgb_to_ycbcr(image)[0]
    raise _shape_error(image)


def _shape_error(image: np.ndarray) -> UserError:
    return UserError(f"expected a gray (H, W) or RGB (H, W, 3) image, got shape {image.shape}")


def _check_frame(image: np.ndarray) -> None:
    """UserError unless ``image`` is a non-empty gray (H, W[, 1]) or RGB (H, W, 3) frame."""
    if not (image.ndim == 2 or image.ndim == 3 and image.shape[2] in (1, 3)):
        raise _shape_error(image)
    if not image.size:
        raise UserError(f"empty image of shape {image.shape}")


@dataclass
class PreparedPair:
    """Model-ready planes of one IR/visible pair (float32, [0, 1], shape (H, W))."""

    ir: np.ndarray
    vis_y: np.ndarray
    vis_cbcr: np.ndarray | None  # (2, H, W) planar Cb, Cr with offset 0.5; None for gray visible


def check_same_size(ir: np.ndarray, vis: np.ndarray) -> None:
    """UserError when an IR and a visible image differ in height or width."""
    if ir.shape[:2] != vis.shape[:2]:
        raise UserError(f"IR and visible sizes differ: IR {ir.shape[1]}x{ir.shape[0]}, visible {vis.shape[1]}x{vis.shape[0]} (WxH)")


def prepare_pair(ir: np.ndarray, vis: np.ndarray, stretch: ThermalStretch = DEFAULT_STRETCH) -> PreparedPair:
    """Normalize an IR frame and a visible frame of equal size into model planes."""
    ir = np.asarray(ir)
    vis = np.asarray(vis)
    _check_frame(ir)
    _check_frame(vis)
    check_same_size(ir, vis)
    ir_plane = to_gray(to_unit_float(ir, stretch))
    if vis.ndim == 3 and (vis.shape[2] == 1 or (vis.shape[2] == 3 and _channels_identical(vis))):
        vis = vis[..., 0]  # gray stored in a color file
    if vis.ndim == 3 and vis.shape[2] == 3:
        if vis.dtype == np.uint8:  # the /255 folds into the color matrix: one pass over the frame
            vis_y, vis_cbcr = rgb_to_ycbcr(vis, scale=1.0 / 255.0)
        else:
            vis_y, vis_cbcr = rgb_to_ycbcr(to_unit_float(vis, stretch))
    else:
        vis_y, vis_cbcr = to_gray(to_unit_float(vis, stretch)), None
    return PreparedPair(ir=np.ascontiguousarray(ir_plane), vis_y=np.ascontiguousarray(vis_y), vis_cbcr=vis_cbcr)


def _channels_identical(rgb: np.ndarray) -> bool:
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]))


def restore_color(fused_y: np.ndarray, vis_cbcr: np.ndarray | None) -> np.ndarray:
    """Fused image in [0, 1]: gray (H, W) when the visible was gray, else RGB (H, W, 3)."""
    fused_y = np.clip(np.asarray(fused_y, dtype=np.float32), 0.0, 1.0)
    if vis_cbcr is None:
        return fused_y
    return np.clip(ycbcr_to_rgb(fused_y, vis_cbcr), 0.0, 1.0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Round a [0, 1] float image to uint8 (no stretching)."""
    return np.clip(np.rint(np.asarray(image, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def pad_to_multiple(plane: np.ndarray, multiple: int | tuple[int, int]) -> np.ndarray:
    """Pad (..., H, W) at the bottom/right by edge replication to multiples of ``multiple``.

    ``multiple`` is one number for both axes or ``(multiple_h, multiple_w)``.
    """
    h, w = plane.shape[-2:]
    mh, mw = (multiple, multiple) if isinstance(multiple, int) else multiple
    pad_h = (-h) % mh
    pad_w = (-w) % mw
    if not pad_h and not pad_w:
        return plane
    widths = [(0, 0)] * (plane.ndim - 2) + [(0, pad_h), (0, pad_w)]
    return np.pad(plane, widths, mode="edge")


def model_inputs(pair: PreparedPair, multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(ir, vis) NCHW float32 tensors of shape (1, 1, H', W'), padded to ``multiple``."""
    ir = pad_to_multiple(pair.ir, multiple)[None, None]
    vis = pad_to_multiple(pair.vis_y, multiple)[None, None]
    return np.ascontiguousarray(ir, dtype=np.float32), np.ascontiguousarray(vis, dtype=np.float32)
