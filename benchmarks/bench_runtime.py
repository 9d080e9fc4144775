"""The shipped student through every CPU bundle, next to the memory-bound floor (a benchmark, not a test).

For each CPU backend (onnxruntime = target ``onnx``, openvino = ``x86``,
litert = ``arm``) in FP32 and INT8, the bundle is built exactly as
``edgefusion quantize`` builds it (:func:`edgefusion.quantize.pipeline.run_quantize`,
calibration on the package samples; LiteRT bundles are fixed-shape, one per
frame size), each both with the whole student in the model (``compose =
"model"``) and *analyze-only* (``compose = "runtime"``: the model is the
student's low-resolution ``analyze`` network and the runtime composes the
full-resolution result in numpy, :mod:`edgefusion.runtime.compose`).

Per bundle and frame size (W x H) it reports the median of
``Fuser.fuse_planes`` (model path: padding, backend, composition; float
planes in, float plane out), its backend part, the end-to-end ``Fuser.fuse``
median (uint8 IR + RGB visible in, uint8 RGB out: adds the shared
pre/post-processing), FPS of the model path, and the ratio to the floor: the
median time of ``np.maximum(a, b, out=c)`` on two float32 frames of that size.
Both under the two protocols of ``benchmarks/cold.py``: "hot" (the same buffers every
run; ``x_floor_hot``) and "cold" (inputs rotate through buffer sets larger in total
than twice the last-level cache, as frames from a camera do; ``model_ms_cold``,
``fuse_ms_cold`` and ``x_floor_cold`` against the cold floor). Targets are checked hot.

Each cell is measured in ``--rounds`` rounds over all cells and keeps its
best median (the build host is shared with other jobs; bursts of foreign load
inflate single medians). Targets (fastest INT8 bundle): 1920x1080 model path <= 30x floor; 640x480 >= 200 FPS.

    python benchmarks/bench_runtime.py [--model CKPT] [--sizes 640x480,1920x1080] [--threads 2] [--runs 30] [--json FILE]

Without ``--model`` the shipped student (``edgefusion/assets/models/student-s.pt``) is used.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from cold import cycle, floors, median_ms, ratios, rotating

TARGETS = (("onnxruntime", "onnx"), ("openvino", "x86"), ("litert", "arm"))


def build_bundles(student_path: Path, sizes, work: Path, backends) -> list[tuple[str, Path, tuple[int, int] | None]]:
    """(label, bundle, only_size) for every backend x precision x composition (x size for fixed-shape LiteRT)."""
    from edgefusion.quantize.pipeline import run_quantize
    from edgefusion.targets import load_target

    quiet = lambda *a, **k: None  # noqa: E731
    bundles = []
    for backend, name in TARGETS:
        if backend not in backends:
            continue
        base = load_target(name)
        for precision in ("fp32", "int8"):
            for compose in ("model", "runtime"):
                target = dataclasses.replace(base, precision=precision, compose=compose)
                label = f"{backend} {precision}" + (" analyze+numpy compose" if compose == "runtime" else "")
                shapes = [(-(-h // 8) * 8, -(-w // 8) * 8) for w, h in sizes] if base.fixed_shape else [None]
                for size, shape in zip(sizes if base.fixed_shape else [None], shapes):
                    suffix = f"-{shape[1]}x{shape[0]}" if shape else ""
                    out = work / f"{backend}-{precision}-{compose}{suffix}"
                    print(f"building {label}{suffix}", file=sys.stderr)
                    try:
                        run_quantize(target.with_shape(shape) if shape else target, out, model_path=student_path, force=True, log=quiet)
                    except Exception as exc:  # a failed conversion skips that bundle, the others are still measured
                        print(f"SKIPPED {label}{suffix}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
                        continue
                    bundles.append((label, out, size))
    return bundles


def input_sets(size: tuple[int, int]) -> tuple[list, list]:
    """Cold-protocol sets of one frame size: raw (ir, vis) pairs and their prepared (ir, vis_y) planes."""
    from edgefusion import bench, preprocess

    raw = rotating(lambda i: bench.synthetic_pair(*size, seed=i))

    def planes(i: int) -> tuple[np.ndarray, np.ndarray]:  # i < len(raw): planes take more bytes, so fewer sets
        pair = preprocess.prepare_pair(*raw[i])
        return pair.ir, pair.vis_y

    return raw, rotating(planes)


def existing_bundles(folder: Path, sizes) -> list[tuple[str, Path, tuple[int, int] | None]]:
    """(label, bundle, only_size) of bundles kept by an earlier ``--keep`` run."""
    from edgefusion.runtime.bundle import load_bundle

    bundles = []
    for path in sorted(p for p in folder.iterdir() if (p / "manifest.json").is_file()):
        m = load_bundle(path).manifest
        label = f"{m['backend']} {m['precision']}" + (" analyze+numpy compose" if m.get("compose") == "runtime" else "")
        only = None
        if m["fixed_shape"]:
            fh, fw = m["fixed_shape"]
            only = next(((w, h) for w, h in sizes if (-(-h // 8) * 8, -(-w // 8) * 8) == (fh, fw)), (0, 0))
        bundles.append((label, path, only))
    return bundles


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="student checkpoint (default: the shipped student-s.pt)")
    parser.add_argument("--sizes", default="640x480,1920x1080", help="WxH frame sizes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30, help="timed frames per cell and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all cells; each cell keeps its best median")
    parser.add_argument("--backends", default=",".join(b for b, _ in TARGETS))
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument("--keep", type=Path, help="build the bundles into this folder and keep them (default: a temporary folder)")
    parser.add_argument("--reuse", type=Path, help="measure the bundles kept in this folder by an earlier --keep run (no building)")
    args = parser.parse_args()

    import torch

    from edgefusion import bench
    from edgefusion.quantize.pipeline import DEFAULT_MODEL
    from edgefusion.runtime import Fuser

    torch.set_num_threads(args.threads)
    student = args.model or DEFAULT_MODEL
    if not student.is_file() and not args.reuse:
        print(f"no student checkpoint at {student}; pass --model CKPT", file=sys.stderr)
        return 2
    sizes = bench.parse_sizes(args.sizes)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as tmp:
        if args.reuse:
            bundles = existing_bundles(args.reuse, sizes)
        else:
            bundles = build_bundles(student, sizes, args.keep or Path(tmp), set(args.backends.split(",")))
        inputs = {size: input_sets(size) for size in sizes}  # set 0 alone: hot; all sets in turn: cold
        cells = []  # (label, size, fuser), every Fuser opened once
        for label, path, only in bundles:
            for w, h in sizes:
                if not only or only == (w, h):
                    cells.append((label, (w, h), Fuser.open(path, threads=args.threads)))
        best: dict[tuple[str, tuple[int, int]], dict] = {}
        floor: dict[tuple[int, int], dict[str, float]] = {}
        for round_ in range(args.rounds):  # the build host is shared: keep each cell's best median over rounds
            for size in sizes:
                now = floors(*size, args.runs)
                floor[size] = {k: min(v, floor.get(size, now)[k]) for k, v in now.items()}
            for label, size, fuser in cells:
                backend_times, times = [], {}
                raw, planes_sets = inputs[size]
                for suffix, count in (("", 1), ("_cold", len(raw))):
                    next_pair, next_planes = cycle(raw[:count]), cycle(planes_sets[:count])

                    def planes():
                        fuser.fuse_planes(*next_planes())
                        backend_times.append(fuser.timings["backend_ms"])

                    times["model_ms" + suffix] = median_ms(planes, args.runs)
                    times["fuse_ms" + suffix] = median_ms(lambda: fuser.fuse(*next_pair()), args.runs)
                row = {"bundle": label, "size": "{}x{}".format(*size), **times,
                       "backend_ms": float(np.median(backend_times[3:args.runs + 3])), "device": fuser.provider}
                key = (label, size)
                if key not in best or times["model_ms"] < best[key]["model_ms"]:
                    best[key] = row
                print(f"round {round_ + 1}: {label:40s} {row['size']}: {times['model_ms']:7.2f} ms hot, "
                      f"{times['model_ms_cold']:7.2f} ms cold", file=sys.stderr)
        for (label, size), row in best.items():
            row.update(fps=1000.0 / row["model_ms"], floor_ms=floor[size]["hot"], floor_ms_cold=floor[size]["cold"],
                       **ratios(row["model_ms"], row["model_ms_cold"], floor[size]))
            rows.append(row)
    source = f"bundles in {args.reuse}" if args.reuse else f"student {student.name}"
    env = {"cpu": bench.cpu_model(), "threads": args.threads, "source": source}
    print(f"\nCPU: {env['cpu']}, {args.threads} thread(s), {source}; best of {args.rounds} rounds of {args.runs}-frame medians\n")
    print("| bundle | size (WxH) | model path ms hot / cold | backend ms | fuse() ms hot / cold | FPS (model path) "
          "| floor ms hot / cold | x floor hot / cold |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['bundle']} | {r['size']} | {r['model_ms']:.2f} / {r['model_ms_cold']:.2f} | {r['backend_ms']:.2f} | {r['fuse_ms']:.2f} / "
              f"{r['fuse_ms_cold']:.2f} | {r['fps']:.0f} | {r['floor_ms']:.3f} / {r['floor_ms_cold']:.3f} | {r['x_floor_hot']:.0f} / {r['x_floor_cold']:.0f} |")
    int8 = [r for r in rows if "int8" in r["bundle"]]
    for size, check in (("1920x1080", lambda r: r["x_floor_hot"] <= 30), ("640x480", lambda r: r["fps"] >= 200)):
        cells = [r for r in int8 if r["size"] == size]
        if cells:
            best = min(cells, key=lambda r: r["model_ms"])
            goal = "<= 30x floor" if size == "1920x1080" else ">= 200 FPS"
            print(f"\nfastest INT8 at {size}: {best['bundle']}, {best['model_ms']:.2f} ms = {best['x_floor_hot']:.0f}x floor (hot; {best['x_floor_cold']:.0f}x cold), "
                  f"{best['fps']:.0f} FPS; target {goal}: {'met' if check(best) else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
