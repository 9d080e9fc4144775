"""Speed, instruction counts and heap of the C runtime, as ratios to the memory floor measured in the same run.

    python benchmarks/bench_c_runtime.py [--bundle BUNDLE] [--runs 30] [--callgrind] [--massif] [--json F]

* floor: ``np.maximum`` of two float32 1920x1080 frames (numpy, one thread), hot and cold;
* C frame path without the network (normalize, BT.601, padding, composition, color,
  uint8; uint8 IR + RGB visible -> RGB) at 1080p: the runtime with the trivial C backend
  of tests/native/trivial_backend.c on a bundle with the given bundle's inputs (frame
  statistics included where it takes them), backend time excluded, on 1 frame thread and on
  ``frame_path_threads`` (the CPU count; keys ``frame_path_threads_*``); and the same on 1 thread
  built without the CPU's instruction-set flags (``frame_path_portable_*``: the portable loops,
  which non-AVX2 x86 CPUs, ``-DEF_KERNEL_DISPATCH=OFF`` firmware builds and aarch64 (Jetson) run);
* whole frame through the example ``fuse_frames`` (CMake build, OpenVINO C API) with
  the bundle (default: ``edgefusion quantize --target x86``) at 1080p and 640x480: 1 thread
  (``*_1t``: engine and frame path), the engine's default threads with the frame path on the
  caller's thread only (``*_ft1``) and the engine's default with fuse_frames' default frame
  threads (the CPU count; no suffix); each row records its ``frame_threads``;
* Python ``Fuser.fuse`` on the same bundle at 1080p, 1 thread and the engine's default;
* ``--callgrind``: instructions of one 1080p ef_fuse without the backend (valgrind callgrind),
  stable where seconds are not; ``--massif``: peak heap of fuse_frames at 1080p with OpenVINO;
* heap of the runtime itself at 1080p (counting allocator) against input + output buffers.

Every time is measured under both protocols of ``benchmarks/cold.py`` (``*_cold`` keys,
``ratios_to_floor`` ``*_hot`` / ``*_cold``): "hot", the same caller buffers every frame, and
"cold", the frames cycle through K copies of the input and output buffers, K x their size
>= 2x the last-level cache (the C programs' ``--frames K`` / FRAMES argument), as frames from
a camera, DMA engine or decoder arrive in DRAM; each against the floor measured the same way.

Builds go to a temporary folder; needs a C compiler, cmake and the openvino package.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from edgefusion.embed import openvino_c_root
from edgefusion.errors import UserError
from edgefusion.runtime import native

from cold import IO_BYTES_PER_PIXEL, cycle, floors, median_ms, rotating, sets_for

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ROOT / "edgefusion" / "native"
DRIVER = ROOT / "tests" / "native" / "trivial_backend.c"


#: The loader's flags for a program here: ISO C99, -O3, no FMA contraction, the CPU's instruction set.
CFLAGS = [*native.PROGRAM_FLAGS, *native.target_flags()]


def sh(cmd, **kw) -> str:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if done.returncode:
        sys.exit(f"bench_c_runtime: {' '.join(map(str, cmd))} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def build(work: Path) -> tuple[Path, Path, Path]:
    """fuse_frames (CMake, OpenVINO), and the trivial-backend driver with the loader's flags and without the CPU's."""
    try:
        ov = openvino_c_root()
    except UserError as exc:
        sys.exit(f"bench_c_runtime: {exc}")
    sh(["cmake", "-S", NATIVE, "-B", work / "build", f"-DEF_OPENVINO_ROOT={ov}", f"-DCMAKE_C_FLAGS={' '.join(native.target_flags())}"])
    sh(["cmake", "--build", work / "build", "-j2"])
    sources = [*sorted((NATIVE / "runtime").glob("ef_*.c")), NATIVE / "src" / "ef_kernels.c", NATIVE / "examples" / "pnm.c", DRIVER]
    sources = [s for s in sources if s.name != "ef_backend_openvino.c"]
    includes = [f"-I{NATIVE / d}" for d in ("include", "src", "runtime", "examples")]
    drivers = []
    for name, flags in (("trivial_backend", CFLAGS), ("trivial_backend_portable", native.PROGRAM_FLAGS)):
        drivers.append(work / name)
        sh(["cc", *flags, "-g", *includes, *sources, "-Wl,--wrap=malloc,--wrap=free,--wrap=calloc,--wrap=realloc", "-lm", "-o", drivers[-1]])
    return work / "build" / "fuse_frames", *drivers


def fake_bundle(work: Path, bundle: Path) -> Path:
    """A bundle for the trivial C backend with the real bundle's inputs (the shipped default's: ir, vis and the
    frame statistics, so the frame path computes them as it does for that bundle)."""
    from edgefusion.runtime.bundle import write_bundle

    real = json.loads((bundle / "manifest.json").read_text())
    plan = work / "model.plan"
    plan.write_bytes(b"trivial")
    manifest = {"schema": 1, "edgefusion_version": "bench", "backend": "tensorrt", "target": "bench", "precision": "fp32",
                "inputs": [i["name"] if isinstance(i, dict) else i for i in real["inputs"]], "outputs": [], "layout": "NCHW",
                "io_dtype": "float32", "value_range": [0.0, 1.0], "stride": 8, "fixed_shape": None, "compose": "runtime"}
    return write_bundle(work / "fake", {"model": plan}, manifest)


def callgrind_instructions(trivial: Path, fake: Path, work: Path) -> dict:
    """Instructions per 1080p ef_fuse call (4 calls: 3 warm-up + 1), with and without the trivial backend's run."""
    counts = {}
    for function in ("ef_fuse", "t_run"):
        out = work / f"callgrind.{function}"
        sh(["valgrind", "--tool=callgrind", f"--toggle-collect={function}", f"--callgrind-out-file={out}",
            trivial, "--bench", fake, "1920x1080", "1"], timeout=1800)
        counts[function] = int(re.search(r"^summary:\s+(\d+)", out.read_text(), re.M).group(1)) / 4
    return {"ef_fuse_instructions": counts["ef_fuse"], "backend_instructions": counts["t_run"],
            "frame_path_instructions": counts["ef_fuse"] - counts["t_run"],
            "instructions_per_pixel": (counts["ef_fuse"] - counts["t_run"]) / (1920 * 1080)}


