"""BT.601 YCbCr conversion, the one color convention of edgefusion.

Convention (identical to OpenCV's ``COLOR_RGB2YCrCb`` / ``COLOR_YCrCb2RGB`` for
8-bit images, expressed on floats):

* ``Y  = 0.299 R + 0.587 G + 0.114 B``
* ``Cr = (R - Y) * 0.713 + delta``
* ``Cb = (B - Y) * 0.564 + delta``

with ``delta = 128`` on the 0..255 scale and ``0.5`` on the 0..1 scale. The
inverse uses OpenCV's coefficients 1.403, -0.714, -0.344, 1.773, so a fused Y
equal to the visible Y gives back the visible image to rounding.

Fusion works on Y only; color comes back from the visible image's chroma.
Arrays are channel-last (H, W, 3) in RGB order.
"""

from __future__ import annotations

import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def rgb_to_luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of an (H, W, 3) RGB array, float64, same scale as the input."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}")
    return rgb.astype(np.float64) @ _LUMA


def luma_u8(image: np.ndarray) -> np.ndarray:
    """Rounded 0..255 luma as float64, as the common evaluator's OpenCV RGB2GRAY.

    Gray (H, W) input is returned as float64 unchanged; (H, W, 3) RGB is reduced
    with BT.601 weights and rounded half to even (as ``np.round``). The input
    must be on the 0..255 scale.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        return image.astype(np.float64)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0].astype(np.float64)
    return np.clip(np.round(rgb_to_luma(image)), 0, 255)


def rgb_to_ycbcr(rgb: np.ndarray, delta: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Split float RGB (H, W, 3) into Y (H, W) and CbCr (H, W, 2), float32.

    ``delta`` is the chroma offset: 0.5 for 0..1 inputs, 128 for 0..255 inputs.
    CbCr is stored in (Cb, Cr) order.
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr = (r - y) * 0.713 + delta
    cb = (b - y) * 0.564 + delta
    return y.astype(np.float32), np.stack([cb, cr], axis=-1).astype(np.float32)


def ycbcr_to_rgb(y: np.ndarray, cbcr: np.ndarray, delta: float = 0.5) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr`: float32 (H, W, 3), not clipped."""
    y = np.asarray(y, dtype=np.float32)
    cb = cbcr[..., 0] - delta
    cr = cbcr[..., 1] - delta
    r = y + 1.403 * cr
    g = y - 0.714 * cr - 0.344 * cb
    b = y + 1.773 * cb
    return np.stack([r, g, b], axis=-1).astype(np.float32)
