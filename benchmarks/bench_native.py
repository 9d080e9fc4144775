"""The C frame-path kernels against the memory floor (a benchmark, not a test).

Three measurements, each next to the floor measured in the same run (median of
``np.maximum(a, b, out=c)`` over two float32 frames of the size):

1. **C frame path without the network** (``benchmarks/native_frame_path.c``,
   built with the runtime's flags: the input pass ``ef_prepare_u8`` (IR / 255,
   BT.601 luma of an RGB frame, the 6 frame statistics, stride padding) and
   ``ef_compose_u8`` (composition + color restore + uint8 RGB)), one thread,
   median per stage; target <= 3x floor at 1920x1080.
2. **Instruction counts** of the same driver (one frame, no warm-up) under
   ``valgrind --tool=callgrind``, per kernel: stable on a busy machine where
   seconds are not.
3. **Python ``Fuser.fuse``** (uint8 IR + RGB visible in, uint8 RGB out) on an
   analyze-only bundle (``compose = "runtime"``, e.g. the x86 INT8 one) with
   the C kernels and with ``EDGEFUSION_NATIVE=0`` (numpy); targets
   <= 20x floor at 1920x1080 and >= 300 FPS at 640x480; plus the throughput of
   ``Fuser.fuse_stream`` (the pipelined video path) over ``--runs`` frames.

    python benchmarks/bench_native.py [--bundle DIR] [--sizes 640x480,1920x1080] [--runs 30] [--threads 1] [--json FILE]

Every time is measured under both protocols of ``benchmarks/cold.py``: "hot" (the same
buffers every run) and "cold" (the caller's input and output buffers rotate through sets
larger in total than twice the last-level cache, as frames from a camera or decoder do;
the driver's FRAMES argument), each against the floor measured the same way:
``x_floor_hot`` and ``x_floor_cold``.

``EDGEFUSION_NATIVE_CFLAGS`` (e.g. ``-march=x86-64-v3``) applies to the driver and to the
runtime's kernels alike.

``--bundle`` defaults to building the x86 INT8 analyze-only bundle from the
shipped student into a temporary folder (needs the ``quantize`` extra);
``--no-bundle`` skips part 3 and ``--no-callgrind`` part 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from cold import IO_BYTES_PER_PIXEL, cycle, floors, median_ms, ratios, rotating, sets_for  # the same protocols and floor as the runtime benchmark

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "benchmarks" / "native_frame_path.c"
KERNELS = ("ef_prepare_u8", "ef_compose_u8")


def build_driver(out: Path) -> tuple[Path, list[str]]:
    """Compile the driver and the kernels with the flags the runtime's loader uses."""
    from edgefusion.runtime import native

    compiler = os.environ.get("CC") or shutil.which("cc") or "gcc"
    flags = [*native.PROGRAM_FLAGS, *native.target_flags()]
    sources = [str(DRIVER), *map(str, sorted(native.SOURCES.glob("*.c")))]
    cmd = [compiler, *flags, "-g", f"-I{native.SOURCES}", *sources, "-lm", "-o", str(out)]
    subprocess.run(cmd, check=True)
    return out, flags


def c_frame_path(driver: Path, width: int, height: int, runs: int, frames: int = 1) -> dict:
    """The driver's JSON; ``frames`` > 1 cycles that many caller buffer sets (cold protocol)."""
    done = subprocess.run([str(driver), str(width), str(height), str(runs), str(frames)], check=True, capture_output=True,
                          text=True)
    return json.loads(done.stdout)


def callgrind(driver: Path, width: int, height: int, work: Path) -> dict[str, int]:
    """Inclusive instruction counts per kernel for one frame, plus the kernels' total."""
    out = work / "callgrind.out"
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", str(driver), str(width), str(height), "1"],
                   check=True, capture_output=True)
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)], check=True, capture_output=True, text=True).stdout
    counts = {}
    for line in text.splitlines():
        # "count (pct) [=> ]path/ef_kernels.c:kernel ...": the largest is the kernel's inclusive count (other lines
        # are parts of it, e.g. intrinsics headers inlined into it, or the same file under a relative path)
        match = re.match(r"\s*([\d,]+)\s.*ef_kernels\.c:(ef_\w+)(\s|$)", line)
        if match and match.group(2) in KERNELS:
            counts[match.group(2)] = max(counts.get(match.group(2), 0), int(match.group(1).replace(",", "")))
    counts["total"] = sum(counts.values())
    return counts


def x86_int8_bundle(work: Path) -> Path:
    from edgefusion.quantize.pipeline import DEFAULT_MODEL, run_quantize
    from edgefusion.targets import load_target

    target = dataclasses.replace(load_target("x86"), precision="int8", compose="runtime")
    out = work / "x86-int8-runtime"
    print("building the x86 INT8 analyze-only bundle", file=sys.stderr)
    run_quantize(target, out, model_path=DEFAULT_MODEL, force=True, log=lambda *a, **k: None)
    return out


