"""``edgefusion bench``: statistics, JSON/plot outputs, budget checks (on-device ones marked ``device``)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from edgefusion import bench
from edgefusion.cli import main
from edgefusion.errors import BudgetError, SkippedError, UserError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed")

PROFILE = """
backend = "onnxruntime"
precision = "fp32"
shape = [48, 64]
[gate]
min_psnr_db = 30.0
[latency_budget]
shape = [36, 52]
p90_ms = {budget}
"""


@pytest.fixture(scope="module")
def max_bundle(tmp_path_factory):
    from runtime_models import make_bundle, max_float_onnx

    root = tmp_path_factory.mktemp("bench")
    return make_bundle(root / "maxb", max_float_onnx(root / "max.onnx"), stride=8)


def test_parse_sizes_is_width_by_height():
    assert bench.parse_sizes("640x480, 1920x1080") == [(640, 480), (1920, 1080)]
    for bad in ("640", "640x", "0x10", "axb", "640x480;1x1"):
        with pytest.raises(UserError, match="WIDTHxHEIGHT"):
            bench.parse_sizes(bad)


def test_statistics_are_ordered_and_consistent(max_bundle):
    result = bench.bench_bundle(max_bundle, [(52, 36), (17, 9)], runs=7, warmup=1, threads=1)
    assert [s.size for s in result.sizes] == ["52x36", "17x9"]
    for s in result.sizes:
        assert 0 < s.min_ms <= s.median_ms <= s.p90_ms <= s.p99_ms <= s.max_ms
        assert s.min_ms <= s.mean_ms <= s.max_ms
        assert s.fps == pytest.approx(1000.0 / s.median_ms)
        assert s.model_ms > 0 and s.overhead_ms >= 0 and s.compose_ms == 0
        assert s.init_ms > 0 and s.first_inference_ms > 0 and s.peak_rss_mb > 10
        assert s.runs == 7
    env = result.environment
    assert env["backend"] == "onnxruntime" and env["device"] == "CPUExecutionProvider" and env["threads"] == 1
    manifest = (Path(max_bundle) / "manifest.json").read_bytes()
    import hashlib

    assert env["bundle_sha256"] == hashlib.sha256(manifest).hexdigest()


def test_cli_writes_json_table_and_plot(max_bundle, tmp_path, capsys):
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    args = ["bench", "--model", str(max_bundle), "--compare", str(max_bundle), "--size", "40x24,24x16",
            "--runs", "3", "--warmup", "0", "--threads", "1", "--json", str(out_json)]
    if importlib.util.find_spec("matplotlib"):
        args += ["--plot", str(out_png)]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert table.count("40x24") == 2 and "pre/post" in table
    data = json.loads(out_json.read_text())
    assert len(data["results"]) == 2
    keys = {"init_ms", "first_inference_ms", "median_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms", "fps", "peak_rss_mb"}
    for entry in data["results"]:
        assert [s["size"] for s in entry["sizes"]] == ["40x24", "24x16"]
        assert all(keys <= set(s) for s in entry["sizes"])
        assert {"backend", "backend_version", "device", "threads", "cpu", "edgefusion_version", "bundle_sha256"} <= set(entry["environment"])
        assert entry["environment"]["frame_threads"] == 1  # a compose = model bundle
        assert entry["environment"]["frame_path"] in ("avx2", "portable", "numpy")
    if importlib.util.find_spec("matplotlib"):
        assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_environment_says_numpy_runs_the_frame_path_without_kernels(max_bundle, monkeypatch):
    monkeypatch.setenv("EDGEFUSION_NATIVE", "0")
    assert bench.bench_bundle(max_bundle, [(24, 16)], runs=1, warmup=0, threads=1).environment["frame_path"] == "numpy"


def test_cli_bad_bundle_is_one_line_error(tmp_path, capsys):
    assert main(["bench", "--model", str(tmp_path / "absent"), "--runs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgefusion: bundle not found") and err.count("\n") == 1


def test_check_off_device_measures_nothing_and_says_so(max_bundle, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(bench.ON_DEVICE_ENV, raising=False)
    profile = tmp_path / "dev.toml"
    profile.write_text(PROFILE.format(budget=0.000001))
    argv = ["bench", "--target", str(profile), "--check", "--model", str(max_bundle)]
    assert main(argv) == SkippedError.exit_code == 5  # a release gate that measured nothing must not pass
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "skipped latency check for dev, nothing was measured" in captured.err and "--skip-ok" in captured.err
    assert main([*argv, "--skip-ok"]) == 0  # skip-as-success only when asked
    captured = capsys.readouterr()
    assert captured.out == "" and "(accepted: --skip-ok)" in captured.err


@pytest.mark.parametrize("name, environ, system, machine, measure", [
    ("x86", {}, "Linux", "x86_64", True),          # the host is the target's platform
    ("x86", {}, "Linux", "aarch64", False),
    ("x86", {}, "Darwin", "x86_64", False),
    ("onnx", {}, "Linux", "aarch64", True),
    ("arm:720p", {}, "Linux", "aarch64", True),    # variants share their base target's platform
    ("arm", {}, "Linux", "x86_64", False),
    ("jetson", {}, "Linux", "aarch64", False),     # a Jetson is declared, never guessed
    ("jetson:480p", {bench.ON_DEVICE_ENV: "jetson"}, "Linux", "aarch64", True),
    ("arm", {bench.ON_DEVICE_ENV: "*"}, "Linux", "x86_64", True),
    ("dev", {bench.ON_DEVICE_ENV: "other"}, "Linux", "x86_64", False),
])
def test_check_plan_decides_where_to_measure(name, environ, system, machine, measure):
    plan = bench.check_plan(name, environ, system, machine)
    assert plan.measure is measure
    assert (name.partition(":")[0] in plan.reason) and (bench.ON_DEVICE_ENV in plan.reason or machine in plan.reason)


def _size_result(p90: float) -> bench.SizeResult:
    return bench.SizeResult(width=640, height=480, init_ms=1, first_inference_ms=1, median_ms=p90 / 2, p90_ms=p90, p99_ms=p90,
                            mean_ms=p90 / 2, min_ms=0.1, max_ms=p90, fps=2000 / p90, model_ms=1, compose_ms=0, overhead_ms=0,
                            peak_rss_mb=1, runs=10)


@pytest.mark.parametrize("p90, ok", [(14.99, True), (15.0, True), (15.01, False)])
def test_budget_verdict_on_injected_measurements(p90, ok):
    from edgefusion.targets import load_target

    target = load_target("x86")  # budget: p90 15 ms at 480x640
    verdict, line = bench.budget_verdict(target, _size_result(p90))
    assert verdict is ok
    assert line == f"x86: p90 {p90:.2f} ms at 640x480 (WxH) vs budget 15 ms -- {'within' if ok else 'over'} budget"
    if ok:
        assert bench.check_budget(target, _size_result(p90)) == line
    else:
        with pytest.raises(BudgetError, match="over budget"):
            bench.check_budget(target, _size_result(p90))


def test_check_on_the_targets_platform_builds_a_bundle_when_none_is_given(max_bundle, tmp_path, monkeypatch, capsys):
    import edgefusion.commands.bench as command

    built = []

    def fake_build(target, stack):
        built.append(target.name)
        return str(max_bundle)

    monkeypatch.setattr(command, "build_check_bundle", fake_build)
    monkeypatch.setattr(bench, "check_plan", lambda name: bench.CheckPlan(True, "injected"))
    profile = tmp_path / "dev.toml"
    profile.write_text(PROFILE.format(budget=10000.0))
    assert main(["bench", "--target", str(profile), "--check", "--runs", "3", "--warmup", "0", "--threads", "1"]) == 0
    assert built == ["dev"] and "within budget" in capsys.readouterr().out


@pytest.mark.parametrize("budget, code", [(10000.0, 0), (0.000001, BudgetError.exit_code)])
def test_check_on_device_compares_p90_with_budget(max_bundle, tmp_path, monkeypatch, capsys, budget, code):
    monkeypatch.setenv(bench.ON_DEVICE_ENV, "other,dev")
    profile = tmp_path / "dev.toml"
    profile.write_text(PROFILE.format(budget=budget))
    assert main(["bench", "--target", str(profile), "--check", "--model", str(max_bundle), "--runs", "5", "--threads", "1"]) == code
    captured = capsys.readouterr()
    assert "52x36" in captured.out  # the profile's latency shape [36, 52] is H x W
    assert ("within budget" in captured.out) if code == 0 else ("over budget" in captured.err)


@pytest.mark.parametrize("environ, says", [
    ({bench.ON_DEVICE_ENV: " jetosn "}, "EDGEFUSION_ON_DEVICE='jetosn' does not declare it"),  # a typo is shown, not hidden
    ({}, "EDGEFUSION_ON_DEVICE is not set"),
    ({bench.ON_DEVICE_ENV: ""}, "EDGEFUSION_ON_DEVICE is not set"),
])
def test_a_skip_names_what_the_device_declared(environ, says):
    plan = bench.check_plan("jetson", environ, "Linux", "aarch64")
    assert not plan.measure and says in plan.reason and plan.reason.endswith("(on the device: EDGEFUSION_ON_DEVICE=jetson)")


def test_on_device_matches_variants(monkeypatch):
    monkeypatch.setenv(bench.ON_DEVICE_ENV, "jetson")
    assert bench.on_device("jetson") and bench.on_device("jetson:480p") and not bench.on_device("arm")
    monkeypatch.setenv(bench.ON_DEVICE_ENV, "*")
    assert bench.on_device("arm")


def test_html_report_is_self_contained_and_round_trips_images(max_bundle, tmp_path):
    import base64
    import io
    import re

    import numpy as np
    from PIL import Image

    from edgefusion.report import write_report

    rng = np.random.default_rng(0)
    fused = rng.integers(0, 256, (12, 17, 3), dtype=np.uint8)
    latency = [bench.bench_bundle(max_bundle, [(32, 24)], runs=2, warmup=0, threads=1)]
    path = write_report(tmp_path / "r.html", "Run <1>", images=[("fused <a>", fused)],
                        metrics=[{"method": "<b>max</b>", "EN": 6.5}, {"method": "mean", "SSIM": 0.7}], latency=latency)
    text = path.read_text()
    assert "<title>Run &lt;1&gt;</title>" in text and "&lt;b&gt;max&lt;/b&gt;" in text
    assert not re.search(r"(src|href)=['\"]?(https?:|//|file:)", text)
    uris = re.findall(r"src='data:image/png;base64,([^']+)'", text)
    assert len(uris) == (2 if importlib.util.find_spec("matplotlib") else 1)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(base64.b64decode(uris[0])))), fused)
    assert "32x24" in text and "CPUExecutionProvider" in text


def test_budget_summary_of_injected_measurements():
    rows = [
        {"target": "x86", "size": "640x480", "budget_ms": 15.0, "p90_ms": 10.894, "note": "this host"},
        {"target": "jetson", "size": "1920x1080", "budget_ms": 25.0, "p90_ms": None, "note": "not the jetson target"},
        {"target": "onnx", "size": "640x480", "budget_ms": 30.0, "p90_ms": 31.0},
    ]
    lines = bench.budget_summary(rows).splitlines()
    assert lines[0].split() == ["target", "size", "(WxH)", "p90", "ms", "budget", "ms", "verdict", "note"]
    assert lines[2].split() == ["x86", "640x480", "10.89", "15", "within", "this", "host"]
    assert lines[3].split()[:5] == ["jetson", "1920x1080", "-", "25", "skipped"]
    assert lines[4].split() == ["onnx", "640x480", "31.00", "30", "OVER"]
    assert lines[-1] == "2 of 3 target(s) measured"
