"""Student vs its LD-Lite teacher: fidelity and look on TNO / RoadScene, and cost at 1920x1080.

Usage::

    python benchmarks/bench_ldlite_student.py --teacher teacher-ld.pt --student edgefusion/assets/models/student-ld.pt \
        [--data ../shared/data/ivif] [--sets TNO RoadScene] [--limit N] [--cost] [--threads 2] [--json out.json]
    python benchmarks/bench_ldlite_student.py --teacher teacher-ld.pt --student edgefusion/assets/models/student-ld.pt \
        --baseline edgefusion/assets/models/student-s.pt --diagnose DIR [--context 3] [--grid-phase 50]

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

Diagnosis (``--diagnose DIR``): where each student (and ``max(ir, vis)``) differs from
the teacher, per set (:mod:`fidelity_diagnosis`: error energy below / above Gaussian
sigma 2, 8, 32 px and the PSNR with the teacher's low-pass put in; PSNR after a
per-frame affine tone fit and a monotone tone curve; detail-band gain; error per
local-contrast bin), how far the teacher's output on an unchanged region moves when
the rest of its input changes (:func:`context_dependence`, ``--context`` pairs per set)
and how much of it depends on its stride-8 grid phase (:func:`grid_phase`,
``--grid-phase`` pairs per set). Writes ``DIR/diagnose.json``, ``diagnose-bars.png``,
``diagnose-maps.png`` and prints Markdown tables.

Cost (``--cost``): both models, PyTorch FP32, ``--threads`` threads, one process,
side by side on the same random 1920x1080 pair: median latency (student: 5 runs,
teacher: 2 runs after one warm-up each), MACs per pixel (FlopCounterMode), speed-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgefusion.allocator import keep_freed_memory

METRICS = ("EN", "SD", "SF", "AG")


@dataclass
class Models:
    """The LD-Lite teacher (a TorchFuser named "ld-lite"), its checkpoint's SHA-256 (the target cache's key) and
    the students (TorchFusers named after their files), each loaded once."""

    teacher: object
    digest: str
    students: list

    @classmethod
    def load(cls, teacher_path: Path, student_paths: list[Path]) -> "Models":
        from edgefusion.io.digest import sha256_file
        from edgefusion.models.checkpoint import TorchFuser, load_model

        return cls(TorchFuser(load_model(teacher_path)[0], "ld-lite"), sha256_file(teacher_path), [TorchFuser.load(p) for p in student_paths])


def pair_set(folder: Path):
    """The pairs of ``folder`` (:class:`edgefusion.training.dataset.PairCrops`: prepared planes, kept once read)."""
    from edgefusion.training.dataset import PairCrops
    from edgefusion.training.recipe import DataConfig

    return PairCrops(folder, DataConfig())


def frames(models: Models, pairs, limit: int = 0):
    """Yield ``(name, ir, vis, teacher8, [student8, ...])`` per pair of ``pairs`` (the first ``limit``): prepared
    planes in [0, 1], fused luma rounded to 8 bits (0..255 float); the teacher's from the target cache."""
    from edgefusion.training.target_cache import FrameAug, TargetCache, cache_root

    cache = TargetCache(cache_root(), pairs, models.teacher.model, models.digest)
    for i in range(min(limit, len(pairs)) if limit else len(pairs)):
        ir, vis = pairs.planes(i)
        t8 = np.rint(cache.target(i, FrameAug()) * 255.0)
        yield pairs.pairs[i].name, ir, vis, t8, [np.rint(student.fuse_planes(ir, vis) * 255.0) for student in models.students]


def quality(models: Models, folder: Path, limit: int = 0) -> dict:
    from skimage.metrics import structural_similarity

    from edgefusion import metrics

    rows = []
    for name, _, _, t8, (s8,) in frames(models, pair_set(folder), limit):
        row = {"pair": name, "psnr": metrics.psnr(s8, t8), "ssim": float(structural_similarity(s8, t8, data_range=255))}
        for metric, fn in zip(METRICS, (metrics.entropy, metrics.standard_deviation, metrics.spatial_frequency, metrics.average_gradient)):
            row[f"teacher_{metric}"], row[f"student_{metric}"] = fn(t8), fn(s8)
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


