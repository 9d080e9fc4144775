"""The C runtime (edgefusion/native): SHA-256, manifest reader, ef_fuse against the Python runtime, custom backends.

Binaries are compiled once per session with the system compiler (tests/native/native_build.py, fixtures in tests/native/conftest.py).
OpenVINO tests use small hand-made analysis networks (ONNX -> OpenVINO IR, no torch),
so they check the C runtime and its OpenVINO adapter, not a particular model.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from native_build import (BASE_MANIFEST, CORE, ENCODED_STATS_SCALE, NATIVE, SAMPLE_NAMES, cc, cmake_build, default_isa, driver_json, frame_stats_reference, openvino_flags,
                          openvino_root, read_image, run, trivial_fused, write_pnm)

from edgefusion import preprocess
from edgefusion.cli import main
from edgefusion.embed.c_arrays import bundle_c_arrays
from edgefusion.errors import UserError
from edgefusion.resources import SAMPLES
from edgefusion.runtime.bundle import load_bundle, write_bundle
from edgefusion.runtime.compose import Composer


# ---- SHA-256 and manifest reader -----------------------------------------------------------

def c_sha256(lib, data: bytes) -> str:
    out = ctypes.create_string_buffer(65)
    lib.ef_sha256_hex(data, len(data), out)
    return out.value.decode()


@pytest.mark.parametrize("size", [0, 1, 3, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000, 1 << 20])
def test_sha256_matches_hashlib(reader_lib, size):
    data = bytes((i * 131 + 7) & 255 for i in range(size))
    assert c_sha256(reader_lib, data) == hashlib.sha256(data).hexdigest()


def test_sha256_known_vectors(reader_lib):
    assert c_sha256(reader_lib, b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert c_sha256(reader_lib, b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


class Hash(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 256), ("sha256", ctypes.c_char * 65)]


class Manifest(ctypes.Structure):
    """Mirror of ef_manifest (edgefusion/native/runtime/ef_manifest.h)."""

    _fields_ = [("backend", ctypes.c_char * 32), ("precision", ctypes.c_char * 16), ("layout", ctypes.c_char * 8),
                ("io_dtype", ctypes.c_char * 16), ("stride", ctypes.c_int), ("compose_runtime", ctypes.c_int),
                ("fixed_h", ctypes.c_int), ("fixed_w", ctypes.c_int), ("n_inputs", ctypes.c_int),
                ("stretch_low", ctypes.c_double), ("stretch_high", ctypes.c_double), ("model", ctypes.c_char * 256),
                ("weights", ctypes.c_char * 256), ("n_hashes", ctypes.c_int), ("hashes", Hash * 16),
                ("stats_encoded", ctypes.c_int), ("stats_scale", ctypes.c_float * 6), ("seal", ctypes.c_char * 65)]


def parse_manifest(lib, text: bytes) -> tuple[int, Manifest, str]:
    m = Manifest()
    err = ctypes.create_string_buffer(256)
    rc = lib.ef_manifest_parse(text, len(text), ctypes.byref(m), err, len(err))
    return rc, m, err.value.decode("utf-8", errors="replace")  # messages quote names from the input


def test_manifest_reader_reads_python_bundles(reader_lib, fake_bundles, tmp_path):
    model = tmp_path / "model.xml"
    model.write_bytes(b"<xml/>")
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"\0\1")
    manifest = dict(BASE_MANIFEST, stride=16, fixed_shape=[480, 640], compose="model", preprocessing={"thermal_stretch": [1, 98.25]})
    bundle = write_bundle(tmp_path / "b", {"model": model, "weights": weights}, manifest)
    rc, m, err = parse_manifest(reader_lib, (bundle / "manifest.json").read_bytes())
    assert rc == 0, err
    assert (m.backend, m.precision, m.layout, m.io_dtype) == (b"openvino", b"fp32", b"NCHW", b"float32")
    assert (m.stride, m.compose_runtime, m.fixed_h, m.fixed_w, m.n_inputs) == (16, 0, 480, 640, 2)
    assert (m.stretch_low, m.stretch_high) == (1.0, 98.25)
    assert (m.model, m.weights) == (b"model.xml", b"model.bin")
    hashes = {m.hashes[i].name.decode(): m.hashes[i].sha256.decode() for i in range(m.n_hashes)}
    assert hashes == {n: hashlib.sha256((bundle / n).read_bytes()).hexdigest() for n in ("model.xml", "model.bin")}
    rc, m, err = parse_manifest(reader_lib, (fake_bundles["v2"] / "manifest.json").read_bytes())
    assert rc == 0 and m.n_inputs == 3 and m.compose_runtime == 1 and m.weights == b"" and m.fixed_h == 0
    assert m.stats_encoded == 0
    rc, m, err = parse_manifest(reader_lib, (fake_bundles["v2-encoded"] / "manifest.json").read_bytes())
    assert rc == 0 and m.n_inputs == 3 and m.stats_encoded == 1, err
    assert list(m.stats_scale) == list(ENCODED_STATS_SCALE)


def _good() -> dict:
    return dict(BASE_MANIFEST, files={"model": "m.xml"}, sha256={"m.xml": "0" * 64})


BAD = {
    "not json": b"{\"schema\": 1,",
    "not an object": b"[1, 2]",
    "trailing garbage": json.dumps(_good()).encode() + b" x",
    "deep nesting": b"[" * 100000 + b"]" * 100000,
    "bad escape": json.dumps(_good()).replace('"m.xml"', '"m\\q.xml"', 1).encode(),
    "lone surrogate": json.dumps(_good()).replace('"m.xml": "0', '"\\udc00m.xml": "0').encode(),
    "missing key": json.dumps({k: v for k, v in _good().items() if k != "stride"}).encode(),
    "schema 2": json.dumps(dict(_good(), schema=2)).encode(),
    "unknown backend": json.dumps(dict(_good(), backend="coreml")).encode(),
    "float stride": json.dumps(dict(_good(), stride=8.0)).encode(),
    "huge stride": json.dumps(dict(_good(), stride=1 << 40)).encode(),
    "fixed shape": json.dumps(dict(_good(), fixed_shape=[0, 5])).encode(),
    "unsafe path": json.dumps(dict(_good(), files={"model": "../m.xml"}, sha256={"../m.xml": "0" * 64})).encode(),
    "unhashed file": json.dumps(dict(_good(), files={"model": "m.xml", "weights": "m.bin"})).encode(),
    "no model role": json.dumps(dict(_good(), files={"weights": "m.xml"})).encode(),
    "short digest": json.dumps(dict(_good(), sha256={"m.xml": "abc"})).encode(),
    "compose": json.dumps(dict(_good(), compose="gpu")).encode(),
    "compose stride": json.dumps(dict(_good(), stride=6)).encode(),
    "stretch": json.dumps(dict(_good(), preprocessing={"thermal_stretch": [99, 1]})).encode(),
    "inputs": json.dumps(dict(_good(), inputs=["ir", "depth"])).encode(),
    "inputs twice": json.dumps(dict(_good(), inputs=["ir", "vis", "vis"])).encode(),
    "stats encoding of a v1 bundle": json.dumps(dict(_good(), stats_encoding={"scale": [1] * 6})).encode(),
    **{f"stats encoding {name}": json.dumps(dict(_good(), inputs=["ir", "vis", "stats"], stats_encoding=value)).encode() for name, value in (
        ("unknown key", {"scale": [1] * 6, "offset": [0] * 6}), ("other kind", {"sqrt": [1] * 6}), ("5 values", {"scale": [1] * 5}),
        ("zero", {"scale": [1, 1, 0, 1, 1, 1]}), ("negative", {"scale": [1, 1, 1, 1, 1, -5]}), ("string", {"scale": [1, 1, 1, 1, 1, "5"]}),
        ("list", [1] * 6), ("huge", {"scale": [1, 1, 1, 1, 1, 1e39]}))},
}


def test_manifest_reader_accepts_the_good_one(reader_lib):
    rc, m, err = parse_manifest(reader_lib, json.dumps(_good()).encode())
    assert rc == 0 and m.model == b"m.xml", err


@pytest.mark.parametrize("case", sorted(BAD))
def test_manifest_reader_refuses_malformed(reader_lib, case):
    rc, _, err = parse_manifest(reader_lib, BAD[case])
    assert rc == -1 and err and "\n" not in err
    if case.startswith("stats encoding"):
        assert "stats_encoding" in err


def test_manifest_reader_unescapes_like_python(reader_lib):
    text = json.dumps(dict(_good(), files={"model": "m\u00e9\U0001f600.xml"}, sha256={"m\u00e9\U0001f600.xml": "a" * 64}))
    assert "\\ud83d\\ude00" in text  # ensure_ascii: a surrogate pair
    rc, m, err = parse_manifest(reader_lib, text.encode())
    assert rc == 0, err
    assert m.model.decode("utf-8") == "m\u00e9\U0001f600.xml"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_manifest_reader_survives_mutations(reader_lib, data):
    """Random byte edits of a valid manifest: the reader returns 0 or -1, never crashes; 0 only for JSON Python accepts."""
    text = bytearray(json.dumps(_good()).encode())
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(text) - 1))
        text[pos] = data.draw(st.integers(0, 255))
    rc, _, _ = parse_manifest(reader_lib, bytes(text))
    assert rc in (0, -1)
    if rc == 0:
        json.loads(bytes(text).decode("utf-8", errors="surrogateescape"))


def check_seal_c(lib, text: bytes) -> tuple[int, str]:
    """(rc, message) of ef_manifest_parse then ef_manifest_check_seal on text; rc 1 when the parse refuses it."""
    rc, m, err = parse_manifest(lib, text)
    if rc:
        return 1, err
    buf = ctypes.create_string_buffer(256)
    rc = lib.ef_manifest_check_seal(text, len(text), ctypes.byref(m), buf, len(buf))
    return rc, buf.value.decode("utf-8", errors="replace")


def check_seal_python(text: bytes) -> str | None:
    """None when the Python runtime accepts the seal of text (parsed as JSON), else its message."""
    from edgefusion.runtime.manifest_seal import check_seal

    try:
        check_seal(text, json.loads(text.decode("utf-8", errors="surrogateescape")), "m")
    except UserError as exc:
        return str(exc)
    return None


def _sealed_good() -> bytes:
    from edgefusion.runtime.manifest_seal import sealed_manifest_text

    return sealed_manifest_text(_good())


def test_seal_check_in_c(reader_lib):
    """The C seal check against the rule computed here with hashlib, on hand-made texts."""
    good = _sealed_good()
    digest = json.loads(good)["manifest_sha256"]
    assert hashlib.sha256(good.replace(digest.encode(), b"0" * 64)).hexdigest() == digest
    assert check_seal_c(reader_lib, good) == (0, "")
    # JSON whitespace is allowed around the colon, as long as the seal was computed over these bytes
    spaced = json.dumps(dict(_good(), manifest_sha256="0" * 64), separators=(" ,\n", "\t :\r\n ")).encode()
    head, zeros, tail = spaced.rpartition(b"0" * 64)  # the seal is the last key
    spaced = head + hashlib.sha256(spaced).hexdigest().encode() + tail
    assert check_seal_c(reader_lib, spaced) == (0, "")
    # a string value that reads like the key is no key; a nested key is one
    from edgefusion.runtime.manifest_seal import sealed_manifest_text

    named = sealed_manifest_text(dict(_good(), target="manifest_sha256"))
    assert check_seal_c(reader_lib, named) == (0, "") and check_seal_python(named) is None
    nested = named.replace(b'"schema"', b'"model": {"manifest_sha256": "%s"}, "schema"' % (b"1" * 64), 1)
    assert "exactly once" in check_seal_c(reader_lib, nested)[1] and "exactly once" in check_seal_python(nested)
    cases = {
        "no manifest_sha256 seal": json.dumps(_good()).encode(),
        "seal does not match": good.replace(b'"stride": 8', b'"stride": 16'),
        "exactly once": good.replace(b'"schema"', b'"manifest_sha256": "%s", "schema"' % digest.encode(), 1),
        "must be a 64-digit": good.replace(digest.encode(), digest.upper().encode()),
        "two different": good.replace(b"\n}\n", b',\n  "manifest\\u005fsha256": "%s"\n}\n' % (b"1" * 64)),  # the last one counts
    }
    for expected, text in cases.items():
        rc, message = check_seal_c(reader_lib, text)
        assert rc != 0 and expected in message and "\n" not in message, (expected, message)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_seal_refuses_every_edit_in_c_and_python_alike(reader_lib, data):
    """Random byte edits of a sealed manifest: whatever the C reader parses, its seal check refuses, and so does Python's."""
    text = bytearray(_sealed_good())
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text) - 1))
        text[pos] = data.draw(st.integers(0, 255).filter(lambda b, old=text[pos]: b != old))
    rc, message = check_seal_c(reader_lib, bytes(text))
    assert rc != 0
    if rc == -1:  # parsed: both check the same bytes
        python = check_seal_python(bytes(text))
        assert python is not None and python.split(": ", 1)[1] == message