def fuser_rows(bundle: Path, sizes, runs: int, floor: dict, threads: int) -> list[dict]:
    """Fuser.fuse per size with the C kernels and with numpy: median and minimum ms (the machine is shared),
    hot (one input pair) and cold (``fuse_ms_cold``: the pairs of :func:`cold.rotating` in turn)."""
    import time

    from edgefusion import bench
    from edgefusion.runtime import Fuser

    rows = []
    for mode in ("C kernels", "numpy"):
        if mode == "numpy":
            os.environ["EDGEFUSION_NATIVE"] = "0"
        fuser = Fuser.open(bundle, threads=threads or None)
        for w, h in sizes:
            pairs = rotating(lambda i: bench.synthetic_pair(w, h, seed=i))
            ir, vis = pairs[0]
            totals, backend = [], []
            for i in range(runs + 3):  # 3 warm-up frames
                start = time.perf_counter()
                fuser.fuse(ir, vis)
                if i >= 3:
                    totals.append((time.perf_counter() - start) * 1e3)
                    backend.append(fuser.timings["backend_ms"])
            next_pair = cycle(pairs)
            total_cold = median_ms(lambda: fuser.fuse(*next_pair()), runs, warmup=len(pairs))  # one warm-up round
            total, net = float(np.median(totals)), float(np.median(backend))
            stream_fps = None
            if mode == "C kernels":  # the pipelined video path: frames per second over the whole sequence
                start = time.perf_counter()
                for _ in fuser.fuse_stream([(ir, vis)] * runs):
                    pass
                stream_fps = runs / (time.perf_counter() - start)
            rows.append({"frame_path": mode, "size": f"{w}x{h}", "fuse_ms": total, "min_fuse_ms": min(totals),
                         "fuse_ms_cold": total_cold, "frames_cold": len(pairs), "backend_ms": net,
                         "min_backend_ms": min(backend), "frame_path_ms": total - net, "fps": 1000.0 / total,
                         **ratios(total, total_cold, floor[(w, h)]), "fuse_stream_fps": stream_fps})
        os.environ.pop("EDGEFUSION_NATIVE", None)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="analyze-only bundle (default: build the x86 INT8 one)")
    parser.add_argument("--no-bundle", action="store_true", help="skip Fuser.fuse")
    parser.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts")
    parser.add_argument("--sizes", default="640x480,1920x1080", help="WxH sizes for Fuser.fuse")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="Fuser threads (backend and composition bands); 0: the backend's default")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from edgefusion import bench

    sizes = bench.parse_sizes(args.sizes)
    result: dict = {"cpu": bench.cpu_model(), "load": os.getloadavg()[0], "fuser_threads": args.threads}
    with tempfile.TemporaryDirectory(prefix="bench-native-") as tmp:
        work = Path(tmp)
        driver, flags = build_driver(work / "frame_path")
        result["cflags"] = " ".join(flags)
        floor = {size: floors(*size, args.runs) for size in set(sizes) | {(1920, 1080)}}
        c = c_frame_path(driver, 1920, 1080, args.runs)
        c_cold = c_frame_path(driver, 1920, 1080, args.runs, sets_for(IO_BYTES_PER_PIXEL * 1920 * 1080))
        f = floor[(1920, 1080)]
        c.update(floor_ms=f["hot"], floor_ms_cold=f["cold"], cold=c_cold, **ratios(c["total_ms"], c_cold["total_ms"], f))
        result["c_frame_path_1080p"] = c
        stages = [k for k in c if k.endswith("_ms") and not k.startswith(("min_", "floor_")) and k != "total_ms"]
        for label, run in (("hot", c), (f"cold ({c_cold['frames']} buffer sets)", c_cold)):
            x = c["x_floor_hot"] if run is c else c["x_floor_cold"]
            print(f"C frame path 1920x1080 {label}, 1 thread ({result['cflags']}): median {run['total_ms']:.2f} ms = {x:.1f}x "
                  f"floor ({f['hot' if run is c else 'cold']:.3f} ms), min {run['min_total_ms']:.2f} ms; stages median (min) "
                  + ", ".join(f"{k[:-3]} {run[k]:.2f} ({run['min_' + k]:.2f})" for k in stages))
        if not args.no_callgrind and shutil.which("valgrind"):
            counts = callgrind(driver, 1920, 1080, work)
            result["callgrind_1080p"] = counts
            print("instructions per 1920x1080 frame (callgrind): " + ", ".join(f"{k} {v / 1e6:.1f} M" for k, v in counts.items())
                  + f" = {counts['total'] / (1920 * 1080):.1f} per pixel")
        if not args.no_bundle:
            bundle = args.bundle or x86_int8_bundle(work)
            rows = fuser_rows(bundle, sizes, args.runs, floor, args.threads)
            result["fuser"] = rows
            print("\n| frame path | size (WxH) | Fuser.fuse ms hot (min) | cold | backend ms (min) | rest ms | FPS | x floor hot / cold "
                  "| fuse_stream FPS |\n|---|---|---:|---:|---:|---:|---:|---:|---:|")
            for r in rows:
                stream = "-" if r["fuse_stream_fps"] is None else f"{r['fuse_stream_fps']:.0f}"
                print(f"| {r['frame_path']} | {r['size']} | {r['fuse_ms']:.2f} ({r['min_fuse_ms']:.2f}) | {r['fuse_ms_cold']:.2f} | "
                      f"{r['backend_ms']:.2f} ({r['min_backend_ms']:.2f}) | {r['frame_path_ms']:.2f} | {r['fps']:.0f} | "
                      f"{r['x_floor_hot']:.0f} / {r['x_floor_cold']:.0f} | {stream} |")
    result["load_after"] = os.getloadavg()[0]
    print(f"\nCPU: {result['cpu']}; Fuser threads {args.threads}; load average {result['load']:.1f} before, "
          f"{result['load_after']:.1f} after")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
