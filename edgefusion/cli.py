"""Command line: ``edgefusion <command> ...``; a thin dispatch to :mod:`edgefusion.commands`.

Each command module defines ``register(subparsers)``, which adds its parser
and sets ``func`` to the function that runs it. Command modules import heavy
libraries (torch, backends) inside ``func`` only, so ``edgefusion --help``
stays fast and works on a device with just numpy and one backend.

Errors caused by input are :class:`edgefusion.errors.UserError`: one line on
stderr, exit code 2 (3 for a failed accuracy gate, 4 for a blown latency budget).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from edgefusion import __version__
from edgefusion.errors import UserError

COMMAND_MODULES = (
    "fuse",
    "eval",
    "train",
    "import_weights",
    "export",
    "quantize",
    "build_engine",
    "targets",
    "bench",
    "demo",
    "models",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgefusion", description="Infrared + visible image fusion, from training to edge devices.")
    parser.add_argument("--version", action="version", version=f"edgefusion {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"edgefusion.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except UserError as exc:
        print(f"edgefusion: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgefusion: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
