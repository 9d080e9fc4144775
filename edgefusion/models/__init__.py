"""Fusion network architectures, looked up by name so a checkpoint alone rebuilds its model.

An *architecture* is a name mapped to a builder ``build(config: dict) -> nn.Module``
(``config`` holds plain ints/floats/strings/lists, as stored in checkpoints).
Every built model follows the model I/O contract of :mod:`edgefusion.preprocess`:
``forward(ir, vis) -> fused``, all N×1×H×W float32 in [0, 1], and has an int
attribute ``stride``: H and W must be multiples of it (callers pad with
:func:`edgefusion.preprocess.pad_to_multiple` and crop back). A model that
cannot take tiny frames has an int attribute ``min_size``: the smallest H and W
before padding (:func:`edgefusion.models.checkpoint.check_min_size`).

Built-in architectures are listed in :data:`ARCHITECTURES` as
``"module:attribute"`` strings, imported on first use (so importing this
package does not import torch). Another architecture can be added at run time
with :func:`register`.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from edgefusion.errors import UserError

ARCHITECTURES: dict[str, str] = {
    "teacher": "edgefusion.models.teacher:build",
    "student": "edgefusion.models.student:build",
    "student-ctx": "edgefusion.models.student_ctx:build",
    "ld-lite": "edgefusion.models.ld_lite:build",
}

#: The real-time students: what ships to devices (quantize), what a run can start from (``--init``), what the demo shows.
STUDENT_ARCHITECTURES = ("student", "student-ctx")

_REGISTERED: dict[str, Callable[[dict], Any]] = {}


def register(name: str, builder: Callable[[dict], Any]) -> None:
    """Make ``build_model(name, config)`` call ``builder(config)``."""
    _REGISTERED[name] = builder


def builder(name: str) -> Callable[[dict], Any]:
    """The builder of architecture ``name``; UserError when unknown or unavailable."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    target = ARCHITECTURES.get(name)
    if target is None:
        known = sorted(set(ARCHITECTURES) | set(_REGISTERED))
        raise UserError(f"unknown model architecture {name!r} (known: {', '.join(known)})")
    module_name, attribute = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UserError(f"model architecture {name!r} is not available in this installation ({exc})") from None
    return getattr(module, attribute)


def build_model(name: str, config: dict) -> Any:
    """Build architecture ``name`` from its config dict (random init)."""
    try:
        return builder(name)(dict(config))
    except (TypeError, ValueError) as exc:
        raise UserError(f"invalid config for model architecture {name!r}: {exc}") from None