# ---- the frame path with the built-in OpenVINO backend, against the Python runtime ----------

@pytest.fixture()
def numpy_runtime(monkeypatch):
    """The Python runtime on its numpy path (no C kernels): the independent reference."""
    monkeypatch.setenv("EDGEFUSION_NATIVE", "0")


@pytest.mark.parametrize("name", SAMPLE_NAMES + ["rgb", "ir16", "odd13x9", "odd7x5", "one1x1"])
def test_fuse_frames_equals_python_runtime(fuse_frames, ov_bundles, pairs, tmp_path, numpy_runtime, name):
    from edgefusion.runtime import Fuser

    ir_path, vis_path = pairs[name]
    out = tmp_path / ("out.ppm" if vis_path.suffix == ".ppm" else "out.pgm")
    done = run([fuse_frames, "--model", ov_bundles["v1"], "--ir", ir_path, "--vis", vis_path, "-o", out, "--threads", "1"])
    assert done.returncode == 0, done.stderr
    ir, vis = read_image(ir_path), read_image(vis_path)
    expected = Fuser.open(ov_bundles["v1"], threads=1).fuse(ir, vis)
    got = read_image(out)
    assert got.shape == expected.shape and got.dtype == np.uint8
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert expected.std() > 1  # a real picture, not a constant


