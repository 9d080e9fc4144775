"""``edgefusion export``: FP32 ONNX / OpenVINO IR / TFLite from a checkpoint, checked against PyTorch."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

FORMATS = {"onnx": ".onnx", "openvino": ".xml", "tflite": ".tflite"}
DEFAULT_TFLITE_SHAPE = (480, 640)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a checkpoint to FP32 ONNX, OpenVINO IR or TFLite",
        description=(
            "Convert a checkpoint with the vendors' converters (torch.onnx, openvino.convert_model, litert-torch). "
            "The converted model is run on a real sample pair and compared with PyTorch before it is written."
        ),
    )
    parser.add_argument("--model", required=True, help="checkpoint (.pt) or shipped model name (edgefusion models)")
    parser.add_argument("--format", choices=sorted(FORMATS), required=True)
    parser.add_argument("--out", type=Path, required=True, help="output file (.onnx, .xml + .bin beside it, .tflite)")
    parser.add_argument("--shape", help="HxW fixed input shape (default: dynamic for onnx/openvino, 480x640 for tflite)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgefusion.errors import UserError
    from edgefusion.io.atomic import atomic_path, work_folder
    from edgefusion.io.outputs import check_output_path
    from edgefusion.io.pairs import find_pairs
    from edgefusion.models.checkpoint import check_min_size, input_names, load_model
    from edgefusion.models.shipped import resolve_model_spec
    from edgefusion.quantize import calibration, pipeline
    from edgefusion.resources import SAMPLES
    from edgefusion.targets import parse_shape

    suffix = FORMATS[args.format]
    if args.out.suffix.lower() != suffix:
        raise UserError(f"--out for format {args.format} must end in {suffix}, got {args.out.name}")
    shape = parse_shape(args.shape) if args.shape else (DEFAULT_TFLITE_SHAPE if args.format == "tflite" else None)
    check_output_path(args.out, "export")
    model, _ = load_model(resolve_model_spec(args.model))
    stride = int(getattr(model, "stride", 1))
    if shape and (shape[0] % stride or shape[1] % stride):
        raise UserError(f"--shape {shape[0]}x{shape[1]} must be a multiple of the model stride {stride}")
    if shape:
        check_min_size(model, *shape, f"--shape: model {args.model}")
    pair = find_pairs(SAMPLES)[0]
    frame = calibration.load_frame(pair, shape) if shape else calibration.native_frame(pair, stride)
    (reference,) = pipeline.torch_outputs(model, [frame])
    with work_folder("edgefusion-export-") as work:
        if args.format == "tflite":
            from edgefusion.convert.litert import export_tflite

            files, layout, backend = {"model": export_tflite(model, work / "model.tflite", shape)}, "NHWC", "litert"
        else:
            from edgefusion.convert.onnx import export_onnx

            onnx_path = export_onnx(model, work / "model.onnx", shape=shape, dynamic=shape is None)
            files, layout, backend = {"model": onnx_path}, "NCHW", "onnxruntime"
            if args.format == "openvino":
                from edgefusion.convert.openvino import onnx_to_openvino, save_openvino

                files, backend = save_openvino(onnx_to_openvino(onnx_path), work / "model.xml"), "openvino"
        converted = pipeline.Converted(files, layout, {}, backend, inputs=input_names(model))
        psnr = pipeline.check_conversion(args.format, converted, frame, reference)
        outputs = {role: args.out.with_suffix(path.suffix) for role, path in files.items()}
        for role in sorted(files, key=lambda r: r == "model"):  # weights first, the model file last
            with atomic_path(outputs[role]) as staged:
                shutil.copyfile(files[role], staged)
    shape_text = f"fixed {shape[0]}x{shape[1]}" if shape else f"dynamic (multiples of {stride})"
    print(f"checked against PyTorch on {pair.name}: PSNR {psnr:.1f} dB; wrote {', '.join(str(p) for p in outputs.values())} ({shape_text})")
    return 0
