"""Errors that the command line reports as one line on stderr.

Every problem caused by the user's input (files, folders, recipes, bundles,
missing weights) raises :class:`UserError`; the CLI prints ``edgefusion: <message>``
and exits with :attr:`UserError.exit_code` (2), without a traceback.

An ``OSError`` (disk full, permission denied, a file where a folder is
needed, ...) is the environment's fault, not a bug: :func:`describe_os_error`
turns it into that one line, naming the path and the system's reason.
Writers that know the user-facing path wrap their work in
:func:`os_errors_named`; the CLI converts any other ``OSError`` the same way.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator


class UserError(Exception):
    """Bad input or environment; reported as one line, exit code 2."""

    exit_code = 2


class GateError(UserError):
    """An accuracy gate failed (INT8 model too far from FP32); exit code 3."""

    exit_code = 3


class BudgetError(UserError):
    """A latency check exceeded the target's budget; exit code 4."""

    exit_code = 4


class SkippedError(UserError):
    """A check measured nothing (e.g. not on the target device); exit code 5 unless skips are accepted."""

    exit_code = 5


def describe_os_error(exc: OSError, path: str | os.PathLike | None = None, action: str = "cannot access") -> str:
    """One line for ``exc``: ``<action> <path>: <reason>`` (``path`` defaults to the error's own filename)."""
    name = path if path is not None else exc.filename
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{action} {os.fspath(name)}: {reason}" if name is not None else f"{action}: {reason}"


@contextlib.contextmanager
def os_errors_named(path: str | os.PathLike, action: str = "cannot write") -> Iterator[None]:
    """Re-raise an ``OSError`` inside the block as a UserError naming ``path`` (e.g. the final output)."""
    try:
        yield
    except OSError as exc:
        raise UserError(describe_os_error(exc, path, action)) from None
