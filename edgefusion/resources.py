"""Locate the training recipes (``train/``), target profiles (``targets/``) and quantization recipes (``quantize/``).

In a checkout they are the repository's top-level folders; in an installed
wheel they are packaged as ``edgefusion/_resources/{train,targets,quantize}``.
Sample pairs and the default model ship inside the package under ``assets/``.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
ASSETS = _PACKAGE / "assets"
SAMPLES = ASSETS / "samples"
#: The shipped default student checkpoint (see its ``.json`` beside it for how it was trained; other shipped models: ``edgefusion models``).
DEFAULT_MODEL = ASSETS / "models" / "student-ld.pt"


def resource_dir(name: str) -> Path:
    """The ``train``, ``targets`` or ``quantize`` folder, preferring a checkout's top-level copy."""
    for candidate in (_PACKAGE.parent / name, _PACKAGE / "_resources" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"edgefusion resource folder {name!r} is missing from this installation")
