"""Bundles: atomic writing, SHA-256 verification, refusal of tampered or unknown bundles (numpy-free)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from edgefusion.errors import UserError
from edgefusion.runtime.bundle import MANIFEST, load_bundle, write_bundle


def _manifest(**changes) -> dict:
    manifest = {
        "schema": 1, "edgefusion_version": "0.1.0", "backend": "openvino", "target": "x86", "precision": "int8",
        "inputs": [{"name": "ir", "shape": [1, 1, -1, -1], "dtype": "float32"}, {"name": "vis", "shape": [1, 1, -1, -1], "dtype": "float32"}],
        "outputs": [{"name": "fused", "shape": [1, 1, -1, -1], "dtype": "float32"}],
        "layout": "NCHW", "io_dtype": "float32", "value_range": [0.0, 1.0], "stride": 8, "fixed_shape": None,
    }
    manifest.update(changes)
    return manifest


@pytest.fixture()
def sources(tmp_path: Path) -> dict[str, Path]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.xml").write_text("<net/>")
    (src / "model.bin").write_bytes(bytes(range(256)) * 4)
    return {"model": src / "model.xml", "weights": src / "model.bin"}


def test_round_trip_records_hashes_of_every_file(tmp_path, sources):
    out = write_bundle(tmp_path / "b", sources, _manifest(), extra={"model_data.h": sources["model"]})
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["files"] == {"model": "model.xml", "weights": "model.bin"}
    expected = {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in ("model.xml", "model.bin", "model_data.h")}
    assert manifest["sha256"] == expected
    bundle = load_bundle(out)
    assert bundle.backend == "openvino" and bundle.fixed_shape is None
    assert bundle.files["weights"].read_bytes() == sources["weights"].read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging leftovers


def test_tampered_file_is_refused(tmp_path, sources):
    out = write_bundle(tmp_path / "b", sources, _manifest())
    data = bytearray((out / "model.bin").read_bytes())
    data[10] ^= 1
    (out / "model.bin").write_bytes(bytes(data))
    with pytest.raises(UserError, match="SHA-256 mismatch for model.bin"):
        load_bundle(out)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda out: (out / "model.bin").unlink(), "missing file model.bin"),
        (lambda out: (out / "extra.onnx").write_bytes(b"x"), "extra.onnx is not listed"),
        (lambda out: (out / MANIFEST).unlink(), "no manifest.json"),
        (lambda out: (out / MANIFEST).write_text("{broken"), "not valid JSON"),
    ],
)
def test_incomplete_or_extended_bundle_is_refused(tmp_path, sources, damage, message):
    out = write_bundle(tmp_path / "b", sources, _manifest())
    damage(out)
    with pytest.raises(UserError, match=message):
        load_bundle(out)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("backend", "coreml", "unknown backend 'coreml'"),
        ("schema", 2, "schema 2 is not supported"),
        ("io_dtype", "uint8", "needs 'io_quantization'"),
        ("fixed_shape", [480], "fixed_shape must be"),
    ],
)
def test_bad_manifest_values_are_refused(tmp_path, sources, key, value, message):
    out = write_bundle(tmp_path / "b", sources, _manifest())
    manifest = json.loads((out / MANIFEST).read_text())
    manifest[key] = value
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=message):
        load_bundle(out)


def test_unsafe_path_in_manifest_is_refused(tmp_path, sources):
    out = write_bundle(tmp_path / "b", sources, _manifest())
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"]["model"] = "../model.xml"
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="unsafe file path"):
        load_bundle(out)


def test_writer_validates_before_anything_is_written(tmp_path, sources):
    with pytest.raises(UserError, match="unknown backend"):
        write_bundle(tmp_path / "b", sources, _manifest(backend="nope"))
    assert list(tmp_path.iterdir()) == [tmp_path / "src"]


def test_existing_bundle_is_replaced_but_other_folders_are_not(tmp_path, sources):
    out = write_bundle(tmp_path / "b", sources, _manifest(target="first"))
    write_bundle(out, sources, _manifest(target="second"))
    assert load_bundle(out).manifest["target"] == "second"
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a bundle"):
        write_bundle(precious, sources, _manifest())
    assert (precious / "notes.txt").read_text() == "keep me"


def test_zip_bundle_round_trip_and_tamper(tmp_path, sources):
    out = write_bundle(tmp_path / "b", sources, _manifest(), as_zip=True)
    assert out.name == "b.zip" and zipfile.is_zipfile(out)
    bundle = load_bundle(out)
    root = bundle.root
    assert bundle.files["model"].read_text() == "<net/>"
    del bundle
    import gc

    gc.collect()
    assert not root.exists()  # the extraction folder goes with the bundle object
    tampered = tmp_path / "t.zip"
    with zipfile.ZipFile(out) as src, zipfile.ZipFile(tampered, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, data + b" " if name == "model.xml" else data)
    with pytest.raises(UserError, match="SHA-256 mismatch for model.xml"):
        load_bundle(tampered)


def test_not_a_bundle(tmp_path):
    with pytest.raises(UserError, match="bundle not found"):
        load_bundle(tmp_path / "nothing")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"abc")
    with pytest.raises(UserError, match="is not a bundle"):
        load_bundle(junk)


def test_runtime_bundle_module_is_torch_and_numpy_free():
    import subprocess
    import sys

    code = "import sys, edgefusion.runtime.bundle; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "False"


def _zeroed_seal_digest(text: bytes) -> str:
    """The seal rule computed here: SHA-256 of the text with the seal's 64 digits replaced by '0'."""
    seal = json.loads(text)["manifest_sha256"]
    assert text.count(seal.encode()) == 1
    return hashlib.sha256(text.replace(seal.encode(), b"0" * 64)).hexdigest()


def test_manifest_is_sealed(tmp_path, sources):
    out = write_bundle(tmp_path / "b", sources, _manifest(manifest_sha256="f" * 64))  # a stale seal is replaced
    text = (out / MANIFEST).read_bytes()
    assert json.loads(text)["manifest_sha256"] == _zeroed_seal_digest(text)
    archive = write_bundle(tmp_path / "z", sources, _manifest(), as_zip=True)
    with zipfile.ZipFile(archive) as zf:
        text = zf.read(MANIFEST)
    assert json.loads(text)["manifest_sha256"] == _zeroed_seal_digest(text)
    assert (load_bundle(archive).root / MANIFEST).read_bytes() == text  # extracted as written, still sealed


@pytest.mark.parametrize(
    "old, new, message",
    [
        (b'"stride": 8', b'"stride": 16', "changed after the bundle was written"),
        (b'"target": "x86"', b'"target": "x86 "', "changed after the bundle was written"),
        (b"\n}\n", b"\n}\n\n", "changed after the bundle was written"),
        (b'"manifest_sha256"', b'"sealed_before"', "no manifest_sha256 seal"),
    ],
)
@pytest.mark.parametrize("as_zip", [False, True])
def test_edited_manifest_is_refused(tmp_path, sources, old, new, message, as_zip):
    """Edits into other valid values, which no model-file digest covers."""
    out = write_bundle(tmp_path / "b", sources, _manifest(), as_zip=as_zip)
    if as_zip:
        with zipfile.ZipFile(out) as zf:
            members = {name: zf.read(name) for name in zf.namelist()}
        assert old in members[MANIFEST]
        members[MANIFEST] = members[MANIFEST].replace(old, new)
        with zipfile.ZipFile(out, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    else:
        text = (out / MANIFEST).read_bytes()
        assert old in text
        (out / MANIFEST).write_bytes(text.replace(old, new))
    with pytest.raises(UserError, match=message):
        load_bundle(out)
