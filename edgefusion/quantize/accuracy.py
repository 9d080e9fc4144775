"""INT8-vs-FP32 accuracy report and the target's gate.

For every validation frame the candidate (e.g. INT8) output is compared with
the FP32 reference output (both fused luma planes in [0, 1]):

* PSNR in dB (data range 1; identical outputs are reported as 200 dB),
* SSIM (Wang et al.'s Gaussian window, :func:`edgefusion.metrics.ssim` textbook settings),
* the fusion metrics of :mod:`edgefusion.metrics` for both outputs (means over
  frames) and their relative drop ``(reference - candidate) / |reference|``
  (positive = the candidate scores lower; where the reference scores exactly 0
  the drop is the sign of ``reference - candidate``, a whole value, so that the
  report stays finite, strict JSON).

The gate checks the worst frame's PSNR and SSIM and the drop of every metric
named in the target's ``max_relative_drop``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgefusion import metrics
from edgefusion.errors import GateError
from edgefusion.targets import Gate

PSNR_CAP_DB = 200.0


@dataclass(frozen=True)
class Outputs:
    """Inputs and two models' outputs for one frame, all (H, W) float32 in [0, 1]."""

    ir: np.ndarray
    vis: np.ndarray
    reference: np.ndarray
    candidate: np.ndarray


def psnr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """PSNR of two [0, 1] planes in dB, capped at :data:`PSNR_CAP_DB`."""
    return min(PSNR_CAP_DB, metrics.psnr(reference, candidate, data_range=1.0))


def relative_drop(reference: float, candidate: float) -> float:
    """``(reference - candidate) / |reference|``; for a reference of 0, the sign of ``reference - candidate`` (-1, 0 or 1)."""
    difference = reference - candidate
    return difference / abs(reference) if reference != 0 else float(np.sign(difference))


def compare(frames: list[Outputs], metric_names: tuple[str, ...] = metrics.METRIC_NAMES) -> dict:
    """The accuracy report (plain JSON-ready dict) of candidate vs reference over ``frames``."""
    psnrs = [psnr_db(f.reference, f.candidate) for f in frames]
    ssims = [metrics.ssim(f.reference * 255.0, f.candidate * 255.0, textbook=True) for f in frames]
    from edgefusion.progress import progress

    per_model = {"reference": [], "candidate": []}
    for f in progress(frames, desc="fusion metrics", unit="frame", leave=False, enabled=len(frames) > 1):
        planes = [p.astype(np.float64) * 255.0 for p in (f.ir, f.vis)]
        for key in per_model:
            per_model[key].append(metrics.compute_all(*planes, getattr(f, key).astype(np.float64) * 255.0, names=metric_names))
    table = {}
    for name in metric_names:
        ref = float(np.mean([m[name] for m in per_model["reference"]]))
        cand = float(np.mean([m[name] for m in per_model["candidate"]]))
        drop = relative_drop(ref, cand)
        table[name] = {"fp32": round(ref, 6), "int8": round(cand, 6), "relative_drop": round(drop, 6)}
    return {
        "frames": len(frames),
        "shape": list(frames[0].reference.shape) if frames else None,
        "psnr_db": {"mean": round(float(np.mean(psnrs)), 3), "min": round(float(np.min(psnrs)), 3)},
        "ssim": {"mean": round(float(np.mean(ssims)), 6), "min": round(float(np.min(ssims)), 6)},
        "metrics": table,
    }


def gate_failures(report: dict, gate: Gate) -> list[str]:
    """Human-readable reasons why ``report`` misses ``gate`` (empty when it passes)."""
    failures = []
    if report["psnr_db"]["min"] < gate.min_psnr_db:
        failures.append(f"PSNR {report['psnr_db']['min']:.2f} dB < {gate.min_psnr_db:g} dB")
    if report["ssim"]["min"] < gate.min_ssim:
        failures.append(f"SSIM {report['ssim']['min']:.4f} < {gate.min_ssim:g}")
    for name, limit in gate.max_relative_drop.items():
        entry = report["metrics"].get(name)
        if entry is None:
            failures.append(f"metric {name} is not reported (known: {', '.join(report['metrics'])})")
        elif entry["relative_drop"] > limit:
            failures.append(f"{name} drops {100 * entry['relative_drop']:.2f}% > {100 * limit:g}%")
    return failures


def gate_summary(report: dict, gate: Gate) -> dict:
    """Gate thresholds, result and failures, for the manifest."""
    failures = gate_failures(report, gate)
    return {
        "min_psnr_db": gate.min_psnr_db,
        "min_ssim": gate.min_ssim,
        "max_relative_drop": dict(gate.max_relative_drop),
        "passed": not failures,
        "failures": failures,
    }


def raise_gate(target_name: str, failures: list[str]) -> None:
    """GateError (exit 3) listing the failures in one line."""
    raise GateError(f"INT8 model misses the accuracy gate of target {target_name}: {'; '.join(failures)} (use --force to write it anyway)")
