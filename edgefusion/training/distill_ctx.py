"""Distill the v2 student (``student-ctx``) from a slow whole-frame teacher through the target cache.

Recipe (``train/student-ld.toml``): ``[model]`` (``architecture = "student-ctx"``,
size, head), ``[distill]`` (loss weights, crop, frame augmentations, cache
folder) and ``[train]``. The teacher's outputs for every WHOLE training frame
under each listed frame augmentation are computed once into the
:mod:`~edgefusion.training.target_cache` (before training; shared by runs and
``--resume``). A training item is a random ``crop`` square of one cached whole
frame (planes and teacher output, same window) together with the
:func:`~edgefusion.runtime.frame_stats.frame_stats` of that whole augmented
frame, so the student learns what the teacher's whole-frame normalizations
did, from the same context a tile gets at run time. With ``gain_offset =
[gmin, gmax, omax]`` (default ``[]``: off) each crop's planes get a random
per-plane gain/offset and its stats are those of the so transformed whole frame,
the target unchanged (only for a teacher declaring that invariance;
:mod:`~edgefusion.training.gain_offset`). Loss: ``l1 * |S - T| +
ssim * (1 - SSIM(S, T)) + grad * | |sobel S| - |sobel T| |`` (:class:`edgefusion.training.distill.DistillLoss`).
With ``init`` (``--init MODEL``, fine-tuning; ``train/student-ld-finetune.toml``) the
student starts from that model's weights instead of random ones (same rules,
resume check and provenance as :func:`edgefusion.training.distill.distill`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from edgefusion.errors import UserError
from edgefusion.io.digest import sha256_file
from edgefusion.io.pairs import find_pairs
from edgefusion.models import build_model
from edgefusion.models.student_ctx import CTX_SIZES, HEADS, StudentCtx
from edgefusion.runtime.frame_stats import frame_stats
from edgefusion.training import ddp
from edgefusion.training.dataset import PairCrops
from edgefusion.training.distill import DistillConfig, DistillLoss, load_init, load_teacher, run_arguments, student_metadata
from edgefusion.training.gain_offset import INVARIANT_ATTRIBUTE, GainOffset, apply, transform_stats
from edgefusion.training.loop import Stage, refuse_existing_run, run_stage
from edgefusion.training.recipe import DataConfig, TrainConfig, bounded, find_recipe, load_recipe
from edgefusion.training.state import seed_all
from edgefusion.training.target_cache import FrameAug, TargetCache, cache_root

ARCHITECTURE = "student-ctx"
FINAL_NAME = "student"


@dataclass
class CtxModelConfig:
    """``[model]``: which v2 student to train."""

    architecture: str = bounded(ARCHITECTURE, choices=(ARCHITECTURE,))
    size: str = bounded("s", choices=tuple(CTX_SIZES))
    head: str = bounded("structured", choices=HEADS)
    dilated: int = bounded(0, min=0, max=3)


@dataclass
class CtxDistillConfig:
    """``[distill]``: loss weights, crops, frame augmentations and the cache folder."""

    l1: float = bounded(1.0, min=0.0)
    ssim: float = bounded(0.5, min=0.0)
    grad: float = bounded(1.0, min=0.0)
    crop: int = bounded(128, min=8)  # square crop side (multiple of 8)
    hflip: float = bounded(0.0, min=0.0, max=1.0)  # flips crop AND cached target (approximate for a teacher that is not flip-equivariant)
    augmentations: list[str] = bounded(["s1-g1-1"])  # whole-frame augmentations cached once (target_cache.FrameAug)
    cache_dir: str = ""  # target cache root; empty: $EDGEFUSION_CACHE or ~/.cache/edgefusion/teacher-targets
    frames: int = bounded(0, min=0)  # use only the first N pairs (sorted by name); 0: all
    gain_offset: list[float] = bounded([])  # [gmin, gmax, omax]: per-crop input gain/offset (gain_offset.py); []: off


SECTIONS: dict[str, type] = {"model": CtxModelConfig, "distill": CtxDistillConfig, "train": TrainConfig}


def is_ctx_recipe(spec: str | os.PathLike) -> bool:
    """True when the recipe's ``[model]`` asks for ``architecture = "student-ctx"``."""
    import tomllib

    try:
        with open(find_recipe(spec), "rb") as handle:
            return tomllib.load(handle).get("model", {}).get("architecture") == ARCHITECTURE
    except (OSError, tomllib.TOMLDecodeError):
        return False  # the regular loader reports the problem


def load_ctx_recipe(spec: str | os.PathLike) -> dict[str, Any]:
    recipe = load_recipe(spec, SECTIONS)
    if recipe["distill"].crop % StudentCtx.stride:
        raise UserError(f"distill.crop must be a multiple of {StudentCtx.stride}, got {recipe['distill'].crop}")
    if not recipe["distill"].augmentations:
        raise UserError("distill.augmentations must list at least one frame augmentation (e.g. \"s1-g1-1\")")
    for spec_text in recipe["distill"].augmentations:
        FrameAug.parse(spec_text)
    GainOffset.parse(recipe["distill"].gain_offset)
    return recipe


