"""A student's PyTorch FP32 latency: eager fast paths vs its export-graph formulation, interleaved in one process.

Usage::

    python benchmarks/bench_student_eager.py [--model edgefusion/assets/models/student-ld.pt] [--shape 1080x1920] \
        [--threads 1] [--runs 21]

Both run :meth:`edgefusion.models.checkpoint.TorchFuser.fuse_planes` (frame
statistics included) on the same random frame; the export formulation
(``edgefusion.models.student.export_graph``, the ops the ONNX / LiteRT
exports contain) is, up to in-place ops, what eager PyTorch ran before the
fast paths. The runs alternate, so both see the same machine load: on a
shared CPU compare the two rows, not runs made at different times. Reports
median and minimum wall time and the calling thread's CPU time (ms).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from timing import interleaved_ms

from edgefusion.allocator import keep_freed_memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="student checkpoint (default: the shipped default)")
    parser.add_argument("--shape", default="1080x1920", help="HxW")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    keep_freed_memory()  # as the edgefusion CLI does (edgefusion.allocator)

    import numpy as np
    import torch

    from edgefusion.models.checkpoint import TorchFuser, load_model
    from edgefusion.models.student import export_graph
    from edgefusion.resources import DEFAULT_MODEL

    torch.set_num_threads(args.threads)
    height, width = (int(v) for v in args.shape.lower().split("x"))
    model, _ = load_model(args.model or DEFAULT_MODEL)
    fuser = TorchFuser(model, "student")
    ir, vis = np.random.default_rng(0).random((2, height, width), dtype=np.float32)

    def as_exported() -> None:
        with export_graph():
            fuser.fuse_planes(ir, vis)

    cases = {"export-graph formulation (~ before)": as_exported, "eager fast paths": lambda: fuser.fuse_planes(ir, vis)}
    times = interleaved_ms(cases, args.runs)
    print(f"| {args.shape}, {args.threads} thread(s), {args.runs} runs | wall median ms | wall min ms | CPU median ms | CPU min ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (wall, cpu) in times.items():
        print(f"| {name} | {statistics.median(wall):.1f} | {min(wall):.1f} | {statistics.median(cpu):.1f} | {min(cpu):.1f} |")


if __name__ == "__main__":
    main()
