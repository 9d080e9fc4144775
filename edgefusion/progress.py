"""Progress bars that are optional: tqdm when it is installed, plain iteration otherwise.

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
