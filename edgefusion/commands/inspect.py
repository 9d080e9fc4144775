"""``edgefusion inspect BUNDLE|MODEL``: verify a bundle or a checkpoint and say what it holds, without running it.

A bundle is verified as a device would (the manifest's seal, every file's SHA-256, the
manifest's values); the summary gives target, backend, I/O contract, accuracy gate, latency
budget and the model's provenance, and needs neither torch nor a backend. A checkpoint (a
``.pt`` file or a shipped model's name) is loaded as every command loads it (``weights_only``,
fields, finite weights, shapes against its architecture); the summary gives architecture,
parameters, stride, smallest frame, inputs and provenance, including whether the language
objective was meaningful. Exit 0 when intact, 2 (one line) otherwise, so a release pipeline can
gate on it.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path
from typing import Any


def register(subparsers) -> None:
    parser = subparsers.add_parser("inspect", help="verify a bundle or checkpoint and show its contract, accuracy and provenance",
                                   description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("artifact", metavar="BUNDLE|MODEL", help="a bundle folder or .zip, a checkpoint (.pt) or a shipped model's name")
    parser.add_argument("--json", action="store_true", help="print the verified manifest (bundles) or the summary (checkpoints) as JSON")
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
    accuracy = _section(m, "accuracy")
    gate = _section(accuracy, "gate")
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
    if model:
        lines.append(f"model {model.get('architecture', '?')} {json.dumps(model.get('config', {}))} from {model.get('file', '?')} "
                     f"(SHA-256 {str(model.get('sha256', '?'))[:12]}…)")
    return lines + provenance_lines(_section(model, "provenance"))


def provenance_lines(prov: dict[str, Any]) -> list[str]:
    """Objective, whether the language objective was meaningful, licence, the model a fine-tune started from and attribution (none for an empty dict)."""
    if not prov:
        return []
    flag = prov.get("language_objective_meaningful")
    meaningful = "yes" if flag is True else "NO: not trained with the real language-driven (CLIP) objective" if flag is False else "unknown"
    lines = [f"objective: {prov.get('objective', 'unknown')}",
             f"language objective meaningful: {meaningful} · licence: {prov.get('licence', 'project licence')}"]
    if isinstance(prov.get("init"), dict):
        lines.append(f"fine-tuned from: {prov['init'].get('model', '?')} (SHA-256 {str(prov['init'].get('sha256', '?'))[:12]}…)")
    if prov.get("attribution"):
        lines.append(f"attribution: {prov['attribution']}")
    return lines


def checkpoint_summary(path: Path) -> dict[str, Any]:
    """What :func:`edgefusion.models.checkpoint.load_model` makes of ``path`` (UserError when it cannot load it)."""
    from edgefusion.io.digest import sha256_file
    from edgefusion.models.checkpoint import input_names, load_model
    from edgefusion.models.provenance import provenance_of

    model, payload = load_model(path)
    return {"checkpoint": str(path), "sha256": sha256_file(path), "architecture": payload["architecture"],
            "config": payload["config"], "parameters": sum(p.numel() for p in model.parameters()),
            "stride": int(getattr(model, "stride", 1)), "min_size": int(getattr(model, "min_size", 1)),
            "inputs": list(input_names(model)), "stage": payload["metadata"].get("stage"), "provenance": provenance_of(payload)}


def checkpoint_lines(summary: dict[str, Any]) -> list[str]:
    """A :func:`checkpoint_summary` in a few lines."""
    teacher = summary["provenance"].get("teacher") or {}
    lines = [f"stage {summary['stage'] or '?'} · stride {summary['stride']} · smallest frame {summary['min_size']}x{summary['min_size']} "
             f"· inputs {', '.join(summary['inputs'])}"]
    if teacher:
        lines.append(f"teacher: {teacher.get('architecture', '?')} (SHA-256 {str(teacher.get('sha256', '?'))[:12]}…)")
    return lines + provenance_lines(summary["provenance"])


def _is_bundle(path: Path) -> bool:
    """A folder (a bundle, or a UserError saying why not) or a zip archive; anything else is a model spec."""
    return path.is_dir() or path.suffix.lower() == ".zip" and zipfile.is_zipfile(path)


def run(args: argparse.Namespace) -> int:
    path = Path(args.artifact)
    if not _is_bundle(path):
        return _run_checkpoint(args)
    from edgefusion.runtime.bundle import load_bundle

    bundle = load_bundle(path)
    if args.json:
        print(json.dumps(bundle.manifest, indent=1))
        return 0
    files = ", ".join(f"{rel} ({(bundle.root / rel).stat().st_size:,} bytes)" for rel in sorted(bundle.manifest["sha256"]))
    print(f"bundle {args.artifact}: intact (manifest seal and {len(bundle.manifest['sha256'])} file digests verified): {files}")
    for line in summary_lines(bundle.manifest):
        print(f"  {line}")
    return 0


def _run_checkpoint(args: argparse.Namespace) -> int:
    from edgefusion.models.shipped import resolve_model_spec

    summary = checkpoint_summary(Path(resolve_model_spec(args.artifact)))
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
        return 0
    print(f"checkpoint {summary['checkpoint']}: loads ({summary['architecture']} {json.dumps(summary['config'])}, "
          f"{summary['parameters']:,} parameters; SHA-256 {summary['sha256'][:12]}…)")
    for line in checkpoint_lines(summary):
        print(f"  {line}")
    return 0
