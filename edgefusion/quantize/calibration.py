"""Calibration and validation frames: whole pairs resized and cropped to the target shape.

Each pair goes through :func:`edgefusion.preprocess.prepare_pair` (thermal
stretch, BT.601 luma), then both planes are scaled by the same factor so the
frame covers ``shape`` (bilinear, Pillow) and center-cropped to it. Frames are
model inputs: NCHW float32 ``(1, 1, H, W)`` in [0, 1], plus the frame
statistics ``(1, 6)`` of :func:`edgefusion.runtime.frame_stats.frame_stats`
computed on the WHOLE prepared pair before any resize or crop, as the runtime
computes them on the whole frame before tiling (used by v2 students only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edgefusion import preprocess
from edgefusion.errors import UserError
from edgefusion.io.pairs import Pair, find_pairs, read_pair
from edgefusion.runtime.frame_stats import frame_stats


@dataclass(frozen=True)
class Frame:
    """One model-ready pair: ``ir`` and ``vis`` are (1, 1, H, W) float32 in [0, 1]; ``stats`` (1, 6) float32."""

    name: str
    ir: np.ndarray
    vis: np.ndarray
    stats: np.ndarray

    def inputs(self, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The model inputs ``names`` (``ir``, ``vis`` and maybe ``stats``) by name."""
        return {name: getattr(self, name) for name in names}


def cover_crop(plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Scale a float32 (h, w) plane to cover ``shape`` (H, W), keeping its aspect, then center-crop."""
    height, width = shape
    h, w = plane.shape
    scale = max(height / h, width / w)
    size = (max(width, round(w * scale)), max(height, round(h * scale)))
    if size != (w, h):
        plane = np.asarray(Image.fromarray(plane.astype(np.float32)).resize(size, Image.BILINEAR))
    top = (plane.shape[0] - height) // 2
    left = (plane.shape[1] - width) // 2
    return np.clip(plane[top : top + height, left : left + width], 0.0, 1.0).astype(np.float32)


def load_frame(pair: Pair, shape: tuple[int, int], stretch: preprocess.ThermalStretch = preprocess.DEFAULT_STRETCH) -> Frame:
    """Read, normalize and cover-crop one pair to ``shape``."""
    planes = preprocess.prepare_pair(*read_pair(pair), stretch)
    ir, vis = (np.ascontiguousarray(cover_crop(p, shape)[None, None]) for p in (planes.ir, planes.vis_y))
    return Frame(pair.name, ir, vis, frame_stats(planes.ir, planes.vis_y)[None])


def dataset_pairs(root: str | os.PathLike, what: str) -> list[Pair]:
    """The pairs of a dataset folder (``ir/`` + ``vi/``); UserError when there are none."""
    root = Path(root)
    try:
        pairs = find_pairs(root)
    except UserError as exc:
        raise UserError(f"{what} folder: {exc}") from None
    if not pairs:
        raise UserError(f"{what} folder {root} holds no image pairs")
    return pairs


def select(pairs: list[Pair], count: int) -> list[Pair]:
    """``count`` pairs spread evenly over the sorted list (all when there are fewer)."""
    if len(pairs) <= count:
        return list(pairs)
    picks = np.linspace(0, len(pairs) - 1, count).round().astype(int)
    return [pairs[i] for i in sorted(set(picks.tolist()))]


def calibration_pairs(root: str | os.PathLike | None, count: int, target: str, default: Path) -> tuple[list[Pair], str]:
    """(the pairs to calibrate on, a one-line note naming them) for a profile asking for ``count`` frames.

    ``root`` None means ``default`` (the package samples). The note starts with
    ``warning:`` when fewer than ``count`` pairs were available.
    """
    source = Path(root) if root is not None else default
    available = dataset_pairs(source, "calibration")
    pairs = select(available, count)
    names = ", ".join(p.name for p in pairs[:4]) + (", ..." if len(pairs) > 4 else "")
    where = f"the package samples ({source})" if root is None else str(source)
    note = f"calibrating on {len(pairs)} of the {len(available)} pair(s) in {where}: {names}"
    if len(pairs) < count:
        note = f"warning: {note}; the {target} profile asks for {count}: pass --calib DIR with at least {count} pairs like your scenes"
    return pairs, note


def load_frames(pairs: list[Pair], shape: tuple[int, int], desc: str) -> list[Frame]:
    """Load every pair as a :class:`Frame` of ``shape``, with a progress bar."""
    from edgefusion.progress import progress

    return [load_frame(p, shape) for p in progress(pairs, desc=desc, unit="pair", leave=False)]


def native_frame(pair: Pair, multiple: int) -> Frame:
    """One pair at its own size, padded to ``multiple`` (:func:`edgefusion.preprocess.model_inputs`)."""
    planes = preprocess.prepare_pair(*read_pair(pair))
    ir, vis = preprocess.model_inputs(planes, multiple)
    return Frame(pair.name, ir, vis, frame_stats(planes.ir, planes.vis_y)[None])