@pytest.mark.parametrize("name", [SAMPLE_NAMES[2], "rgb", "odd7x5"])
def test_full_model_bundle_equals_python_runtime(fuse_frames, ov_bundles, pairs, tmp_path, numpy_runtime, name):
    """compose = model: the network outputs the fused luma; the C runtime only restores color and rounds."""
    from edgefusion.runtime import Fuser

    ir_path, vis_path = pairs[name]
    out = tmp_path / "out.pnm"
    done = run([fuse_frames, "--model", ov_bundles["fused"], "--ir", ir_path, "--vis", vis_path, "-o", out])
    assert done.returncode == 0, done.stderr
    expected = Fuser.open(ov_bundles["fused"]).fuse(read_image(ir_path), read_image(vis_path))
    assert np.abs(read_image(out).astype(int) - expected).max() <= 1


def python_v2_reference(bundle, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """v2 frame path from the Python pieces: planes, contract stats, OpenVINO maps, numpy composition, color."""
    import openvino as ov

    pair = preprocess.prepare_pair(ir, vis)
    h, w = pair.ir.shape
    ir_p, vis_p = preprocess.model_inputs(pair, 8)
    stats = frame_stats_reference(pair.ir, pair.vis_y)[None]
    files = load_bundle(bundle).files
    model = ov.Core().compile_model(str(files["model"]), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    maps = model({"ir": ir_p, "vis": vis_p, "stats": stats})[0]
    fused = np.empty(ir_p.shape[2:], np.float32)
    Composer(*ir_p.shape[2:])(ir_p[0, 0], vis_p[0, 0], maps[0], fused)
    return preprocess.to_uint8(preprocess.restore_color(fused[:h, :w], pair.vis_cbcr))


@pytest.mark.parametrize("name", [SAMPLE_NAMES[1], "rgb", "odd7x5"])
def test_v2_bundle_gets_frame_stats(fuse_frames, ov_bundles, pairs, tmp_path, name):
    ir_path, vis_path = pairs[name]
    out = tmp_path / "out.pnm"
    done = run([fuse_frames, "--model", ov_bundles["v2"], "--ir", ir_path, "--vis", vis_path, "-o", out])
    assert done.returncode == 0, done.stderr
    expected = python_v2_reference(ov_bundles["v2"], read_image(ir_path), read_image(vis_path))
    assert np.abs(read_image(out).astype(int) - expected).max() <= 1


def test_fuse_frames_bench_prints_bench_keys(fuse_frames, ov_bundles):
    from edgefusion.bench import SizeResult

    for frames in (1, 3, 469):  # --frames K: the timed frames cycle through K copies of the buffers (cold protocol;
        # 469: what cold.sets_for asks at 640x480 on a machine reporting a 480 MiB L3)
        done = run([fuse_frames, "--model", ov_bundles["v1"], "--size", "64x48", "--bench", "3", "--warmup", "1", "--threads", "1",
                    "--frames", frames])
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        size = report["sizes"][0]
        assert report["kernels"] == default_isa()  # the fixture compiles src/ef_kernels.c without -march
        assert set(SizeResult.__dataclass_fields__) | {"size"} <= set(size)
        assert size["size"] == "64x48" and size["runs"] == 3 and size["frames"] == frames
        assert size["frame_threads"] == 1  # default: --threads
        assert size["min_ms"] <= size["median_ms"] <= size["max_ms"]
    for frames in (0, 65537):
        refused = run([fuse_frames, "--model", ov_bundles["v1"], "--size", "8x8", "--bench", "1", "--frames", frames])
        assert refused.returncode == 2 and "--frames K (1..65536)" in refused.stderr


# ---- custom C backend, integrity, errors (no inference engine needed) ----------------------

@pytest.mark.parametrize("version,name", [("v1", SAMPLE_NAMES[0]), ("v1", "rgb"), ("v2", SAMPLE_NAMES[2]), ("v2", "ir16"),
                                          ("v2-encoded", SAMPLE_NAMES[2])])
def test_custom_backend_and_stats(trivial, fake_bundles, pairs, tmp_path, version, name):
    """The trivial backend sets M0 = stats[0] (v2) or 0, M1 = M2 = 1/2, M3 = 0: fused = M0 + (ir + vis) / 2.
    A bundle with stats_encoding gives the backend stats[i] * scale[i] (and the scale in ef_model_info)."""
    ir_path, vis_path = pairs[name]
    out = tmp_path / "out.pnm"
    report = driver_json(run([trivial, fake_bundles[version], ir_path, vis_path, out, 3]))
    assert report["runs"] == 3 and report["allocs_after_first"] == 0  # no allocation per frame
    # BGR in and out (padded rows) = RGB with channels swapped, within the 1-level tolerance of luma rounding
    assert report["bgr_difference"] in ((0, 1) if read_image(vis_path).ndim == 3 else (-1,))
    pair = preprocess.prepare_pair(read_image(ir_path), read_image(vis_path))
    stats = frame_stats_reference(pair.ir, pair.vis_y)
    scale = np.array(ENCODED_STATS_SCALE if version == "v2-encoded" else [1.0] * 6)
    assert report["stats_scale"] == (list(ENCODED_STATS_SCALE) if version == "v2-encoded" else [])
    if version != "v1":
        np.testing.assert_allclose(report["stats"], stats * scale, rtol=0, atol=1e-5)
    else:
        assert report["stats"] == []
    expected = trivial_fused(pair, stats[0] * scale[0] if version != "v1" else 0.0)
    assert np.abs(read_image(out).astype(int) - expected).max() <= 1


def test_fixed_shape_bundle(trivial, fake_bundles, pairs, tmp_path):
    """Frames up to the fixed shape are padded to it; larger ones are refused (the C runtime does not tile)."""
    ir_path, vis_path = pairs["odd13x9"]
    assert driver_json(run([trivial, fake_bundles["fixed"], ir_path, vis_path, tmp_path / "o.ppm"]))["runs"] == 2
    ir_path, vis_path = pairs[SAMPLE_NAMES[0]]
    done = run([trivial, fake_bundles["fixed"], ir_path, vis_path, tmp_path / "o.pgm"])
    assert done.returncode == 2 and "larger than the bundle's fixed shape 24x16" in done.stderr


def test_the_bench_driver_cycles_as_many_buffer_sets_as_the_cold_protocol_asks(trivial, fake_bundles):
    """469 sets: what benchmarks/cold.sets_for asks at 640x480 where the machine reports a 480 MiB L3 (a cap of 64 failed there)."""
    report = driver_json(run([trivial, "--bench", fake_bundles["v2"], "16x8", "3", "469"]))
    assert report["frames"] == 469 and report["runs"] == 3
    refused = run([trivial, "--bench", fake_bundles["v2"], "16x8", "3", "65537"])
    assert refused.returncode == 2 and "buffer sets 65537 (1..65536)" in refused.stderr


def test_bad_arguments_return_codes(trivial, fake_bundles):
    done = run([trivial, "--bad-args", fake_bundles["v1"]])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:-1] == ["1"] * 11  # EF_ERR_ARGUMENT, no crash
    assert lines[-1].strip() == "0"  # the context still works afterwards


def test_backend_errors_are_one_line_and_the_context_stays_usable(trivial, fake_bundles):
    """A backend's create and run failing with a two-line message or with err filled to its end (no NUL): EF_ERR_BACKEND
    with one line each, the context fuses afterwards; an empty model file given as (NULL, 0) is a SHA-256 mismatch."""
    done = run([trivial, "--backend-errors", fake_bundles["v1"]])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 6
    for line in lines[:4]:  # create (ef_open_dir adds "bundle PATH: "), then run
        assert re.fullmatch(r"6 (bundle \S+: )?tensorrt backend: (first line second line|x{100,})", line), line
    assert lines[4].strip() == "0"
    assert lines[5].startswith("4 bundle: SHA-256 mismatch for model.plan")


def test_peak_heap_and_no_per_frame_allocation(trivial, fake_bundles):
    report = driver_json(run([trivial, "--synthetic", fake_bundles["v1"], "1920x1080"]))
    assert report["allocs_after_first"] == 0
    assert report["peak_heap"] <= 3 * report["io_bytes"]


@pytest.mark.parametrize("damage", ["tamper", "missing", "manifest", "backend", "stride", "unsealed"])
def test_refuses_damaged_bundles(trivial, fake_bundles, pairs, tmp_path, damage):
    bundle = tmp_path / "b"
    shutil.copytree(fake_bundles["v1"], bundle)
    ir_path, vis_path = pairs[SAMPLE_NAMES[0]]
    if damage == "tamper":
        (bundle / "model.plan").write_bytes(b"a trivial engine!")
    elif damage == "missing":
        (bundle / "model.plan").unlink()
    elif damage == "manifest":
        (bundle / "manifest.json").write_text('{"schema": 1, "backend": ')
    else:
        edits = {"backend": ('"tensorrt"', '"coreml"'), "stride": ('"stride": 8,', '"stride": 16,'),
                 "unsealed": ('"manifest_sha256"', '"note"')}
        text = (bundle / "manifest.json").read_text()
        assert edits[damage][0] in text
        (bundle / "manifest.json").write_text(text.replace(*edits[damage]))
    done = run([trivial, bundle, ir_path, vis_path, tmp_path / "out.pgm"])
    expected = {"tamper": "SHA-256 mismatch for model.plan", "missing": "missing file model.plan",
                "manifest": "not valid JSON", "backend": "unknown backend", "stride": "seal does not match",
                "unsealed": "no manifest_sha256 seal"}[damage]
    assert done.returncode == 2 and expected in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "out.pgm").exists()


