"""``edgefusion build-engine BUNDLE``: build the TensorRT engine of a Jetson bundle on the device."""

from __future__ import annotations

import argparse
import importlib.util
import shutil
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "build-engine",
        help="build the TensorRT engine of a tensorrt bundle (run on the Jetson)",
        description=(
            "Build a TensorRT engine from a tensorrt bundle's Q/DQ ONNX with the TensorRT Python API and store it "
            "in the bundle (files: model -> model.engine, onnx -> model.onnx; the C arrays of a --c-array bundle are "
            "written again around the engine). Where tensorrt is not importable, "
            "print the equivalent trtexec command and exit 0; --engine then adds the engine trtexec wrote."
        ),
    )
    parser.add_argument("bundle", type=Path, help="bundle folder (or .zip) written by edgefusion quantize --target jetson")
    parser.add_argument("--engine", type=Path, help="store this prebuilt engine (e.g. from trtexec) instead of building one")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgefusion.convert.tensorrt import build_engine, check_engine_file, trtexec_command
    from edgefusion.embed.c_arrays import DERIVED, bundle_c_arrays
    from edgefusion.errors import UserError
    from edgefusion.io.atomic import work_folder
    from edgefusion.runtime.bundle import load_bundle, write_bundle

    bundle = load_bundle(args.bundle)
    if bundle.backend != "tensorrt":
        raise UserError(f"{args.bundle} is a {bundle.backend} bundle; build-engine needs a tensorrt bundle (--target jetson)")
    files = bundle.files
    onnx_path = files.get("onnx", files["model"])
    if onnx_path.suffix != ".onnx":
        raise UserError(f"{args.bundle} holds no ONNX model to build from")
    if args.engine is None and importlib.util.find_spec("tensorrt") is None:
        print("tensorrt is not importable here; on the Jetson run:")
        source = bundle.source / bundle.manifest["files"].get("onnx", bundle.manifest["files"]["model"]) if bundle.source.is_dir() else Path(onnx_path.name)
        print(f"  {trtexec_command(source, Path('model.engine'))}")
        print(f"then store the engine in the bundle: edgefusion build-engine {args.bundle} --engine model.engine")
        return 0
    if args.engine is not None:
        check_engine_file(args.engine)
    with work_folder("edgefusion-engine-") as work:
        engine = work / "model.engine"
        if args.engine is None:
            build_engine(onnx_path, engine)
            built_with = "TensorRT Python API (FP16 + INT8 flags, Q/DQ layers INT8)"
        else:
            shutil.copyfile(args.engine, engine)
            built_with = f"prebuilt engine {args.engine.name} (e.g. trtexec)"
        manifest = {k: v for k, v in bundle.manifest.items() if k not in ("files", "sha256")}
        manifest["engine"] = {"built_with": built_with}
        new_files = {"model": engine, "onnx": onnx_path}
        kept = set(bundle.manifest["sha256"]) - {p.name for p in new_files.values()}
        extra = {rel: bundle.root / rel for rel in sorted(kept - set(DERIVED))}
        derive = bundle_c_arrays if kept & set(DERIVED) else None  # C arrays embed the model: written again with the engine
        write_bundle(bundle.source, new_files, manifest, extra=extra, as_zip=bundle.source.suffix.lower() == ".zip", derive=derive)
    print(f"stored model.engine in {bundle.source}; the bundle now runs the TensorRT engine")
    return 0