def massif_peak(fuse_frames: Path, bundle: Path, work: Path) -> float:
    out = work / "massif.out"
    sh(["valgrind", "--tool=massif", f"--massif-out-file={out}", fuse_frames, "--model", bundle, "--size", "1920x1080",
        "--bench", "1", "--warmup", "0", "--threads", "1"], timeout=1800)
    peaks = [int(m) + int(e) for m, e in re.findall(r"mem_heap_B=(\d+)\nmem_heap_extra_B=(\d+)", out.read_text())]
    return max(peaks) / 2**20


def python_fuser_ms(bundle: Path, runs: int, threads: int | None) -> dict[str, float]:
    """Median ms of Fuser.fuse on a 1080p pair: "hot" (one pair) and "cold" (the pairs of cold.rotating in turn)."""
    from edgefusion.bench import synthetic_pair
    from edgefusion.runtime import Fuser

    pairs = rotating(lambda i: synthetic_pair(1920, 1080, seed=i))
    fuser = Fuser.open(bundle, threads=threads)
    following = cycle(pairs)
    return {"hot": median_ms(lambda: fuser.fuse(*pairs[0]), runs),
            "cold": median_ms(lambda: fuser.fuse(*following()), runs, warmup=len(pairs))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", help="x86 OpenVINO bundle (default: built with edgefusion quantize --target x86)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--massif", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-native-") as tmp:
        work = Path(tmp)
        bundle = Path(args.bundle) if args.bundle else work / "x86"
        if not args.bundle:
            sh([sys.executable, "-m", "edgefusion", "quantize", "--target", "x86", "--out", bundle])
        fuse_frames, trivial, portable = build(work)
        fake = fake_bundle(work, bundle)
        floor = floors(1920, 1080, args.runs)
        result = {"load_before": os.getloadavg(), "floor_ms": floor["hot"], "floor_ms_cold": floor["cold"], "cflags": " ".join(CFLAGS)}
        result["frame_path_threads"] = os.cpu_count() or 1
        for prefix, driver, frame_threads in (("frame_path", trivial, 1), ("frame_path_threads", trivial, result["frame_path_threads"]),
                                              ("frame_path_portable", portable, 1)):
            for suffix, frames in (("", 1), ("_cold", sets_for(IO_BYTES_PER_PIXEL * 1920 * 1080))):
                path = json.loads(sh([driver, "--frame-threads", frame_threads, "--bench", fake, "1920x1080", args.runs, frames]))
                result[prefix + "_ms" + suffix] = path["frame_path_median_ms"]
                result[prefix + "_min_ms" + suffix] = path["frame_path_min_ms"]
                result["frames" + suffix] = frames
        for label, size, threads in (("c_1080p_1t", "1920x1080", ["--threads", "1"]), ("c_1080p_ft1", "1920x1080", ["--frame-threads", "1"]),
                                     ("c_1080p", "1920x1080", []), ("c_480p_1t", "640x480", ["--threads", "1"]),
                                     ("c_480p_ft1", "640x480", ["--frame-threads", "1"]), ("c_480p", "640x480", [])):
            w, h = map(int, size.split("x"))
            for suffix, frames in (("", 1), ("_cold", sets_for(IO_BYTES_PER_PIXEL * w * h))):
                stats = json.loads(sh([fuse_frames, "--model", bundle, "--size", size, "--bench", args.runs, "--frames", frames,
                                       *threads]))["sizes"][0]
                result[label + suffix] = {k: stats[k] for k in ("median_ms", "min_ms", "fps", "model_ms", "compose_ms", "overhead_ms",
                                                                 "peak_rss_mb", "frames", "frame_threads")}
        for label, threads in (("python_fuser_1080p_1t", 1), ("python_fuser_1080p", None)):
            times = python_fuser_ms(bundle, args.runs, threads)
            result[label + "_ms"], result[label + "_ms_cold"] = times["hot"], times["cold"]
        heap = json.loads(sh([trivial, "--synthetic", fake, "1920x1080"]))
        result["runtime_heap_1080p_mb"] = heap["peak_heap"] / 2**20
        result["io_buffers_1080p_mb"] = heap["io_bytes"] / 2**20
        result["allocs_per_frame"] = heap["allocs_after_first"]
        if args.callgrind:
            result.update(callgrind_instructions(trivial, fake, work))
        if args.massif:
            result["massif_peak_heap_1080p_mb"] = massif_peak(fuse_frames, bundle, work)
        result["load_after"] = os.getloadavg()
    ratios = {}
    for suffix, protocol in (("", "hot"), ("_cold", "cold")):
        floor = result["floor_ms" + suffix]
        ratios.update({f"frame_path_{protocol}": result["frame_path_ms" + suffix] / floor,
                       f"frame_path_threads_{protocol}": result["frame_path_threads_ms" + suffix] / floor,
                       f"frame_path_portable_{protocol}": result["frame_path_portable_ms" + suffix] / floor,
                       f"c_1080p_1t_{protocol}": result["c_1080p_1t" + suffix]["median_ms"] / floor,
                       f"c_1080p_ft1_{protocol}": result["c_1080p_ft1" + suffix]["median_ms"] / floor,
                       f"c_1080p_{protocol}": result["c_1080p" + suffix]["median_ms"] / floor,
                       f"python_fuser_1080p_1t_{protocol}": result["python_fuser_1080p_1t_ms" + suffix] / floor,
                       f"python_fuser_1080p_{protocol}": result["python_fuser_1080p_ms" + suffix] / floor})
    ratios["runtime_heap_to_io"] = result["runtime_heap_1080p_mb"] / result["io_buffers_1080p_mb"]
    result["ratios_to_floor"] = ratios
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
