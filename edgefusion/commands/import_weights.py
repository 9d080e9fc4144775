"""``edgefusion import ld-lite WEIGHTS --out CKPT``: third-party weights as an edgefusion checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

SOURCES = ("ld-lite",)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import",
        help="convert published weights (LD-Lite) into an edgefusion checkpoint with provenance",
        description=(
            "Convert the authors' LD-Lite state dict (wyhlaowang/LD-Lite weight/final.pt, Apache-2.0) into an "
            "edgefusion checkpoint usable by fuse, eval, export and 'train student --teacher'. The checkpoint "
            "records the source repository and commit, the licence and the SHA-256 of the original file."
        ),
    )
    parser.add_argument("source", choices=SOURCES, help="which published model the weights belong to")
    parser.add_argument("weights", type=Path, help="the original weights file (e.g. ../shared/models/ld-lite/final.pt)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (.pt)")
    parser.add_argument("--allow-modified", action="store_true",
                        help="import a file whose SHA-256 differs from the published one (recorded as modified in the provenance)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgefusion.errors import UserError
    from edgefusion.io.outputs import check_not_input
    from edgefusion.models.checkpoint import model_from_payload, save_checkpoint
    from edgefusion.models.imports import IMPORTERS

    if args.out.suffix != ".pt":
        raise UserError(f"--out must end in .pt, got {args.out.name}")
    check_not_input(args.out, {"weights": args.weights}, "checkpoint")
    payload = IMPORTERS[args.source](args.weights, allow_modified=args.allow_modified)
    model_from_payload(payload, str(args.weights))  # the weights load into the architecture
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(args.out, payload)
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    source = payload["metadata"]["source"]
    print(f"wrote {args.out} (architecture {payload['architecture']}, {source['repository']} @ {source['commit'][:7]}, {payload['metadata']['licence']}, sha256 {source['sha256'][:12]}...{', MODIFIED' if source.get('modified') else ''})")
    return 0
