"""The CMake project's builds write the same bytes on every target: x86-64, x86-64-v3 (AVX2, FMA), x86-64 with
run-time dispatch (the default: the AVX2 kernels on CPUs that have them) and aarch64.

Each build is ``edgefusion/native/CMakeLists.txt`` configured as an integrator would
(aarch64: ``cmake/aarch64-linux-gnu.cmake``, Debian's cross toolchain, programs run under
``qemu-aarch64``), with two test drivers linked against its ``libedgefusion.a``:
``tests/native_kernels_check.c`` (one hash per size of every kernel's outputs, random
inputs and maps) and ``tests/native/trivial_backend.c`` (whole frames through the runtime,
PGM/PPM in and out). The host build without -march and without dispatch (the portable loops) is
the reference; FMA contraction of
a*b+c (GCC's default outside ISO C mode) would change the bytes on aarch64 and
x86-64-v3. The aarch64 tests skip when the cross compiler, its C library or qemu is
missing; install them with
``apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user``.
"""

from __future__ import annotations

import platform
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from native_build import (ASAN_ENV, DRIVERS, FUZZ_HARNESSES, NATIVE, SANITIZE, WRAP, cc, cmake_build, compiler, default_isa, driver_json,
                          fuzz_corpus_runner,
                          fuzz_inputs, require_sanitizers, run, write_pair)

CROSS_CC = "aarch64-linux-gnu-gcc"
QEMU = "qemu-aarch64"
SYSROOT = Path("/usr/aarch64-linux-gnu")
INSTALL = "apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
KERNELS_CHECK = DRIVERS.parent / "native_kernels_check.c"
TOOLCHAIN = f"-DCMAKE_TOOLCHAIN_FILE={NATIVE / 'cmake' / 'aarch64-linux-gnu.cmake'}"


class Build:
    """A CMake build of the C runtime and its two drivers; ``runner`` prefixes every program (qemu for aarch64)."""

    def __init__(self, folder: Path, compiler_path: str, runner: list[str], cmake_options: list[str], driver_flags: tuple[str, ...] = ()):
        cmake_build(NATIVE, folder, *cmake_options)
        self.folder, self.compiler, self.runner = folder, compiler_path, runner
        self.library = folder / "libedgefusion.a"
        self.kernels = cc(folder / "kernels_check", [KERNELS_CHECK, self.library], *driver_flags, compiler_path=compiler_path)
        self.trivial = cc(folder / "trivial_backend", [DRIVERS / "trivial_backend.c", NATIVE / "examples" / "pnm.c", self.library],
                          WRAP, *driver_flags, compiler_path=compiler_path)

    def run(self, program: Path, *args, env: dict | None = None):
        return run([*self.runner, program, *args], timeout=120, env=env)

    def kernel_hashes(self) -> list[str]:
        done = self.run(self.kernels)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        return done.stdout.splitlines()

    def kernels_isa(self) -> str:
        """ef_kernels_isa() of the library on this CPU."""
        source = self.folder / "isa.c"
        source.write_text('#include <stdio.h>\n#include "edgefusion.h"\nint main(void) { puts(ef_kernels_isa()); return 0; }\n')
        done = self.run(cc(self.folder / "isa", [source, self.library], compiler_path=self.compiler))
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def fuse(self, bundle: Path, ir: Path, vis: Path, out: Path) -> tuple[bytes, dict]:
        """The fused frame's bytes and the driver's report (frame statistics as the backend got them)."""
        report = driver_json(self.run(self.trivial, bundle, ir, vis, out, 2))
        return out.read_bytes(), {key: report[key] for key in ("stats", "stats_scale", "bgr_difference")}


def on_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


@pytest.fixture(scope="session")
def host_build(work):
    """The reference: host compiler, CMake defaults (no -march) but the portable kernels alone (no run-time dispatch)."""
    return Build(work / "cmake-host", compiler(), [], ["-DEF_KERNEL_DISPATCH=OFF"])


