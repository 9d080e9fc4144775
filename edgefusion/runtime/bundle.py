"""Deployment bundles: model files plus ``manifest.json``, as a folder or a ``.zip``.

The manifest (schema 1) describes everything a device needs to run the model
without the training stack: ``backend``, ``precision``, ``files`` (role ->
relative path, e.g. ``{"model": "model.xml", "weights": "model.bin"}``),
``inputs``/``outputs`` (``[{name, shape, dtype}]``, names ``ir``, ``vis``,
``fused``; v2 bundles, whose model also takes the frame statistics, list the
inputs ``ir``, ``vis``, ``stats``; a bundle without ``inputs`` is v1, and
entries may also be bare names; see :func:`input_names`), ``layout``,
``io_dtype`` (+ ``io_quantization`` for integer I/O), ``stats_encoding`` (optional, v2 bundles:
:mod:`edgefusion.runtime.stats_encoding`), ``value_range``, ``stride``, ``fixed_shape`` ([H, W] or null), ``color``,
``preprocessing``, ``model``, ``quantization``, ``accuracy``,
``latency_budget``, ``sha256`` ({relative file: hex digest} for every file
but ``manifest.json``) and ``manifest_sha256``, the manifest's seal of itself
(:mod:`edgefusion.runtime.manifest_seal`).

:func:`write_bundle` builds the bundle in a temporary folder beside the
destination and renames it into place, so an error never leaves a partial
bundle. :func:`load_bundle` verifies the manifest's seal and every file's SHA-256 and
refuses a tampered, incomplete or unknown-backend bundle with a one-line UserError.

numpy-free and torch-free: the device runtime imports this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import weakref
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping

from edgefusion.errors import UserError, os_errors_named
from edgefusion.io.digest import sha256_file
from edgefusion.io.atomic import atomic_path, new_work_folder, replace_folder, temp_beside
from edgefusion.io.outputs import check_output_path
from edgefusion.runtime.manifest_seal import check_seal, sealed_manifest_text
from edgefusion.runtime.stats_encoding import stats_scale

SCHEMA = 1
MANIFEST = "manifest.json"
BACKENDS = ("onnxruntime", "openvino", "litert", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
LAYOUTS = ("NCHW", "NHWC")
IO_DTYPES = ("float32", "uint8", "int8")
#: Model input names of v1 bundles and of v2 bundles (models that take the frame statistics).
INPUTS_V1 = ("ir", "vis")
INPUTS_V2 = ("ir", "vis", "stats")
REQUIRED_KEYS = (
    "schema", "edgefusion_version", "backend", "target", "precision", "files", "outputs",
    "layout", "io_dtype", "value_range", "stride", "fixed_shape", "sha256",
)


@dataclass
class Bundle:
    """A verified bundle: ``root`` folder (extracted for a zip), its manifest and model files by role."""

    root: Path
    manifest: dict[str, Any]
    source: Path
    _cleanup: Any = field(default=None, repr=False)

    @property
    def backend(self) -> str:
        return self.manifest["backend"]

    @property
    def files(self) -> dict[str, Path]:
        """Role -> absolute path of the model files (``model``, ``weights``, ...)."""
        return {role: self.root / rel for role, rel in self.manifest["files"].items()}

    @property
    def inputs(self) -> tuple[str, ...]:
        """The model's input names: :data:`INPUTS_V1` or :data:`INPUTS_V2`."""
        return input_names(self.manifest, f"bundle {self.source}")

    @property
    def stats_encoding(self) -> dict | None:
        """The manifest ``stats_encoding`` (None: the model takes raw statistics)."""
        return self.manifest.get("stats_encoding")

    @property
    def fixed_shape(self) -> tuple[int, int] | None:
        shape = self.manifest["fixed_shape"]
        return None if shape is None else (int(shape[0]), int(shape[1]))


