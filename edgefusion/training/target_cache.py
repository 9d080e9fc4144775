"""Teacher outputs of whole training frames, computed once and kept on disk (slow teachers such as LD-Lite).

A target is the teacher's output for one WHOLE frame under one deterministic
*frame augmentation* (:class:`FrameAug`: a resize and per-plane gammas,
spelled ``s{scale}-g{gamma_ir}-{gamma_vis}``, e.g. ``s0.5-g1-1``). Files::

    ROOT/<teacher sha256[:16]>/<pair name>-<frame digest[:12]>/<augmentation>.npy   (uint16, value = round(65535 * y))

keyed by the teacher file's digest, the frame's two image files' digest and
the augmentation, so a cache is shared by runs, recipes and ``--resume``
(a target is written atomically and never recomputed). Students train on
crops of these whole frames together with the whole frame's statistics
(:func:`edgefusion.runtime.frame_stats.frame_stats`), which is what the
teacher's whole-frame normalizations saw.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgefusion.errors import UserError
from edgefusion.io.atomic import atomic_path
from edgefusion.io.pairs import Pair
from edgefusion.progress import progress as progress_iter
from edgefusion.training.dataset import PairCrops

#: Default cache root when the recipe leaves ``distill.cache_dir`` empty (``EDGEFUSION_CACHE`` overrides).
DEFAULT_ROOT = Path("~/.cache/edgefusion/teacher-targets")


@dataclass(frozen=True)
class FrameAug:
    """Whole-frame augmentation: resize by ``scale`` (area down, bilinear up), then ``x ** gamma`` per plane."""

    scale: float = 1.0
    gamma_ir: float = 1.0
    gamma_vis: float = 1.0

    @classmethod
    def parse(cls, text: str) -> "FrameAug":
        """``s{scale}-g{gamma_ir}-{gamma_vis}`` -> FrameAug; UserError when malformed."""
        try:
            s, g_ir, g_vis = text.split("-")
            if not (s.startswith("s") and g_ir.startswith("g")):
                raise ValueError
            aug = cls(float(s[1:]), float(g_ir[1:]), float(g_vis))
        except ValueError:
            raise UserError(f"bad frame augmentation {text!r}; expected s<scale>-g<gamma_ir>-<gamma_vis>, e.g. s0.5-g1-1") from None
        if not (0.1 <= aug.scale <= 4.0 and 0.1 <= aug.gamma_ir <= 10.0 and 0.1 <= aug.gamma_vis <= 10.0):
            raise UserError(f"frame augmentation {text!r} out of range (scale 0.1..4, gammas 0.1..10)")
        return aug

    @property
    def key(self) -> str:
        return f"s{self.scale:g}-g{self.gamma_ir:g}-{self.gamma_vis:g}"

    def apply(self, ir: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Augmented (ir, vis) float32 planes in [0, 1]."""
        stack = torch.from_numpy(np.stack([ir, vis]).astype(np.float32))[None]
        if self.scale != 1.0:
            h, w = (max(8, round(d * self.scale)) for d in ir.shape)
            mode = {"mode": "area"} if self.scale < 1 else {"mode": "bilinear", "align_corners": False}
            stack = F.interpolate(stack, size=(h, w), **mode).clamp_(0.0, 1.0)
        gammas = torch.tensor([self.gamma_ir, self.gamma_vis]).reshape(1, 2, 1, 1)
        out = (stack**gammas)[0].numpy()
        return np.ascontiguousarray(out[0]), np.ascontiguousarray(out[1])


def cache_root(configured: str = "") -> Path:
    """The cache folder: ``configured``, else ``$EDGEFUSION_CACHE``, else :data:`DEFAULT_ROOT`."""
    return Path(configured or os.environ.get("EDGEFUSION_CACHE") or DEFAULT_ROOT).expanduser()


def frame_key(pair: Pair) -> str:
    """``<pair name>-<first 12 hex of SHA-256 over both image files>``."""
    digest = hashlib.sha256()
    for path in (pair.ir, pair.vis):
        digest.update(Path(path).read_bytes())
    return f"{pair.name}-{digest.hexdigest()[:12]}"


class TargetCache:
    """Teacher targets of the frames of ``pairs`` under ``root/<teacher digest>`` (see module doc)."""

    def __init__(self, root: Path, pairs: PairCrops, teacher: nn.Module, teacher_digest: str, device: torch.device | str = "cpu"):
        self.folder = Path(root) / teacher_digest[:16]
        self.pairs, self.teacher, self.device = pairs, teacher, torch.device(device)
        self._keys: dict[int, str] = {}
        self._memory: dict[tuple[int, str], np.ndarray] = {}

    def path(self, index: int, aug: FrameAug) -> Path:
        if index not in self._keys:
            self._keys[index] = frame_key(self.pairs.pairs[index])
        return self.folder / self._keys[index] / f"{aug.key}.npy"

    def planes(self, index: int, aug: FrameAug) -> tuple[np.ndarray, np.ndarray]:
        """Augmented whole-frame (ir, vis) planes of pair ``index``."""
        return aug.apply(*self.pairs.planes(index))

    @torch.no_grad()
    def _compute(self, index: int, aug: FrameAug, path: Path) -> None:
        ir, vis = self.planes(index, aug)
        stride = int(getattr(self.teacher, "stride", 1))
        h, w = ir.shape
        tensors = [torch.from_numpy(np.pad(p, ((0, -h % stride), (0, -w % stride)), mode="edge"))[None, None].to(self.device) for p in (ir, vis)]
        fused = self.teacher(*tensors)[0, 0, :h, :w].float().clamp(0, 1).cpu().numpy()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, np.rint(fused * 65535.0).astype(np.uint16))

    def target(self, index: int, aug: FrameAug) -> np.ndarray:
        """Teacher output (H', W') float32 for the augmented whole frame; computed and stored when missing."""
        key = (index, aug.key)
        if key not in self._memory:
            path = self.path(index, aug)
            if not path.is_file():
                self._compute(index, aug, path)
            self._memory[key] = np.load(path).astype(np.float32) / np.float32(65535.0)
        return self._memory[key]

    def fill(self, augs: list[FrameAug], progress: bool = True) -> int:
        """Compute every missing target (augmentation by augmentation); returns how many were computed."""
        todo = [(a, i) for a in augs for i in range(len(self.pairs)) if not self.path(i, a).is_file()]
        for aug, index in progress_iter(todo, desc="teacher targets", enabled=progress):
            self._compute(index, aug, self.path(index, aug))
        return len(todo)