@pytest.fixture(scope="session")
def dispatch_build(work):
    """What an integrator gets from CMake's defaults on x86-64: both kernel variants, picked per CPU."""
    if not on_x86_64():
        pytest.skip("run-time dispatch is built for x86-64 only")
    if default_isa() == "avx2":
        pytest.skip("the compiler's default target has AVX2: CMake builds no dispatch (see the -march=x86-64-v3 test)")
    return Build(work / "cmake-dispatch", compiler(), [], [])


@pytest.fixture(scope="session")
def x86_64_v3_build(work):
    from edgefusion.runtime import native

    if not on_x86_64() or not native.X86_64_V3 <= native._cpu_flags():
        pytest.skip("this CPU cannot run x86-64-v3 (AVX2, FMA) code")
    return Build(work / "cmake-x86-64-v3", compiler(), [], ["-DCMAKE_C_FLAGS=-march=x86-64-v3"])


@pytest.fixture(scope="session")
def aarch64_build(work):
    """The aarch64 build with the shipped toolchain file; skips with the reason when a cross tool is missing."""
    compiler_path, qemu = shutil.which(CROSS_CC), shutil.which(QEMU)
    if not compiler_path or not qemu:
        pytest.skip(f"{CROSS_CC if not compiler_path else QEMU} not found; the aarch64 checks need: {INSTALL}")
    if not (SYSROOT / "include" / "stdio.h").is_file():
        pytest.skip(f"no aarch64 C library headers under {SYSROOT}; the aarch64 checks need: {INSTALL}")
    return Build(work / "cmake-aarch64", compiler_path, [qemu, "-L", str(SYSROOT)], [TOOLCHAIN])


@pytest.fixture(scope="session")
def frames(work, pairs):
    """The samples and odd-size pairs of ``pairs`` plus 33x17 (16-bit IR) and 640x480 (RGB) made here."""
    rng = np.random.default_rng(11)
    made = {
        "odd33x17": (rng.integers(0, 65536, (17, 33), dtype=np.uint16), rng.integers(0, 256, (17, 33, 3), dtype=np.uint8)),
        "vga640x480": (np.tile(np.arange(640, dtype=np.uint8), (480, 1)) ^ rng.integers(0, 32, (480, 640), dtype=np.uint8),
                       rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)),
    }
    return pairs | {name: write_pair(work, name, ir, vis) for name, (ir, vis) in made.items()}


def test_cmake_build_is_iso_c_without_contraction(host_build):
    """The library compiles as ISO C99 with -ffp-contract=off whatever the integrator's CMAKE_C_FLAGS (GNU mode contracts)."""
    flags = (host_build.folder / "CMakeFiles" / "edgefusion.dir" / "flags.make").read_text()
    assert "-std=c99" in flags and "-std=gnu" not in flags and "-ffp-contract=off" in flags


def test_x86_64_v3_build_writes_the_portable_bytes(host_build, x86_64_v3_build, frames, fake_bundles, tmp_path):
    assert x86_64_v3_build.kernel_hashes() == host_build.kernel_hashes()
    for name, (ir, vis) in sorted(frames.items()):
        assert x86_64_v3_build.fuse(fake_bundles["v2"], ir, vis, tmp_path / "v3.pnm") == host_build.fuse(fake_bundles["v2"], ir, vis, tmp_path / "x.pnm"), name


