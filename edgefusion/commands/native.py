"""``edgefusion native``: write a firmware folder (C runtime sources, CMake project, the bundle as C arrays)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "native", help="write a firmware folder: C runtime + a bundle compiled in",
        description="Write a ready firmware folder for a bundle: the C99 runtime sources and header, a CMake project, "
                    "the example fuse_frames, the bundle as C arrays (bundle_data.c/.h) and a sample check (samples/: the package "
                    "samples as PGM and what edgefusion fuse makes of them, run by ctest). See its README.md.")
    parser.add_argument("--model", required=True, metavar="BUNDLE", help="bundle folder or .zip (e.g. from edgefusion quantize --target x86)")
    parser.add_argument("--out", required=True, metavar="DIR", help="firmware folder to write")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgefusion.embed.firmware import write_firmware

    out, checked, why_not = write_firmware(args.model, args.out)
    if checked:
        print(f"wrote {out}; build and check it (see {out}/README.md): cmake -S {out} -B {out}/build "
              f"-DEF_OPENVINO_ROOT={_openvino_dir()} && cmake --build {out}/build && ctest --test-dir {out}/build "
              f"({checked} samples against edgefusion fuse)")
    else:
        print(f"wrote {out} (see {out}/README.md); samples/ holds the package samples as PGM, without expected results: {why_not}")
    return 0


def _openvino_dir() -> str:
    """The openvino package's folder with the C API (:func:`edgefusion.embed.openvino_c_root`), else a placeholder."""
    from edgefusion.embed import openvino_c_root
    from edgefusion.errors import UserError

    try:
        return str(openvino_c_root())
    except UserError:
        return "OPENVINO_DIR"
