"""The C runtime's frame threads (ef_options.frame_threads): same bytes and statistics for every thread count.

Frames go through tests/native/trivial_backend.c (``--frame-threads N``): its backend hands the
statistics it got back in the report, and fused = stats[0] + (ir + vis) / 2 for v2 bundles, so the
output bytes depend on the input pass, the statistics and the output pass of every band.
"""

from __future__ import annotations


import numpy as np
import pytest

from native_build import (ASAN_ENV, SANITIZE, TRIVIAL, WRAP, cc, driver_json, frame_stats_reference, read_image, require_sanitizers, run,
                          trivial_fused, write_pair)

from edgefusion import preprocess

THREADS = (1, 2, 3)
SIZES = ((1, 1), (7, 5), (33, 17), (640, 480))


def frame_files(folder, w: int, h: int, vis_kind: str, ir_bits: int):
    """A random IR (8 or 16-bit) + visible (gray or RGB) pair of w x h pixels as PGM/PPM; returns the paths."""
    rng = np.random.default_rng(w * 1000 + h + ir_bits)
    ir = rng.integers(0, 65536 if ir_bits == 16 else 256, (h, w)).astype(np.uint16 if ir_bits == 16 else np.uint8)
    vis = rng.integers(0, 256, (h, w, 3) if vis_kind == "rgb" else (h, w)).astype(np.uint8)
    return write_pair(folder, f"{w}x{h}-ir{ir_bits}", ir, vis)


def fuse_with_threads(exe, bundle, ir_path, vis_path, folder, threads=THREADS, env=None):
    """{threads: (report, output bytes)} of trivial_backend with each frame thread count (3 frames each)."""
    results = {}
    for n in threads:
        out = folder / f"out{n}.pnm"
        report = driver_json(run([exe, "--frame-threads", n, bundle, ir_path, vis_path, out, 3], env=env))
        results[n] = (report, out.read_bytes())
    return results


def assert_same(results):
    (first, data), *others = results.values()
    for report, other in others:
        assert other == data  # byte for byte
        assert report["stats"] == first["stats"]  # float32 printed with 9 digits: exact
        assert report["bgr_difference"] == first["bgr_difference"]
    for report, _ in results.values():
        assert report["runs"] == 3 and report["allocs_after_first"] == 0


@pytest.mark.parametrize("w,h", SIZES)
@pytest.mark.parametrize("vis_kind", ["gray", "rgb"])
@pytest.mark.parametrize("ir_bits", [8, 16])
def test_same_bytes_and_stats_for_every_thread_count(trivial, fake_bundles, tmp_path, w, h, vis_kind, ir_bits):
    ir_path, vis_path = frame_files(tmp_path, w, h, vis_kind, ir_bits)
    results = fuse_with_threads(trivial, fake_bundles["v2"], ir_path, vis_path, tmp_path)
    assert_same(results)
    # and right (not only equal): the statistics of the contract, the trivial backend's fused frame
    pair = preprocess.prepare_pair(read_image(ir_path), read_image(vis_path))
    stats = frame_stats_reference(pair.ir, pair.vis_y)
    report, _ = results[3]
    np.testing.assert_allclose(report["stats"], stats, rtol=0, atol=1e-5)
    assert np.abs(read_image(tmp_path / "out3.pnm").astype(int) - trivial_fused(pair, stats[0])).max() <= 1


def test_same_bytes_without_stats_and_on_samples(trivial, fake_bundles, pairs, tmp_path):
    for version, name in (("v1", "rgb"), ("v1", "odd13x9"), ("v2-encoded", "rgb"), ("v2", "ir16")):
        ir_path, vis_path = pairs[name]
        assert_same(fuse_with_threads(trivial, fake_bundles[version], ir_path, vis_path, tmp_path))


def test_no_allocation_per_frame_and_heap_with_threads(trivial, fake_bundles):
    for version in ("v1", "v2"):
        report = driver_json(run([trivial, "--frame-threads", 3, "--synthetic", fake_bundles[version], "1920x1080"]))
        assert report["allocs_after_first"] == 0
        assert report["peak_heap"] <= 3 * report["io_bytes"]


@pytest.mark.parametrize("value,status", [(-1, 1), (65, 1)])
def test_bad_frame_thread_counts_are_refused(trivial, fake_bundles, pairs, tmp_path, value, status):
    ir_path, vis_path = pairs["odd7x5"]
    done = run([trivial, "--frame-threads", value, fake_bundles["v1"], ir_path, vis_path, tmp_path / "o.pgm"])
    assert done.returncode == 2 and f"open: {status}: " in done.stderr and "frame_threads" in done.stderr, done.stderr