def test_dispatch_build_runs_avx2_where_the_cpu_has_it_and_writes_the_portable_bytes(host_build, dispatch_build, frames,
                                                                                     fake_bundles, tmp_path):
    """The default x86-64 build compiles both variants (the AVX2 one with -mavx2 -mfma only) and picks AVX2 exactly on
    CPUs whose /proc/cpuinfo lists avx2 and fma; its kernels and frames equal the portable build's, and so do the
    variants called by their own names (the one this CPU does not pick included, where it can run)."""
    from edgefusion.runtime import native

    flags = (dispatch_build.folder / "CMakeFiles" / "edgefusion.dir" / "flags.make").read_text()
    assert "-mavx2" not in flags.split("C_FLAGS", 1)[1].splitlines()[0]  # the target's flags stay generic
    reference = host_build.kernel_hashes()
    assert dispatch_build.kernel_hashes() == reference
    cpu_has_avx2 = {"avx2", "fma"} <= native._cpu_flags()
    for variant in ("portable", "avx2") if cpu_has_avx2 else ("portable",):
        renamed = ["-DEF_KERNELS_VARIANT=" + variant, "-include", str(NATIVE / "dispatch" / "ef_kernels_variant.h")]
        exe = cc(dispatch_build.folder / f"kernels_check_{variant}", [KERNELS_CHECK, dispatch_build.library], *renamed)
        done = dispatch_build.run(exe)
        assert done.returncode == 0 and done.stdout.splitlines() == reference, (variant, done.stderr)
    for name, (ir, vis) in sorted(frames.items()):
        expected = host_build.fuse(fake_bundles["v2"], ir, vis, tmp_path / "x.pnm")
        assert dispatch_build.fuse(fake_bundles["v2"], ir, vis, tmp_path / "d.pnm") == expected, name
    assert (dispatch_build.kernels_isa(), host_build.kernels_isa()) == ("avx2" if cpu_has_avx2 else "portable", "portable")


def test_dispatch_build_under_sanitizers_and_valgrind(work, host_build, dispatch_build, frames, fake_bundles, tmp_path):
    """The dispatching library under ASan + UBSan (kernels and frames as the portable build's), and memcheck-clean."""
    require_sanitizers(work)
    sanitized = Build(work / "cmake-dispatch-asan", compiler(), [], [f"-DCMAKE_C_FLAGS={' '.join(SANITIZE)}"], SANITIZE)
    assert sanitized.kernel_hashes() == host_build.kernel_hashes()
    ir, vis = frames["odd33x17"]
    expected = host_build.fuse(fake_bundles["v2"], ir, vis, tmp_path / "x.pnm")
    assert sanitized.run(sanitized.trivial, fake_bundles["v2"], ir, vis, tmp_path / "a.pnm", 2, env=ASAN_ENV).returncode == 0
    assert (tmp_path / "a.pnm").read_bytes() == expected[0]
    if shutil.which("valgrind"):
        memcheck = ["valgrind", "--tool=memcheck", "--error-exitcode=1", "--leak-check=full", "-q"]
        done = run([*memcheck, dispatch_build.trivial, "--synthetic", fake_bundles["v2"], "64x48"], timeout=300)
        assert done.returncode == 0, done.stderr


def test_dispatch_covers_every_kernel():
    """Each function ef_kernels.h declares is renamed in the variants and dispatched (a new kernel cannot be left out)."""
    header = (NATIVE / "src" / "ef_kernels.h").read_text()
    declared = set(re.findall(r"^(?:int|size_t|const char \*)\s*(ef_\w+)\(", header, re.M))
    renamed = set(re.findall(r"^#define (ef_\w+) EF_V\(", (NATIVE / "dispatch" / "ef_kernels_variant.h").read_text(), re.M))
    dispatched = {f"ef_{name}" for name in re.findall(r"^\s*X\([^,()]+, (\w+),", (NATIVE / "dispatch" / "ef_dispatch.c").read_text(), re.M)}
    assert len(declared) == 22 and declared == renamed == dispatched


def test_dispatch_is_off_where_the_flags_already_target_avx2(x86_64_v3_build):
    """-march=x86-64-v3: one compilation of the kernels, AVX2 at compile time (no dispatch objects)."""
    objects = {p.name for p in (x86_64_v3_build.folder / "CMakeFiles" / "edgefusion.dir").rglob("*.o")}
    assert x86_64_v3_build.kernels_isa() == "avx2" and "ef_kernels.c.o" in objects and "ef_dispatch.c.o" not in objects


def test_aarch64_build_is_aarch64(aarch64_build):
    head = aarch64_build.trivial.read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 183  # EM_AARCH64


