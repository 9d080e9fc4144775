"""``edgefusion quantize --target NAME --out BUNDLE``: INT8 bundle for a device target, gated on accuracy."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "quantize",
        help="quantize the student for a device target and write a bundle",
        description=(
            "Convert and INT8-quantize a student checkpoint for a target profile (edgefusion targets), "
            "compare it with PyTorch FP32 on validation pairs and write a bundle (model files + manifest.json). "
            "Exit 3 and no bundle when the target's accuracy gate fails (unless --force)."
        ),
    )
    parser.add_argument("--target", required=True, help="built-in target (x86, arm, onnx, jetson; variants such as jetson:480p, arm:720p, arm:int8-io: edgefusion targets) or a .toml profile path")
    parser.add_argument("--model", type=Path, help="student checkpoint (.pt) or shipped model name (edgefusion models); default: the shipped default student")
    parser.add_argument("--calib", type=Path, help="calibration pairs folder (ir/ + vi/); default: the package samples")
    parser.add_argument("--val", type=Path, help="validation pairs folder (ir/ + vi/); default: the package samples")
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write (replaced when it is a bundle)")
    parser.add_argument("--shape", help="HxW frame shape overriding the profile's (fixed input shape for litert/tensorrt)")
    parser.add_argument("--force", action="store_true", help="write the bundle even when the accuracy gate fails")
    parser.add_argument("--zip", action="store_true", help="write BUNDLE.zip instead of a folder")
    parser.add_argument("--c-array", action="store_true", help="also write bundle_data.c/.h: the manifest and every model file as C arrays for the C runtime (ef_open_memory)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgefusion.targets import load_target, parse_shape

    target = load_target(args.target)
    if args.shape:
        target = target.with_shape(parse_shape(args.shape))
    from edgefusion.quantize.pipeline import run_quantize

    path, report = run_quantize(
        target, args.out, model_path=args.model, calib_dir=args.calib, val_dir=args.val,
        force=args.force, as_zip=args.zip, c_array=args.c_array,
    )
    gate = report["gate"]
    status = "passed" if gate["passed"] else "FAILED (written because of --force): " + "; ".join(gate["failures"])
    print(f"INT8 vs FP32 on {report['frames']} validation frame(s): PSNR min {report['psnr_db']['min']:.2f} dB, SSIM min {report['ssim']['min']:.4f}; gate {status}")
    print(f"wrote {path}")
    return 0