def test_no_builtin_backend_for_other_engines(fuse_frames, fake_bundles, pairs, tmp_path):
    ir_path, vis_path = pairs[SAMPLE_NAMES[0]]
    done = run([fuse_frames, "--model", fake_bundles["v1"], "--ir", ir_path, "--vis", vis_path, "-o", tmp_path / "o.pgm"])
    assert done.returncode == 2 and "no built-in C backend for tensorrt" in done.stderr and done.stderr.count("\n") == 1


# ---- the bundle as C arrays and the firmware folder -----------------------------------------

def decode_c_arrays(source: str) -> dict[str, bytes]:
    """Parse bundle_data.c back into {name: bytes} (independent of the generator)."""
    arrays = {m.group(1): bytes(int(v) for v in m.group(2).split(","))
              for m in re.finditer(r"unsigned char EF_ALIGNED (file\d+)\[\] = \{([\d,\s]+)\};", source)}
    table = re.findall(r'\{"([^"]+)", (file\d+), (\d+)u\}', source)
    return {name: arrays[var][: int(size)] for name, var, size in table}


def test_c_arrays_hold_manifest_and_every_model_file(ov_bundles):
    bundle = load_bundle(ov_bundles["v1"])
    files = {rel: (bundle.root / rel).read_bytes() for rel in bundle.manifest["sha256"]}
    decoded = decode_c_arrays(bundle_c_arrays(bundle.manifest, files)["bundle_data.c"].decode())
    assert set(decoded) == {"manifest.json", "analyze-v1.xml", "analyze-v1.bin"}
    for rel in ("analyze-v1.xml", "analyze-v1.bin"):
        assert decoded[rel] == files[rel]
    embedded = json.loads(decoded["manifest.json"])
    assert embedded["sha256"] == {rel: hashlib.sha256(files[rel]).hexdigest() for rel in ("analyze-v1.xml", "analyze-v1.bin")}
    text = decoded["manifest.json"]  # resealed after the reduction of sha256
    assert embedded["manifest_sha256"] == hashlib.sha256(text.replace(embedded["manifest_sha256"].encode(), b"0" * 64)).hexdigest()