def test_aarch64_kernels_write_the_x86_bytes(host_build, aarch64_build):
    reference = host_build.kernel_hashes()
    assert reference and aarch64_build.kernel_hashes() == reference


def test_aarch64_python_loader_flags_write_the_x86_bytes(host_build, aarch64_build, work):
    """The Python runtime's kernels on aarch64 are built with native.BASE_FLAGS alone (no -march): the same bytes as well."""
    from edgefusion.runtime import native

    flags = native.PROGRAM_FLAGS
    exe = cc(work / "kernels_check_loader_aarch64", [KERNELS_CHECK, NATIVE / "src" / "ef_kernels.c"], *flags, compiler_path=aarch64_build.compiler)
    done = aarch64_build.run(exe)
    assert done.returncode == 0 and done.stdout.splitlines() == host_build.kernel_hashes(), done.stderr


@pytest.mark.parametrize("version", ["v1", "v2", "v2-encoded"])
def test_aarch64_frames_equal_x86_frames(host_build, aarch64_build, frames, fake_bundles, tmp_path, version):
    """Samples, color, 16-bit IR and odd sizes (1x1, 7x5, 13x9, 33x17, 640x480): the same bytes and statistics."""
    names = sorted(frames) if version == "v2" else ["rgb", "odd7x5", "vga640x480"]
    for name in names:
        ir, vis = frames[name]
        expected = host_build.fuse(fake_bundles[version], ir, vis, tmp_path / f"{name}-x86.pnm")
        assert aarch64_build.fuse(fake_bundles[version], ir, vis, tmp_path / f"{name}-aarch64.pnm") == expected, name


def test_aarch64_example_refuses_what_it_cannot_run(aarch64_build, fake_bundles, tmp_path):
    """fuse_frames cross-built without a backend: one line on stderr and exit 2, not a crash."""
    done = aarch64_build.run(aarch64_build.folder / "fuse_frames", "--model", fake_bundles["v1"], "--size", "64x48", "--bench", "1")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "backend" in done.stderr, done.stderr


def test_aarch64_build_against_a_device_root(aarch64_build, work, frames):
    """EF_SYSROOT (a device's root file system, here laid out from Debian's cross C library): CMake links against it, qemu runs."""
    root = work / "device-root"
    (root / "usr").mkdir(parents=True)
    for link, target in (("usr/include", "include"), ("usr/lib", "lib"), ("lib", "lib"), ("usr/aarch64-linux-gnu", ".")):
        (root / link).symlink_to(SYSROOT / target)
    build = Build(work / "cmake-aarch64-root", aarch64_build.compiler, [aarch64_build.runner[0], "-L", str(root)], [TOOLCHAIN, f"-DEF_SYSROOT={root}"])
    assert f"--sysroot={root}" in (build.folder / "CMakeFiles" / "pnm_compare.dir" / "link.txt").read_text()
    ir, _ = frames["rgb"]
    done = build.run(build.folder / "pnm_compare", ir, ir, 0)
    assert done.returncode == 0 and done.stdout.startswith("max difference 0 "), done.stderr


@pytest.mark.parametrize("harness", sorted(FUZZ_HARNESSES))
def test_aarch64_fuzz_corpus_under_sanitizers(aarch64_build, work, tmp_path, harness):
    """The fuzz harnesses' readers, cross-built with ASan + UBSan, on the seed corpus and the hostile inputs under qemu
    (LeakSanitizer cannot run under qemu: leaks are checked by the x86 builds)."""
    require_sanitizers(work, aarch64_build.compiler)
    exe = fuzz_corpus_runner(work / f"fuzz_{harness}_aarch64", harness, "-O1", "-g", *SANITIZE, compiler_path=aarch64_build.compiler)
    files = fuzz_inputs(harness, tmp_path)
    done = aarch64_build.run(exe, *files, env={"ASAN_OPTIONS": "detect_leaks=0:exitcode=86", "UBSAN_OPTIONS": "halt_on_error=1:exitcode=87"})
    assert done.returncode == 0 and f"{len(files)} inputs" in done.stdout, done.stderr
