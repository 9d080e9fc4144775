"""``edgefusion demo --out DIR [--model NAME|CKPT] [--data DIR] [--show K]``: the whole product on the embedded default
or on the user's own student and pairs (see :mod:`edgefusion.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="fuse pairs with a student (default: the samples, the shipped student), quantize for x86, benchmark, write an HTML report",
        description="Run the README's main job: fuse the package's sample pairs (or --data) with the shipped student (or --model), "
                    "build the x86 INT8 and FP32 OpenVINO bundles, score and benchmark them, and write OUT/report.html.",
    )
    parser.add_argument("--out", type=Path, default=Path("demo"), help="output folder (default: ./demo)")
    parser.add_argument("--model", metavar="NAME|CKPT",
                        help="shipped model name (edgefusion models) or student checkpoint (.pt) to show (default: the shipped default)")
    parser.add_argument("--data", type=Path, metavar="DIR",
                        help="pairs folder (ir/ + vi/) to fuse, score, calibrate and validate on (default: the package samples)")
    parser.add_argument("--show", type=int, default=8, metavar="K",
                        help="pairs shown side by side in the report, spread over the sorted names (default 8; all pairs are scored)")
    parser.add_argument("--runs", type=int, default=30, metavar="N", help="timed frames per size and bundle (default 30)")
    parser.add_argument("--teacher", type=Path, metavar="PT",
                        help="LD-Lite weights (final.pt) or imported checkpoint to show beside the student "
                             "(default: ../shared/models/ld-lite/final.pt when present)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgefusion.demo import run_demo
    from edgefusion.io.outputs import check_output_folder

    check_output_folder(args.out, "demo")
    summary = run_demo(args.out, runs=args.runs, teacher=args.teacher, model=args.model, data=args.data, show=args.show)
    for row in summary["metrics"]:
        print(f"{row['method']:<28} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items() if k != "method"))
    print(f"report: {summary['report']}")
    return 0
