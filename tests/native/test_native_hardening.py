"""The C runtime checked like firmware: AddressSanitizer + UBSan, valgrind memcheck, fuzz harnesses on their seed corpus.

Sanitized builds use the trivial C backend (tests/native/trivial_backend.c): every
line that runs is edgefusion's. OpenVINO cannot run under AddressSanitizer (its
plugins are dlopen'ed with RTLD_DEEPBIND), so the OpenVINO example runs under UBSan
only. The >= 60 s libFuzzer runs are benchmarks/fuzz_native.sh, not part of the suite.
"""

from __future__ import annotations

import shutil

import pytest

from native_build import (ASAN_ENV, CORE, FUZZ_HARNESSES, NATIVE, SAMPLE_NAMES, SANITIZE, cc, driver_json, fuzz_corpus_runner,
                          fuzz_inputs, openvino_flags, require_sanitizers, run)



@pytest.mark.parametrize("version,name", [("v1", SAMPLE_NAMES[0]), ("v2", "rgb"), ("v2", "ir16"), ("v1", "odd7x5"), ("v2", "one1x1"), ("v2-encoded", "rgb")])
def test_asan_ubsan_on_frames(trivial_asan, fake_bundles, pairs, tmp_path, version, name):
    ir_path, vis_path = pairs[name]
    report = driver_json(run([trivial_asan, fake_bundles[version], ir_path, vis_path, tmp_path / "o.pnm", 2], env=ASAN_ENV))
    assert report["runs"] == 2


@pytest.mark.parametrize("size", ["1x1", "7x5", "9x17", "333x100"])
def test_asan_ubsan_on_odd_sizes(trivial_asan, fake_bundles, size):
    for version in ("v1", "v2"):
        assert driver_json(run([trivial_asan, "--synthetic", fake_bundles[version], size], env=ASAN_ENV))["allocs_after_first"] == 0


def test_asan_ubsan_bad_arguments(trivial_asan, fake_bundles):
    done = run([trivial_asan, "--bad-args", fake_bundles["v2"]], env=ASAN_ENV)
    assert done.returncode == 0 and done.stdout.splitlines()[-1].strip() == "0", done.stderr


def test_asan_ubsan_backend_errors_and_unreadable_files(trivial_asan, fake_bundles, pairs, tmp_path):
    """Failing backends (two-line messages, err without a NUL), an empty file given as (NULL, 0), a manifest.json
    that is a folder (its ftell "size" is LONG_MAX)."""
    done = run([trivial_asan, "--backend-errors", fake_bundles["v1"]], env=ASAN_ENV)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 6, done.stderr
    (tmp_path / "manifest.json").mkdir()
    ir_path, vis_path = pairs["odd7x5"]
    done = run([trivial_asan, tmp_path, ir_path, vis_path, tmp_path / "o.pgm"], env=ASAN_ENV)
    assert done.returncode == 2 and "cannot read manifest.json" in done.stderr, done.stderr


@pytest.mark.slow
def test_asan_ubsan_4000x3000(trivial_asan, fake_bundles):
    assert driver_json(run([trivial_asan, "--synthetic", fake_bundles["v2"], "4000x3000"], env=ASAN_ENV, timeout=600))["allocs_after_first"] == 0


def test_ubsan_openvino_example(work, ov_bundles, pairs, tmp_path):
    require_sanitizers(work)
    exe = cc(work / "fuse_frames_ubsan", [*CORE, NATIVE / "examples" / "pnm.c", NATIVE / "examples" / "fuse_frames.c"],
             "-O1", "-g", "-fsanitize=undefined", "-fno-sanitize-recover=all", *openvino_flags())
    for name in ("rgb", "odd7x5", "one1x1"):
        ir_path, vis_path = pairs[name]
        done = run([exe, "--model", ov_bundles["v2"], "--ir", ir_path, "--vis", vis_path, "-o", tmp_path / "o.pnm"], env=ASAN_ENV)
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("frame_threads", [0, 3])
def test_valgrind_memcheck_clean(trivial, fake_bundles, pairs, tmp_path, frame_threads):
    """memcheck on the caller's thread only and with 3 frame threads (the pool's workers included)."""
    if not shutil.which("valgrind"):
        pytest.skip("valgrind not found")
    memcheck = ["valgrind", "--tool=memcheck", "--error-exitcode=1", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect", "-q"]
    ir_path, vis_path = pairs["odd13x9"]
    cases = [["--synthetic", fake_bundles["v2"], "64x48"], [fake_bundles["v2"], ir_path, vis_path, tmp_path / "o.ppm", 2]]
    if not frame_threads:
        cases += [["--bad-args", fake_bundles["v1"]], ["--backend-errors", fake_bundles["v1"]]]
    for args in cases:
        done = run(memcheck + [trivial, "--frame-threads", frame_threads, *args])
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("harness", sorted(FUZZ_HARNESSES))
def test_fuzz_harness_on_seed_corpus(work, tmp_path, harness):
    """Each libFuzzer harness, linked with a plain main, on its seed corpus plus hostile inputs, under ASan + UBSan."""
    require_sanitizers(work)
    exe = fuzz_corpus_runner(work / f"fuzz_{harness}_corpus", harness, "-O1", "-g", *SANITIZE)
    files = fuzz_inputs(harness, tmp_path)
    done = run([exe, *files], env=ASAN_ENV)
    assert done.returncode == 0 and f"{len(files)} inputs" in done.stdout, done.stderr
