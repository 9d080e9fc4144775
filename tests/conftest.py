"""Shared test fixtures.

Kept free of torch imports at module level: ``OMP_NUM_THREADS=1`` is set before
anything imports torch (the machine's cores are shared), and an autouse
fixture pins torch to one thread whenever a test has torch loaded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ivif"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data/ivif`` beside the checkout; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared IR/visible data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _torch_one_thread():
    """Run torch single-threaded in every test where torch is importable and loaded."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# --- on-device latency tests (marker ``device``): opt-in, with a summary table -----------------

def pytest_collection_modifyitems(config, items):
    """Skip ``device`` tests unless the run selects them (``-m device``): their verdict depends on the machine."""
    if "device" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="on-device latency check: run with pytest -m device (on the target)")
    for item in items:
        if "device" in item.keywords:
            item.add_marker(skip)


_LATENCY_ROWS: list[dict] = []


@pytest.fixture
def latency_rows() -> list[dict]:
    """Rows for :func:`edgefusion.bench.budget_summary`, printed at the end of the session."""
    return _LATENCY_ROWS


def pytest_terminal_summary(terminalreporter):
    if _LATENCY_ROWS:
        from edgefusion.bench import budget_summary

        terminalreporter.section("on-device latency budgets (p90 at each target's latency shape)")
        terminalreporter.write_line(budget_summary(_LATENCY_ROWS))
