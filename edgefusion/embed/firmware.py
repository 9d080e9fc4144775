"""``edgefusion native``: a ready firmware folder for the C runtime, with a bundle compiled in.

Layout of the folder (the C runtime's own layout, plus the bundle)::

    CMakeLists.txt  README.md  bundle_data.c  bundle_data.h
    include/edgefusion.h   src/ (frame-path kernels)   dispatch/ (x86-64: AVX2 or portable kernels per CPU)
    runtime/ (API, bundle, backends)
    examples/fuse_frames.c pnm_compare.c pnm.c pnm.h   cmake/ (cross toolchain files)
    samples/ (the package samples as PGM and the Python runtime's results: edgefusion.embed.samples)

``cmake -S DIR -B DIR/build -DEF_OPENVINO_ROOT=...`` builds the library and
``fuse_frames``, whose default bundle is the compiled-in one (no file system
needed to open it); ``ctest --test-dir DIR/build`` checks it on the samples.
The folder is written atomically; an existing firmware
folder at the destination is replaced, any other non-empty folder is refused.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from edgefusion.embed import NATIVE_DIR
from edgefusion.embed.c_arrays import SOURCE, bundle_c_arrays, bundle_files
from edgefusion.embed.samples import write_sample_check
from edgefusion.errors import UserError, describe_os_error, os_errors_named
from edgefusion.io.atomic import about_output, replace_folder
from edgefusion.runtime.bundle import load_bundle

#: Files and folders of NATIVE_DIR copied into a firmware folder.
COPIED = ("CMakeLists.txt", "README.md", "cmake", "include", "src", "dispatch", "runtime", "examples")
#: Left out of the copied folders: Python caches, build folders (``build*``) and build outputs (by suffix).
CACHE_FOLDER, BUILD_PREFIX, SKIPPED_SUFFIXES = "__pycache__", "build", (".o", ".so")


def write_firmware(bundle_path: str | os.PathLike, out: str | os.PathLike) -> tuple[Path, int, str]:
    """Write the firmware folder of ``bundle_path`` (a verified bundle folder or .zip) at ``out``.

    Returns the folder, the number of sample results ctest checks against and, when there
    are none, why (:func:`edgefusion.embed.samples.write_sample_check`).
    """
    bundle = load_bundle(bundle_path)
    out = Path(out)
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / SOURCE).is_file())):
        raise UserError(f"{out} exists and is not a firmware folder written by edgefusion native; refusing to replace it")
    missing = [name for name in COPIED if not (NATIVE_DIR / name).exists()]
    if missing:
        raise UserError(f"this installation lacks the C runtime sources ({NATIVE_DIR / missing[0]})")
    with os_errors_named(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _copy_sources(stage)
        for name, data in bundle_c_arrays(bundle.manifest, bundle_files(bundle.root, bundle.manifest)).items():
            (stage / name).write_bytes(data)
        checked, why_not = write_sample_check(stage, bundle)
        os.chmod(stage, 0o755)
        replace_folder(stage, out)
    except OSError as exc:  # name the firmware folder, not the hidden stage or a copied source
        if not about_output(exc, stage, out):
            raise
        raise UserError(describe_os_error(exc, out, "cannot write")) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out, checked, why_not


def _copy_sources(stage: Path) -> None:
    """The C runtime's files (:data:`COPIED`) into ``stage``, file by file, so that a failed copy names its
    destination (``shutil.copytree`` gathers its failures into one message)."""
    for name in COPIED:
        root = NATIVE_DIR / name
        files = [root] if root.is_file() else sorted(f for f in root.rglob("*") if f.is_file() and not _skipped(f.relative_to(root)))
        for src in files:
            dst = stage / name / src.relative_to(root) if root.is_dir() else stage / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def _skipped(rel: Path) -> bool:
    return rel.suffix in SKIPPED_SUFFIXES or any(part == CACHE_FOLDER or part.startswith(BUILD_PREFIX) for part in rel.parts)