def validate_manifest(manifest: Any, where: str) -> None:
    """Check the keys and values the runtime relies on; UserError naming ``where`` otherwise."""
    if not isinstance(manifest, dict):
        raise UserError(f"{where}: manifest.json must hold a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise UserError(f"{where}: manifest.json lacks {', '.join(missing)}")
    if manifest["schema"] != SCHEMA:
        raise UserError(f"{where}: manifest schema {manifest['schema']!r} is not supported (this edgefusion reads schema {SCHEMA})")
    for key, options in (("backend", BACKENDS), ("precision", PRECISIONS), ("layout", LAYOUTS), ("io_dtype", IO_DTYPES)):
        if manifest[key] not in options:
            raise UserError(f"{where}: unknown {key} {manifest[key]!r} (known: {', '.join(options)})")
    files = manifest["files"]
    if not isinstance(files, dict) or "model" not in files or not all(isinstance(v, str) for v in files.values()):
        raise UserError(f"{where}: manifest 'files' must map roles (at least 'model') to relative paths")
    hashes = manifest["sha256"]
    if not isinstance(hashes, dict) or not all(isinstance(v, str) for v in hashes.values()):
        raise UserError(f"{where}: manifest 'sha256' must map file names to hex digests")
    for rel in list(files.values()) + list(hashes):
        _safe_relative(rel, where)
    unhashed = sorted(set(files.values()) - set(hashes))
    if unhashed:
        raise UserError(f"{where}: model file {unhashed[0]} has no SHA-256 in the manifest")
    if manifest["io_dtype"] != "float32" and not isinstance(manifest.get("io_quantization"), dict):
        raise UserError(f"{where}: integer I/O ({manifest['io_dtype']}) needs 'io_quantization' scales and zero points")
    fixed = manifest["fixed_shape"]
    if fixed is not None and not (isinstance(fixed, list) and len(fixed) == 2 and all(isinstance(v, int) and v > 0 for v in fixed)):
        raise UserError(f"{where}: fixed_shape must be [H, W] or null, got {fixed!r}")
    if not isinstance(manifest["stride"], int) or manifest["stride"] < 1:
        raise UserError(f"{where}: stride must be a positive integer")
    stats_scale(manifest.get("stats_encoding"), where, takes_stats=input_names(manifest, where) == INPUTS_V2)


def input_names(manifest: Mapping[str, Any], where: str) -> tuple[str, ...]:
    """The names in the manifest's ``inputs`` (``{name, ...}`` entries or bare names; absent: v1).

    UserError unless they are exactly :data:`INPUTS_V1` or :data:`INPUTS_V2`, in that order.
    """
    entries = manifest.get("inputs")
    if entries is None:
        return INPUTS_V1
    names = None
    if isinstance(entries, list):
        names = tuple(e.get("name") if isinstance(e, dict) else e for e in entries)
    if names not in (INPUTS_V1, INPUTS_V2):
        raise UserError(f"{where}: manifest 'inputs' must name {list(INPUTS_V1)} or {list(INPUTS_V2)}, got {json.dumps(entries)[:120]}")
    return names


def _safe_relative(rel: str, where: str) -> PurePosixPath:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts or rel == MANIFEST:
        raise UserError(f"{where}: manifest names an unsafe file path {rel!r}")
    return path


def write_bundle(
    out: str | os.PathLike,
    files: Mapping[str, str | os.PathLike],
    manifest: Mapping[str, Any],
    extra: Mapping[str, str | os.PathLike] | None = None,
    as_zip: bool = False,
    derive: Callable[[dict[str, Any], dict[str, bytes]], Mapping[str, bytes]] | None = None,
) -> Path:
    """Write a bundle atomically and return its path.

    ``files`` maps roles to source files (copied under their own names);
    ``extra`` maps further relative names to source files.
    ``manifest`` holds every key but ``files``, ``sha256`` and the seal
    ``manifest_sha256``, which are filled in here (a stale seal is replaced). ``derive(manifest, {name: bytes})`` may add files computed from
    the finished bundle (e.g. the bundle as C arrays, which embed the manifest
    and so cannot be hashed by it before they exist): they are written and
    hashed last. ``out`` is a folder, or with ``as_zip`` a ``.zip`` file (suffix
    added when missing). An existing bundle at ``out`` is replaced; any other
    existing file or non-empty folder is refused.
    """
    out = check_bundle_output(out, as_zip)
    with os_errors_named(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = temp_beside(out, folder=True)
    mode = _default_mode()
    try:
        with os_errors_named(out):
            os.chmod(staging, mode)
            layout: dict[str, str] = {}
            for role, src in files.items():
                layout[role] = Path(src).name
            names = list(layout.values()) + list((extra or {}).keys())
            if len(set(names)) != len(names):
                raise UserError(f"bundle file names collide: {names}")
            for rel, src in list(zip(layout.values(), files.values())) + list((extra or {}).items()):
                dest = staging / _safe_relative(rel, "bundle")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
            full = dict(manifest)
            full["files"] = layout
            full["sha256"] = {rel: sha256_file(staging / rel) for rel in sorted(names)}
            full.setdefault("schema", SCHEMA)
            validate_manifest(full, "bundle")
            if derive is not None:
                derived = derive(dict(full), {rel: (staging / rel).read_bytes() for rel in names})
                for rel, data in derived.items():
                    if rel in names:
                        raise UserError(f"bundle file names collide: {rel}")
                    (staging / _safe_relative(rel, "bundle")).write_bytes(data)
                    full["sha256"][rel] = hashlib.sha256(data).hexdigest()
                names += list(derived)
            (staging / MANIFEST).write_bytes(sealed_manifest_text(full))
            if as_zip:
                with atomic_path(out) as tmp:
                    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                        for rel in [MANIFEST, *sorted(names)]:
                            archive.write(staging / rel, rel)
            else:
                replace_folder(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out


def _default_mode() -> int:
    """Folder mode 0o777 minus the process umask (temporary folders are created 0o700)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def check_bundle_output(out: str | os.PathLike, as_zip: bool = False) -> Path:
    """The path a bundle will take (``.zip`` added for ``as_zip``); UserError unless it can be written there.

    Accepted: a new path, or an old bundle (replaced). Called by :func:`write_bundle`
    and, before any long work, by the commands that build bundles.
    """
    out = Path(out)
    if as_zip and out.suffix.lower() != ".zip":
        out = out.with_name(out.name + ".zip")
    check_output_path(out, "bundle", "file" if as_zip else "folder")
    if out.is_dir():
        if any(out.iterdir()) and not (out / MANIFEST).is_file():
            raise UserError(f"{out} exists and is not a bundle; refusing to replace it")
    elif out.exists() and not (out.suffix.lower() == ".zip" and zipfile.is_zipfile(out)):
        raise UserError(f"{out} exists and is not a bundle; refusing to replace it")
    return out


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Open and verify a bundle folder or ``.zip``; UserError on any problem."""
    path = Path(path)
    if path.is_dir():
        return _load_dir(path, path)
    if path.is_file() and zipfile.is_zipfile(path):
        return _load_zip(path)
    if not path.exists():
        raise UserError(f"bundle not found: {path}")
    raise UserError(f"{path} is not a bundle (expected a folder with {MANIFEST} or a .zip)")


def _read_manifest(text: bytes, where: str) -> dict[str, Any]:
    try:
        manifest = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{where}: manifest.json is not valid JSON ({exc})") from None
    validate_manifest(manifest, where)
    check_seal(text, manifest, where)
    return manifest


def _load_dir(root: Path, source: Path) -> Bundle:
    where = f"bundle {source}"
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise UserError(f"{where}: no {MANIFEST}")
    manifest = _read_manifest(manifest_path.read_bytes(), where)
    present = {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != MANIFEST and not any(part.startswith(".") for part in p.relative_to(root).parts)
    }
    unknown = sorted(present - set(manifest["sha256"]))
    if unknown:
        raise UserError(f"{where}: file {unknown[0]} is not listed in the manifest (tampered bundle?)")
    for rel, expected in manifest["sha256"].items():
        file = root / rel
        if not file.is_file():
            raise UserError(f"{where}: missing file {rel}")
        if sha256_file(file) != expected:
            raise UserError(f"{where}: SHA-256 mismatch for {rel} (file changed after the bundle was written)")
    return Bundle(root=root, manifest=manifest, source=source)


def _load_zip(path: Path) -> Bundle:
    where = f"bundle {path}"
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            if MANIFEST not in names:
                raise UserError(f"{where}: no {MANIFEST} in the archive")
            text = archive.read(MANIFEST)
            manifest = _read_manifest(text, where)
            unknown = sorted(set(names) - set(manifest["sha256"]) - {MANIFEST})
            if unknown:
                raise UserError(f"{where}: file {unknown[0]} is not listed in the manifest (tampered bundle?)")
            root = new_work_folder("edgefusion-bundle-")  # removed when the Bundle is; a killed process's by the next one
            try:
                for rel, expected in manifest["sha256"].items():
                    if rel not in names:
                        raise UserError(f"{where}: missing file {rel}")
                    data = archive.read(rel)
                    if hashlib.sha256(data).hexdigest() != expected:
                        raise UserError(f"{where}: SHA-256 mismatch for {rel} (file changed after the bundle was written)")
                    dest = root / _safe_relative(rel, where)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(data)
                (root / MANIFEST).write_bytes(text)
            except BaseException:
                shutil.rmtree(root, ignore_errors=True)
                raise
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{where}: cannot read the archive ({exc})") from None
    bundle = Bundle(root=root, manifest=manifest, source=path)
    bundle._cleanup = weakref.finalize(bundle, shutil.rmtree, str(root), True)
    return bundle
