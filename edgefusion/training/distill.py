"""Knowledge distillation: train a student (:mod:`edgefusion.models.student`) from a teacher checkpoint.

Runs on the shared engine (:func:`edgefusion.training.loop.run_stage`) in two
phases, each a normal resumable stage:

1. ``RUN_DIR/crops/``: ``[train]`` steps on augmented square crops
   (``[data]``) drawn at several zooms (``[distill] zooms``: 0.5 shows twice
   the field of view downsampled, 2 shows half of it upsampled, like a
   higher-resolution camera) and per-plane gammas (``[distill] gamma``), so
   the low-resolution analysis learns resolution- and exposure-robust maps;
2. ``RUN_DIR/``: ``[finetune]`` steps on whole training frames at native
   resolution (one frame per process and step, cropped to a multiple of 8),
   starting from phase 1. Its final checkpoint ``RUN_DIR/student.pt`` is the
   result.

Loss (weights in ``[distill]``): ``l1 * |S - T| + ssim * (1 - SSIM(S, T)) +
grad * |sobel(S) - sobel(T)| + pixel * pixel_objective(S, ir, vis)`` where
``S`` is the student output, ``T`` the teacher's, the last term being the
teacher's own self-supervised pixel objective. ``psnr`` (student vs teacher,
dB) is logged as a metric. The teacher runs on every crop itself: its output
depends on whole-input statistics (instance norms, style codes), so a crop of
its whole-frame output is not what it gives for that crop. For phase 2, with
``teacher_cache = true`` the teacher fuses every whole training frame once
(``RUN_DIR/teacher-cache/``, :mod:`edgefusion.training.target_cache`: one
file per frame, written as it is computed, so ``--resume`` after an
interrupted pass reuses the frames already done); otherwise on every step.

With ``init`` (``--init MODEL``) phase 1 starts from that student's weights
instead of random ones (:func:`load_init`: a shipped name or a checkpoint whose
architecture and config are the recipe's ``[model]``); its SHA-256 is one of the
run's arguments (:func:`run_arguments`, compared on ``--resume``) and its
provenance is carried into every checkpoint (:func:`student_metadata`).

Logs: phase 1 writes ``RUN_DIR/crops/log.csv``, phase 2 ``RUN_DIR/log.csv``
(same columns; ``step`` restarts at 1 in phase 2). Both paths are printed
when the run starts.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from edgefusion.errors import UserError
from edgefusion.models import STUDENT_ARCHITECTURES
from edgefusion.io.digest import sha256_file
from edgefusion.models.checkpoint import load_model, model_from_payload, read_checkpoint
from edgefusion.models.provenance import inherited, init_summary, teacher_summary
from edgefusion.models.shipped import SHIPPED, canonical_name, resolve_model_spec
from edgefusion.models.student import SIZES, Student
from edgefusion.training import ddp
from edgefusion.training.dataset import PairCrops, augment_crop
from edgefusion.training.loop import Stage, refuse_changed_arguments, refuse_existing_run, run_stage
from edgefusion.training.recipe import DataConfig, TrainConfig, bounded, load_recipe, recipe_to_dict
from edgefusion.training.state import seed_all
from edgefusion.training.target_cache import FrameAug, TargetCache
from edgefusion.training import pixel

CROPS_DIR = "crops"
CACHE_DIR = "teacher-cache"
FINAL_NAME = "student"
#: Architectures accepted as distillation teachers (``ld-lite``: imported with ``edgefusion import ld-lite``).
TEACHER_ARCHITECTURES = ("teacher", "ld-lite")
#: Phase 2 targets: the teacher on the un-augmented whole frame.
WHOLE_FRAME = FrameAug()


@dataclass
class StudentModelConfig:
    """The student to train (``[model]``)."""

    size: str = bounded("s", choices=tuple(SIZES))


@dataclass
class DistillConfig:
    """Distillation loss weights and data handling (``[distill]``)."""

    l1: float = bounded(1.0, min=0.0)
    ssim: float = bounded(0.5, min=0.0)
    grad: float = bounded(1.0, min=0.0)
    pixel: float = bounded(0.1, min=0.0)
    zooms: list[float] = bounded([0.5, 1.0, 2.0], min=0.125, max=4.0)
    gamma: list[float] = bounded([1.0, 1.0], min=0.1, max=10.0)  # [low, high]: per-plane gamma of phase-1 crops, log-uniform
    teacher_cache: bool = True  # whole-frame teacher outputs computed once for phase 2


SECTIONS: dict[str, type] = {
    "model": StudentModelConfig,
    "distill": DistillConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "finetune": TrainConfig,
}


def load_student_recipe(spec: str | os.PathLike) -> dict[str, Any]:
    """``{section: dataclass}`` of a student recipe (``train/student.toml`` layout)."""
    recipe = load_recipe(spec, SECTIONS)
    if not recipe["distill"].zooms:
        raise UserError("distill.zooms must list at least one zoom factor")
    gamma = recipe["distill"].gamma
    if len(gamma) != 2 or gamma[0] > gamma[1]:
        raise UserError(f"distill.gamma must be [low, high] with low <= high, got {gamma}")
    if recipe["data"].crop % Student.stride:
        raise UserError(f"data.crop must be a multiple of the student stride {Student.stride}, got {recipe['data'].crop}")
    return recipe


def load_teacher(path: str | os.PathLike, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """The frozen teacher of a checkpoint; a one-line UserError when ``path`` holds no teacher."""
    payload = read_checkpoint(path)
    if payload.get("architecture") not in TEACHER_ARCHITECTURES:
        raise UserError(f"{path} is not a teacher checkpoint (architecture {payload.get('architecture')!r}); pass the teacher.pt written by 'edgefusion train teacher' or 'edgefusion import ld-lite'")
    teacher = model_from_payload(payload, str(path)).to(device)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher, payload


def load_init(spec: str, architecture: str, config: dict, recipe_spec: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """The student a run starts from (``--init``): a shipped model name or alias, or a checkpoint file, loaded as every
    command loads a model (:func:`~edgefusion.models.shipped.resolve_model_spec`, :func:`~edgefusion.models.checkpoint.load_model`).

    Returns (model, :func:`~edgefusion.models.provenance.init_summary` of it); a one-line UserError unless it
    is a student of exactly ``architecture`` and ``config`` (the recipe's ``[model]``).
    """
    try:
        path = Path(resolve_model_spec(spec))
        model, payload = load_model(path)
    except UserError as exc:
        raise UserError(f"--init: {exc}") from None
    found = payload["architecture"]
    if found not in STUDENT_ARCHITECTURES:
        raise UserError(f"--init {spec} is not a student (architecture {found!r}); pass a shipped student ({', '.join(SHIPPED)}) or a student.pt written by 'edgefusion train student'")
    if (found, payload["config"]) != (architecture, config):
        raise UserError(f"--init {spec} is a {_model_words(found, payload['config'])} model; the recipe {recipe_spec} builds {_model_words(architecture, config)}: "
                        "pass a recipe whose [model] matches it")
    label = path.name if path == Path(spec) else canonical_name(str(spec))
    return model, init_summary(payload, sha256_file(path), label)


def _model_words(architecture: str, config: dict) -> str:
    """``'student-ctx' (size s+, head structured, dilated 0)``."""
    return f"{architecture!r} ({', '.join(f'{k} {v}' for k, v in config.items())})"


def run_arguments(init: dict[str, Any] | None) -> dict[str, Any]:
    """A student run's arguments beyond its recipe, compared on ``--resume``: the ``--init`` model's SHA-256 (None: random init)."""
    return {"--init": init["sha256"] if init else None}


class TeacherTargets:
    """Whole-frame teacher outputs of every training pair, kept on disk (:mod:`.target_cache`) and in memory.

    Each frame's output is stored as soon as it is computed, keyed by the
    teacher's digest and the frame's files, so an interrupted pass resumes
    where it stopped and a rerun with the same teacher computes nothing.
    """

    def __init__(self, folder: Path, pairs: PairCrops, teacher: nn.Module, teacher_digest: str, place: ddp.Dist, progress: bool = True):
        cache = TargetCache(folder, pairs, teacher, teacher_digest, place.device)
        if place.main:
            cache.fill([WHOLE_FRAME], progress)
        ddp.barrier(place)
        if not all(cache.path(i, WHOLE_FRAME).is_file() for i in range(len(pairs))):
            raise UserError(f"teacher cache {folder} lost entries while the run was reading it")
        self.planes: list[np.ndarray] = [cache.target(i, WHOLE_FRAME) for i in range(len(pairs))]


def _stack(pairs: PairCrops, targets: TeacherTargets | None, index: int) -> torch.Tensor:
    """(C, H, W) planes of pair ``index``: ir, vis and, when cached, the teacher output."""
    planes = list(pairs.planes(index))
    if targets is not None:
        planes.append(targets.planes[index])
    return torch.from_numpy(np.stack(planes))


def _as_batch_item(stack: torch.Tensor) -> dict[str, torch.Tensor]:
    item = {"ir": stack[0:1].contiguous(), "vis": stack[1:2].contiguous()}
    if stack.shape[0] > 2:
        item["teacher"] = stack[2:3].contiguous()
    return item


class ZoomCrops(Dataset):
    """Phase-1 items: augmented ``data.crop`` squares taken at a zoom drawn from ``distill.zooms``.

    Each plane then gets its own gamma, log-uniform in ``gamma`` (the teacher
    labels whatever the student sees, so darker, brighter and lower- or
    higher-contrast inputs than the training set holds are free to add).
    """

    def __init__(self, pairs: PairCrops, zooms: list[float], gamma: tuple[float, float] = (1.0, 1.0)):
        self.pairs, self.zooms, self.gamma = pairs, list(zooms), tuple(gamma)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key
        gen = torch.Generator().manual_seed(int(seed))
        zoom = self.zooms[int(torch.randint(len(self.zooms), (), generator=gen))]
        size = self.pairs.config.crop
        window = max(8, round(size / zoom))
        crop = augment_crop(_stack(self.pairs, None, index), dataclasses.replace(self.pairs.config, crop=window), gen)
        if window != size:
            mode = "area" if window > size else "bilinear"
            crop = F.interpolate(crop[None], size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))[0]
        low, high = (math.log(g) for g in self.gamma)
        gammas = torch.exp(low + (high - low) * torch.rand(crop.shape[0], 1, 1, generator=gen))
        return _as_batch_item(crop.clamp_(0.0, 1.0) ** gammas)


class WholeFrames(Dataset):
    """Phase-2 items: a whole training frame cropped to a multiple of ``multiple``, flipped at random."""

    def __init__(self, pairs: PairCrops, multiple: int, targets: TeacherTargets | None = None):
        self.pairs, self.multiple, self.targets = pairs, multiple, targets

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key
        gen = torch.Generator().manual_seed(int(seed))
        stack = _stack(self.pairs, self.targets, index)
        h, w = (d - d % self.multiple for d in stack.shape[1:])
        if h == 0 or w == 0:
            raise UserError(f"training pair {self.pairs.pairs[index].name} is smaller than {self.multiple} pixels")
        stack = stack[:, :h, :w]
        if float(torch.rand((), generator=gen)) < self.pairs.config.hflip:
            stack = stack.flip(-1)
        return _as_batch_item(stack.contiguous())


class DistillLoss(nn.Module):
    """Student-vs-teacher L1, SSIM and gradient terms plus the self-supervised pixel objective."""

    def __init__(self, weights: DistillConfig, teacher: nn.Module | None):
        super().__init__()
        self.weights = weights
        self.teacher = teacher

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ir, vis = batch["ir"], batch["vis"]
        if "teacher" in batch:
            target = batch["teacher"]
        else:
            with torch.no_grad():
                target = self.teacher(ir, vis).float()
        fused = (model(ir, vis, batch["stats"]) if "stats" in batch else model(ir, vis)).float()  # v2 students take frame stats
        w = self.weights
        terms = {
            "l1": (fused - target).abs().mean(),
            "ssim": 1.0 - pixel.ssim(fused, target).mean(),
            "grad": (pixel.sobel_magnitude(fused) - pixel.sobel_magnitude(target)).abs().mean(),
        }
        terms["total"] = w.l1 * terms["l1"] + w.ssim * terms["ssim"] + w.grad * terms["grad"]
        if w.pixel > 0:
            terms["pixel"] = pixel_objective(fused, ir, vis)
            terms["total"] = terms["total"] + w.pixel * terms["pixel"]
        with torch.no_grad():
            mse = (fused.clamp(0, 1) - target).pow(2).mean().clamp_min(1e-12)
            terms["psnr"] = -10.0 * torch.log10(mse)
        return terms


def pixel_objective(fused: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """The pixel teacher's self-supervised objective with unit weights (:mod:`edgefusion.training.pixel`)."""
    return pixel.intensity_max_l1(fused, ir, vis) + pixel.gradient_max_l1(fused, ir, vis) + pixel.ssim_loss(fused, ir, vis)


def student_metadata(teacher_payload: dict, teacher_digest: str, data_dir: str | os.PathLike, n_pairs: int, recipe: dict,
                     init: dict[str, Any] | None = None) -> dict[str, Any]:
    """Checkpoint metadata of a distilled student: the teacher's provenance and, when fine-tuned, the ``init``
    model's (:func:`load_init`); flags inherited from both; data folder name, recipe; no paths."""
    teacher_info = teacher_summary(teacher_payload, teacher_digest)
    return {
        "objective": "distillation",
        "teacher": teacher_info,
        **({"init": init} if init else {}),
        **inherited(teacher_info, init),
        "data": {"folder": Path(data_dir).name, "pairs": n_pairs},
        "student_recipe": recipe_to_dict(recipe),
    }


def _phase_state(run_dir: Path, name: str) -> str:
    """``done`` (final checkpoint present), ``started`` (``last.pt`` only) or ``new``."""
    if (run_dir / f"{name}.pt").is_file():
        return "done"
    return "started" if (run_dir / "last.pt").is_file() else "new"


def distill(
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
    """Distill a student (see module doc), from random weights or those of ``init`` (:func:`load_init`); returns ``out/student.pt``."""
    place = place or ddp.Dist()
    recipe = load_student_recipe(recipe_spec)
    finetune: TrainConfig = recipe["finetune"]
    if finetune.batch_size != place.world:
        raise UserError(f"finetune.batch_size must equal the number of processes ({place.world}): whole frames differ in size")
    out = Path(out)
    crops_dir = out / CROPS_DIR
    if not resume:
        refuse_existing_run(out, FINAL_NAME, place, crops_dir)
    teacher, teacher_payload = load_teacher(teacher_path, place.device)
    model_config = {"size": recipe["model"].size}
    start, init_info = load_init(init, "student", model_config, recipe_spec) if init is not None else (None, None)
    if place.main and progress:
        print(f"distillation logs: phase 1 (crops) {crops_dir / 'log.csv'}, phase 2 (whole frames) {out / 'log.csv'}", file=sys.stderr)
    pairs = PairCrops(data_dir, recipe["data"], progress=progress and place.main)
    cfg: DistillConfig = recipe["distill"]
    teacher_digest = sha256_file(teacher_path)
    targets = TeacherTargets(out / CACHE_DIR, pairs, teacher, teacher_digest, place, progress) if cfg.teacher_cache else None
    loss = DistillLoss(cfg, teacher)
    metadata = student_metadata(teacher_payload, teacher_digest, data_dir, len(pairs), recipe, init_info)
    arguments = run_arguments(init_info)
    phase_recipe = {k: recipe[k] for k in ("model", "distill", "data")}

    crops_final = crops_dir / f"{FINAL_NAME}-crops.pt"
    state = _phase_state(crops_dir, f"{FINAL_NAME}-crops")
    if state != "done":
        seed_all(recipe["train"].seed)  # reproducible initialization
        stage = Stage(f"{FINAL_NAME}-crops", "student", model_config, Student(**model_config) if start is None else start, loss, ZoomCrops(pairs, cfg.zooms, cfg.gamma), metadata, arguments)
        run_stage(stage, {**phase_recipe, "train": recipe["train"]}, crops_dir, resume=resume and state == "started", place=place, hooks=hooks, progress=progress)

    state = _phase_state(out, FINAL_NAME)
    if state != "done":
        crops_payload = read_checkpoint(crops_final)
        refuse_changed_arguments(crops_payload, arguments, crops_final)  # phase 1 may have finished under other arguments
        student = model_from_payload(crops_payload, str(crops_final))
        stage = Stage(FINAL_NAME, "student", model_config, student, loss, WholeFrames(pairs, math.lcm(Student.stride, int(teacher.stride)), targets), metadata, arguments)
        run_stage(stage, {**phase_recipe, "train": finetune}, out, resume=resume and state == "started", place=place, hooks=hooks, progress=progress)
    return out / f"{FINAL_NAME}.pt"
