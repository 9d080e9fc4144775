"""Teacher vs students, PyTorch FP32 on CPU: parameters, MACs, median latency, peak memory.

Usage::

    python benchmarks/bench_models.py [--threads 2] [--sizes 640x480 1920x1080] [--json out.json]
                                      [--teacher CKPT] [--student CKPT ...]

Without checkpoints the architectures are built with their default configs
(random weights: cost does not depend on the weights). Each (model, frame
size) runs in a fresh process so that its peak memory (``ru_maxrss`` growth
during inference, MiB) is its own. Latency is the median of ``--repeats``
timed forward passes after one warm-up, with ``torch.set_num_threads``.
MACs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2;
convolutions and linear layers). Prints a markdown table; ``--json`` also
writes the rows.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import time
from pathlib import Path


def _build(spec: str):
    """``teacher`` / ``student-s`` / ``student-m`` or a checkpoint path -> (name, model)."""
    from edgefusion.models import build_model
    from edgefusion.models.checkpoint import load_model

    if spec == "teacher":
        return spec, build_model("teacher", {})
    if spec.startswith("student-"):
        return spec, build_model("student", {"size": spec.split("-", 1)[1]})
    model, payload = load_model(spec)
    name = payload["architecture"] + (f"-{payload['config']['size']}" if "size" in payload["config"] else "")
    return f"{name} ({Path(spec).name})", model


def _measure(spec: str, height: int, width: int, threads: int, repeats: int, queue) -> None:
    import torch

    from edgefusion.models.student import example_inputs, macs_per_pixel

    torch.set_num_threads(threads)
    name, model = _build(spec)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    macs = macs_per_pixel(model, 64, 64) * height * width
    inputs = [torch.rand(x.shape) for x in example_inputs(model, height, width)]  # ir, vis (, stats for v2 students)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    with torch.inference_mode():
        model(*inputs)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            model(*inputs)
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    queue.put({"model": name, "size": f"{width}x{height}", "params": params, "gmacs": macs / 1e9,
               "latency_ms": 1000 * statistics.median(times), "peak_mib": peak / 1024, "repeats": repeats})


def run_one(spec: str, height: int, width: int, threads: int, repeats: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(spec, height, width, threads, repeats, queue))
    proc.start()
    row = queue.get()
    proc.join()
    return row


def markdown(rows: list[dict]) -> str:
    teacher = {r["size"]: r["latency_ms"] for r in rows if r["model"].startswith("teacher")}
    lines = ["| model | frame | params | GMACs | median ms | peak MiB | speed-up vs teacher |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = teacher.get(r["size"], float("nan")) / r["latency_ms"]
        lines.append(f"| {r['model']} | {r['size']} | {r['params']:,} | {r['gmacs']:.3g} | {r['latency_ms']:.1f} | {r['peak_mib']:.0f} | {ratio:.1f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", nargs="+", default=["640x480", "1920x1080"], help="WxH frame sizes")
    parser.add_argument("--teacher", default="teacher", help="teacher checkpoint (default: default-config teacher)")
    parser.add_argument("--student", nargs="+", default=["student-s", "student-m"], help="student checkpoints or student-s/student-m")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per student (the teacher gets a third, at least 3)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        width, height = (int(v) for v in size.lower().split("x"))
        for spec in [args.teacher, *args.student]:
            repeats = max(3, args.repeats // 3) if spec == args.teacher else args.repeats
            rows.append(run_one(spec, height, width, args.threads, repeats))
            print(f"{rows[-1]['model']} {size}: {rows[-1]['latency_ms']:.1f} ms", flush=True)
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
