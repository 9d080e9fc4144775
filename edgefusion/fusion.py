"""One entry point from "what fuses" to "fused image", shared by ``fuse``, ``eval`` and reports.

A *fuser spec* is either a classical method name (``max``, ``mean``,
``laplacian``; see :mod:`edgefusion.baselines`), a PyTorch checkpoint file
(``*.pt``: teacher or student, needs the ``train`` extra), or a deployment
bundle (a folder with ``manifest.json`` or a ``.zip``; runs through
:mod:`edgefusion.runtime` with numpy and one backend).

Every fuser maps the model planes of :mod:`edgefusion.preprocess` (IR and
visible luma, float32 (H, W) in [0, 1]) to a fused luma plane of the same
shape; :func:`fuse_arrays` adds the shared pre- and post-processing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from edgefusion import preprocess
from edgefusion.errors import UserError


class PlaneFuser(Protocol):
    """Fuses IR and visible-luma planes, float32 (H, W) in [0, 1], into a fused luma plane."""

    name: str

    def fuse_planes(self, ir: np.ndarray, vis_y: np.ndarray) -> np.ndarray: ...


def open_fuser(spec: str | Path) -> PlaneFuser:
    """Build the fuser named by ``spec`` (method name, shipped model name, checkpoint file or bundle)."""
    from edgefusion import baselines
    from edgefusion.models.shipped import resolve_model_spec

    text = str(resolve_model_spec(spec))
    if text in baselines.METHODS:
        return baselines.MethodFuser(text)
    path = Path(text)
    if not path.exists():
        raise UserError(f"unknown fusion method or model path: {text} (methods: {', '.join(baselines.METHODS)})")
    if path.is_dir() or path.suffix.lower() == ".zip":
        from edgefusion.runtime import Fuser

        return Fuser.open(path)
    from edgefusion.models.checkpoint import TorchFuser

    return TorchFuser.load(path)


def fuse_arrays(
    fuser: PlaneFuser,
    ir: np.ndarray,
    vis: np.ndarray,
    stretch: preprocess.ThermalStretch = preprocess.DEFAULT_STRETCH,
) -> np.ndarray:
    """Fuse raw pixel arrays (uint8/uint16, gray or RGB); returns a uint8 image.

    The result is gray when the visible input is gray, else RGB with the
    visible image's chroma.
    """
    pair = preprocess.prepare_pair(ir, vis, stretch)
    fused_y = fuser.fuse_planes(pair.ir, pair.vis_y)
    return preprocess.to_uint8(preprocess.restore_color(fused_y, pair.vis_cbcr))
