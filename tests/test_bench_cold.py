"""``benchmarks/cold.py``: the cache-cold buffer rotation of the frame-path benchmarks (no timing asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import cold  # noqa: E402


def test_sets_cover_twice_the_cache_with_the_fewest_sets():
    assert cold.sets_for(10, cache=100) == 20
    assert cold.sets_for(30, cache=100) == 7  # 6 sets hold 180 bytes < 200
    assert cold.sets_for(10**9, cache=100) == 2  # never fewer than two sets to rotate


def test_rotating_sets_are_distinct_memory_and_cover_the_requested_bytes():
    calls = []

    def make(i):
        calls.append(i)
        return np.full((4, 8), i, np.float32), np.zeros(16, np.uint8)

    sets = cold.rotating(make, cache=1000)  # 144 bytes a set: 14 sets >= 2000 bytes
    assert calls == list(range(14)) and len(sets) == 14
    assert sum(a.nbytes for s in sets for a in s) >= 2 * 1000
    arrays = [a for s in sets for a in s]
    assert not any(np.shares_memory(a, b) for i, a in enumerate(arrays) for b in arrays[i + 1:])


def test_cycle_visits_every_set_in_turn():
    following = cold.cycle(["a", "b", "c"])
    assert [following() for _ in range(7)] == ["a", "b", "c", "a", "b", "c", "a"]


def test_rotated_run_gives_the_hot_runs_results():
    """The cold protocol changes where the data lives, not what is computed: same inputs, same outputs."""
    rng = np.random.default_rng(1)
    a, b = rng.random((6, 5), dtype=np.float32), rng.random((6, 5), dtype=np.float32)
    hot = np.maximum(a, b)
    sets = cold.rotating(lambda i: (a.copy(), b.copy(), np.empty_like(a)), cache=200)
    following = cold.cycle(sets)
    for _ in range(2 * len(sets)):
        x, y, out = following()
        np.maximum(x, y, out=out)
    assert all(np.array_equal(out, hot) for _, _, out in sets)


def test_l3_size_from_sysfs_else_the_fallback(tmp_path, monkeypatch):
    for index, (level, size) in enumerate([(1, "48K"), (2, "1024K"), (3, "32768K"), (3, "16M")]):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        (folder / "level").write_text(f"{level}\n")
        (folder / "size").write_text(f"{size}\n")
    assert cold.l3_bytes(tmp_path) == 32 * 2**20  # the largest level-3 entry
    monkeypatch.setattr(cold.os, "sysconf", lambda name: 0)  # nothing known: the 32 MiB fallback
    assert cold.l3_bytes(tmp_path / "missing") == cold.FALLBACK_L3


def test_ratios_use_the_floor_of_the_same_protocol():
    assert cold.ratios(3.0, 8.0, {"hot": 0.5, "cold": 2.0}) == {"x_floor_hot": 6.0, "x_floor_cold": 4.0}
