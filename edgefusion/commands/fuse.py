"""``edgefusion fuse``: fuse one IR/visible pair, or every pair of two folders, into image files (PNG, JPEG, TIFF, BMP, PGM/PPM).

Inputs are two files (output: one image file) or two folders paired by stem
(output: a folder receiving ``<name>.png``). Everything that can be checked
is checked before fusing; outputs reach their final names only when every
pair fused (files are written atomically, folders through a staging folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgefusion.resources import DEFAULT_MODEL

DEFAULT_FUSER = str(DEFAULT_MODEL)
"""What ``fuse`` runs when neither ``--method`` nor ``--model`` is given: the shipped student (needs torch)."""


def add_fuser_arguments(parser: argparse.ArgumentParser, required: bool) -> argparse._MutuallyExclusiveGroup:
    """``--method NAME | --model SPEC`` as a mutually exclusive group."""
    from edgefusion.baselines import METHODS

    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--method", choices=METHODS, help="classical fusion method")
    group.add_argument("--model", metavar="SPEC", help="checkpoint (.pt) or deployment bundle (folder or .zip)")
    return group


def add_stretch_arguments(parser: argparse.ArgumentParser) -> None:
    """``--stretch-low/--stretch-high``: percentiles of the 16-bit thermal stretch."""
    from edgefusion.preprocess import DEFAULT_STRETCH

    parser.add_argument("--stretch-low", type=float, default=DEFAULT_STRETCH.low, metavar="P",
                        help=f"16-bit IR: percentile mapped to black (default {DEFAULT_STRETCH.low})")
    parser.add_argument("--stretch-high", type=float, default=DEFAULT_STRETCH.high, metavar="P",
                        help=f"16-bit IR: percentile mapped to white (default {DEFAULT_STRETCH.high})")


def thermal_stretch(args: argparse.Namespace):
    """The :class:`~edgefusion.preprocess.ThermalStretch` of the parsed arguments (UserError if invalid)."""
    from edgefusion.preprocess import ThermalStretch

    return ThermalStretch(args.stretch_low, args.stretch_high)


def register(subparsers) -> None:
    parser = subparsers.add_parser("fuse", help="fuse IR + visible images (files or folders)",
                                   description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--ir", required=True, metavar="PATH", help="infrared image file, folder of frames, or video")
    parser.add_argument("--vis", required=True, metavar="PATH", help="visible image file, folder (paired by file stem), or video")
    parser.add_argument("-o", "--output", required=True, metavar="PATH", help="output image file; folder for folder inputs; or a video file (.mp4, .avi) for video inputs")
    add_fuser_arguments(parser, required=False)
    add_stretch_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgefusion.errors import UserError
    from edgefusion.evaluate import fuse_pair
    from edgefusion.io.outputs import check_not_input, check_output_file, check_output_folder
    from edgefusion.fusers import open_fuser
    from edgefusion.io.atomic import staged_folder
    from edgefusion.io.images import IMAGE_SUFFIXES, write_image
    from edgefusion.io.pairs import read_pair, resolve_pairs
    from edgefusion.progress import progress

    from edgefusion.runtime import video

    check_not_input(args.output, {"IR": args.ir, "visible": args.vis}, "fused")
    if video.handles(args.ir, args.vis, args.output):
        video.fuse_streams(open_fuser(args.model or args.method or DEFAULT_FUSER), args.ir, args.vis, args.output, thermal_stretch(args))
        return 0
    pairs = resolve_pairs(args.ir, args.vis)
    output = Path(args.output)
    single = Path(args.ir).is_file()
    if single:
        check_output_file(output, "fused image")
        if output.suffix.lower() not in IMAGE_SUFFIXES:
            raise UserError(f"output {output} needs an image suffix ({', '.join(IMAGE_SUFFIXES)})")
    else:
        check_output_folder(output, "fused images")
    stretch = thermal_stretch(args)
    fuser = open_fuser(args.model or args.method or DEFAULT_FUSER)

    if single:
        pair = pairs[0]
        write_image(output, fuse_pair(fuser, pair, *read_pair(pair), stretch))
        print(f"wrote {output} ({pair.name} fused by {fuser.name})", file=sys.stderr)
        return 0
    with staged_folder(output) as stage:
        for pair in progress(pairs, desc=f"fuse ({fuser.name})", unit="pair"):
            write_image(stage / f"{pair.name}.png", fuse_pair(fuser, pair, *read_pair(pair), stretch))
    print(f"fused {len(pairs)} pair(s) into {output}", file=sys.stderr)
    return 0
