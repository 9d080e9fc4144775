"""Atomic file output: write to a temporary file beside the target, then rename.

A crash or an error never leaves a half-written file under the final name.
Temporary names carry the writer's process id (``.NAME.<pid>-XXXXXXXX.tmp.SUFFIX``
beside the target, ``<prefix><pid>-XXXXXXXX`` for work folders): a process
killed with SIGKILL cannot clean up, so the next writer of the same target
(or the next work folder of the same prefix) removes leftovers whose process
is gone. An ``OSError`` while writing (disk full, permissions, a file where a
folder belongs) becomes a one-line :class:`~edgefusion.errors.UserError`
naming the final path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from edgefusion.errors import UserError, describe_os_error, os_errors_named
from edgefusion.io.outputs import refuse_special

_RANDOM = r"[a-z0-9_]{8}"  # what tempfile puts between prefix and suffix


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (always True off POSIX, where probing could kill it)."""
    if os.name != "posix" or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists but belongs to someone else
        return True
    return True


def remove_stale(folder: Path, prefix: str, suffix: str = "") -> list[Path]:
    """Remove ``<prefix><pid>-XXXXXXXX<suffix>`` files/folders in ``folder`` whose process is dead; the removed paths."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)-" + _RANDOM + re.escape(suffix) + "$")
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or pid_alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
        removed.append(entry)
    return removed


def temp_beside(target: Path, suffix: str = ".tmp", folder: bool = False) -> Path:
    """A new hidden temporary file (or folder) beside ``target``, after removing dead writers' leftovers."""
    prefix = f".{target.name if folder else target.stem}."
    remove_stale(target.parent, prefix, suffix)
    tagged = f"{prefix}{os.getpid()}-"
    if folder:
        return Path(tempfile.mkdtemp(prefix=tagged, suffix=suffix, dir=target.parent))
    fd, tmp = tempfile.mkstemp(prefix=tagged, suffix=suffix, dir=target.parent)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    The temporary file keeps the target's suffix so that writers that pick a
    format from the suffix (Pillow, torch, json) behave the same. An
    ``OSError`` about the temporary file (or naming no file: a failed write)
    becomes a UserError naming ``path``. An existing device, FIFO or socket
    at ``path`` is refused (the rename would replace it).
    """
    target = Path(path)
    refuse_special(target, "output")
    with os_errors_named(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = temp_beside(target, f".tmp{target.suffix}")
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_current_umask())
        os.replace(tmp_path, target)
    except OSError as exc:
        if not about_output(exc, tmp_path, target):
            raise  # about another file (an input read inside the block)
        raise UserError(describe_os_error(exc, target, "cannot write")) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


#: Errors of a full destination: a copy (shutil) names its source in ``filename``, the destination in ``filename2``.
_DESTINATION_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def about_output(exc: OSError, *paths: Path) -> bool:
    """Whether ``exc``, raised while writing the output at ``paths``, is about it: a failed write (no file
    named), a file at or inside one of ``paths``, or the destination of a copy that found it full."""
    if exc.filename is None:
        return True
    named = [exc.filename] + ([exc.filename2] if exc.errno in _DESTINATION_FULL and exc.filename2 is not None else [])
    return any(f == p or p in f.parents for f in map(Path, named) for p in paths)


def _current_umask() -> int:
    """The process umask (mkstemp creates 0600 files; outputs should get the usual 0644)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def staged_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden staging folder beside ``folder``; on success move its files into ``folder``.

    For commands that write many files: on an error nothing reaches
    ``folder`` (the staging folder is removed), so a failed run leaves no
    partial output. Existing files in ``folder`` with the same names are replaced.
    """
    target = Path(folder)
    with os_errors_named(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        stage = temp_beside(target, folder=True)
    try:
        try:
            yield stage
        except UserError as exc:  # name the output folder, not the hidden staging folder
            raise type(exc)(str(exc).replace(str(stage), str(target))) from None
        except OSError as exc:
            if not about_output(exc, stage):
                raise
            raise UserError(describe_os_error(exc, target, "cannot write")) from None
        with os_errors_named(target):
            target.mkdir(exist_ok=True)
            for item in sorted(stage.iterdir()):
                os.replace(item, target / item.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def new_work_folder(prefix: str) -> Path:
    """Create ``<prefix><pid>-XXXXXXXX`` in the system temp folder, first removing those of dead processes."""
    base = Path(tempfile.gettempdir())
    remove_stale(base, prefix)
    with os_errors_named(base, "cannot create a work folder in"):
        return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=base))


@contextlib.contextmanager
def work_folder(prefix: str) -> Iterator[Path]:
    """A private work folder ``<prefix><pid>-XXXXXXXX`` in the system temp folder, removed afterwards.

    Folders of the same prefix left by killed processes are removed first. An
    ``OSError`` about a file in it (or naming no file) becomes a UserError that
    names the folder and points at ``TMPDIR``.
    """
    work = new_work_folder(prefix)
    try:
        yield work
    except OSError as exc:
        if exc.filename is not None and work not in (Path(exc.filename), *Path(exc.filename).parents):
            raise
        raise UserError(describe_os_error(exc, work, "cannot write work folder") + " (set TMPDIR to a folder with space)") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def replace_folder(staging: Path, out: Path) -> None:
    """Rename the finished folder ``staging`` onto ``out``; an old ``out`` is moved aside first and removed after."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old.{os.getpid()}")
        os.replace(out, old)
    try:
        os.replace(staging, out)
    except OSError:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
