"""``edgefusion eval``: fusion metrics of a paired dataset for fused files, a method or a model.

Prints per-image and mean EN, SD, SF, AG, MI, SCD, VIF, Qabf and SSIM as an
aligned table (conventions: :mod:`edgefusion.metrics`); optionally writes
JSON, CSV and IR | visible | fused strips. All outputs are written only after
every pair has been scored.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgefusion.commands.fuse import add_fuser_arguments, add_stretch_arguments, thermal_stretch


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="fusion metrics of a dataset (fused files, method or model)",
                                   description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--data", required=True, metavar="DIR", help="dataset folder with ir/ and vi/ subfolders")
    group = add_fuser_arguments(parser, required=True)
    group.add_argument("--fused", metavar="DIR", help="folder of already fused images, paired with the dataset by stem")
    parser.add_argument("--json", metavar="FILE", help='write {"images": {name: {metric: value}}, "mean": {...}}')
    parser.add_argument("--csv", metavar="FILE", help="write per-image rows and a mean row")
    parser.add_argument("--grid", metavar="DIR", help="write IR | visible | fused strips as <name>.png")
    parser.add_argument("--stretch", action="store_true", help="min-max stretch the fused luma before scoring (off by default)")
    add_stretch_arguments(parser)
    parser.set_defaults(func=run)


def _fused_files(folder: Path, names: list[str]) -> dict[str, Path]:
    from edgefusion.errors import UserError
    from edgefusion.io.images import IMAGE_SUFFIXES

    if not folder.is_dir():
        raise UserError(f"fused folder not found: {folder}")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and path.stem in names and not path.name.startswith("."):
            if path.stem in found:
                raise UserError(f"two fused images share the name {path.stem!r} in {folder}: {found[path.stem].name} and {path.name}")
            found[path.stem] = path
    missing = [name for name in names if name not in found]
    if missing:
        raise UserError(f"no fused image for {missing[0]!r} in {folder} ({len(missing)} of {len(names)} missing)")
    return found


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from edgefusion.errors import UserError
    from edgefusion.evaluate import evaluate, fuse_pair, write_report
    from edgefusion.io.outputs import check_not_input, check_output_file, check_output_folder
    from edgefusion.io.images import read_image
    from edgefusion.io.pairs import find_pairs

    pairs = find_pairs(args.data)
    check_output_file(args.json, "JSON")
    check_output_file(args.csv, "CSV")
    check_output_folder(args.grid, "grid")
    if args.grid is not None:  # grid strips are named after the pairs
        sources = {"IR": Path(args.data) / "ir", "visible": Path(args.data) / "vi"} | ({"fused": args.fused} if args.fused else {})
        check_not_input(args.grid, sources, "grid")
    stretch = thermal_stretch(args)
    if args.fused is not None:
        files = _fused_files(Path(args.fused), [p.name for p in pairs])

        def fused_for(pair, ir, vis):
            fused = read_image(files[pair.name])
            if fused.dtype != np.uint8 or fused.shape[:2] != ir.shape[:2]:
                raise UserError(
                    f"fused image {files[pair.name]} is {fused.shape[1]}x{fused.shape[0]} {fused.dtype}, "
                    f"expected 8-bit {ir.shape[1]}x{ir.shape[0]} like {pair.ir}"
                )
            return fused
    else:
        from edgefusion.fusers import open_fuser

        fuser = open_fuser(args.model or args.method)

        def fused_for(pair, ir, vis):
            return fuse_pair(fuser, pair, ir, vis, stretch)

    report = evaluate(pairs, fused_for, stretch=stretch, stretch_fused=args.stretch, grid_dir=args.grid)
    write_report(report, args.json, args.csv)
    print(report.to_table(), end="")
    return 0
