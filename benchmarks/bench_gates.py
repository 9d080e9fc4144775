"""The accuracy gate of every built-in target for the shipped default model (a benchmark run before README figures).

For each built-in target (``edgefusion targets``; variants with ``--variants``)
the model that ``edgefusion quantize`` uses without ``--model`` is quantized
exactly as that command does, at the target's default shape, on the default
calibration and validation pairs (the package samples unless ``--calib`` /
``--val``), and one markdown table is printed: INT8-vs-FP32 PSNR (worst and
mean frame, dB), worst-frame SSIM, gate result, wall time and the 1-minute load
average before and after (the machine may be shared). Exit 1 when a gate fails.

    python benchmarks/bench_gates.py [--targets x86,arm,onnx,jetson] [--variants] [--json gates.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def _targets(names: str | None, variants: bool):
    from edgefusion.targets import builtin_names, list_targets, load_target

    if names:
        return [load_target(n) for n in names.split(",")]
    return list_targets() if variants else [load_target(n) for n in builtin_names()]


def measure(target, calib: Path | None, val: Path | None) -> dict:
    """One ``edgefusion quantize`` run of ``target`` (bundle discarded); its gate figures, wall time and load."""
    from edgefusion.errors import UserError
    from edgefusion.quantize.pipeline import run_quantize

    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-gates-") as tmp:
        try:
            _, report = run_quantize(target, Path(tmp) / "bundle", calib_dir=calib, val_dir=val, force=True,
                                     log=lambda message: None, warn=lambda message: print(f"  {target.name}: {message}", file=sys.stderr))
        except UserError as exc:
            report = {"error": str(exc)}
    row = {"target": target.name, "shape": "x".join(map(str, target.shape)), "backend": target.backend,
           "wall_s": round(time.perf_counter() - start, 1), "load_before": load_before, "load_after": os.getloadavg()[0]}
    if "error" in report:
        return {**row, "error": report["error"], "passed": False}
    return {**row, "psnr_min_db": report["psnr_db"]["min"], "psnr_mean_db": report["psnr_db"]["mean"], "ssim_min": report["ssim"]["min"],
            "min_psnr_gate_db": target.gate.min_psnr_db, "passed": report["gate"]["passed"], "failures": report["gate"]["failures"],
            "checked_with": report["checked_with"]}


def table(rows: list[dict]) -> str:
    lines = ["| target | shape | worst PSNR dB | mean PSNR dB | worst SSIM | gate | wall s | load (1 min) before/after |",
             "| --- | --- | ---: | ---: | ---: | --- | ---: | --- |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['target']} | {r['shape']} | | | | ERROR: {r['error']} | {r['wall_s']:.0f} | {r['load_before']:.1f}/{r['load_after']:.1f} |")
            continue
        gate = f"passed (>= {r['min_psnr_gate_db']:g} dB)" if r["passed"] else "FAILED: " + "; ".join(r["failures"])
        lines.append(f"| {r['target']} | {r['shape']} | {r['psnr_min_db']:.1f} | {r['psnr_mean_db']:.1f} | {r['ssim_min']:.4f} | {gate} "
                     f"| {r['wall_s']:.0f} | {r['load_before']:.1f}/{r['load_after']:.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", help="comma-separated targets (default: every built-in target)")
    parser.add_argument("--variants", action="store_true", help="also every built-in variant (jetson:480p, ...)")
    parser.add_argument("--calib", type=Path, help="calibration pairs folder (default: as edgefusion quantize)")
    parser.add_argument("--val", type=Path, help="validation pairs folder (default: as edgefusion quantize)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()

    from edgefusion.resources import DEFAULT_MODEL

    rows = []
    for target in _targets(args.targets, args.variants):
        rows.append(measure(target, args.calib, args.val))
        print(f"{target.name}: done in {rows[-1]['wall_s']:.0f} s", file=sys.stderr)
    print(f"model: {DEFAULT_MODEL.name} (the shipped default); host: {platform.machine()} {os.cpu_count()} CPUs, {platform.python_version()}")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"model": str(DEFAULT_MODEL.name), "rows": rows}, indent=2) + "\n", encoding="utf-8")
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
