"""Resumable training state inside a model checkpoint (``RUN_DIR/last.pt``).

``last.pt`` is a normal model checkpoint (:mod:`edgefusion.models.checkpoint`,
so it can be fused with or exported) plus a ``training`` entry:

``step``       completed optimizer steps
``elapsed_s``  training wall time so far (seconds, summed over resumes)
``optimizer``, ``scheduler``, ``scaler``   their ``state_dict()``
``rng``        per-rank random states: ``python`` (``random.getstate()``),
               ``numpy`` (MT19937 key as an int64 tensor + position fields),
               ``torch`` (CPU generator), ``cuda`` (list, may be empty)

Everything is tensors and plain Python values, so ``torch.load(weights_only=True)``
reads it. Restoring all of it makes a resumed run bit-identical to an
uninterrupted one on the same device.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    """This process's random states (python, numpy, torch CPU, torch CUDA)."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"kind": kind, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state((np_state["kind"], np_state["key"].numpy().astype(np.uint32), np_state["pos"], np_state["has_gauss"], np_state["gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_all(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)
