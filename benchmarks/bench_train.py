"""Teacher training throughput (crops/s) and peak memory (RSS) on this machine.

Cases (each in its own subprocess so peak RSS is per case):

* ``smoke``: ``train/teacher-smoke.toml`` as shipped (tiny CLIP, 64-px crops, batch 2);
* ``vit-b-32``: the paper-shaped run: ``train/teacher.toml`` model and objective,
  CLIP ViT-B-32 with RANDOM weights, 224-px crops, batch 4, CLIP-tower regularizer
  (VGG19 weights are not needed for timing).

Throughput counts optimizer steps after ``--warmup`` untimed ones, through the
real training loop (data, loss, backward, Adam). On a CPU shared with other
busy processes, 2 intra-op threads can be an order of magnitude slower than 1
(threads wait on each other), so compare ``--threads`` settings on the same
machine state. Usage::

    python benchmarks/bench_train.py [--data DIR] [--steps N] [--warmup N] [--threads N] [--cases smoke,vit-b-32]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/ivif/train"


def run_case(case: str, data: Path, steps: int, warmup: int, threads: int) -> dict:
    import torch

    from edgefusion.resources import resource_dir
    from edgefusion.training import teacher
    from edgefusion.training.loop import run_stage
    from edgefusion.training.recipe import load_recipe

    torch.set_num_threads(threads)
    if case == "smoke":
        recipe = load_recipe(resource_dir("train") / "teacher-smoke.toml", teacher.SECTIONS)
    elif case == "vit-b-32":
        recipe = load_recipe(resource_dir("train") / "teacher.toml", teacher.SECTIONS)
        recipe["clip"].weights = "random"
        recipe["objective"].regularizer = "clip"
        recipe["train"].batch_size = 4
        recipe["train"].num_workers = 0
    else:
        raise SystemExit(f"unknown case {case}")
    recipe["train"].steps = warmup + steps
    recipe["train"].warmup_steps = 0
    recipe["train"].checkpoint_every = warmup + steps
    recipe["train"].log_every = 1

    stage = teacher.build_teacher_stage(recipe, data, teacher.check_weights(recipe))
    stamps: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as run_dir:
        run_stage(stage, recipe, run_dir, hooks=(lambda step, _s: stamps.__setitem__(step, time.perf_counter()),), progress=False)
    seconds = stamps[warmup + steps] - stamps[warmup]
    batch = recipe["train"].batch_size
    return {
        "case": case,
        "clip": f"{recipe['clip'].model} ({recipe['clip'].weights})",
        "crop": recipe["data"].crop,
        "batch": batch,
        "patch_crops": recipe["objective"].patch_crops,
        "threads": threads,
        "timed_steps": steps,
        "s_per_step": round(seconds / steps, 3),
        "crops_per_s": round(batch * steps / seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "teacher_params": sum(p.numel() for p in stage.model.parameters()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (image decoding, allocator)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is robust on a shared CPU)")
    parser.add_argument("--cases", default="smoke,vit-b-32")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.data, args.steps, args.warmup, args.threads)))
        return 0
    results = []
    for case in args.cases.split(","):
        cmd = [sys.executable, __file__, "--case", case, "--data", str(args.data), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    print(f"\n{'case':10} {'clip':28} {'crop':>4} {'batch':>5} {'s/step':>8} {'crops/s':>8} {'peak RSS MiB':>13}")
    for r in results:
        print(f"{r['case']:10} {r['clip']:28} {r['crop']:>4} {r['batch']:>5} {r['s_per_step']:>8} {r['crops_per_s']:>8} {r['peak_rss_mib']:>13}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
