"""On-device latency budgets of every built-in target and variant (``pytest -m device``).

Each target (and variant: its own size and budget, from ``targets/*.toml``)
is measured only where :func:`edgefusion.bench.check_plan` says this machine
is that target (``EDGEFUSION_ON_DEVICE``, or the host is the target's
platform: x86/onnx on x86-64 Linux); elsewhere the test is skipped with the
reason. The bundle is ``EDGEFUSION_BUNDLE`` when its manifest names the
target, otherwise the shipped student quantized for the target here (needs
the training stack). The session ends with a table of what was measured
against which budget (conftest.py). Device tests are opt-in: a plain
``pytest`` run skips them, since their verdict depends on the machine's speed.

    EDGEFUSION_ON_DEVICE=jetson EDGEFUSION_BUNDLE=jetson-bundle pytest -m device tests/test_device_budgets.py
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from edgefusion import bench
from edgefusion.targets import builtin_names, load_target

RUNS, WARMUP = 100, 10


def all_target_specs() -> list[str]:
    """Every built-in target name and ``name:variant``."""
    specs = []
    for name in builtin_names():
        specs.append(name)
        specs.extend(f"{name}:{variant}" for variant in load_target(name).variants)
    return specs


def test_every_builtin_target_and_variant_is_covered():
    specs = all_target_specs()
    assert {"x86", "arm", "onnx", "jetson", "jetson:480p", "arm:720p"} <= set(specs)
    assert len(specs) == len(set(specs))


def _bundle_for(target, folder: Path) -> str:
    given = os.environ.get("EDGEFUSION_BUNDLE")
    if given:
        manifest = Path(given) / "manifest.json"
        if manifest.is_file() and json.loads(manifest.read_text()).get("target") == target.name:
            return given
    if importlib.util.find_spec("torch") is None:
        pytest.skip(f"no bundle for {target.name}: set EDGEFUSION_BUNDLE to a bundle built for it (or install the training stack)")
    from edgefusion.quantize.pipeline import run_quantize

    path, _ = run_quantize(target, folder / "bundle", log=lambda text: None)
    return str(path)


@pytest.mark.device
@pytest.mark.parametrize("spec", all_target_specs())
def test_latency_within_the_targets_budget(spec, latency_rows, tmp_path):
    target = load_target(spec)
    height, width = target.latency_shape
    row = {"target": target.name, "size": f"{width}x{height}", "budget_ms": target.latency_p90_ms, "p90_ms": None}
    plan = bench.check_plan(target.name)
    if not plan.measure:
        latency_rows.append({**row, "note": plan.reason})
        pytest.skip(plan.reason)
    result = bench.bench_bundle(_bundle_for(target, tmp_path), [(width, height)], RUNS, WARMUP).sizes[0]
    latency_rows.append({**row, "p90_ms": result.p90_ms, "note": plan.reason})
    ok, line = bench.budget_verdict(target, result)
    assert ok, line
