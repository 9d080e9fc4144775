"""``benchmarks/timing.py``: the interleaved timing loop, on a fake clock (no wall-clock asserts)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import timing  # noqa: E402


@pytest.fixture
def clock(monkeypatch):
    """A fake wall clock and thread CPU clock (seconds) that only the cases advance."""
    now = {"wall": 100.0, "cpu": 7.0}
    monkeypatch.setattr(timing.time, "perf_counter", lambda: now["wall"])
    monkeypatch.setattr(timing.time, "thread_time", lambda: now["cpu"])
    return now


def test_cases_are_warmed_up_once_then_called_in_turn(clock):
    calls = []
    times = timing.interleaved_ms({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, runs=3)
    assert calls == ["a", "b"] * 4
    assert list(times) == ["a", "b"]


def test_wall_and_cpu_times_of_each_call_in_ms(clock):
    def case(wall_s: float, cpu_s: float):
        def run() -> None:
            clock["wall"] += wall_s
            clock["cpu"] += cpu_s
        return run

    times = timing.interleaved_ms({"slow": case(0.005, 0.004), "fast": case(0.002, 0.0)}, runs=2)
    assert times["slow"] == (pytest.approx([5.0, 5.0]), pytest.approx([4.0, 4.0]))
    assert times["fast"] == (pytest.approx([2.0, 2.0]), [0.0, 0.0])
