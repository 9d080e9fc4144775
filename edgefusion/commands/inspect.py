"""``edgefusion inspect BUNDLE``: verify a bundle and say what it holds, without running it.

Verifies what a device would (the manifest's seal, every file's SHA-256, the manifest's
values) and prints target, backend, I/O contract, accuracy gate, latency budget and the
model's provenance. Exit 0 for an intact bundle, 2 (one line) otherwise, so a release
pipeline can gate on it. Needs neither torch nor a backend.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers) -> None:
    parser = subparsers.add_parser("inspect", help="verify a bundle and show its contract, accuracy and provenance",
                                   description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("bundle", help="a bundle folder or .zip")
    parser.add_argument("--json", action="store_true", help="print the verified manifest as JSON")
    parser.set_defaults(func=run)


def _size(shape: Any) -> str:
    return f"{shape[0]}x{shape[1]}" if isinstance(shape, list) and len(shape) == 2 else "?"


def _tensors(entries: Any) -> str:
    if not isinstance(entries, list) or not entries:
        return "ir, vis"
    return ", ".join(f"{e.get('name', '?')} {e.get('shape')} {e.get('dtype', '')}".rstrip() if isinstance(e, dict) else str(e) for e in entries)


def _section(parent: Any, key: str) -> dict[str, Any]:
    """``parent[key]`` when both are dicts, else ``{}`` (optional manifest sections may be absent or of another form)."""
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else {}


def summary_lines(manifest: dict[str, Any]) -> list[str]:
    """The manifest in a few lines (a verified manifest: the keys of schema 1; optional sections may be missing)."""
    m = manifest
    fixed = m["fixed_shape"]
    lines = [
        f"target {m['target']} · backend {m['backend']} · precision {m['precision']} · written by edgefusion {m['edgefusion_version']}",
        f"inputs {_tensors(m.get('inputs'))} · outputs {_tensors(m.get('outputs'))}",
        f"layout {m['layout']} · I/O {m['io_dtype']} · stride {m['stride']} · frame size "
        + (f"{fixed[0]}x{fixed[1]} (fixed)" if fixed else f"any (padded to multiples of {m['stride']})")
        + f" · composition by the {'runtime' if m.get('compose') == 'runtime' else 'model'}",
    ]
    accuracy, gate = _section(m, "accuracy"), _section(_section(m, "accuracy"), "gate")
    psnr = _section(accuracy, "psnr_db")
    if psnr:
        verdict = "passed" if gate.get("passed") else "FAILED"
        lines.append(f"accuracy gate {verdict}: {m['precision']} vs FP32 worst frame {psnr.get('min')} dB (mean {psnr.get('mean')}) "
                     f"over {accuracy.get('frames')} frames at {_size(accuracy.get('shape'))}, bound {gate.get('min_psnr_db')} dB")
    budget = _section(m, "latency_budget")
    if budget:
        lines.append(f"latency budget: p90 {budget.get('p90_ms')} ms at {_size(budget.get('shape'))} "
                     f"(edgefusion bench --target {m['target']} --check)")
    model = _section(m, "model")
    prov = _section(model, "provenance")
    if model:
        lines.append(f"model {model.get('architecture', '?')} {json.dumps(model.get('config', {}))} from {model.get('file', '?')} "
                     f"(SHA-256 {str(model.get('sha256', '?'))[:12]}…)")
    if prov:
        flag = prov.get("language_objective_meaningful")
        meaningful = "yes" if flag is True else "NO (not trained with real CLIP weights)" if flag is False else "unknown"
        lines.append(f"objective: {prov.get('objective', 'unknown')}")
        lines.append(f"language objective meaningful: {meaningful} · licence: {prov.get('licence', 'project licence')}")
        if prov.get("attribution"):
            lines.append(f"attribution: {prov['attribution']}")
    return lines


def run(args: argparse.Namespace) -> int:
    from edgefusion.runtime.bundle import load_bundle

    bundle = load_bundle(args.bundle)
    if args.json:
        print(json.dumps(bundle.manifest, indent=1))
        return 0
    files = ", ".join(f"{rel} ({(bundle.root / rel).stat().st_size:,} bytes)" for rel in sorted(bundle.manifest["sha256"]))
    print(f"bundle {args.bundle}: intact (manifest seal and {len(bundle.manifest['sha256'])} file digests verified): {files}")
    for line in summary_lines(bundle.manifest):
        print(f"  {line}")
    return 0
