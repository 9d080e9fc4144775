"""Per-frame statistics: the whole-frame context input of the v2 student (``student-ctx``).

One definition, numpy only, used by training (on the whole augmented frame,
shared by all its crops), by the runtime (once per frame, shared by all
tiles) and mirrored by the C runtime.

``frame_stats(ir, vis_y)`` takes the two UNPADDED model planes (float32
(H, W) in [0, 1], after normalization / 16-bit stretch / BT.601 luma) and
returns float32 shape ``(6,)``::

    [mean(ir), std(ir), mean(vis), std(vis), grad(ir), grad(vis)]

* mean and std over all H*W pixels; std is the population std (ddof 0);
  accumulated in float64, then cast to float32;
* ``grad(x) = mean(|x[:, 1:] - x[:, :-1]|) + mean(|x[1:, :] - x[:-1, :]|)``,
  a term whose axis has length 1 is 0.
"""

from __future__ import annotations

import numpy as np

#: Number of values returned by :func:`frame_stats`.
N_STATS = 6
#: Names of the values, in order.
STAT_NAMES = ("mean_ir", "std_ir", "mean_vis", "std_vis", "grad_ir", "grad_vis")


def _mean_abs_diff(x: np.ndarray, axis: int) -> float:
    """Mean absolute difference of neighbours along ``axis`` (float64); 0 when that axis has length 1."""
    if x.shape[axis] < 2:
        return 0.0
    return float(np.abs(np.diff(x, axis=axis)).mean(dtype=np.float64))


def _plane_stats(x: np.ndarray) -> tuple[float, float, float]:
    """(mean, population std, grad) of one plane, in float64."""
    x64 = x.astype(np.float64, copy=False)
    mean = float(x64.mean())
    std = float(np.sqrt(np.mean((x64 - mean) ** 2)))
    grad = _mean_abs_diff(x64, 1) + _mean_abs_diff(x64, 0)
    return mean, std, grad


def frame_stats(ir: np.ndarray, vis_y: np.ndarray) -> np.ndarray:
    """Statistics (6,) float32 of the unpadded planes ``ir`` and ``vis_y`` (see module doc)."""
    ir, vis_y = np.asarray(ir), np.asarray(vis_y)
    if ir.ndim != 2 or ir.shape != vis_y.shape or ir.size == 0:
        raise ValueError(f"frame_stats needs two equal non-empty (H, W) planes, got {ir.shape} and {vis_y.shape}")
    m_ir, s_ir, g_ir = _plane_stats(ir)
    m_vis, s_vis, g_vis = _plane_stats(vis_y)
    return np.array([m_ir, s_ir, m_vis, s_vis, g_ir, g_vis], dtype=np.float32)
