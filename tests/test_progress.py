"""edgefusion.progress: tqdm bars when tqdm is installed, plain iteration without it."""

from __future__ import annotations

import io
import sys

import pytest

from edgefusion.progress import progress


def test_without_tqdm_items_pass_through_plainly(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `from tqdm import tqdm` raise ImportError
    bar = progress(["a", "b", "c"], desc="x", unit="pair")
    assert not hasattr(bar, "update")
    assert list(bar) == ["a", "b", "c"]


def test_with_tqdm_a_bar_that_can_be_switched_off():
    tqdm = pytest.importorskip("tqdm")
    shown = io.StringIO()
    bar = progress(range(3), desc="scoring", file=shown, disable=False)  # tqdm options pass through
    assert isinstance(bar, tqdm.tqdm)
    assert list(bar) == [0, 1, 2]
    assert "scoring" in shown.getvalue() and "3/3" in shown.getvalue()
    off = progress(range(2), enabled=False)
    assert off.disable is True and list(off) == [0, 1]
