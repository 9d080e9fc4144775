"""Models shipped inside the package, by name: ``--model NAME`` wherever a model is taken.

Each shipped model is ``edgefusion/assets/models/<name>.pt`` with a
``<name>.json`` beside it (provenance, recipe, seeds, cost, quality figures,
the file's SHA-256: checked whenever a spec resolves to a shipped file).
Stdlib only (no torch): names resolve on a device install too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from edgefusion.errors import UserError
from edgefusion.io.digest import sha256_file
from edgefusion.resources import DEFAULT_MODEL

MODELS_DIR = DEFAULT_MODEL.parent
#: Shipped model names and their aliases.
SHIPPED: dict[str, tuple[str, ...]] = {
    "student-ld": ("default", "ld"),
    "student-s": ("pixel",),
}
DEFAULT_NAME = DEFAULT_MODEL.stem


def canonical_name(spec: str) -> str | None:
    """The shipped model named (or aliased) ``spec``, else None."""
    for name, aliases in SHIPPED.items():
        if spec == name or spec in aliases:
            return name
    return None


def shipped_path(name: str) -> Path:
    return MODELS_DIR / f"{name}.pt"


def resolve_model_spec(spec: str | os.PathLike | None) -> str | os.PathLike:
    """``spec`` with a shipped model's name or alias (or None: the default) replaced by its file; other specs unchanged."""
    if spec is None:
        return verified(shipped_path(DEFAULT_NAME))
    if not str(spec).strip():
        raise UserError("an empty model name (give a shipped model's name, a checkpoint or a bundle)")
    name = canonical_name(str(spec))
    if name is None or _is_model_path(Path(str(spec))):  # a file or bundle of that name wins
        return verified(spec)
    return verified(shipped_path(name))


def _is_model_path(path: Path) -> bool:
    """A file, or a bundle folder (it holds manifest.json): what a path means in place of a shipped model's name.
    Any other folder, e.g. a training run named after the model it fine-tunes, does not hide the model."""
    return path.is_file() or (path / "manifest.json").is_file()


def shipped_name(path: str | os.PathLike) -> str | None:
    """The shipped model's name when ``path`` is a shipped model file, else None."""
    path = Path(path)
    if path.stem not in SHIPPED or path.suffix != ".pt" or not path.is_file() or path.resolve().parent != MODELS_DIR.resolve():
        return None
    return path.stem


def verified(spec: str | os.PathLike) -> str | os.PathLike:
    """``spec``; UserError when it is a shipped model file whose SHA-256 differs from the one its JSON records."""
    path = Path(spec)
    if shipped_name(path) is None:
        return spec
    expected = describe(path.stem).get("sha256")
    digest = sha256_file(path)
    if expected and digest != expected:
        raise UserError(f"shipped model {path} is damaged or modified: SHA-256 {digest[:12]}..., {path.stem}.json records {expected[:12]}...; reinstall edgefusion")
    return spec


def describe(name: str) -> dict:
    """The ``<name>.json`` record of a shipped model (empty when missing)."""
    path = MODELS_DIR / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
