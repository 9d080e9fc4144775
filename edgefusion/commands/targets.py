"""``edgefusion targets``: list the built-in device target profiles (or show one)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("targets", help="list device target profiles", description="List the built-in target profiles, or show one profile in full.")
    parser.add_argument("name", nargs="?", help="a target name or .toml path to show in full")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgefusion.targets import list_targets, load_target

    if args.name:
        t = load_target(args.name)
        print(f"{t.name}  ({t.source})\n  {t.description}")
        print(f"  backend {t.backend}, precision {t.precision}, layout {t.layout}, io {t.io_dtype}")
        print(f"  shape {t.shape[0]}x{t.shape[1]} ({'dynamic' if t.dynamic else 'fixed'}), calibration samples {t.calibration_samples}")
        print(f"  quantized ops {', '.join(t.quantize_ops)}; kept float: {', '.join(t.keep_float) or 'nothing'}")
        drops = ", ".join(f"{k} {100 * v:g}%" for k, v in t.gate.max_relative_drop.items())
        print(f"  gate: PSNR >= {t.gate.min_psnr_db:g} dB, SSIM >= {t.gate.min_ssim:g}, max relative drop {drops or 'none'}")
        print(f"  latency budget: p90 {t.latency_p90_ms:g} ms at {t.latency_shape[0]}x{t.latency_shape[1]}")
        if t.notes:
            print("  notes: " + t.notes.replace("\n", "\n         "))
        return 0
    rows = [("target", "backend", "precision", "shape (HxW)", "layout", "calib", "gate PSNR", "p90 budget", "description")]
    for t in list_targets():
        rows.append((
            t.name, t.backend, t.precision, f"{t.shape[0]}x{t.shape[1]} {'dynamic' if t.dynamic else 'fixed'}", t.layout,
            str(t.calibration_samples), f">= {t.gate.min_psnr_db:g} dB", f"{t.latency_p90_ms:g} ms @ {t.latency_shape[0]}x{t.latency_shape[1]}", t.description,
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print("\nShow one in full: edgefusion targets NAME. Use your own profile: --target path/to/profile.toml")
    return 0
