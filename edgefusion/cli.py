"""Command line: ``edgefusion <command> ...``; a thin dispatch to :mod:`edgefusion.commands`.

Each command module defines ``register(subparsers)``, which adds its parser
and sets ``func`` to the function that runs it. Command modules import heavy
libraries (torch, backends) inside ``func`` only, so ``edgefusion --help``
stays fast and works on a device with just numpy and one backend.

Errors caused by input are :class:`edgefusion.errors.UserError`: one line on
stderr, exit code 2 (3 for a failed accuracy gate, 4 for a blown latency budget,
5 for a check that was skipped). Every ``OSError`` (disk full, permissions, a
file where a folder belongs) is reported the same way, naming the path: exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from edgefusion import __version__
from edgefusion.allocator import keep_freed_memory
from edgefusion.errors import UserError, describe_os_error

COMMAND_MODULES = (
    "fuse",
    "eval",
    "train",
    "import_weights",
    "export",
    "quantize",
    "build_engine",
    "native",
    "targets",
    "bench",
    "demo",
    "models",
    "inspect",
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
    keep_freed_memory()  # PyTorch's large temporaries are reused, not page-faulted anew (edgefusion.allocator)
    try:
        result = args.func(args)
    except UserError as exc:
        print(f"edgefusion: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"edgefusion: {describe_os_error(exc)}", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt:
        print("edgefusion: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