def test_firmware_folder_builds_and_matches_edgefusion_fuse(ov_bundles, pairs, work, tmp_path, capsys, numpy_runtime):
    fw = work / "firmware"
    assert main(["native", "--model", str(ov_bundles["v1"]), "--out", str(fw)]) == 0
    assert "wrote" in capsys.readouterr().out
    cmake_build(fw, fw / "build", f"-DEF_OPENVINO_ROOT={openvino_root()}", build_options=("-j2",))
    for name in (SAMPLE_NAMES[3], "rgb"):
        ir_path, vis_path = pairs[name]
        out = tmp_path / f"{name}.pnm"
        done = run([fw / "build" / "fuse_frames", "--ir", ir_path, "--vis", vis_path, "-o", out])  # the compiled-in bundle
        assert done.returncode == 0, done.stderr
        reference = tmp_path / f"{name}.png"
        assert main(["fuse", "--model", str(ov_bundles["v1"]), "--ir", str(ir_path), "--vis", str(vis_path), "-o", str(reference)]) == 0
        assert np.abs(read_image(out).astype(int) - read_image(reference)).max() <= 1
    # the folder's own check (README: ctest): fuse_frames on the package samples against the Python runtime, via pnm_compare
    expected = sorted((fw / "samples" / "expected").iterdir())
    assert [p.name for p in expected] == [f"{n}.pgm" for n in SAMPLE_NAMES]
    sample = read_image(fw / "samples" / f"{SAMPLE_NAMES[0]}-ir.pgm")
    np.testing.assert_array_equal(sample, read_image(SAMPLES / "ir" / f"{SAMPLE_NAMES[0]}.png"))
    done = run(["ctest", "--test-dir", fw / "build", "--output-on-failure"])
    assert done.returncode == 0 and f"0 tests failed out of {2 * len(SAMPLE_NAMES)}" in done.stdout, done.stdout + done.stderr
    result = fw / "build" / "samples" / expected[0].name
    assert np.abs(read_image(result).astype(int) - read_image(expected[0])).max() <= 1
    off_by_two = read_image(result).copy()
    off_by_two[0, 0] = (int(off_by_two[0, 0]) + 2) % 256
    write_pnm(tmp_path / "off.pgm", off_by_two)
    for reference, code in ((expected[0], 0), (tmp_path / "off.pgm", 1), (tmp_path / "missing.pgm", 2)):
        assert run([fw / "build" / "pnm_compare", result, reference, 1]).returncode == code, reference


