"""The README's main job (``edgefusion demo``) end to end, and its HTML report in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("torch", reason="the demo fuses with the shipped PyTorch student")
pytest.importorskip("openvino", reason="the demo builds OpenVINO bundles")
pytest.importorskip("nncf", reason="the demo quantizes with NNCF")

from edgefusion.cli import main  # noqa: E402
from edgefusion.io.images import read_image  # noqa: E402
from edgefusion.io.pairs import find_pairs  # noqa: E402
from edgefusion.resources import SAMPLES  # noqa: E402

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    assert main(["demo", "--out", str(out), "--runs", "2"]) == 0
    return out


def test_demo_writes_fused_samples_bundles_and_report(demo_dir):
    names = [p.name for p in find_pairs(SAMPLES)]
    for name in names:
        fused = read_image(demo_dir / "fused" / f"{name}.png")
        assert fused.shape == read_image(SAMPLES / "ir" / f"{name}.png").shape
    for bundle in ("x86-int8", "x86-fp32"):
        manifest = json.loads((demo_dir / "bundles" / bundle / "manifest.json").read_text())
        assert manifest["backend"] == "openvino"
    summary = json.loads((demo_dir / "summary.json").read_text())
    methods = [row["method"] for row in summary["metrics"]]
    assert any("x86-int8" in m for m in methods) and any("laplacian" in m for m in methods)
    # INT8 stays close to FP32 on every metric (the x86 gate allows at most a few percent)
    rows = {row["method"]: row for row in summary["metrics"]}
    fp32, int8 = rows["x86-fp32 bundle"], rows["x86-int8 bundle"]
    for metric in ("EN", "SD", "VIF", "Qabf"):
        assert abs(int8[metric] - fp32[metric]) <= 0.03 * abs(fp32[metric])
    sizes = {(s["width"], s["height"]) for r in summary["latency"] for s in r["sizes"]}
    assert sizes == {(640, 480), (1920, 1080)}
    html = (demo_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= len(names) + 1  # the strips and the latency plot
    assert (demo_dir / "latency.png").stat().st_size > 1000


def test_report_renders_in_headless_chromium(demo_dir, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    shot = tmp_path / "report.png"
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1800",
                    f"--screenshot={shot}", (demo_dir / "report.html").as_uri()],
                   check=True, timeout=120, capture_output=True)
    page = read_image(shot)
    # a rendered page has the white background plus dark text, table rules and images, not a blank canvas
    gray = page.mean(axis=2) if page.ndim == 3 else page
    assert (gray > 240).mean() > 0.3
    assert (gray < 100).mean() > 0.01
    assert np.unique(page.reshape(-1, page.shape[-1]) if page.ndim == 3 else page, axis=0).shape[0] > 50