def test_build_without_threads_refuses_more_than_one(work, trivial, fake_bundles, pairs, tmp_path):
    exe = cc(work / "trivial_no_threads", TRIVIAL, "-O1", "-DEF_NO_THREADS",
             WRAP)
    ir_path, vis_path = pairs["rgb"]
    done = run([exe, "--frame-threads", 2, fake_bundles["v2"], ir_path, vis_path, tmp_path / "o.ppm"])
    assert done.returncode == 2 and "open: 5: " in done.stderr and "EF_NO_THREADS" in done.stderr, done.stderr  # EF_ERR_UNSUPPORTED
    single = fuse_with_threads(exe, fake_bundles["v2"], ir_path, vis_path, tmp_path, threads=(0, 1))
    threaded = fuse_with_threads(trivial, fake_bundles["v2"], ir_path, vis_path, tmp_path, threads=(2,))
    assert_same({**single, **threaded})


def test_thread_that_cannot_start_fails_open(work, trivial_asan, fake_bundles, pairs, tmp_path):
    """The 2nd worker's pthread_create fails: ef_open_dir returns EF_ERR_MEMORY with a message; the 1st worker is
    joined (no leak under ASan); opening again afterwards works."""
    exe = cc(work / "trivial_fail_thread", TRIVIAL, "-O1", "-g", *SANITIZE,
             "-DTRIVIAL_FAIL_THREAD=2", "-Wl,--wrap=pthread_create", WRAP)
    ir_path, vis_path = pairs["odd7x5"]
    done = run([exe, "--frame-threads", 3, fake_bundles["v1"], ir_path, vis_path, tmp_path / "o.pgm"], env=ASAN_ENV)
    assert done.returncode == 2 and "open: 7: " in done.stderr and "cannot start frame thread 3 of 3" in done.stderr, done.stderr
    assert driver_json(run([exe, "--frame-threads", 1, fake_bundles["v1"], ir_path, vis_path, tmp_path / "o.pgm"], env=ASAN_ENV))["runs"] == 2


@pytest.mark.parametrize("w,h,vis_kind,ir_bits", [(7, 5, "gray", 8), (33, 17, "rgb", 16), (640, 480, "rgb", 8)])
def test_threads_under_asan_ubsan(trivial_asan, fake_bundles, tmp_path, w, h, vis_kind, ir_bits):
    ir_path, vis_path = frame_files(tmp_path, w, h, vis_kind, ir_bits)
    assert_same(fuse_with_threads(trivial_asan, fake_bundles["v2"], ir_path, vis_path, tmp_path, env=ASAN_ENV))


def test_threads_under_thread_sanitizer(work, fake_bundles, tmp_path):
    """No data race between the caller and the workers (gcc -fsanitize=thread; skips where TSan cannot run)."""
    flags = ("-O1", "-g", "-fsanitize=thread")
    require_sanitizers(work, flags=flags, run_probe=True)
    exe = cc(work / "trivial_tsan", TRIVIAL, *flags, WRAP)
    env = {"TSAN_OPTIONS": "halt_on_error=1:exitcode=88"}
    for w, h, vis_kind, ir_bits in ((33, 17, "rgb", 16), (160, 120, "gray", 8)):
        ir_path, vis_path = frame_files(tmp_path, w, h, vis_kind, ir_bits)
        assert_same(fuse_with_threads(exe, fake_bundles["v2"], ir_path, vis_path, tmp_path, threads=(1, 3), env=env))


@pytest.mark.parametrize("version", ["v1", "v2", "fused"])
def test_fuse_frames_frame_threads_same_bytes(fuse_frames, ov_bundles, pairs, tmp_path, version):
    """The OpenVINO example with --frame-threads 1 and 3: the same bytes (also the compose = model path)."""
    for name in ("rgb", "odd13x9", "ir16"):
        ir_path, vis_path = pairs[name]
        outputs = []
        for n in (1, 3):
            out = tmp_path / f"{name}-{n}.pnm"
            done = run([fuse_frames, "--model", ov_bundles[version], "--ir", ir_path, "--vis", vis_path, "-o", out, "--frame-threads", n])
            assert done.returncode == 0, done.stderr
            outputs.append(out.read_bytes())
        assert outputs[0] == outputs[1]
