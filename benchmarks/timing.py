"""Interleaved timing: several callables measured in one process, called in turn so that load changes on a
shared CPU hit them all alike (compare their rows, not runs made at different times)."""

from __future__ import annotations

import time
from typing import Callable


def interleaved_ms(cases: dict[str, Callable[[], object]], runs: int) -> dict[str, tuple[list[float], list[float]]]:
    """Per-call times of each case in ms, ``{name: (wall, cpu)}``: wall clock and the calling thread's CPU time.

    Every case is called once untimed (warm-up), then ``runs`` rounds call each case once, in ``cases`` order.
    """
    for run in cases.values():
        run()
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in cases}
    for _ in range(runs):
        for name, run in cases.items():
            wall, cpu = time.perf_counter(), time.thread_time()
            run()
            times[name][0].append(1e3 * (time.perf_counter() - wall))
            times[name][1].append(1e3 * (time.thread_time() - cpu))
    return times
