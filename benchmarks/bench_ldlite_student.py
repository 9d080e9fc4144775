"""Student vs its LD-Lite teacher: fidelity and look on TNO / RoadScene, and cost at 1920x1080.

Usage::

    python benchmarks/bench_ldlite_student.py --teacher teacher-ld.pt --student edgefusion/assets/models/student-ld.pt \
        [--data ../shared/data/ivif] [--sets TNO RoadScene] [--limit N] [--cost] [--threads 2] [--json out.json]

Quality: every pair of each set goes through the project's preprocessing; the
teacher's output comes from the target cache (:mod:`edgefusion.training.target_cache`,
computed on first use, ``EDGEFUSION_CACHE`` to relocate), the student runs
through :class:`edgefusion.models.checkpoint.TorchFuser` (v2 students get the
whole frame's stats). Both fused luma planes are rounded to 8 bits. Per set:
mean PSNR (dB) and mean SSIM (Wang et al., ``skimage.metrics.structural_similarity``
defaults, ``data_range=255``) of student vs teacher; means of EN, SD, SF, AG
(:mod:`edgefusion.metrics`) of both and the student's relative difference.

Tiles (``--tiles``): the student on a 4000x3000 frame (a shipped sample pair
upscaled bilinearly), PyTorch whole vs in 1024-pixel tiles with 64-pixel margins
(starts aligned to 8), every tile given the WHOLE frame's stats; mean and max
absolute difference in gray levels (0..255).

Cost (``--cost``): both models, PyTorch FP32, ``--threads`` threads, one process,
side by side on the same random 1920x1080 pair: median latency (student: 5 runs,
teacher: 2 runs after one warm-up each), MACs per pixel (FlopCounterMode), speed-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

METRICS = ("EN", "SD", "SF", "AG")


def quality(teacher_path: Path, student_path: Path, folder: Path, limit: int = 0) -> dict:
    from skimage.metrics import structural_similarity

    from edgefusion import metrics
    from edgefusion.io.digest import sha256_file
    from edgefusion.models.checkpoint import TorchFuser, load_model
    from edgefusion.training.dataset import PairCrops
    from edgefusion.training.recipe import DataConfig
    from edgefusion.training.target_cache import FrameAug, TargetCache, cache_root

    teacher, _ = load_model(teacher_path)
    pairs = PairCrops(folder, DataConfig())
    if limit:
        pairs.pairs = pairs.pairs[:limit]
    cache = TargetCache(cache_root(), pairs, teacher, sha256_file(teacher_path))
    student = TorchFuser.load(student_path)
    whole = FrameAug()
    rows = []
    for i in range(len(pairs)):
        ir, vis = pairs.planes(i)
        t8 = np.rint(cache.target(i, whole) * 255.0)
        s8 = np.rint(student.fuse_planes(ir, vis) * 255.0)
        row = {"pair": pairs.pairs[i].name, "psnr": metrics.psnr(s8, t8), "ssim": float(structural_similarity(s8, t8, data_range=255))}
        for name, fn in zip(METRICS, (metrics.entropy, metrics.standard_deviation, metrics.spatial_frequency, metrics.average_gradient)):
            row[f"teacher_{name}"], row[f"student_{name}"] = fn(t8), fn(s8)
        rows.append(row)
    summary = {"set": folder.name, "pairs": len(rows), "psnr": statistics.fmean(r["psnr"] for r in rows), "ssim": statistics.fmean(r["ssim"] for r in rows)}
    for name in METRICS:
        t, s = statistics.fmean(r[f"teacher_{name}"] for r in rows), statistics.fmean(r[f"student_{name}"] for r in rows)
        summary[f"teacher_{name}"], summary[f"student_{name}"], summary[f"rel_{name}"] = t, s, s / t - 1.0
    return {"summary": summary, "rows": rows}


def cost(teacher_path: Path, student_path: Path, threads: int, height: int = 1080, width: int = 1920) -> list[dict]:
    import torch

    from edgefusion.models.checkpoint import TorchFuser, load_model
    from edgefusion.models.student import macs_per_pixel

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    ir, vis = rng.random((2, height, width), dtype=np.float32)
    out = []
    for label, path, repeats in (("student", student_path, 5), ("LD-Lite teacher", teacher_path, 2)):
        model, _ = load_model(path)
        fuser = TorchFuser(model, label)
        fuser.fuse_planes(ir, vis)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fuser.fuse_planes(ir, vis)
            times.append(time.perf_counter() - start)
        macs = macs_per_pixel(model, 256, 256)
        out.append({"model": label, "file": path.name, "params": sum(p.numel() for p in model.parameters()), "macs_per_pixel": macs, "median_ms": 1000 * statistics.median(times)})
    out[0]["speedup"] = out[1]["median_ms"] / out[0]["median_ms"]
    return out


def tiles(student_path: Path, height: int = 3000, width: int = 4000, core: int = 1024, margin: int = 64) -> dict:
    import torch
    import torch.nn.functional as F

    from edgefusion import preprocess
    from edgefusion.io.images import read_image
    from edgefusion.io.pairs import find_pairs
    from edgefusion.models.checkpoint import load_model
    from edgefusion.resources import SAMPLES
    from edgefusion.runtime.frame_stats import frame_stats

    model, _ = load_model(student_path)
    pair = find_pairs(SAMPLES)[0]
    prepared = preprocess.prepare_pair(read_image(pair.ir), read_image(pair.vis))
    planes = torch.from_numpy(np.stack([prepared.ir, prepared.vis_y]))[None]
    big = F.interpolate(planes, size=(height, width), mode="bilinear", align_corners=False)[0].clamp(0, 1)
    ir, vis = big[0:1][None], big[1:2][None]
    stats = torch.from_numpy(frame_stats(ir[0, 0].numpy(), vis[0, 0].numpy()))[None]
    with torch.no_grad():
        whole = model(ir, vis, stats)
        tiled = torch.zeros_like(whole)
        for y in range(0, height, core):
            for x in range(0, width, core):
                y0, x0 = max(0, y - margin), max(0, x - margin)
                y1, x1 = min(height, y + core + margin), min(width, x + core + margin)
                out = model(ir[..., y0:y1, x0:x1], vis[..., y0:y1, x0:x1], stats)
                tiled[..., y : y + core, x : x + core] = out[..., y - y0 : y - y0 + core, x - x0 : x - x0 + core][..., : height - y, : width - x]
    diff = (tiled - whole).abs() * 255
    return {"frame": f"{width}x{height}", "tile": core, "margin": margin, "mean_gray": float(diff.mean()), "max_gray": float(diff.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--student", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "ivif")
    parser.add_argument("--sets", nargs="*", default=["TNO", "RoadScene"])
    parser.add_argument("--limit", type=int, default=0, help="first N pairs of each set only")
    parser.add_argument("--cost", action="store_true")
    parser.add_argument("--tiles", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    result = {"quality": [quality(args.teacher, args.student, args.data / name, args.limit) for name in args.sets]}
    if args.tiles:
        result["tiles"] = tiles(args.student)
        print(f"tiles vs whole at {result['tiles']['frame']}: mean {result['tiles']['mean_gray']:.4f}, max {result['tiles']['max_gray']:.4f} gray levels")
    print("| set | pairs | PSNR dB | SSIM | " + " | ".join(f"{m} teacher / student (diff)" for m in METRICS) + " |")
    print("| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in METRICS) + " |")
    for q in result["quality"]:
        s = q["summary"]
        cells = " | ".join(f"{s[f'teacher_{m}']:.2f} / {s[f'student_{m}']:.2f} ({100 * s[f'rel_{m}']:+.1f} %)" for m in METRICS)
        print(f"| {s['set']} | {s['pairs']} | {s['psnr']:.2f} | {s['ssim']:.4f} | {cells} |")
    if args.cost:
        result["cost"] = cost(args.teacher, args.student, args.threads)
        print("\n| model (1920x1080, PyTorch FP32) | params | MACs/pixel | median ms | speed-up |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for row in result["cost"]:
            print(f"| {row['model']} | {row['params']:,} | {row['macs_per_pixel']:,.0f} | {row['median_ms']:,.1f} | {row.get('speedup', 0):.0f}x |".replace(" | 0x |", " | |"))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
