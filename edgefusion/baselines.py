"""Classical fusion baselines on model planes (float32 (H, W) in [0, 1]).

* ``max``: per-pixel maximum of IR and visible luma.
* ``mean``: per-pixel average.
* ``laplacian``: Burt-Adelson Laplacian pyramid (5-tap binomial kernel
  [1, 4, 6, 4, 1] / 16, mirror borders); detail levels keep the coefficient of
  larger magnitude (IR on ties), the coarsest Gaussian level is averaged.
  Reduce takes every second sample of the blurred level (size ceil(n / 2));
  expand zero-fills to the finer level's exact size and blurs with 4x the
  kernel, so any H x W (odd sizes included) reconstructs exactly.

:class:`MethodFuser` wraps a method as a :class:`edgefusion.runtime.frame.PlaneFuser`.
All methods need numpy only.
"""

from __future__ import annotations

import numpy as np

from edgefusion import _filters
from edgefusion.errors import UserError

METHODS = ("max", "mean", "laplacian")

_KERNEL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
LAPLACIAN_LEVELS = 4
"""Detail levels of the Laplacian pyramid (fewer when the image is too small)."""

_MIN_COARSE_SIDE = 4


def fuse_max(ir: np.ndarray, vis_y: np.ndarray) -> np.ndarray:
    """Per-pixel maximum."""
    return np.maximum(ir, vis_y).astype(np.float32)


def fuse_mean(ir: np.ndarray, vis_y: np.ndarray) -> np.ndarray:
    """Per-pixel average."""
    return ((np.asarray(ir, np.float32) + np.asarray(vis_y, np.float32)) * np.float32(0.5)).astype(np.float32)


def _blur(plane: np.ndarray, gain: float = 1.0) -> np.ndarray:
    kernel = _KERNEL * np.sqrt(gain)
    return _filters.correlate_separable(plane, (kernel, kernel), "mirror")


def _reduce(plane: np.ndarray) -> np.ndarray:
    return _blur(plane)[::2, ::2]


def _expand(plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    up = np.zeros(shape, dtype=np.float64)
    up[::2, ::2] = plane
    return _blur(up, gain=4.0)


def laplacian_pyramid(plane: np.ndarray, levels: int) -> list[np.ndarray]:
    """``levels`` detail (band-pass) levels, finest first, then the coarsest Gaussian level (float64)."""
    current = np.asarray(plane, dtype=np.float64)
    pyramid = []
    for _ in range(levels):
        coarse = _reduce(current)
        pyramid.append(current - _expand(coarse, current.shape))
        current = coarse
    pyramid.append(current)
    return pyramid


def reconstruct(pyramid: list[np.ndarray]) -> np.ndarray:
    """Inverse of :func:`laplacian_pyramid` (exact up to float rounding)."""
    current = pyramid[-1]
    for detail in reversed(pyramid[:-1]):
        current = detail + _expand(current, detail.shape)
    return current


def pyramid_levels(shape: tuple[int, int], levels: int = LAPLACIAN_LEVELS) -> int:
    """Detail levels used for an image of ``shape``: at most ``levels``, coarsest side >= 4 pixels."""
    side = min(shape)
    count = 0
    while count < levels and -(-side // 2) >= _MIN_COARSE_SIDE:
        side = -(-side // 2)
        count += 1
    return count


def fuse_laplacian(ir: np.ndarray, vis_y: np.ndarray, levels: int = LAPLACIAN_LEVELS) -> np.ndarray:
    """Laplacian-pyramid fusion: max-abs detail selection, averaged base; clipped to [0, 1]."""
    n = pyramid_levels(np.shape(ir), levels)
    pa, pb = laplacian_pyramid(ir, n), laplacian_pyramid(vis_y, n)
    fused = [np.where(np.abs(a) >= np.abs(b), a, b) for a, b in zip(pa[:-1], pb[:-1])]
    fused.append((pa[-1] + pb[-1]) / 2.0)
    return np.clip(reconstruct(fused), 0.0, 1.0).astype(np.float32)


_FUNCTIONS = {"max": fuse_max, "mean": fuse_mean, "laplacian": fuse_laplacian}


class MethodFuser:
    """A classical method as a :class:`~edgefusion.runtime.frame.PlaneFuser`."""

    def __init__(self, name: str) -> None:
        if name not in _FUNCTIONS:
            raise UserError(f"unknown fusion method {name!r}; choose one of {', '.join(METHODS)}")
        self.name = name
        self._fn = _FUNCTIONS[name]

    def fuse_planes(self, ir: np.ndarray, vis_y: np.ndarray) -> np.ndarray:
        """Fused luma, float32 (H, W) in [0, 1]."""
        ir, vis_y = np.asarray(ir), np.asarray(vis_y)
        if ir.shape != vis_y.shape or ir.ndim != 2:
            raise ValueError(f"expected two (H, W) planes of equal shape, got {ir.shape} and {vis_y.shape}")
        return self._fn(ir, vis_y)
