"""Output paths checked before a command starts its work (long runs must not fail at the end).

:func:`check_output_path` refuses, as a one-line UserError: a folder where a
file goes, a file where a folder goes, an existing path that is neither a
regular file nor a folder (a device, FIFO or socket: an atomic rename would
replace it), a path under a regular file, and a path whose nearest existing
folder is not writable. Nothing is created. :func:`check_not_input` refuses
an output that is one of the command's inputs.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from edgefusion.errors import UserError

KINDS = ("file", "folder")
_SPECIAL = ((stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def special_file(path: str | os.PathLike) -> str | None:
    """What ``path`` is ("a device", "a FIFO", "a socket") when it exists but is neither a regular file nor a folder."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return next((name for test, name in _SPECIAL if test(mode)), None)


def refuse_special(path: str | os.PathLike, what: str) -> None:
    """UserError when the existing ``path`` is a device, FIFO or socket (``what``: e.g. "JSON output")."""
    kind = special_file(path)
    if kind is not None:
        raise UserError(f"{what} {os.fspath(path)} is not a regular file ({kind})")


def check_output_path(path: str | os.PathLike | None, what: str, kind: str = "file") -> None:
    """UserError when ``path`` cannot become an output ``kind`` ("file" or "folder"); None is accepted."""
    if path is None:
        return
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    path = Path(path)
    refuse_special(path, f"{what} output")
    if kind == "file" and path.is_dir():
        raise UserError(f"{what} output {path} is a folder, expected a file path")
    if kind == "folder" and path.exists() and not path.is_dir():
        raise UserError(f"{what} output {path} is a file, expected a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{what} output {path}: permission denied (not writable)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{what} output {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UserError(f"{what} output {path}: cannot create anything in {parent} (permission denied)")
            return


def check_not_input(path: str | os.PathLike, inputs: dict[str, str | os.PathLike], what: str) -> None:
    """UserError when the output ``path`` is one of ``inputs`` (``{"IR": path, ...}``), also through a symlink."""
    for name, source in inputs.items():
        try:
            same = os.path.samefile(path, source)
        except (OSError, ValueError):
            continue  # either does not exist: nothing to overwrite
        if same:
            raise UserError(f"{what} output {os.fspath(path)} is the {name} input {os.fspath(source)}; it would be overwritten")


def check_output_file(path: str | os.PathLike | None, what: str) -> None:
    """:func:`check_output_path` for a file."""
    check_output_path(path, what, "file")


def check_output_folder(path: str | os.PathLike | None, what: str) -> None:
    """:func:`check_output_path` for a folder."""
    check_output_path(path, what, "folder")
