"""Session fixtures of the C runtime tests: builds (system compiler) and small bundles, made once per session."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from PIL import Image

from native_build import (BASE_MANIFEST, CORE, ENCODED_STATS_SCALE, NATIVE, SAMPLE_NAMES, SANITIZE, TRIVIAL, WRAP, analyze_model, cc, fusing_model,
                          openvino_flags, openvino_root, require_sanitizers, write_pair)

from edgefusion.resources import SAMPLES
from edgefusion.runtime.bundle import write_bundle

# ---- builds and bundles (once per session) -------------------------------------------------

@pytest.fixture(scope="session")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("native")


@pytest.fixture(scope="session")
def reader_lib(work):
    """SHA-256, JSON and manifest reader as a shared library for ctypes."""
    sources = [NATIVE / "runtime" / n for n in ("ef_sha256.c", "ef_json.c", "ef_manifest.c")]
    lib = ctypes.CDLL(str(cc(work / "libef_readers.so", sources, "-O1", "-fPIC", "-shared")))
    lib.ef_sha256_hex.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
    lib.ef_manifest_parse.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.ef_manifest_check_seal.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    return lib


@pytest.fixture(scope="session")
def trivial(work):
    """The runtime with the trivial C backend of tests/native/trivial_backend.c (no inference engine)."""
    return cc(work / "trivial_backend", TRIVIAL, "-O1", "-g", WRAP)


@pytest.fixture(scope="session")
def trivial_asan(work):
    """trivial_backend under AddressSanitizer + UndefinedBehaviorSanitizer (skips without libasan/libubsan)."""
    require_sanitizers(work)
    return cc(work / "trivial_asan", TRIVIAL, "-O1", "-g", *SANITIZE, WRAP)


@pytest.fixture(scope="session")
def fuse_frames(work):
    """The example program with the built-in OpenVINO backend."""
    return cc(work / "fuse_frames", [*CORE, NATIVE / "examples" / "pnm.c", NATIVE / "examples" / "fuse_frames.c"], "-O2", *openvino_flags())


@pytest.fixture(scope="session")
def pairs(work):
    """PGM/PPM files of the samples plus color, 16-bit and odd-size variants: name -> (ir path, vis path)."""
    rng = np.random.default_rng(0)
    out = {}
    for name in SAMPLE_NAMES:
        ir = np.asarray(Image.open(SAMPLES / "ir" / f"{name}.png"))
        vis = np.asarray(Image.open(SAMPLES / "vi" / f"{name}.png"))
        out[name] = (ir, vis)
    ir, vis = out[SAMPLE_NAMES[0]]
    color = np.clip(vis[..., None].astype(int) + rng.integers(-60, 60, (1, 1, 3)) + rng.integers(-20, 20, vis.shape + (3,)), 0, 255).astype(np.uint8)
    out["rgb"] = (ir, color)
    out["ir16"] = ((ir.astype(np.uint16) * 180 + rng.integers(0, 300, ir.shape)).astype(np.uint16), color)
    out["odd13x9"] = (ir[:9, :13], color[:9, :13])
    out["odd7x5"] = (ir[:5, :7], vis[:5, :7])
    out["one1x1"] = (ir[:1, :1], color[:1, :1])
    return {name: write_pair(work, name, ir, vis) for name, (ir, vis) in out.items()}


@pytest.fixture(scope="session")
def ov_bundles(work):
    """OpenVINO bundles: compose = runtime v1 (ir, vis) and v2 (ir, vis, stats); compose = model ("fused")."""
    openvino_root()
    pytest.importorskip("onnx")
    bundles = {}
    for version, with_stats in (("v1", False), ("v2", True)):
        xml, weights = analyze_model(work / f"analyze-{version}.xml", with_stats)
        manifest = dict(BASE_MANIFEST, inputs=["ir", "vis", "stats"] if with_stats else BASE_MANIFEST["inputs"])
        bundles[version] = write_bundle(work / f"ov-{version}", {"model": xml, "weights": weights}, manifest)
    xml, weights = fusing_model(work / "fusing.xml")
    outputs = [{"name": "fused", "shape": [1, 1, -1, -1], "dtype": "float32"}]
    bundles["fused"] = write_bundle(work / "ov-fused", {"model": xml, "weights": weights}, dict(BASE_MANIFEST, compose="model", outputs=outputs))
    return bundles


@pytest.fixture(scope="session")
def fake_bundles(work):
    """Bundles for the trivial C backend: backend tensorrt (no built-in C backend), v1, v2, and v2 taking encoded stats."""
    plan = work / "model.plan"
    plan.write_bytes(b"a trivial engine")
    return {
        "v1": write_bundle(work / "fake-v1", {"model": plan}, dict(BASE_MANIFEST, backend="tensorrt")),
        "v2": write_bundle(work / "fake-v2", {"model": plan}, dict(BASE_MANIFEST, backend="tensorrt", inputs=["ir", "vis", "stats"])),
        "v2-encoded": write_bundle(work / "fake-v2-encoded", {"model": plan}, dict(BASE_MANIFEST, backend="tensorrt", inputs=["ir", "vis", "stats"],
                                                                                  stats_encoding={"scale": list(ENCODED_STATS_SCALE)})),
        "fixed": write_bundle(work / "fake-fixed", {"model": plan}, dict(BASE_MANIFEST, backend="tensorrt", fixed_shape=[16, 24])),
    }


