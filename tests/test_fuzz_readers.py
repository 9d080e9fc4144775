"""Property-based robustness of the readers a device exposes to untrusted files.

Image files (random, truncated or bit-flipped bytes) and bundle manifests
(random JSON, random bytes, broken zips) must give a one-line UserError, or a
valid result, never another exception (no per-example deadline: speed is not tested here).
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from edgefusion.errors import UserError
from edgefusion.io.images import read_image
from edgefusion.runtime.bundle import load_bundle
from edgefusion.runtime.manifest_seal import sealed_manifest_text

FUZZ = settings(max_examples=50)  # deadline and speed health checks: the conftest profile (none)


def _encoded(fmt: str, mode: str) -> bytes:
    rng = np.random.default_rng(0)
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (23, 31), dtype=np.uint16))
    else:
        shape = (23, 31, 3) if mode == "RGB" else (23, 31)
        img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


SOURCES = [("PNG", "L", ".png"), ("PNG", "RGB", ".png"), ("PNG", "I;16", ".png"), ("JPEG", "RGB", ".jpg"),
           ("TIFF", "I;16", ".tif"), ("BMP", "RGB", ".bmp"), ("PPM", "L", ".pgm"), ("PPM", "RGB", ".ppm"), ("PPM", "I;16", ".pgm")]


def _check_image(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"x{suffix}"
        path.write_bytes(data)
        try:
            image = read_image(path)
        except UserError as exc:
            assert "\n" not in str(exc) and str(exc)
            return
        assert image.dtype in (np.uint8, np.uint16) and image.ndim in (2, 3)


@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".png", ".jpg", ".tif", ".bmp", ".pgm", ".ppm"]))
def test_random_bytes_are_rejected_in_one_line(data, suffix):
    _check_image(data, suffix)


@FUZZ
@given(source=st.sampled_from(SOURCES), cut=st.floats(0.0, 1.0))
def test_truncated_images_are_rejected_in_one_line(source, cut):
    fmt, mode, suffix = source
    data = _encoded(fmt, mode)
    _check_image(data[: int(len(data) * cut)], suffix)


@FUZZ
@given(source=st.sampled_from(SOURCES), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=8))
def test_corrupted_images_never_crash(source, flips):
    fmt, mode, suffix = source
    data = bytearray(_encoded(fmt, mode))
    for pos, xor in flips:
        data[pos % len(data)] ^= xor
    _check_image(bytes(data), suffix)


# JSON values: small leaves and containers; strings from a small alphabet that keeps the awkward characters
# (newline, quote, backslash, non-ASCII), so generating them is cheap
TEXT = st.text("ab01_-./ \n\"\\\u00e9\u2603", max_size=8)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=False) | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=8,
)
KEYS = ["schema", "edgefusion_version", "backend", "target", "precision", "files", "inputs", "outputs", "layout",
        "io_dtype", "io_quantization", "value_range", "stride", "fixed_shape", "sha256", "compose"]
VALID = {
    "schema": 1, "edgefusion_version": "0.1.0", "backend": "onnxruntime", "target": "t", "precision": "fp32",
    "files": {"model": "model.onnx"}, "inputs": [], "outputs": [], "layout": "NCHW", "io_dtype": "float32",
    "value_range": [0, 1], "stride": 8, "fixed_shape": None, "sha256": {"model.onnx": "0" * 64},
}


def _check_bundle(path: Path) -> None:
    try:
        load_bundle(path)
    except UserError as exc:
        assert "\n" not in str(exc) and str(exc)


@FUZZ
@given(overrides=st.dictionaries(st.sampled_from(KEYS), JSON, max_size=4), drop=st.sets(st.sampled_from(KEYS), max_size=3))
def test_mutated_manifests_are_one_line_errors(overrides, drop):
    manifest = {k: v for k, v in {**VALID, **overrides}.items() if k not in drop}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "b"
        root.mkdir()
        (root / "model.onnx").write_bytes(b"model")
        text = sealed_manifest_text(manifest)  # sealed, as a writer leaves it: the checks after the seal's run too
        (root / "manifest.json").write_bytes(text)
        _check_bundle(root)
        archive = Path(tmp) / "b.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("manifest.json", text)
            zf.writestr("model.onnx", b"model")
        _check_bundle(archive)


@FUZZ
@given(data=st.binary(max_size=1024))
def test_random_manifest_bytes_and_archives_are_one_line_errors(data):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "b"
        root.mkdir()
        (root / "manifest.json").write_bytes(data)
        _check_bundle(root)
        archive = Path(tmp) / "b.zip"
        archive.write_bytes(b"PK\x03\x04" + data)
        _check_bundle(archive)


@pytest.mark.skipif(__import__("importlib").util.find_spec("onnxruntime") is None, reason="onnxruntime not installed")
@FUZZ
@given(quant=st.dictionaries(st.sampled_from(["ir", "vis", "fused"]), JSON, max_size=3), io_dtype=st.sampled_from(["uint8", "int8"]))
def test_io_quantization_tables_are_validated_in_one_line(quant, io_dtype):
    from edgefusion.runtime.backends import open_backend

    with tempfile.TemporaryDirectory() as tmp:
        try:
            open_backend("onnxruntime", {"model": Path(tmp) / "absent.onnx"}, io_dtype=io_dtype, io_quantization=quant)
        except UserError as exc:
            assert "\n" not in str(exc)


@pytest.mark.skipif(__import__("importlib").util.find_spec("onnx") is None or __import__("importlib").util.find_spec("onnxruntime") is None,
                    reason="needs onnx and onnxruntime")
@FUZZ
@given(fields=st.dictionaries(st.sampled_from(["preprocessing", "compose", "io_quantization", "io_dtype", "layout", "stride", "fixed_shape"]),
                              JSON, min_size=1, max_size=3))
def test_fuser_open_rejects_odd_optional_fields_in_one_line(fields):
    from edgefusion.runtime import Fuser
    from runtime_models import make_bundle, max_float_onnx

    with tempfile.TemporaryDirectory() as tmp:
        try:
            bundle = make_bundle(Path(tmp) / "b", max_float_onnx(Path(tmp) / "max.onnx"), **fields)
            fuser = Fuser.open(bundle)
            fuser.fuse(np.zeros((9, 11), np.uint8), np.zeros((9, 11), np.uint8))
        except UserError as exc:
            assert "\n" not in str(exc)


def test_every_property_test_runs_without_deadline_or_speed_health_checks():
    from hypothesis import HealthCheck

    current = settings()  # the profile loaded by conftest.py, which every @settings(...) here inherits from
    assert current.deadline is None and FUZZ.deadline is None
    assert {HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example} <= set(FUZZ.suppress_health_check)
