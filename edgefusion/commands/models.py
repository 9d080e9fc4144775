"""``edgefusion models``: the shipped models with their provenance, cost and quality figures."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list the shipped models (use their names with --model)",
                                   description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--json", action="store_true", help="print the full records as JSON")
    parser.set_defaults(func=run)


def _line(name: str, record: dict, default: bool) -> str:
    from edgefusion.models.shipped import SHIPPED

    prov = record.get("provenance", {})
    teacher = prov.get("teacher", {})
    cost = record.get("cost", {})
    aliases = ", ".join(SHIPPED[name])
    parts = [
        f"{name}{' (default)' if default else ''}  aliases: {aliases}",
        f"  file: {record.get('file', name + '.pt')}  architecture: {record.get('architecture', '?')} {record.get('config', {})}",
        f"  teacher: {teacher.get('architecture', '?')}  objective: {prov.get('objective', 'unknown')}",
        f"  language objective meaningful: {prov.get('language_objective_meaningful')}  licence: {prov.get('licence', 'project licence')}",
    ]
    if cost:
        parts.append("  cost: " + ", ".join(f"{k} {v}" for k, v in cost.items()))
    for line in record.get("quality_summary", []):
        parts.append(f"  quality: {line}")
    if prov.get("attribution"):
        parts.append(f"  attribution: {prov['attribution']}")
    return "\n".join(parts)


def run(args: argparse.Namespace) -> int:
    from edgefusion.models.shipped import DEFAULT_NAME, SHIPPED, describe, shipped_path

    records = {name: describe(name) for name in SHIPPED if shipped_path(name).is_file()}
    if args.json:
        print(json.dumps(records, indent=1))
        return 0
    print("\n\n".join(_line(name, record, name == DEFAULT_NAME) for name, record in records.items()))
    return 0
