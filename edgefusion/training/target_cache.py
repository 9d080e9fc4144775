"""Per-frame on-disk cache of teacher outputs, keyed by teacher checkpoint digest + frame + augmentation.

A teacher pass over the training frames (minutes on a CPU) must survive an
interrupt: every output is its own file, written atomically as soon as it is
computed, so a resumed or repeated run reuses what is there and computes only
what is missing. Keys make stale entries impossible to pick up:

* ``teacher``: SHA-256 of the teacher checkpoint file (a retrained teacher
  gets a fresh sub-folder ``<teacher[:16]>/``);
* ``frame``: the caller's identity of the input frame, e.g.
  :func:`frame_key` (pair name + SHA-256 of both image files);
* ``augmentation``: the caller's description of what was done to the frame
  before the teacher saw it (``""`` for none, e.g. ``"hflip"``,
  ``"zoom=0.5,gamma=1.2/0.8"``).

Layout: ``FOLDER/<teacher[:16]>/<sha256(frame \\0 augmentation)[:32]>.npy``.
Values are planes in [0, 1] stored as uint16 (``round(x * 65535)``, error
<= 7.7e-6), read back as float32. Several processes may fill one cache: the
last atomic rename wins and both wrote the same values.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np

from edgefusion.io.atomic import atomic_path
from edgefusion.io.digest import sha256_file

SCALE = 65535.0


def frame_key(name: str, *files: str | os.PathLike) -> str:
    """A frame identity: ``name`` plus the SHA-256 of each source file (edits to the images change it)."""
    return "|".join([name, *(sha256_file(f) for f in files)])


class TargetCache:
    """Teacher outputs of one teacher checkpoint in ``folder`` (created on the first write)."""

    def __init__(self, folder: str | os.PathLike, teacher_sha256: str):
        if len(teacher_sha256) < 16:
            raise ValueError("teacher_sha256 must be a hex digest")
        self.folder = Path(folder) / teacher_sha256[:16]
        self.teacher_sha256 = teacher_sha256

    def path(self, frame: str, augmentation: str = "") -> Path:
        """The file of one (frame, augmentation) entry."""
        digest = hashlib.sha256(f"{self.teacher_sha256}\0{frame}\0{augmentation}".encode("utf-8")).hexdigest()
        return self.folder / f"{digest[:32]}.npy"

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
