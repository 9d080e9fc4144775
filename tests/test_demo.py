"""The README's main job (``edgefusion demo``) end to end on the shipped default and on a user's model and pairs,
its one-line refusals, and its HTML report in headless Chromium."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch", reason="the demo fuses with the shipped PyTorch student")
pytest.importorskip("openvino", reason="the demo builds OpenVINO bundles")
pytest.importorskip("nncf", reason="the demo quantizes with NNCF")

from test_output_errors import one_line_error  # noqa: E402

from edgefusion.cli import main  # noqa: E402
from edgefusion.evaluate import score  # noqa: E402
from edgefusion.io.images import read_image  # noqa: E402
from edgefusion.io.pairs import find_pairs  # noqa: E402
from edgefusion.resources import ASSETS, SAMPLES, resource_dir  # noqa: E402

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


#: The user's own pairs of the --data run, named unlike any sample.
OWN_PAIRS = ("p0", "p1", "p2")
TAKES = "the demo takes a student"


def write_pairs(root: Path, names: tuple[str, ...], size: tuple[int, int] = (64, 48)) -> Path:
    """A pairs folder (ir/, vi/): the package samples scaled to ``size`` (W, H) with Pillow, saved under ``names``."""
    for name, sample in zip(names, find_pairs(SAMPLES), strict=False):
        for sub, source in (("ir", sample.ir), ("vi", sample.vis)):
            (root / sub).mkdir(parents=True, exist_ok=True)
            Image.open(source).resize(size, Image.BILINEAR).save(root / sub / f"{name}.png")
    return root


def figures(html: str) -> list[str]:
    """The captions of the report's side-by-side strips."""
    return re.findall(r"<figcaption>([^<]*)</figcaption>", html)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    assert main(["demo", "--out", str(out), "--runs", "2"]) == 0
    return out


@pytest.fixture(scope="module")
def own_dir(tmp_path_factory) -> tuple[Path, Path]:
    """(data, out) of the demo on a user's model and pairs: student-s on three 64x48 pairs, one shown."""
    root = tmp_path_factory.mktemp("own")
    data, out = write_pairs(root / "data", OWN_PAIRS), root / "out"
    assert main(["demo", "--out", str(out), "--model", "student-s", "--data", str(data), "--show", "1", "--runs", "1"]) == 0
    return data, out


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


def test_default_demo_names_the_shipped_default_and_shows_every_sample(demo_dir):
    summary = json.loads((demo_dir / "summary.json").read_text())
    html = (demo_dir / "report.html").read_text()
    digest = hashlib.sha256((ASSETS / "models" / "student-ld.pt").read_bytes()).hexdigest()
    assert (summary["model"]["name"], summary["model"]["sha256"], summary["model"]["architecture"]) == ("student-ld", digest, "student-ctx")
    assert f"SHA-256: {digest}" in html and "language objective: meaningful" in html
    assert "wyhlaowang/LD-Lite, commit 75a322b, Apache-2.0" in html  # attribution of a model derived from LD-Lite
    names = sorted(p.stem for p in (SAMPLES / "ir").glob("*.png"))
    assert [caption.split(":")[0] for caption in figures(html)] == names  # min(8, 4 samples) shown
    assert "edgefusion demo: shipped student on the TNO samples" in html


def test_demo_on_own_model_and_pairs(own_dir):
    data, out = own_dir
    summary = json.loads((out / "summary.json").read_text())
    html = (out / "report.html").read_text()
    digest = hashlib.sha256((ASSETS / "models" / "student-s.pt").read_bytes()).hexdigest()
    assert (summary["model"]["name"], summary["model"]["sha256"], summary["model"]["architecture"]) == ("student-s", digest, "student")
    assert "model: student-s (" in html and f"SHA-256: {digest}" in html
    assert "language objective: NOT meaningful (trained without real CLIP weights)" in html and "objective: pixel" in html
    # every pair fused at its own size; one shown, named in the report
    assert sorted(p.name for p in (out / "fused").iterdir()) == [f"{name}.png" for name in OWN_PAIRS]
    assert all(read_image(out / "fused" / f"{name}.png").shape[:2] == (48, 64) for name in OWN_PAIRS)
    (caption,) = figures(html)
    shown = caption.split(":")[0]
    assert shown in OWN_PAIRS and f"side by side: 1 of them, spread evenly over the sorted names: {shown}." in html
    # every pair scored: the student's row is the mean over the three pairs of its written outputs
    row = next(r for r in summary["metrics"] if r["method"] == "student-s (PyTorch FP32)")
    scores = [score(read_image(data / "ir" / f"{n}.png"), read_image(data / "vi" / f"{n}.png"), read_image(out / "fused" / f"{n}.png"))
              for n in OWN_PAIRS]
    for metric, value in row.items():
        if metric != "method":
            assert value == pytest.approx(np.mean([s[metric] for s in scores]), abs=1e-4)
    # the quantization calibrated and validated on the three pairs, not the four samples
    manifest = json.loads((out / "bundles" / "x86-int8" / "manifest.json").read_text())
    assert manifest["accuracy"]["frames"] == 3 and manifest["quantization"]["calibration_frames"] == 3


