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
LD_LITE = SHARED_DATA.parents[1] / "models" / "ld-lite"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data/ivif`` beside the checkout; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared IR/visible data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tno_corners(tmp_path_factory) -> Path:
    """Two small real pairs in ``ir/`` + ``vi/``: the 48x64 top-left corners of the shipped samples tno_07 and tno_19."""
    from edgefusion.io.images import read_image, write_image
    from edgefusion.resources import SAMPLES

    root = tmp_path_factory.mktemp("tno-corners")
    for name in ("tno_07", "tno_19"):
        for sub in ("ir", "vi"):
            write_image(root / sub / f"{name}.png", read_image(SAMPLES / sub / f"{name}.png")[:48, :64])
    return root


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


@pytest.fixture(scope="session")
def ld_lite_dir() -> Path:
    """``../shared/models/ld-lite`` (the authors' final.pt, pairs, reference outputs); skips the test when absent."""
    if not (LD_LITE / "final.pt").is_file():
        pytest.skip(f"LD-Lite weights not found at {LD_LITE} (../shared/models/ld-lite)")
    return LD_LITE


@pytest.fixture(scope="session")
def imported(ld_lite_dir, tmp_path_factory) -> Path:
    """The authors' LD-Lite weights as an edgefusion checkpoint (``edgefusion import ld-lite``), once per session."""
    from edgefusion.cli import main

    out = tmp_path_factory.mktemp("ld") / "teacher-ld.pt"
    assert main(["import", "ld-lite", str(ld_lite_dir / "final.pt"), "--out", str(out)]) == 0
    return out


# --- quantized bundles of a small test student, built once per session (tests/quantize_bundles.py) ---------------


@pytest.fixture(scope="session")
def student(tmp_path_factory) -> tuple[Path, object]:
    """(checkpoint path, model) of a perturbed random-init student (test modules may define their own)."""
    from runtime_models import perturbed_student

    path = tmp_path_factory.mktemp("ckpt") / "student.pt"
    return path, perturbed_student(path, seed=0, metadata={"stage": "test", "language_objective_meaningful": False})


@pytest.fixture(scope="session")
def splits(tmp_path_factory) -> tuple[Path, Path]:
    """(calib, val) folders: two package sample pairs each."""
    from quantize_bundles import make_splits

    from edgefusion.resources import SAMPLES

    return make_splits(tmp_path_factory.mktemp("pairs"), SAMPLES)


@pytest.fixture(scope="session")
def prebuild_process(tmp_path_factory, student, splits):
    """The subprocess that quantizes ``quantize_bundles.PREBUILT`` (started once; killed if the session ends first)."""
    from quantize_bundles import start_prebuild

    process, outs, err = start_prebuild(student[0], splits, tmp_path_factory.mktemp("prebuilt"))
    yield process, outs, err
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="session", autouse=True)
def _prebuild_in_background(request):
    """Start the prebuild at the session's first test when any collected test needs it, so it overlaps other tests."""
    if any("prebuilt" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("prebuild_process")


@pytest.fixture(scope="session")
def prebuilt(prebuild_process):
    """(bundles of ``quantize_bundles.PREBUILT`` by (target, shape), stderr of the one subprocess that built them)."""
    from quantize_bundles import finish_prebuild

    process, outs, err = prebuild_process
    return outs, finish_prebuild(process, err)


@pytest.fixture(scope="session")
def built(tmp_path_factory, student, splits, prebuilt):
    """``built(target, shape=SHAPE, model=student)``: the bundle of a built-in target, quantized once per session."""
    from quantize_bundles import SHAPE, quantize_cli

    cache: dict[tuple[str, str, str], Path] = {(target, shape, str(student[0])): out for (target, shape), out in prebuilt[0].items()}

    def build(target: str, shape: str = SHAPE, model=student) -> Path:
        key = (target, shape, str(model[0]))
        if key not in cache:
            out = tmp_path_factory.mktemp("bundles") / target.replace(":", "_")
            assert quantize_cli(model[0], splits, out, target, "--shape", shape) == 0
            cache[key] = out
        return cache[key]

    return build


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
