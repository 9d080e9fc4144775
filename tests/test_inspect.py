"""``edgefusion inspect``: a verified bundle's contract, accuracy and provenance; exit 2 for a damaged one (numpy-free)."""

from __future__ import annotations

import json

import pytest

from edgefusion.cli import main
from edgefusion.runtime.bundle import MANIFEST, write_bundle
from edgefusion.runtime.manifest_seal import sealed_manifest_text

MANIFEST_VALUES = {
    "schema": 1, "edgefusion_version": "0.1.0", "backend": "openvino", "target": "x86", "precision": "int8",
    "inputs": [{"name": "ir", "shape": [1, 1, -1, -1], "dtype": "float32"}, {"name": "vis", "shape": [1, 1, -1, -1], "dtype": "float32"}],
    "outputs": [{"name": "maps", "shape": [1, 4, -1, -1], "dtype": "float32"}], "layout": "NCHW", "io_dtype": "float32",
    "value_range": [0.0, 1.0], "stride": 8, "fixed_shape": None, "compose": "runtime",
    "accuracy": {"frames": 4, "shape": [480, 640], "psnr_db": {"mean": 57.01, "min": 56.271}, "gate": {"min_psnr_db": 40.0, "passed": True}},
    "latency_budget": {"shape": [480, 640], "p90_ms": 15.0},
    "model": {"file": "s.pt", "sha256": "ab" * 32, "architecture": "student-ctx", "config": {"size": "s+"},
              "provenance": {"objective": "pixel objective (not the paper's)", "language_objective_meaningful": False, "licence": "MIT"}},
}


@pytest.fixture()
def bundle(tmp_path):
    for name, data in (("model.xml", b"<net/>"), ("model.bin", b"\x01" * 1234)):
        (tmp_path / name).write_bytes(data)
    return write_bundle(tmp_path / "b", {"model": tmp_path / "model.xml", "weights": tmp_path / "model.bin"}, MANIFEST_VALUES)


def test_inspect_shows_the_verified_contract(bundle, capsys):
    assert main(["inspect", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "intact (manifest seal and 2 file digests verified): model.bin (1,234 bytes), model.xml (6 bytes)" in out
    for text in ("target x86 · backend openvino · precision int8", "maps [1, 4, -1, -1] float32", "stride 8",
                 "any (padded to multiples of 8)", "composition by the runtime",
                 "accuracy gate passed: int8 vs FP32 worst frame 56.271 dB (mean 57.01) over 4 frames at 480x640, bound 40.0 dB",
                 "latency budget: p90 15.0 ms at 480x640", "from s.pt (SHA-256 abababababab…)",
                 "language objective meaningful: NO: not trained with the real language-driven (CLIP) objective · licence: MIT"):
        assert text in out, text


def test_inspect_json_is_the_manifest_on_disk(bundle, capsys):
    assert main(["inspect", str(bundle), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((bundle / MANIFEST).read_text())


def test_inspect_survives_odd_optional_sections(bundle, capsys):
    """Sealed, valid manifests whose optional sections have other forms: summarized without them, no traceback."""
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest.update(accuracy="n/a", latency_budget=[1], model={"provenance": 3}, inputs=None, outputs=["fused"])
    (bundle / MANIFEST).write_bytes(sealed_manifest_text(manifest))
    assert main(["inspect", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "inputs ir, vis · outputs fused" in out and "accuracy" not in out and "latency" not in out



def test_inspect_survives_unnamed_outputs_and_an_odd_provenance_flag(bundle, capsys):
    """An output entry without a name and a non-boolean (unhashable) provenance flag: shown as unknown, no traceback."""
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest.update(outputs=[{"shape": [1, 4, -1, -1]}], model={"provenance": {"language_objective_meaningful": [True]}})
    (bundle / MANIFEST).write_bytes(sealed_manifest_text(manifest))
    assert main(["inspect", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "outputs ? [1, 4, -1, -1]" in out and "language objective meaningful: unknown" in out


@pytest.mark.parametrize("damage", ["model", "manifest"])
def test_inspect_refuses_a_damaged_bundle_in_one_line(bundle, capsys, damage):
    if damage == "model":
        (bundle / "model.bin").write_bytes(b"\x02" * 1234)
    else:
        (bundle / MANIFEST).write_text((bundle / MANIFEST).read_text().replace('"p90_ms": 15.0', '"p90_ms": 150.0'))
    assert main(["inspect", str(bundle)]) == 2
    captured = capsys.readouterr()
    expected = "SHA-256 mismatch for model.bin" if damage == "model" else "seal does not match"
    assert captured.out == "" and expected in captured.err and captured.err.count("\n") == 1


def test_inspect_a_shipped_checkpoint_against_its_record(capsys):
    """The shipped default, by name: what loading it gives, against its JSON record (written when it was shipped)."""
    import hashlib

    from edgefusion.models.shipped import describe, shipped_path

    record = describe("student-ld")
    assert main(["inspect", "default", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sha256"] == record["sha256"] == hashlib.sha256(shipped_path("student-ld").read_bytes()).hexdigest()
    assert (summary["architecture"], summary["config"], summary["parameters"]) == (record["architecture"], record["config"], record["cost"]["params"])
    assert summary["inputs"] == ["ir", "vis", "stats"] and summary["stride"] == 8
    assert summary["provenance"]["licence"] == "Apache-2.0" and summary["provenance"]["language_objective_meaningful"] is True
    assert main(["inspect", "pixel"]) == 0
    out = capsys.readouterr().out
    assert "loads (student" in out and "language objective meaningful: NO" in out and "7,748 parameters" in out


@pytest.mark.parametrize("case", ["missing", "not a checkpoint", "folder without manifest"])
def test_inspect_refuses_what_is_neither_in_one_line(tmp_path, capsys, case):
    target = {"missing": tmp_path / "gone.pt", "not a checkpoint": tmp_path / "notes.pt", "folder without manifest": tmp_path}[case]
    if case == "not a checkpoint":
        target.write_text("hello")
    assert main(["inspect", str(target)]) == 2
    captured = capsys.readouterr()
    expected = {"missing": "checkpoint not found", "not a checkpoint": "cannot read checkpoint", "folder without manifest": "no manifest.json"}[case]
    assert captured.out == "" and expected in captured.err and captured.err.count("\n") == 1
