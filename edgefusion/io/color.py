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


#: Rows Y, Cb - delta, Cr - delta as linear functions of (R, G, B): Cb = 0.564 (B - Y), Cr = 0.713 (R - Y).
_RGB_TO_YCBCR = np.array(
    [
        [0.299, 0.587, 0.114],
        [-0.299 * 0.564, -0.587 * 0.564, (1.0 - 0.114) * 0.564],
        [(1.0 - 0.299) * 0.713, -0.587 * 0.713, -0.114 * 0.713],
    ]
)


def rgb_to_ycbcr(rgb: np.ndarray, delta: float = 0.5, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Split RGB (H, W, 3) into Y (H, W) and planar CbCr (2, H, W), float32.

    ``scale`` multiplies the input first (``1/255`` turns uint8 pixels into
    the 0..1 scale without a separate pass); ``delta`` is the chroma offset on
    the output scale: 0.5 for 0..1, 128 for 0..255. CbCr is (Cb, Cr) order.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}")
    h, w, _ = rgb.shape
    flat = rgb.reshape(-1, 3).astype(np.float32, copy=False)
    planes = np.dot((_RGB_TO_YCBCR * scale).astype(np.float32), flat.T)  # (3, H*W), one BLAS pass
    planes[1:] += np.float32(delta)
    return planes[0].reshape(h, w), planes[1:].reshape(2, h, w)


def ycbcr_to_rgb(y: np.ndarray, cbcr: np.ndarray, delta: float = 0.5) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr` (planar CbCr (2, H, W)): float32 (H, W, 3), not clipped."""
    y = np.asarray(y, dtype=np.float32)
    cb = cbcr[0] - np.float32(delta)
    cr = cbcr[1] - np.float32(delta)
    rgb = np.empty(y.shape + (3,), dtype=np.float32)
    np.multiply(cr, np.float32(1.403), out=rgb[..., 0])
    rgb[..., 0] += y
    rgb[..., 1] = y - np.float32(0.714) * cr - np.float32(0.344) * cb
    np.multiply(cb, np.float32(1.773), out=rgb[..., 2])
    rgb[..., 2] += y
    return rgb