def _compare(out8: np.ndarray, ref8: np.ndarray) -> dict:
    """A fused region against the same region fused another way: PSNR, mean |diff| (gray levels), PSNR after an affine fit."""
    from fidelity_diagnosis import affine_fit

    from edgefusion.metrics import psnr_of_mse

    a, b = affine_fit(out8, ref8)
    return {"psnr": psnr_of_mse(float(np.mean((out8 - ref8) ** 2))), "mean_abs": float(np.mean(np.abs(out8 - ref8))), "psnr_affine": psnr_of_mse(float(np.mean((a * out8 + b - ref8) ** 2)))}


def context_dependence(teacher, student, name: str, pairs, count: int) -> list[dict]:
    """How much a model's output (the teacher's, labelled LD-Lite, and the student's) on an unchanged region moves
    when the rest of its input changes.

    For each of the first ``count`` of ``pairs`` (set ``name``; frame H x W, ``p`` = min(H, W) / 4 rounded down to
    a multiple of 8, so that strided layers keep their sampling grid): ``other border``: the frame pasted
    into a (H + 2p) x (W + 2p) canvas filled with another pair of the set (bilinear-resized); ``mirror
    border``: the frame padded by ``p`` with its own mirror image; ``centre crop``: the centre H/2 x W/2
    (offsets multiples of 8) fused alone (a tile); ``shift N``: the frame less its first N rows and
    columns (N = 8 keeps the grid, N = 4 does not); ``input gain/offset``: the frame with IR
    ``0.6 x + 0.2`` and visible ``0.5 x + 0.25`` (LD-Lite's first instance norms make it blind to
    that). The region of the frame (or crop) in that output is
    compared with the whole frame's output (8-bit); v2 students see the stats of what they are given.
    Student rows also give the student's PSNR against the teacher on that region in both settings
    (``vs_teacher``: both given the variant, ``vs_teacher_whole``: both given the whole frame).
    """
    import torch
    import torch.nn.functional as F

    fusers = {"LD-Lite": teacher, student.name: student}
    rows = []
    for i in range(min(count, len(pairs))):
        ir, vis = pairs.planes(i)
        h, w = ir.shape
        p = min(h, w) // 32 * 8
        other = torch.from_numpy(np.stack(pairs.planes((i + len(pairs) // 2) % len(pairs))))[None]
        canvas = F.interpolate(other, size=(h + 2 * p, w + 2 * p), mode="bilinear", align_corners=False)[0].clamp(0, 1).numpy()
        canvas[:, p : p + h, p : p + w] = ir, vis
        y0, x0 = h // 32 * 8, w // 32 * 8
        crop = (slice(y0, y0 + h // 2), slice(x0, x0 + w // 2))
        variants = {
            "other border": (canvas, (slice(p, p + h), slice(p, p + w)), (slice(None), slice(None))),
            "mirror border": (np.stack([np.pad(x, p, mode="symmetric") for x in (ir, vis)]), (slice(p, p + h), slice(p, p + w)), (slice(None), slice(None))),
            "centre crop": (np.stack([ir[crop], vis[crop]]), (slice(None), slice(None)), crop),
            **{f"shift {n}": (np.stack([ir[n:, n:], vis[n:, n:]]), (slice(None), slice(None)), (slice(n, None), slice(n, None))) for n in (4, 8)},
            "input gain/offset": (np.stack([0.6 * ir + 0.2, 0.5 * vis + 0.25]).astype(np.float32), (slice(None), slice(None)), (slice(None), slice(None))),
        }
        fuse = lambda fuser, planes: np.rint(fuser.fuse_planes(np.ascontiguousarray(planes[0]), np.ascontiguousarray(planes[1])) * 255.0)  # noqa: E731
        wholes = {label: fuse(fuser, (ir, vis)) for label, fuser in fusers.items()}
        for variant, (planes, region, reference) in variants.items():
            outs = {label: fuse(fuser, planes)[region] for label, fuser in fusers.items()}
            for label, out in outs.items():
                row = {"set": name, "pair": pairs.pairs[i].name, "model": label, "variant": variant, **_compare(out, wholes[label][reference])}
                if label != "LD-Lite":  # does the student follow the teacher's change?
                    row["vs_teacher"] = _compare(out, outs["LD-Lite"])["psnr"]
                    row["vs_teacher_whole"] = _compare(wholes[label][reference], wholes["LD-Lite"][reference])["psnr"]
                rows.append(row)
    return rows


def grid_phase(teacher, student, name: str, pairs, count: int, shifts: tuple[int, ...] = (0, 2, 4, 6)) -> list[dict]:  # shifts include 0 and 4
    """How much of the teacher's output depends on where its stride-8 sampling grid falls (aliasing).

    For each of the first ``count`` of ``pairs`` (set ``name``), the teacher fuses the frame less its first (dy, dx) rows and
    columns for every dy, dx in ``shifts``; ``T_avg`` is the mean of these outputs, aligned, over the region
    they share. Reported (8-bit outputs, that region): PSNR of the teacher's own output against ``T_avg``
    (what a student that follows the content but not the grid phase loses at best), the share of that
    difference's energy below Gaussian sigma 2, the student's PSNR against the teacher and against
    ``T_avg`` (as is, after an affine fit, with ``T_avg``'s low-pass put in at each sigma), and the
    teacher's output for the input shifted by (4, 4) against its own.
    Sixteen of the 64 phases of the grid: on TNO 01 and RoadScene FLIR_00211 the average over all 64 put the
    teacher 0.4 and 0.9 dB further from its average.
    """
    from fidelity_diagnosis import SIGMAS, affine_fit, frequency_split

    from edgefusion.metrics import psnr_of_mse

    m = max(shifts)
    rows = []
    for i in range(min(count, len(pairs))):
        ir, vis = pairs.planes(i)
        h, w = ir.shape
        outs = {}
        for dy in shifts:
            for dx in shifts:
                out = np.rint(teacher.fuse_planes(np.ascontiguousarray(ir[dy:, dx:]), np.ascontiguousarray(vis[dy:, dx:])) * 255.0)
                outs[dy, dx] = out[m - dy : h - dy, m - dx : w - dx]
        t, avg = outs[0, 0], np.mean(list(outs.values()), axis=0)
        s = np.rint(student.fuse_planes(ir, vis) * 255.0)[m:, m:]
        mse = lambda a, b: float(np.mean((a - b) ** 2))  # noqa: E731
        a, b = affine_fit(s, avg)
        alias, split = frequency_split(t, avg, (2.0,)), frequency_split(s, avg)
        rows.append({
            "set": name, "pair": pairs.pairs[i].name, "shifts": len(outs),
            "teacher_vs_avg": psnr_of_mse(mse(t, avg)), "alias_share_low_2": alias["2"]["mse_low"] / alias["mse"], "teacher_vs_shift44": psnr_of_mse(mse(t, outs[4, 4])),
            "student_vs_teacher": psnr_of_mse(mse(s, t)), "student_vs_avg": psnr_of_mse(mse(s, avg)), "student_vs_avg_affine": psnr_of_mse(mse(a * s + b, avg)),
            **{f"student_vs_avg_low_fixed_{g:g}": split[f"{g:g}"]["psnr_low_fixed"] for g in SIGMAS},
        })
    return rows


def diagnose(teacher_path: Path, student_paths: list[Path], data: Path, sets: list[str], limit: int, context: int, phases: int, out: Path) -> dict:
    """``--diagnose``: per set and candidate (each student, ``max(ir, vis)``) the figures of
    :mod:`fidelity_diagnosis`, the context-dependence rows, ``diagnose.json``, ``diagnose-bars.png`` and
    ``diagnose-maps.png`` (the first student's worst and median frame of each set)."""
    import os

    import fidelity_diagnosis as fd

    from edgefusion.io.atomic import write_text

    models = Models.load(teacher_path, student_paths)
    teacher, student = models.teacher, models.students[0]
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"load_average": os.getloadavg(), "sets": {}, "context": [], "grid_phase": []}
    maps = []
    for name in sets:
        per: dict[str, list[dict]] = {}
        kept = []
        pairs = pair_set(data / name)
        for pair, ir, vis, t8, outs in frames(models, pairs, limit):
            ir8, vis8 = ir * 255.0, vis * 255.0
            candidates = {fuser.name: s8 for fuser, s8 in zip(models.students, outs)} | {"max(ir, vis)": np.rint(np.maximum(ir8, vis8))}
            for label, s8 in candidates.items():
                per.setdefault(label, []).append({"pair": pair, **fd.diagnose_frame(s8, t8, ir8, vis8)})
            kept.append({"ir": ir, "vis": vis, "t": t8.astype(np.uint8), "s": outs[0].astype(np.uint8), "psnr": per[student.name][-1]["psnr"], "pair": pair})
        result["sets"][name] = {label: {"summary": fd.summarize(rows), "frames": rows} for label, rows in per.items()}
        kept.sort(key=lambda row: row["psnr"])
        for row, which in ((kept[0], "worst"), (kept[len(kept) // 2], "median"))[: min(2, len(kept))]:
            shifted = row["t"].astype(np.float64)  # first 4 rows and columns: no shifted output there
            shifted[4:, 4:] = np.rint(teacher.fuse_planes(np.ascontiguousarray(row["ir"][4:, 4:]), np.ascontiguousarray(row["vis"][4:, 4:])) * 255.0)
            maps.append({**row, "ir": row["ir"] * 255.0, "vis": row["vis"] * 255.0, "shifted": shifted, "title": f"{name} {row['pair']} ({which}, {row['psnr']:.1f} dB)"})
        if context:
            result["context"] += context_dependence(teacher, student, name, pairs, context)
        if phases:
            result["grid_phase"] += grid_phase(teacher, student, name, pairs, phases)
    write_text(out / "diagnose.json", json.dumps(result, indent=1))
    fd.plot_bars({name: {label: c["summary"] for label, c in candidates.items()} for name, candidates in result["sets"].items()}, out / "diagnose-bars.png")
    fd.plot_maps(maps, out / "diagnose-maps.png")
    return result


def print_diagnosis(result: dict) -> None:
    """The diagnosis tables (Markdown) on stdout."""
    from fidelity_diagnosis import SIGMAS

    print("| set | candidate | PSNR | frame mean matched | + affine | + monotone curve | " + " | ".join(f"low-pass share / PSNR if fixed, sigma {s:g}" for s in SIGMAS) + " | detail gain k / corr / PSNR if fixed |")
    print("| --- | --- | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in SIGMAS) + " | ---: |")
    for name, candidates in result["sets"].items():
        for label, c in candidates.items():
            s = c["summary"]
            bands = " | ".join(f"{100 * s[f'share_low_{g:g}']:.0f} % / {s[f'psnr_low_fixed_{g:g}']:.2f}" for g in SIGMAS)
            print(f"| {name} | {label} | {s['psnr']:.2f} | {s['psnr_mean_matched']:.2f} | {s['psnr_affine']:.2f} | {s['psnr_curve']:.2f} | {bands} | {s['detail_gain']:.2f} / {s['detail_corr']:.2f} / {s['detail_psnr_gain_fixed']:.2f} |")
    print("\n| set | candidate | frame mean brightness: teacher (spread) / candidate spread / correlation |")
    print("| --- | --- | ---: |")
    for name, candidates in result["sets"].items():
        for label, c in candidates.items():
            s = c["summary"]
            print(f"| {name} | {label} | {s['teacher_mean']:.1f} ({s['teacher_mean_spread']:.1f}) / {s['student_mean_spread']:.1f} / {s['mean_corr']:.2f} |")
    print("\n| set | candidate | contrast bin (gray levels): pixel share / error share / RMSE |")
    print("| --- | --- | --- |")
    for name, candidates in result["sets"].items():
        for label, c in candidates.items():
            cells = ", ".join(f"[{b['lo']:g}, {b['hi'] if b['hi'] is not None else 'inf'}): {100 * b['pixel_share']:.0f} % / {100 * b['error_share']:.0f} % / {b['rmse']:.1f}" for b in c["summary"]["contrast_bins"])
            print(f"| {name} | {label} | {cells} |")
    if result["context"]:
        print("\n| set | pairs | model | variant | PSNR vs whole frame | mean abs diff | PSNR after affine fit | student vs LD-Lite: variant / whole frame |")
        print("| --- | ---: | --- | --- | ---: | ---: | ---: | ---: |")
        groups: dict[tuple, list[dict]] = {}
        for row in result["context"]:
            groups.setdefault((row["set"], row["model"], row["variant"]), []).append(row)
        for (name, model, variant), rows in sorted(groups.items(), key=lambda item: (list(result["sets"]).index(item[0][0]), item[0][2], item[0][1] != "LD-Lite")):
            mean = lambda key: statistics.fmean(row[key] for row in rows)  # noqa: E731
            follow = f"{mean('vs_teacher'):.2f} / {mean('vs_teacher_whole'):.2f}" if "vs_teacher" in rows[0] else ""
            print(f"| {name} | {len(rows)} | {model} | {variant} | {mean('psnr'):.2f} | {mean('mean_abs'):.2f} | {mean('psnr_affine'):.2f} | {follow} |")
    if result["grid_phase"]:
        keys = {"teacher_vs_avg": "LD-Lite vs its shift average", "alias_share_low_2": "that difference: share below sigma 2", "teacher_vs_shift44": "LD-Lite vs itself shifted (4, 4)",
                "student_vs_teacher": "student vs LD-Lite", "student_vs_avg": "student vs shift average", "student_vs_avg_affine": "... + affine",
                **{f"student_vs_avg_low_fixed_{g:g}": f"... average's low-pass, sigma {g:g}" for g in SIGMAS}}
        print("\n| set | pairs | grid shifts | " + " | ".join(keys.values()) + " |")
        print("| --- | ---: | ---: | " + " | ".join("---:" for _ in keys) + " |")
        for name in result["sets"]:
            rows = [row for row in result["grid_phase"] if row["set"] == name]
            if rows:
                cells = " | ".join(f"{statistics.fmean(row[key] for row in rows):.2f}" for key in keys)
                print(f"| {name} | {len(rows)} | {rows[0]['shifts']} | {cells} |")


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
    parser.add_argument("--diagnose", type=Path, metavar="DIR", help="where the error is: diagnose.json + diagnose-*.png in DIR")
    parser.add_argument("--baseline", type=Path, action="append", default=[], help="with --diagnose: another student to diagnose (e.g. student-s.pt)")
    parser.add_argument("--context", type=int, default=2, help="with --diagnose: pairs per set for the context-dependence test (0: none)")
    parser.add_argument("--grid-phase", type=int, default=2, help="with --diagnose: pairs per set for the grid-phase (aliasing) test, 16 teacher runs each (0: none)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    keep_freed_memory()  # as the edgefusion CLI does (edgefusion.allocator)
    import torch

    torch.set_num_threads(args.threads)
    if args.diagnose:
        print_diagnosis(diagnose(args.teacher, [args.student, *args.baseline], args.data, args.sets, args.limit, args.context, args.grid_phase, args.diagnose))
        return
    models = Models.load(args.teacher, [args.student])
    result = {"quality": [quality(models, args.data / name, args.limit) for name in args.sets]}
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
