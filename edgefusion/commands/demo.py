"""``edgefusion demo --out DIR``: the whole product on the embedded default (see :mod:`edgefusion.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="fuse the samples with the shipped student, quantize for x86, benchmark, write an HTML report",
        description="Run the README's main job: fuse the package's sample pairs with the shipped student, build the x86 "
                    "INT8 and FP32 OpenVINO bundles, benchmark both, and write OUT/report.html.",
    )
    parser.add_argument("--out", type=Path, default=Path("demo"), help="output folder (default: ./demo)")
    parser.add_argument("--runs", type=int, default=30, metavar="N", help="timed frames per size and bundle (default 30)")
    parser.add_argument("--teacher", type=Path, metavar="PT",
                        help="LD-Lite weights (final.pt) or imported checkpoint to show beside the student "
                             "(default: ../shared/models/ld-lite/final.pt when present)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgefusion.demo import run_demo
    from edgefusion.io.outputs import check_output_folder

    check_output_folder(args.out, "demo")
    summary = run_demo(args.out, runs=args.runs, teacher=args.teacher)
    for row in summary["metrics"]:
        print(f"{row['method']:<28} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items() if k != "method"))
    print(f"report: {summary['report']}")
    return 0
