"""FP32 vs INT8 per backend on this CPU: median latency, model size, INT8-vs-FP32 PSNR (a benchmark, not a test).

For each CPU backend (onnxruntime = target ``onnx``, openvino = ``x86``,
litert = ``arm``) and each frame shape, the student is converted (FP32) and
quantized (INT8) exactly as ``edgefusion quantize`` does (calibration on the
package sample pairs, cover-cropped to the shape), both models run through the
device runtime (:func:`edgefusion.runtime.backends.open_backend`) with
``--threads`` CPU threads, and one markdown table is printed. Each backend is
measured with the composition in the model (``compose = "model"``) and with
an analyze-only model plus the runtime's numpy composition (``"runtime"``);
latency covers both parts.

    python benchmarks/bench_quantize.py [--model CKPT] [--shapes 480x640,1080x1920] [--threads 2] [--runs 20]

Without ``--model`` the shipped student is used; when it is missing, a
randomly initialised student (clearly labelled) stands in.
TensorRT (jetson) needs the device; it is not measured here.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from timing import interleaved_ms

TARGETS = (("onnxruntime", "onnx"), ("openvino", "x86"), ("litert", "arm"))


def _runner(engine, output: str, frame):
    """One frame through the model, plus the runtime's numpy composition for ``maps`` models."""
    from edgefusion.runtime.compose import Composer

    out = np.empty_like(frame.ir)
    inputs = frame.inputs(engine.io.inputs)  # ir, vis and, for v2 students, stats
    if output == "fused":
        return lambda: engine.run(**inputs, out=out)
    composer = Composer(*frame.ir.shape[2:])
    return lambda: composer(frame.ir[0, 0], frame.vis[0, 0], engine.run_raw(**inputs)[0], out[0, 0])


def _size_kib(files: dict[str, Path]) -> float:
    return sum(p.stat().st_size for p in files.values()) / 1024.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--shapes", default="480x640,1080x1920")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--backends", default=",".join(b for b, _ in TARGETS))
    parser.add_argument("--compose", default="model,runtime", help="model: the model composes; runtime: analyze-only model + numpy composition")
    args = parser.parse_args()

    import torch

    from edgefusion.io.pairs import find_pairs
    from edgefusion.models import build_model
    from edgefusion.quantize import pipeline
    from edgefusion.quantize.accuracy import psnr_db
    from edgefusion.quantize.calibration import load_frames
    from edgefusion.resources import SAMPLES
    from edgefusion.runtime.backends import open_backend
    from edgefusion.targets import load_target, parse_shape

    torch.set_num_threads(args.threads)
    if args.model or pipeline.DEFAULT_MODEL.is_file():
        path = args.model or pipeline.DEFAULT_MODEL
        model, _ = pipeline.load_student(path)
        label = f"student {path.name}"
    else:
        torch.manual_seed(0)
        model = build_model("student", {"size": "s"}).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
        label = "RANDOM-INIT student size s (shipped student-s.pt missing; weights perturbed by N(0, 0.1))"
    pairs = find_pairs(SAMPLES)
    rows = []
    for shape in (parse_shape(s) for s in args.shapes.split(",")):
        calib = load_frames(pairs, shape, f"frames {shape[0]}x{shape[1]}")
        refs = pipeline.torch_outputs(model, calib)
        for (backend, name), compose in itertools.product(TARGETS, args.compose.split(",")):
            if backend not in args.backends.split(","):
                continue
            target = dataclasses.replace(load_target(name).with_shape(shape), compose=compose)
            with tempfile.TemporaryDirectory(prefix="bench-quantize-") as tmp:
                work = Path(tmp)
                fp32, _ = pipeline.convert_fp32(model, target, work, (calib[0], refs[0]))
                fp32_size = _size_kib(fp32.files)
                int8 = pipeline.quantize_int8(target, fp32, work, calib, calib, refs)
                engines = {
                    kind: open_backend(c.run_backend, c.files, layout=c.layout, threads=args.threads, output=c.output, inputs=c.inputs)
                    for kind, c in (("fp32", fp32), ("int8", int8))
                }
                psnr = min(psnr_db(r[0, 0], o[0, 0]) for r, o in zip(refs, pipeline.backend_outputs(int8, calib)))
                runs = max(5, args.runs if shape[0] * shape[1] <= 640 * 480 else args.runs // 2)
                times = interleaved_ms({kind: _runner(engines[kind], c.output, calib[0]) for kind, c in (("fp32", fp32), ("int8", int8))}, runs)
                fp32_t, int8_t = times["fp32"][0], times["int8"][0]
                fp32_ms, int8_ms = statistics.median(fp32_t), statistics.median(int8_t)
                rows.append((backend, compose, f"{shape[0]}x{shape[1]}", fp32_ms, int8_ms, min(fp32_t), min(int8_t), fp32_size,
                             _size_kib(int8.files), psnr, len(int8.quantization.get("int8_layers", []))))
                print(f"{backend} compose={compose} {shape}: fp32 {fp32_ms:.2f} ms, int8 {int8_ms:.2f} ms, PSNR {psnr:.1f} dB", file=sys.stderr)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nModel: {label}. CPU: {platform.processor() or platform.machine()} ({os.cpu_count()} cores, load average {load:.1f} at the end), "
          f"{args.threads} threads, {args.runs} runs per model (half at 1080p), FP32 and INT8 called alternately; "
          f"INT8-vs-FP32 PSNR = worst of the {len(pairs)} sample pairs vs PyTorch FP32. Latency includes the numpy composition for compose=runtime.\n")
    print("| backend | compose | shape (HxW) | FP32 median ms | INT8 median ms | INT8 speed-up (median) | FP32 min ms | INT8 min ms | FP32 size KiB | INT8 size KiB | INT8 layers | INT8 vs FP32 PSNR dB |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for backend, compose, shape, f_ms, i_ms, f_min, i_min, f_kib, i_kib, psnr, layers in rows:
        print(f"| {backend} | {compose} | {shape} | {f_ms:.2f} | {i_ms:.2f} | {f_ms / i_ms:.2f}x | {f_min:.2f} | {i_min:.2f} | {f_kib:.1f} | {i_kib:.1f} | {layers} | {psnr:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
