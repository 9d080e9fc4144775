"""Fusion quality of a teacher, its students and the classical baselines, plus student-vs-teacher fidelity.

Usage::

    python benchmarks/quality_models.py --teacher RUN/teacher/teacher.pt \\
        --student edgefusion/assets/models/student-s.pt [more students] \\
        --data /work/shared/data/ivif/TNO /work/shared/data/ivif/RoadScene [--json out.json]

For every dataset it prints the mean EN, SD, SF, AG, MI, SCD, VIF, Qabf and
SSIM (:mod:`edgefusion.metrics`, scored by :func:`edgefusion.evaluate.score`
exactly as ``edgefusion eval`` does) of each fuser, and for each student its
PSNR against the teacher's fused image (dB, 8-bit, mean over images) and the
relative difference of each metric mean from the teacher's (percent).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edgefusion import metrics
from edgefusion.evaluate import fuse_pair, score
from edgefusion.fusers import open_fuser
from edgefusion.io.pairs import find_pairs, read_pair
from edgefusion.preprocess import DEFAULT_STRETCH


def evaluate_dataset(data: Path, fusers: dict[str, object], teacher: str) -> dict:
    """``{"mean": {fuser: {metric: v}}, "psnr_vs_teacher": {fuser: dB}}`` over the pairs of ``data``."""
    scores = {name: [] for name in fusers}
    psnr = {name: [] for name in fusers if name != teacher}
    for pair in find_pairs(data):
        ir, vis = read_pair(pair)
        fused = {name: fuse_pair(f, pair, ir, vis, DEFAULT_STRETCH) for name, f in fusers.items()}
        for name, image in fused.items():
            scores[name].append(score(ir, vis, image))
            if name in psnr:
                psnr[name].append(metrics.psnr(image.astype(np.float64), fused[teacher].astype(np.float64)))
    mean = {name: {k: float(np.mean([s[k] for s in rows])) for k in metrics.METRIC_NAMES} for name, rows in scores.items()}
    return {"pairs": len(scores[teacher]), "mean": mean, "psnr_vs_teacher": {k: float(np.mean(v)) for k, v in psnr.items()}}


def markdown(dataset: str, result: dict, teacher: str, students: list[str]) -> str:
    names = list(metrics.METRIC_NAMES)
    lines = [f"**{dataset}** ({result['pairs']} pairs)", "", "| fuser | " + " | ".join(names) + " | PSNR vs teacher (dB) |",
             "|---|" + "---:|" * (len(names) + 1)]
    for fuser, values in result["mean"].items():
        psnr = result["psnr_vs_teacher"].get(fuser)
        lines.append(f"| {fuser} | " + " | ".join(f"{values[k]:.3f}" for k in names) + f" | {'' if psnr is None or fuser not in students else f'{psnr:.2f}'} |")
    for student in students:
        rel = [100 * (result["mean"][student][k] - result["mean"][teacher][k]) / abs(result["mean"][teacher][k]) for k in names]
        lines.append(f"| {student} vs teacher (%) | " + " | ".join(f"{r:+.1f}" for r in rel) + " | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True, help="teacher checkpoint")
    parser.add_argument("--student", nargs="+", default=[], help="student checkpoints (or bundles)")
    parser.add_argument("--baseline", nargs="*", default=["max", "mean", "laplacian"], help="classical methods")
    parser.add_argument("--data", nargs="+", type=Path, required=True, help="dataset folders with ir/ and vi/")
    parser.add_argument("--json", type=Path, help="also write all numbers here")
    args = parser.parse_args()
    fusers = {"teacher": open_fuser(args.teacher)}
    students = []
    for spec in args.student:
        name = f"student:{Path(spec).name}"
        fusers[name] = open_fuser(spec)
        students.append(name)
    fusers.update({name: open_fuser(name) for name in args.baseline})
    results = {}
    for data in args.data:
        results[data.name] = evaluate_dataset(data, fusers, "teacher")
        print(markdown(data.name, results[data.name], "teacher", students), "\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
