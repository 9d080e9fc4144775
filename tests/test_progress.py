"""edgefusion.progress: tqdm bars when tqdm is installed, plain iteration without it."""

from __future__ import annotations

import io
import sys

import pytest

from edgefusion.progress import progress, progress_bar


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


def test_manual_bar_without_tqdm_accepts_every_call_silently(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with progress_bar(total=4, desc="bench", unit="size") as bar:
        bar.set_postfix_str("a @ 64x48")
        bar.update(2)
    bar.close()
    assert capsys.readouterr() == ("", "")


def test_manual_bar_with_tqdm_counts_updates():
    tqdm = pytest.importorskip("tqdm")
    shown = io.StringIO()
    with progress_bar(total=4, desc="bench", unit="size", file=shown, disable=False) as bar:
        assert isinstance(bar, tqdm.tqdm)
        bar.set_postfix_str("b1")
        bar.update(4)
    assert "bench" in shown.getvalue() and "4/4" in shown.getvalue() and "b1" in shown.getvalue()
