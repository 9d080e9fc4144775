"""The "cold" protocol of the frame-path benchmarks: buffers that are not in the CPU cache.

Every speed ratio of the frame path is measured twice:

* **hot**: the same input and output buffers every run. At 1920x1080 the floor's three
  float32 frames (25 MB) and the frame path's buffers stay in a 32 MiB L3, so this is
  the speed of the cache, not of memory.
* **cold**: the runs cycle through ``K`` buffer sets (inputs and outputs) whose total is
  at least twice the last-level cache (:func:`sets_for`), so every run reads frames that
  were evicted since their last use. A frame from a camera, DMA engine or video decoder
  arrives in DRAM, not in L3: this is the protocol of the issue's 1.15 ms floor "on a
  quiet 2-core machine". The floor is measured the same way (:func:`floor_ms`).

Buffers the frame path owns (padded planes, scratch) are not rotated: a runtime reuses
its own, as firmware would. The C programs take ``K`` as an option (``--frames K``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

#: Bytes of the caller's buffers per pixel of the frame path: uint8 IR, RGB visible, RGB output.
IO_BYTES_PER_PIXEL = 7
#: Last-level cache assumed when neither sysfs nor sysconf says (this project's build CPU).
FALLBACK_L3 = 32 * 2**20


def l3_bytes(sysfs: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> int:
    """Size of the level-3 (else the largest) cache in bytes: sysfs, then ``os.sysconf``, then 32 MiB."""
    sizes = {}
    for index in sorted(sysfs.glob("index*")):
        try:
            level = int((index / "level").read_text())
            text = (index / "size").read_text().strip().upper()
        except (OSError, ValueError):
            continue
        unit = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes[level] = max(sizes.get(level, 0), int(digits) * unit)
    if sizes:
        return sizes.get(3, max(sizes.values()))
    try:
        value = os.sysconf("SC_LEVEL3_CACHE_SIZE")
    except (ValueError, OSError, AttributeError):
        value = 0
    return value if value > 0 else FALLBACK_L3


def sets_for(set_bytes: int, cache: int | None = None) -> int:
    """K: the fewest buffer sets of ``set_bytes`` whose total is >= 2x the cache (at least 2)."""
    cache = l3_bytes() if cache is None else cache
    return max(2, -(-2 * cache // max(1, set_bytes)))


def rotating(make: Callable[[int], Sequence[np.ndarray]], cache: int | None = None) -> list[tuple[np.ndarray, ...]]:
    """Distinct buffer sets for the cold protocol: ``make(i)`` builds set ``i`` (a tuple of arrays,
    each set its own memory); as many sets as :func:`sets_for` asks for the size of set 0."""
    first = tuple(make(0))
    k = sets_for(sum(a.nbytes for a in first), cache)
    return [first, *(tuple(make(i)) for i in range(1, k))]


def cycle(sets: Sequence[tuple]):
    """A callable returning the next set on each call (round robin)."""
    state = {"i": -1}

    def next_set() -> tuple:
        state["i"] = (state["i"] + 1) % len(sets)
        return sets[state["i"]]

    return next_set


def median_ms(fn: Callable[[], object], runs: int, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def floor_ms(width: int, height: int, runs: int, cold: bool = False) -> float:
    """The memory floor: median time of ``np.maximum(a, b, out=c)`` over two float32 frames.

    Hot: the same (a, b, c) every run. Cold: (a, b, c) rotate through :func:`rotating` sets.
    """
    def make(i: int) -> tuple[np.ndarray, ...]:
        rng = np.random.default_rng(i)
        a, b = rng.random((height, width), dtype=np.float32), rng.random((height, width), dtype=np.float32)
        return a, b, np.empty_like(a)

    sets = rotating(make) if cold else [make(0)]
    following = cycle(sets)

    def one() -> None:
        a, b, c = following()
        np.maximum(a, b, out=c)

    return median_ms(one, max(runs, 50), warmup=max(5, len(sets)))


def floors(width: int, height: int, runs: int) -> dict[str, float]:
    """``{"hot": ms, "cold": ms}`` of :func:`floor_ms`."""
    return {"hot": floor_ms(width, height, runs), "cold": floor_ms(width, height, runs, cold=True)}


def ratios(hot_ms: float, cold_ms: float, floor: dict[str, float]) -> dict[str, float]:
    """``x_floor_hot`` and ``x_floor_cold``: each protocol's time over the same protocol's floor."""
    return {"x_floor_hot": hot_ms / floor["hot"], "x_floor_cold": cold_ms / floor["cold"]}