def test_prebuilt_kernel_library_for_devices_without_a_compiler(ov_bundles, pairs, work, tmp_path):
    """EDGEFUSION_NATIVE_LIB: the CMake target ef_kernels runs `edgefusion fuse` with the same bytes as the kernels the
    runtime compiles itself; a library built from other sources, or not a library, is one line and exit 2."""
    from edgefusion.runtime import native

    if native.kernels() is None:
        pytest.skip("native kernels unavailable (no C compiler, or EDGEFUSION_NATIVE=0)")
    folder = work / "cmake-kernels"
    cmake_build(NATIVE, folder, build_options=("--target", "ef_kernels"))
    other = cc(tmp_path / "libother.so", [NATIVE / "src" / "ef_kernels.c"], "-shared", "-fPIC", '-DEF_KERNELS_SOURCE="c=0,h=0"')
    not_a_library = tmp_path / "empty.so"
    not_a_library.write_bytes(b"")
    ir_path, vis_path = pairs["rgb"]

    def fuse(library: Path | None, out: Path):
        env = {"EDGEFUSION_NATIVE_LIB": str(library) if library else ""}
        return run([sys.executable, "-m", "edgefusion", "fuse", "--model", ov_bundles["v2"], "--ir", ir_path, "--vis", vis_path,
                    "-o", out], env=env)

    assert fuse(None, tmp_path / "own.ppm").returncode == 0
    relative = Path(os.path.relpath(folder / "libef_kernels.so"))  # from the working folder, as a user may give it
    for library in (folder / "libef_kernels.so", relative):
        done = fuse(library, tmp_path / "prebuilt.ppm")
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "prebuilt.ppm").read_bytes() == (tmp_path / "own.ppm").read_bytes()
    for library, message in ((other, "built from other kernel sources"), (not_a_library, "not a kernel library"),
                             (tmp_path / "absent.so", "no such file")):
        done = fuse(library, tmp_path / "refused.ppm")
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, done.stderr
        assert "rgb" not in done.stderr.split("EDGEFUSION_NATIVE_LIB")[0]  # reported as the library's fault, not the pair's
        assert not (tmp_path / "refused.ppm").exists()


