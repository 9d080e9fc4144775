"""Paired IR/visible datasets.

A dataset is a folder holding ``ir/`` and ``vi/`` (also accepted: ``infrared/``
+ ``visible/``, ``ir/`` + ``vis/``); files are paired by stem (``01.png`` in
``ir/`` pairs with ``01.jpg`` in ``vi/``). Every file without a partner is an
error, not a silent skip: a half-paired folder usually means a broken copy.
:func:`read_pair` decodes a pair and refuses one whose two images differ in
size, naming both files (as does :func:`naming` for errors raised inside it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgefusion.errors import UserError
from edgefusion.io.images import IMAGE_SUFFIXES, read_image
from edgefusion.preprocess import check_same_size

IR_DIR_NAMES = ("ir", "infrared")
VIS_DIR_NAMES = ("vi", "vis", "visible")


@dataclass(frozen=True)
class Pair:
    """One registered pair: ``name`` is the shared stem."""

    name: str
    ir: Path
    vis: Path


@contextlib.contextmanager
def naming(pair: Pair) -> Iterator[None]:
    """Prefix input errors raised inside with the pair's file names (unless already named)."""
    try:
        yield
    except UserError as exc:
        text = str(exc)
        if str(pair.ir) in text or str(pair.vis) in text:
            raise
        raise type(exc)(f"{pair.ir} + {pair.vis}: {text}") from None


def read_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """Decode both images of a pair (uint8/uint16); UserError naming both files when their sizes differ."""
    ir, vis = read_image(pair.ir), read_image(pair.vis)
    with naming(pair):
        check_same_size(ir, vis)
    return ir, vis


def dataset_dirs(root: str | os.PathLike) -> tuple[Path, Path]:
    """The (IR folder, visible folder) of a dataset root."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"dataset folder not found: {root}")
    ir_dir = next((root / n for n in IR_DIR_NAMES if (root / n).is_dir()), None)
    vis_dir = next((root / n for n in VIS_DIR_NAMES if (root / n).is_dir()), None)
    if ir_dir is None or vis_dir is None:
        raise UserError(f"{root} must hold an IR folder ({'/'.join(IR_DIR_NAMES)}) and a visible folder ({'/'.join(VIS_DIR_NAMES)})")
    return ir_dir, vis_dir


def find_pairs(root: str | os.PathLike) -> list[Pair]:
    """All pairs of a dataset root, sorted by name."""
    ir_dir, vis_dir = dataset_dirs(root)
    return pair_folders(ir_dir, vis_dir)


def _images_by_stem(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            if path.stem in found:
                raise UserError(f"two images share the name {path.stem!r} in {folder}: {found[path.stem].name} and {path.name}")
            found[path.stem] = path
    return found


def pair_folders(ir_dir: str | os.PathLike, vis_dir: str | os.PathLike) -> list[Pair]:
    """Pair the images of two folders by stem; a file without partner is an error."""
    ir_dir, vis_dir = Path(ir_dir), Path(vis_dir)
    for folder in (ir_dir, vis_dir):
        if not folder.is_dir():
            raise UserError(f"folder not found: {folder}")
    ir_files = _images_by_stem(ir_dir)
    vis_files = _images_by_stem(vis_dir)
    if not ir_files and not vis_files:
        raise UserError(f"no images in {ir_dir} or {vis_dir}")
    missing_vis = sorted(set(ir_files) - set(vis_files))
    missing_ir = sorted(set(vis_files) - set(ir_files))
    if missing_vis:
        raise UserError(f"{ir_files[missing_vis[0]]} has no visible partner in {vis_dir} ({len(missing_vis)} unpaired IR file(s))")
    if missing_ir:
        raise UserError(f"{vis_files[missing_ir[0]]} has no IR partner in {ir_dir} ({len(missing_ir)} unpaired visible file(s))")
    return [Pair(name, ir_files[name], vis_files[name]) for name in sorted(ir_files)]


def resolve_pairs(ir: str | os.PathLike, vis: str | os.PathLike) -> list[Pair]:
    """Pairs from two files, or from two folders paired by stem."""
    ir, vis = Path(ir), Path(vis)
    if ir.is_file() and vis.is_file():
        return [Pair(ir.stem, ir, vis)]
    if ir.is_dir() and vis.is_dir():
        return pair_folders(ir, vis)
    for path in (ir, vis):
        if not path.exists():
            raise UserError(f"input not found: {path}")
    raise UserError(f"--ir and --vis must both be files or both be folders: {ir}, {vis}")
