"""Turn third-party weights into edgefusion checkpoints with provenance (``edgefusion import``).

``IMPORTERS[name](path, allow_modified=False) -> checkpoint dict``. Only the published file (its
SHA-256) is accepted unless ``allow_modified``, and only files that load with
``torch.load(weights_only=True)`` are accepted; anything else (truncated,
foreign, another shape) is a one-line :class:`~edgefusion.errors.UserError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch

from edgefusion.errors import UserError
from edgefusion.io.digest import sha256_file
from edgefusion.models import ld_lite, provenance
from edgefusion.models.checkpoint import FORMAT


def _load_state_dict(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt, truncated or foreign files
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"cannot read weights {path}: {first.split('. ')[0]}") from None
    if not isinstance(state, dict) or not state:
        raise UserError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return state


def _check_digest(path: Path, expected: str, allow_modified: bool) -> dict[str, str]:
    """Provenance fields of ``path``'s SHA-256; UserError when it differs from ``expected`` unless ``allow_modified``."""
    digest = sha256_file(path)
    if digest == expected:
        return {"sha256": digest}
    if not allow_modified:
        raise UserError(f"{path} is not the published file: SHA-256 {digest[:12]}..., expected {expected[:12]}... "
                        "(damaged or modified; `edgefusion import ld-lite --allow-modified` imports it anyway, marked as modified)")
    return {"sha256": digest, "modified": "yes"}


def import_ld_lite(path: str | os.PathLike, allow_modified: bool = False) -> dict[str, Any]:
    """Checkpoint dict (architecture ``ld-lite``) of the authors' ``weight/final.pt``; a file with
    another SHA-256 only with ``allow_modified`` (recorded as ``source.modified``)."""
    path = Path(path)
    authors = _load_state_dict(path)
    digest = _check_digest(path, provenance.LD_LITE_SHA256, allow_modified)
    try:
        state = ld_lite.import_state_dict(authors)
    except ValueError as exc:
        raise UserError(f"{path} is not an LD-Lite state dict: {exc}") from None
    metadata = {
        "stage": "teacher",
        "objective": provenance.LD_LITE_OBJECTIVE,
        "language_objective_meaningful": True,
        "licence": provenance.LD_LITE_LICENCE,
        "attribution": provenance.LD_LITE_ATTRIBUTION,
        "source": {**provenance.LD_LITE_SOURCE, **digest},
    }
    return {"format": FORMAT, "architecture": "ld-lite", "config": {}, "state_dict": state, "metadata": metadata}


IMPORTERS: dict[str, Callable[..., dict[str, Any]]] = {"ld-lite": import_ld_lite}