def test_ld_lite_column_is_labelled_by_the_students_teacher(demo_dir, own_dir, ld_lite_dir):
    default = figures((demo_dir / "report.html").read_text())
    own = figures((own_dir[1] / "report.html").read_text())
    assert all("| LD-Lite teacher | student-ld (student)" in c for c in default)  # student-ld was distilled from LD-Lite
    assert all("| LD-Lite (reference) | student-s (student)" in c for c in own)  # student-s from a pixel-objective teacher


def smoke_teacher(path: Path) -> Path:
    """A random-init teacher checkpoint of the smoke recipe's size."""
    from edgefusion.models import build_model
    from edgefusion.models.checkpoint import model_payload, save_checkpoint

    config = tomllib.loads((resource_dir("train") / "teacher-smoke.toml").read_text())["model"]
    save_checkpoint(path, model_payload(build_model("teacher", config), "teacher", config, {"stage": "teacher"}))
    return path


def refused_input(case: str, tmp_path: Path, request) -> tuple[list, str]:
    """(the demo's arguments, what its one error line must say) for a refusal ``case``."""
    if case == "bundle":
        bundle = request.getfixturevalue("demo_dir") / "bundles" / "x86-int8"
        return ["--model", bundle], f"--model {bundle} is a bundle; {TAKES}"
    if case == "teacher checkpoint":
        teacher = smoke_teacher(tmp_path / "teacher.pt")
        return ["--model", teacher], f"--model {teacher} holds a 'teacher' model; {TAKES}"
    if case == "LD-Lite import":
        teacher = request.getfixturevalue("imported")
        return ["--model", teacher], f"--model {teacher} holds a 'ld-lite' model; {TAKES}"
    if case == "missing folder":
        return ["--data", tmp_path / "nowhere"], f"dataset folder not found: {tmp_path / 'nowhere'}"
    if case == "nothing to show":
        return ["--show", "0"], "--show must be >= 1, got 0"
    data = write_pairs(tmp_path / "data", OWN_PAIRS)
    bad = data / "vi" / "p1.png"
    bad.write_bytes(bad.read_bytes()[:300])
    # with a model whose objective warning would be a second line, were it not held back until the inputs are checked
    return ["--data", data, "--model", "student-s"], f"cannot read image {bad}: image file is truncated"


@pytest.mark.parametrize("case", ["bundle", "teacher checkpoint", "LD-Lite import", "missing folder", "nothing to show", "truncated image"])
def test_demo_refuses_in_one_line_before_any_work(case, tmp_path, request, capsys, monkeypatch):
    import edgefusion.demo
    from edgefusion.models import provenance

    monkeypatch.setattr(provenance, "_WARNED", set())  # warned once per process: as in a fresh one

    args, expected = refused_input(case, tmp_path, request)
    capsys.readouterr()  # what building the inputs printed (a demo run for the bundle)
    monkeypatch.setattr(edgefusion.demo, "fuse_pairs", lambda *a, **k: pytest.fail("the demo started its work"))
    out = tmp_path / "out"
    err = one_line_error(capsys, ["demo", "--out", out, *args])
    assert expected in err
    assert not out.exists()


def test_a_bundle_that_misses_its_gate_is_built_and_reported(monkeypatch, tmp_path):
    """A user's student that quantizes badly: the demo builds its bundles anyway (force) and names the missed gate,
    instead of stopping with quantize's advice to pass a --force the demo does not have."""
    import edgefusion.quantize.pipeline as pipeline
    from edgefusion import demo

    calls = []

    def fake_quantize(target, out, **kw):
        calls.append(kw["force"])
        passed = target.name != "x86"  # the INT8 target misses, the FP32 reference passes
        return out, {"frames": 3, "gate": {"passed": passed, "failures": [] if passed else ["PSNR 12.00 dB < 40 dB"]}}

    monkeypatch.setattr(pipeline, "run_quantize", fake_quantize)
    student = demo.open_student("student-s")
    frames, missed = demo.build_bundles(tmp_path, demo.bundle_targets(), student, None, log=lambda message: None)
    assert calls == [True, True] and frames == 3
    assert missed == ["x86-int8 misses the accuracy gate of target x86: PSNR 12.00 dB < 40 dB"]


def test_a_reused_output_folder_keeps_nothing_of_the_earlier_run(tmp_path):
    from edgefusion.demo import OUTPUT_FILES, clear_outputs

    (tmp_path / "fused").mkdir()
    (tmp_path / "fused" / "old-pair.png").write_bytes(b"png")
    (tmp_path / "notes.txt").write_text("the user's")
    for name in OUTPUT_FILES:
        (tmp_path / name).write_text("earlier run")
    clear_outputs(tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["fused", "notes.txt"]  # the user's own file stays
    clear_outputs(tmp_path / "absent")  # a new folder: nothing to clear


def test_a_plain_folder_given_as_model_is_named_a_folder(tmp_path):
    from edgefusion import demo
    from edgefusion.errors import UserError

    with pytest.raises(UserError, match=r"is a folder; the demo takes a student"):
        demo.open_student(str(tmp_path))
