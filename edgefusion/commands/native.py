"""``edgefusion native``: write a firmware folder (C runtime sources, CMake project, the bundle as C arrays)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "native", help="write a firmware folder: C runtime + a bundle compiled in",
        description="Write a ready firmware folder for a bundle: the C99 runtime sources and header, a CMake project, "
                    "the example fuse_frames and the bundle as C arrays (bundle_data.c/.h). See its README.md.")
    parser.add_argument("--model", required=True, metavar="BUNDLE", help="bundle folder or .zip (e.g. from edgefusion quantize --target x86)")
    parser.add_argument("--out", required=True, metavar="DIR", help="firmware folder to write")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgefusion.embed.firmware import write_firmware

    out, backend = write_firmware(args.model, args.out)
    note = "" if backend == "openvino" else f" (the C runtime has no built-in {backend} backend: pass your own ef_backend, see include/edgefusion.h)"
    print(f"wrote {out}; build it (see {out}/README.md): cmake -S {out} -B {out}/build -DEF_OPENVINO_ROOT=OPENVINO_DIR "
          f"&& cmake --build {out}/build{note}")
    return 0