def test_firmware_folder_of_a_bundle_without_builtin_c_backend(fake_bundles, tmp_path, capsys):
    """A TensorRT bundle: sample pairs for the integrator's own backend, no expected results (nothing here runs it)."""
    assert main(["native", "--model", str(fake_bundles["v1"]), "--out", str(tmp_path / "fw")]) == 0
    assert "no built-in tensorrt backend" in capsys.readouterr().out
    samples = tmp_path / "fw" / "samples"
    assert sorted(p.name for p in samples.glob("*-ir.pgm")) == [f"{n}-ir.pgm" for n in SAMPLE_NAMES]
    assert not any((samples / "expected").iterdir()) and (tmp_path / "fw" / "cmake" / "aarch64-linux-gnu.cmake").is_file()


def test_firmware_folder_when_python_cannot_run_the_bundle(ov_bundles, tmp_path, capsys, monkeypatch):
    """No openvino in Python (the integrator may have OpenVINO's C library only): the folder, without expected results."""
    from edgefusion.runtime import Fuser

    def unavailable(*args, **kwargs):
        raise UserError("openvino is not installed")

    monkeypatch.setattr(Fuser, "from_bundle", unavailable)  # Fuser.open goes through it too
    assert main(["native", "--model", str(ov_bundles["v1"]), "--out", str(tmp_path / "fw")]) == 0
    assert "cannot run the bundle here" in capsys.readouterr().out
    assert (tmp_path / "fw" / "bundle_data.c").is_file() and not any((tmp_path / "fw" / "samples" / "expected").iterdir())


