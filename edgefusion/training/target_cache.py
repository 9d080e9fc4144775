"""Teacher outputs of whole training frames, computed once and kept on disk.

A teacher pass over the training frames (minutes on a CPU; LD-Lite takes about
a second per frame) must survive an interrupt and be shared by later runs:
every output is its own file, written atomically as soon as it is computed, so
a resumed or repeated run reuses what is there and computes only what is
missing. Keys make stale entries impossible to pick up:

* ``teacher``: SHA-256 of the teacher checkpoint file (a retrained teacher
  gets a fresh sub-folder ``<teacher[:16]>/``);
* ``frame``: the identity of the input frame, :func:`frame_key` (pair name +
  SHA-256 of both image files);
* ``augmentation``: what was done to the whole frame before the teacher saw
  it (``""`` for nothing; :class:`FrameAug` keys such as ``s0.5-g1-1``: a
  resize and per-plane gammas).

Layout::

    ROOT/<teacher[:16]>/<pair name>-<sha256(frame key)[:12]>/<augmentation or "plain">.npy

Values are planes in [0, 1] stored as uint16 (``round(x * 65535)``, error
<= 7.7e-6), read back as float32. Several processes may fill one cache: the
last atomic rename wins and both wrote the same values.

:class:`TargetStore` is the key -> plane store; :class:`TargetCache` fills it
with a teacher's outputs of the (augmented) whole frames of a
:class:`~edgefusion.training.dataset.PairCrops`. Students train on crops of
these whole frames together with the whole frame's statistics
(:func:`edgefusion.runtime.frame_stats.frame_stats`), which is what the
teacher's whole-frame normalizations saw.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgefusion.errors import UserError
from edgefusion.io.atomic import atomic_path
from edgefusion.io.digest import sha256_file
from edgefusion.models.checkpoint import TorchFuser
from edgefusion.progress import progress as progress_iter
from edgefusion.training.dataset import PairCrops

SCALE = 65535.0
#: Default cache root when the recipe leaves ``distill.cache_dir`` empty (``EDGEFUSION_CACHE`` overrides).
DEFAULT_ROOT = Path("~/.cache/edgefusion/teacher-targets")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,64}")


def frame_key(name: str, *files: str | os.PathLike) -> str:
    """A frame identity: ``name`` plus the SHA-256 of each source file (edits to the images change it)."""
    return "|".join([name, *(sha256_file(f) for f in files)])


class TargetStore:
    """Teacher output planes of one teacher checkpoint under ``folder/<teacher[:16]>`` (created on the first write)."""

    def __init__(self, folder: str | os.PathLike, teacher_sha256: str):
        if len(teacher_sha256) < 16:
            raise ValueError("teacher_sha256 must be a hex digest")
        self.folder = Path(folder) / teacher_sha256[:16]
        self.teacher_sha256 = teacher_sha256

    def path(self, frame: str, augmentation: str = "") -> Path:
        """The file of one (frame, augmentation) entry."""
        name = frame.split("|", 1)[0]
        label = name if _PLAIN_NAME.fullmatch(name) else "frame"
        digest = hashlib.sha256(frame.encode("utf-8")).hexdigest()[:12]
        aug = augmentation or "plain"
        if not _PLAIN_NAME.fullmatch(aug):
            aug = hashlib.sha256(aug.encode("utf-8")).hexdigest()[:16]
        return self.folder / f"{label}-{digest}" / f"{aug}.npy"

    def get(self, frame: str, augmentation: str = "") -> np.ndarray | None:
        """The cached float32 plane, or None when absent or unreadable (a torn file is recomputed)."""
        path = self.path(frame, augmentation)
        try:
            stored = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if stored.dtype != np.uint16:
            return None
        return stored.astype(np.float32) / SCALE

    def put(self, frame: str, augmentation: str, plane: np.ndarray) -> np.ndarray:
        """Store a plane in [0, 1] atomically; returns the value a later :meth:`get` gives (quantized)."""
        stored = np.rint(np.clip(np.asarray(plane, dtype=np.float32), 0.0, 1.0) * SCALE).astype(np.uint16)
        with atomic_path(self.path(frame, augmentation)) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, stored, allow_pickle=False)
        return stored.astype(np.float32) / SCALE

    def get_or_compute(self, frame: str, augmentation: str, compute: Callable[[], np.ndarray]) -> tuple[np.ndarray, bool]:
        """(plane, whether it came from the cache); ``compute()`` runs only on a miss and its result is stored."""
        cached = self.get(frame, augmentation)
        if cached is not None:
            return cached, True
        return self.put(frame, augmentation, compute()), False


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


class TargetCache:
    """Teacher targets of the (augmented) whole frames of ``pairs``, kept in a :class:`TargetStore` under ``root``."""

    def __init__(self, root: Path, pairs: PairCrops, teacher: nn.Module, teacher_digest: str, device: torch.device | str = "cpu"):
        self.store = TargetStore(root, teacher_digest)
        self.folder = self.store.folder
        self.pairs, self.teacher, self.device = pairs, teacher, torch.device(device)
        self._keys: dict[int, str] = {}
        self._memory: dict[tuple[int, str], np.ndarray] = {}

    def _key(self, index: int) -> str:
        if index not in self._keys:
            pair = self.pairs.pairs[index]
            self._keys[index] = frame_key(pair.name, pair.ir, pair.vis)
        return self._keys[index]

    def path(self, index: int, aug: FrameAug) -> Path:
        return self.store.path(self._key(index), aug.key)

    def planes(self, index: int, aug: FrameAug) -> tuple[np.ndarray, np.ndarray]:
        """Augmented whole-frame (ir, vis) planes of pair ``index``."""
        return aug.apply(*self.pairs.planes(index))

    def _compute(self, index: int, aug: FrameAug, path: Path) -> None:
        """Run the teacher on the augmented whole frame and store its output (at ``path``)."""
        fused = TorchFuser(self.teacher, "teacher", self.device).fuse_planes(*self.planes(index, aug))
        self.store.put(self._key(index), aug.key, fused)

    def target(self, index: int, aug: FrameAug) -> np.ndarray:
        """Teacher output (H', W') float32 for the augmented whole frame; computed and stored when missing."""
        key = (index, aug.key)
        if key not in self._memory:
            plane = self.store.get(self._key(index), aug.key)
            if plane is None:
                self._compute(index, aug, self.path(index, aug))
                plane = self.store.get(self._key(index), aug.key)
            self._memory[key] = plane
        return self._memory[key]

    def fill(self, augs: list[FrameAug], progress: bool = True) -> int:
        """Compute every missing target (augmentation by augmentation); returns how many were computed."""
        wanted = [(a, i) for a in augs for i in range(len(self.pairs))]
        todo = [(a, i) for a, i in wanted if not self.path(i, a).is_file()]
        reused = len(wanted) - len(todo)
        desc = f"teacher targets ({reused} cached)" if reused else "teacher targets"
        for aug, index in progress_iter(todo, desc=desc, enabled=progress):
            self._compute(index, aug, self.path(index, aug))
        return len(todo)
