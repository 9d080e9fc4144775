"""Shared test fixtures.

Kept free of torch imports at module level: ``OMP_NUM_THREADS=1`` is set before
anything imports torch (the machine's cores are shared), and an autouse
fixture pins torch to one thread whenever a test has torch loaded.

Hypothesis runs every test under the ``edgefusion`` profile: no per-example
deadline and no health check that depends on machine speed or on the size of
generated data, so a busy machine cannot fail a test (tests set only
``max_examples`` themselves). ``HYPOTHESIS_PROFILE`` picks another profile.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("OMP_NUM_THREADS", "1")

settings.register_profile(
    "edgefusion",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "edgefusion"))

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