def test_firmware_folder_refuses_other_folders(ov_bundles, tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(["native", "--model", str(ov_bundles["v1"]), "--out", str(tmp_path / "mine")]) == 2
    assert "refusing" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


@pytest.mark.slow
def test_shipped_student_x86_int8_bundle(fuse_frames, pairs, work, numpy_runtime):
    """The product path: the shipped student quantized for x86 (OpenVINO INT8, analyze-only), C against Python."""
    from edgefusion.runtime import Fuser

    bundle = work / "x86-int8"
    assert main(["quantize", "--target", "x86", "--out", str(bundle)]) == 0
    fuser = Fuser.open(bundle, threads=1)
    for name in SAMPLE_NAMES + ["rgb", "ir16"]:
        ir_path, vis_path = pairs[name]
        out = work / f"x86-{name}.pnm"
        done = run([fuse_frames, "--model", bundle, "--ir", ir_path, "--vis", vis_path, "-o", out, "--threads", "1"])
        assert done.returncode == 0, done.stderr
        expected = fuser.fuse(read_image(ir_path), read_image(vis_path))
        assert np.abs(read_image(out).astype(int) - expected).max() <= 1, name


class _Options(ctypes.Structure):
    _fields_ = [("backend", ctypes.c_void_p), ("device", ctypes.c_char_p), ("threads", ctypes.c_int), ("frame_threads", ctypes.c_int)]


@pytest.fixture(scope="session")
def runtime_lib(work):
    """The runtime with the built-in OpenVINO backend as a shared library for ctypes (one context, many frame sizes)."""
    lib = ctypes.CDLL(str(cc(work / "libedgefusion_ov.so", CORE, "-O1", "-fPIC", "-shared", *openvino_flags())))
    lib.ef_open_dir.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Options), ctypes.POINTER(ctypes.c_void_p)]
    lib.ef_fuse.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int,
                            ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    lib.ef_last_error.argtypes = [ctypes.c_void_p]
    lib.ef_last_error.restype = ctypes.c_char_p
    lib.ef_close.argtypes = [ctypes.c_void_p]
    return lib


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_one_context_across_frame_sizes(runtime_lib, ov_bundles, pairs, numpy_runtime, version):
    """Sizes A B C B A B on one context: each new padded size gets its own static-shape model, the third evicts the
    least recently used (2 kept), B comes back cached after the runtime grew its buffers (bound again), A recompiled;
    every frame fuses as the Python runtime does."""
    from edgefusion.runtime import Fuser

    ir, vis = read_image(pairs["rgb"][0]), read_image(pairs["rgb"][1])
    crops = {"A": (9, 13), "B": (5, 7), "C": (ir.shape[0], ir.shape[1] - 3)}  # padded 16x16, 8x8, full frame
    fuser = Fuser.open(ov_bundles[version], threads=1)
    ctx = ctypes.c_void_p()
    status = runtime_lib.ef_open_dir(str(ov_bundles[version]).encode(), ctypes.byref(_Options(None, None, 1)), ctypes.byref(ctx))
    try:
        assert status == 0, runtime_lib.ef_last_error(ctx)
        first = {}
        for key in "ABCBAB":
            h, w = crops[key]
            a, b = np.ascontiguousarray(ir[:h, :w]), np.ascontiguousarray(vis[:h, :w])
            out = np.zeros((h, w, 3), np.uint8)
            status = runtime_lib.ef_fuse(ctx, a.ctypes.data, 1, w, b.ctypes.data, 3, 3 * w, w, h, out.ctypes.data, 3, 3 * w)
            assert status == 0, runtime_lib.ef_last_error(ctx)
            assert np.abs(out.astype(int) - fuser.fuse(a, b)).max() <= 1, key
            assert np.array_equal(out, first.setdefault(key, out)), key  # deterministic per size
    finally:
        runtime_lib.ef_close(ctx)