class CachedCrops(Dataset):
    """Items ``{"ir", "vis", "teacher"}`` (1, crop, crop) and ``"stats"`` (6,) of cached whole frames.

    ``gain_offset``: per item, the ir and vis planes get their own random gain/offset
    and the stats are those of the so transformed whole frame; the teacher plane is kept.
    """

    def __init__(self, cache: TargetCache, augs: list[FrameAug], crop: int, hflip: float = 0.0, gain_offset: GainOffset | None = None):
        self.cache, self.augs, self.crop, self.hflip, self.gain_offset = cache, augs, crop, hflip, gain_offset
        self._frames: dict[tuple[int, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.cache.pairs)

    def frame(self, index: int, aug: FrameAug) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(planes (3, H, W) float16: ir, vis, teacher; stats (6,) float32; ranges (2, 2): [min, max] of ir, vis) of one augmented whole frame."""
        key = (index, aug.key)
        if key not in self._frames:
            ir, vis = self.cache.planes(index, aug)
            stack = np.stack([ir, vis, self.cache.target(index, aug)]).astype(np.float16)
            ranges = np.array([[ir.min(), ir.max()], [vis.min(), vis.max()]], dtype=np.float64)
            self._frames[key] = (stack, frame_stats(ir, vis), ranges)
        return self._frames[key]

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key
        gen = np.random.default_rng(int(seed))
        stack, stats, ranges = self.frame(index, self.augs[int(gen.integers(len(self.augs)))])
        _, h, w = stack.shape
        size_h, size_w = min(self.crop, h - h % 8), min(self.crop, w - w % 8)
        if size_h == 0 or size_w == 0:
            raise UserError(f"training frame {self.cache.pairs.pairs[index].name} is smaller than 8 pixels after augmentation")
        y, x = int(gen.integers(h - size_h + 1)), int(gen.integers(w - size_w + 1))
        crop = torch.from_numpy(stack[:, y : y + size_h, x : x + size_w].astype(np.float32))
        if size_h != self.crop or size_w != self.crop:  # small frame: pad by edge replication to the batch shape
            crop = torch.nn.functional.pad(crop[None], (0, self.crop - size_w, 0, self.crop - size_h), mode="replicate")[0]
        if gen.random() < self.hflip:
            crop = crop.flip(-1)
        if self.gain_offset is not None:  # drawn last: crops and flips are those of the run without it
            ab = [self.gain_offset.draw(gen, *ranges[p]) for p in (0, 1)]
            crop[0:2] = torch.stack([apply(crop[p], *ab[p]) for p in (0, 1)])
            stats = transform_stats(stats, *ab)
        return {"ir": crop[0:1], "vis": crop[1:2], "teacher": crop[2:3], "stats": torch.from_numpy(stats)}


def distill_ctx(
    teacher_path: str | os.PathLike,
    data_dir: str | os.PathLike,
    recipe_spec: str | os.PathLike,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    place: ddp.Dist | None = None,
    progress: bool = True,
    hooks: tuple = (),
    init: str | None = None,
) -> Path:
    """Distill a ``student-ctx`` (see module doc), from random weights or those of ``init``
    (:func:`~edgefusion.training.distill.load_init`); returns ``out/student.pt``."""
    place = place or ddp.Dist()
    recipe = load_ctx_recipe(recipe_spec)
    out = Path(out)
    if not resume:
        refuse_existing_run(out, FINAL_NAME, place)
    teacher, teacher_payload = load_teacher(teacher_path, place.device)
    model_config = {"size": recipe["model"].size, "head": recipe["model"].head, "dilated": recipe["model"].dilated}
    start, init_info = load_init(init, ARCHITECTURE, model_config, recipe_spec) if init is not None else (None, None)
    cfg: CtxDistillConfig = recipe["distill"]
    gain_offset = GainOffset.parse(cfg.gain_offset)
    if gain_offset is not None and not getattr(teacher, INVARIANT_ATTRIBUTE, False):
        raise UserError(f"distill.gain_offset keeps the teacher target unchanged, which needs a gain/offset-invariant teacher (e.g. ld-lite); {teacher_path} is a {teacher_payload.get('architecture')!r}")
    found = find_pairs(data_dir)
    pairs = PairCrops(data_dir, DataConfig(crop=cfg.crop, cache=True), found[: cfg.frames] if cfg.frames else found, progress=progress and place.main)
    digest = sha256_file(teacher_path)
    cache = TargetCache(cache_root(cfg.cache_dir), pairs, teacher, digest, place.device)
    recipe["distill"] = dataclasses.replace(cfg, cache_dir="")  # where the cache lives is no property of the model (no paths in checkpoints)
    augs = [FrameAug.parse(a) for a in cfg.augmentations]
    if place.main:
        cache.fill(augs, progress=progress)
    ddp.barrier(place)
    loss = DistillLoss(DistillConfig(l1=cfg.l1, ssim=cfg.ssim, grad=cfg.grad, pixel=0.0), teacher)
    metadata = student_metadata(teacher_payload, digest, data_dir, len(pairs), recipe, init_info)
    seed_all(recipe["train"].seed)
    model = build_model(ARCHITECTURE, model_config) if start is None else start
    stage = Stage(FINAL_NAME, ARCHITECTURE, model_config, model, loss, CachedCrops(cache, augs, cfg.crop, cfg.hflip, gain_offset), metadata, run_arguments(init_info))
    return run_stage(stage, recipe, out, resume=resume, place=place, hooks=hooks, progress=progress)
