"""Teacher training throughput (crops/s) and peak memory (RSS) on this machine.

Cases (each in its own subprocess so peak RSS is per case):

* ``smoke``: ``train/teacher-smoke.toml`` as shipped (tiny CLIP, 64-px crops, batch 2);
* ``unet-b4``: ``train/teacher-unet.toml`` (edgefusion's U-Net variant), CLIP
  ViT-B-32 with RANDOM weights, 224-px crops, batch 4, CLIP-tower regularizer;
* ``paper-b1``, ``paper-b16`` (any ``paper-bN``): ``train/teacher.toml`` exactly
  (the paper's network and objective, 32 patch crops per image) at batch 1 and
  at the recipe's batch 16, CLIP ViT-B-32 and VGG19 with RANDOM weights (same cost
  as the real ones; VGG19 from a temporary random state dict). Only crops that
  pass the entropy filter go through CLIP, so the cost depends on the data:
  ``patch_kept`` is reported; a ``-worst`` suffix (``paper-b1-worst``) sets
  ``entropy_threshold = 0`` so every crop passes: the memory to plan for.

Throughput counts optimizer steps after ``--warmup`` untimed ones, through the
real training loop (data, loss, backward, Adam). On a CPU shared with other
busy processes, 2 intra-op threads can be an order of magnitude slower than 1
(threads wait on each other), so compare ``--threads`` settings on the same
machine state. Usage::

    python benchmarks/bench_train.py [--data DIR] [--steps N] [--warmup N] [--threads N] [--cases smoke,unet-b4,paper-b1,paper-b16]

On a CUDA host add ``--device cuda`` (peak GPU memory is reported too).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/ivif/train"


def _random_vgg19(folder: str) -> str:
    """A torchvision-format VGG19 state dict with random weights (timing only)."""
    import torch
    from torchvision.models.vgg import cfgs, make_layers

    path = f"{folder}/vgg19-random.pth"
    torch.save({f"features.{k}": v for k, v in make_layers(cfgs["E"]).state_dict().items()}, path)
    return path


def _recipe(case: str, folder: str):
    from edgefusion.resources import resource_dir
    from edgefusion.training import teacher
    from edgefusion.training.recipe import load_recipe

    name, _, variant = case.partition("-")
    if case == "smoke":
        return load_recipe(resource_dir("train") / "teacher-smoke.toml", teacher.SECTIONS)
    if case == "unet-b4":
        recipe = load_recipe(resource_dir("train") / "teacher-unet.toml", teacher.SECTIONS)
        recipe["objective"].regularizer = "clip"
        recipe["train"].batch_size = 4
    elif name == "paper" and re.fullmatch(r"b\d+(-worst)?", variant):
        recipe = load_recipe(resource_dir("train") / "teacher.toml", teacher.SECTIONS)
        recipe["objective"].vgg_weights = _random_vgg19(folder)
        recipe["train"].batch_size = int(variant.split("-")[0][1:])
        if variant.endswith("-worst"):
            recipe["objective"].entropy_threshold = 0.0
    else:
        raise SystemExit(f"unknown case {case}")
    recipe["clip"].weights = "random"
    recipe["train"].num_workers = 0
    return recipe


def run_case(case: str, data: Path, steps: int, warmup: int, threads: int, device: str) -> dict:
    import torch

    from edgefusion.training import teacher
    from edgefusion.training.ddp import Dist
    from edgefusion.training.loop import run_stage

    torch.set_num_threads(threads)
    stamps: dict[int, float] = {}
    kept: list[float] = []

    def hook(step: int, scalars: dict | None) -> None:
        if device == "cuda":
            torch.cuda.synchronize()
        stamps[step] = time.perf_counter()
        if step > warmup and scalars and "patch_kept" in scalars:
            kept.append(scalars["patch_kept"])

    with tempfile.TemporaryDirectory() as folder:
        recipe = _recipe(case, folder)
        recipe["train"].steps = warmup + steps
        recipe["train"].warmup_steps = 0
        recipe["train"].checkpoint_every = warmup + steps
        recipe["train"].log_every = 1
        stage = teacher.build_teacher_stage(recipe, data, teacher.check_weights(recipe))
        run_stage(stage, recipe, f"{folder}/run", place=Dist(device=torch.device(device)), hooks=(hook,), progress=False)
    seconds = stamps[warmup + steps] - stamps[warmup]
    batch = recipe["train"].batch_size
    return {
        "case": case,
        "device": device,
        "clip": f"{recipe['clip'].model} ({recipe['clip'].weights})",
        "crop": recipe["data"].crop,
        "batch": batch,
        "patch_crops": recipe["objective"].patch_crops,
        "threads": threads,
        "timed_steps": steps,
        "s_per_step": round(seconds / steps, 3),
        "crops_per_s": round(batch * steps / seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_cuda_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "cuda" else None,
        "patch_kept": round(sum(kept) / len(kept), 4) if kept else None,
        "teacher_params": sum(p.numel() for p in stage.model.parameters()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (image decoding, allocator)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is robust on a shared CPU)")
    parser.add_argument("--cases", default="smoke,unet-b4,paper-b1,paper-b16")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.data, args.steps, args.warmup, args.threads, args.device)))
        return 0
    results = []
    for case in args.cases.split(","):
        cmd = [sys.executable, __file__, "--case", case, "--data", str(args.data), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--threads", str(args.threads), "--device", args.device]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            print(json.dumps({"case": case, "failed": out.returncode, "stderr": out.stderr.strip().splitlines()[-1:]}), flush=True)
            continue
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    print(f"\n{'case':16} {'clip':28} {'crop':>4} {'batch':>5} {'s/step':>8} {'crops/s':>8} {'peak RSS MiB':>13} {'CUDA MiB':>9} {'kept':>6}")
    for r in results:
        print(f"{r['case']:16} {r['clip']:28} {r['crop']:>4} {r['batch']:>5} {r['s_per_step']:>8} {r['crops_per_s']:>8} {r['peak_rss_mib']:>13} "
              f"{r['peak_cuda_mib'] or '-':>9} {r['patch_kept'] if r['patch_kept'] is not None else '-':>6}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
