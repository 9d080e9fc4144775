"""Progress bars that are optional: tqdm when it is installed, a silent stand-in otherwise.

The base install (numpy + Pillow) has no tqdm; long loops still run there,
silently. Bars go to stderr and, by default (tqdm's ``disable=None``), show
only when stderr is a terminal, so logs and pipes stay clean.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def progress(iterable: Iterable[T], *, enabled: bool = True, **kw) -> Iterable[T]:
    """``iterable`` wrapped in a tqdm bar (``kw``: tqdm options such as ``desc``, ``unit``, ``total``).

    ``enabled=False`` never shows a bar; without tqdm the items are yielded plainly.
    """
    try:
        from tqdm import tqdm
    except ImportError:
        return iter(iterable)
    kw.setdefault("file", sys.stderr)
    kw.setdefault("disable", None if enabled else True)
    return tqdm(iterable, **kw)


class _SilentBar:
    """What :func:`progress_bar` returns without tqdm: accepts a bar's calls and shows nothing."""

    def __enter__(self) -> _SilentBar:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(*, total: int | None = None, enabled: bool = True, **kw):
    """A manually advanced bar (``update``, ``set_postfix_str``, ``close``; a context manager).

    Same conventions as :func:`progress`: tqdm on stderr when installed, else silent.
    """
    try:
        from tqdm import tqdm
    except ImportError:
        return _SilentBar()
    kw.setdefault("file", sys.stderr)
    kw.setdefault("disable", None if enabled else True)
    return tqdm(total=total, **kw)
