"""The teacher stage: recipe sections, the language-driven (and pixel) objective, stage builder.

Language objective (the paper's weights are the defaults; ``train/teacher.toml``
sets every other paper value), with ``e`` the CLIP image embedding and ``t``
the prompt embeddings:

``total = 6·similarity + 2·global_direction + 10·patch_direction + 10·regularizer``

* ``similarity``: mean over sources of ``1 − cos(e(F), e(s))``;
* ``global_direction``: :func:`~edgefusion.language.losses.directional_loss`
  of the whole fused image against each source (objective text ``fused``,
  source texts ``ir``/``vis``), averaged over both sources;
* ``patch_direction``: the same for ``patch_crops`` random crops of F per image
  (:func:`~edgefusion.language.losses.random_patch_maps`; each against the
  sources' whole-image embeddings), counted only where the IR and visible
  crops of the same geometry both have entropy > ``entropy_threshold`` bits,
  then averaged over all crops (``patch_average = "all"``, the paper: the
  effective weight is ``weight_patch`` × the kept fraction) or over the kept
  ones (``"kept"``); ``patch_kept`` logs the kept fraction;
* ``regularizer``: frozen-network features of F pulled (MSE) to the element-wise
  max of the sources' features (VGG19 or CLIP's visual tower), summed or
  averaged over the depths (``regularizer_reduce``).

The model sees inputs with Gaussian noise (σ = ``input_noise``, clipped to
[0, 1] when ``input_noise_clamp``); losses compare with the clean sources.
CLIP runs under the autocast dtype ``clip_precision`` on CUDA, fp32 on CPU.

``objective.kind = "pixel"`` replaces all of this by intensity-max L1 +
Sobel-gradient-max L1 + SSIM (:mod:`edgefusion.training.pixel`): NOT the
paper's objective, for hosts without CLIP weights; checkpoints say so.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgefusion.errors import UserError
from edgefusion.language import losses as L
from edgefusion.language.clip import Clip, ClipConfig, ClipWeights, load_clip, resolve_weights
from edgefusion.language.prompts import PromptConfig, encode_prompts
from edgefusion.models import build_model
from edgefusion.models.teacher import TeacherConfig
from edgefusion.training import pixel
from edgefusion.training.dataset import PairCrops
from edgefusion.training.features import ClipFeatures, VGGFeatures, resolve_vgg_weights
from edgefusion.training.loop import Stage
from edgefusion.training.recipe import DataConfig, TrainConfig, bounded, recipe_to_dict
from edgefusion.training.state import seed_all

log = logging.getLogger(__name__)

PIXEL_OBJECTIVE_NOTE = "pixel: intensity-max L1 + Sobel-gradient-max L1 + SSIM; NOT the paper's language-driven objective"


@dataclass
class ObjectiveConfig:
    """The recipe's ``[objective]`` section.

    Defaults keep the behaviour of recipes written before the paper's options
    existed (``train/teacher-unet.toml``); ``train/teacher.toml`` sets the
    paper's value of every option explicitly.
    """

    kind: str = bounded("language", choices=("language", "pixel"))
    weight_similarity: float = bounded(6.0, min=0.0)
    weight_global: float = bounded(2.0, min=0.0)
    weight_patch: float = bounded(10.0, min=0.0)
    weight_regularizer: float = bounded(10.0, min=0.0)
    patch_crops: int = bounded(8, min=1)  # random crops per image
    patch_average: str = bounded("kept", choices=("all", "kept"))  # all: rejected crops count as 0 (paper); kept: mean over kept crops
    patch_scale: list[float] = bounded([0.5, 0.8], min=0.05, max=1.0)  # window side, fraction of min(H, W)
    patch_scale_per: str = bounded("crop", choices=("crop", "step"))  # step: one side drawn per step for all crops (paper)
    patch_rotate_deg: float = bounded(8.0, min=0.0, max=45.0)
    patch_shear_deg: float = bounded(5.0, min=0.0, max=30.0)
    patch_translate: list[float] = bounded([0.05, 0.05], min=0.0, max=0.5)  # max (x, y) shift, fraction of the window side
    patch_zoom: list[float] = bounded([1.0, 1.0], min=0.1, max=10.0)  # zoom range of the window content (> 1 magnifies)
    patch_fill: str = bounded("reflection", choices=("reflection", "zeros"))  # outside the window: image (reflected) or black (paper)
    entropy_threshold: float = bounded(6.0, min=0.0, max=8.0)  # bits, 256-bin histogram
    input_noise: float = bounded(0.03, min=0.0)
    input_noise_clamp: bool = True  # clamp the noisy inputs to [0, 1] (the paper does not)
    clip_precision: str = bounded("amp", choices=("amp", "fp16", "bf16", "fp32"))  # CLIP's autocast dtype on CUDA; amp: as [train] amp; CPU: fp32
    regularizer: str = bounded("vgg19", choices=("vgg19", "clip", "none"))
    regularizer_reduce: str = bounded("mean", choices=("mean", "sum"))  # over the feature depths (paper: sum)
    vgg_weights: str = ""  # empty: torchvision's file in the torch hub cache
    vgg_imagenet_norm: bool = True  # ImageNet mean/std on VGG19's input (the paper feeds [0, 1] gray unnormalized)
    weight_intensity: float = bounded(1.0, min=0.0)  # pixel objective
    weight_gradient: float = bounded(1.0, min=0.0)  # pixel objective
    weight_ssim: float = bounded(1.0, min=0.0)  # pixel objective

    def __post_init__(self) -> None:
        for name in ("patch_scale", "patch_zoom"):
            value = getattr(self, name)
            if len(value) != 2 or value[0] > value[1]:
                raise ValueError(f"objective.{name} must be [low, high] with low <= high, got {value}")
        if len(self.patch_translate) != 2:
            raise ValueError(f"objective.patch_translate must be [x, y], got {self.patch_translate}")


SECTIONS = {"train": TrainConfig, "data": DataConfig, "model": TeacherConfig, "objective": ObjectiveConfig, "clip": ClipConfig, "prompts": PromptConfig}


def _noisy(x: torch.Tensor, sigma: float, clamp: bool) -> torch.Tensor:
    """``x`` plus Gaussian noise of std ``sigma``, clamped to [0, 1] when ``clamp``."""
    if sigma <= 0:
        return x
    x = x + sigma * torch.randn_like(x)
    return x.clamp(0.0, 1.0) if clamp else x


def clip_dtype(device_type: str, precision: str) -> torch.dtype | None:
    """CLIP's autocast dtype for ``objective.clip_precision`` on ``device_type``; None: keep the surrounding autocast.

    On CUDA: ``fp16``/``bf16`` autocast to that type, ``fp32`` disables autocast,
    ``amp`` follows ``[train] amp``. On other devices: None (the loop runs them in fp32).
    """
    if device_type != "cuda" or precision == "amp":
        return None
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]


class LanguageObjective(nn.Module):
    """The language-driven loss (module doc); text embeddings are computed once here."""

    def __init__(self, clip: Clip, prompts: PromptConfig, cfg: ObjectiveConfig, features: nn.Module | None):
        super().__init__()
        self.clip_model = clip.model
        self.size, self.mean, self.std = clip.image_size, clip.mean, clip.std
        self.cfg = cfg
        self.features = features
        for role, emb in encode_prompts(clip.model, clip.tokenizer, prompts).items():
            self.register_buffer(f"text_{role}", emb, persistent=False)

    def embed(self, gray: torch.Tensor) -> torch.Tensor:
        """CLIP image embeddings (float32) of N×1×H×W luma in [0, 1], at ``clip_precision``."""
        dtype = clip_dtype(gray.device.type, self.cfg.clip_precision)
        if dtype is None:
            context = contextlib.nullcontext()
        else:
            context = torch.autocast("cuda", enabled=False) if dtype == torch.float32 else torch.autocast("cuda", dtype=dtype)
        with context:
            return self.clip_model.encode_image(L.clip_input(gray, self.size, self.mean, self.std)).float()

    def directions(self, fused_emb: torch.Tensor, ir_emb: torch.Tensor, vis_emb: torch.Tensor) -> torch.Tensor:
        """Directional loss per sample, averaged over the two sources."""
        return 0.5 * (
            L.directional_loss(fused_emb, ir_emb, self.text_fused, self.text_ir)
            + L.directional_loss(fused_emb, vis_emb, self.text_fused, self.text_vis)
        )

    def patch_direction(self, fused: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor, ir_emb: torch.Tensor, vis_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(patch directional loss averaged per ``patch_average``, keep mask); only kept crops go through CLIP."""
        cfg = self.cfg
        maps = L.random_patch_maps(len(fused), cfg.patch_crops, tuple(fused.shape[-2:]), tuple(cfg.patch_scale), cfg.patch_scale_per == "step",
                                   cfg.patch_rotate_deg, cfg.patch_shear_deg, tuple(cfg.patch_translate), tuple(cfg.patch_zoom), fused.device)
        with torch.no_grad():
            ir_crops, vis_crops = L.apply_patches(torch.cat([ir, vis], dim=1), maps, self.size, cfg.patch_fill).float().chunk(2, dim=1)
            keep = L.keep_mask(ir_crops, vis_crops, cfg.entropy_threshold)
        losses = fused.new_zeros(len(keep), dtype=torch.float32)
        if bool(keep.any()):
            kept = maps[keep]
            patch_emb = self.embed(L.apply_patches(fused, kept, self.size, cfg.patch_fill))
            losses = losses.index_put((keep.nonzero()[:, 0],), self.directions(patch_emb, ir_emb[kept.image], vis_emb[kept.image]))
        else:
            losses = losses + fused.sum() * 0.0  # keeps the graph connected for DDP
        return L.patch_average(losses, keep, cfg.patch_average), keep

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        ir, vis = batch["ir"], batch["vis"]
        fused = model(_noisy(ir, cfg.input_noise, cfg.input_noise_clamp), _noisy(vis, cfg.input_noise, cfg.input_noise_clamp))
        with torch.no_grad():
            ir_emb, vis_emb = self.embed(torch.cat([ir, vis])).chunk(2)
        fused_emb = self.embed(fused)
        similarity = L.similarity_loss(fused_emb, [ir_emb, vis_emb]).mean()
        global_direction = self.directions(fused_emb, ir_emb, vis_emb).mean()
        patch_direction, keep = self.patch_direction(fused, ir, vis, ir_emb, vis_emb)
        if self.features is not None:
            with torch.no_grad():
                ir_feats, vis_feats = self.features(ir), self.features(vis)
            regularizer = L.feature_max_loss(self.features(fused), ir_feats, vis_feats, cfg.regularizer_reduce)
        else:
            regularizer = fused.sum() * 0.0
        total = cfg.weight_similarity * similarity + cfg.weight_global * global_direction + cfg.weight_patch * patch_direction + cfg.weight_regularizer * regularizer
        return {
            "total": total,
            "similarity": similarity,
            "global_direction": global_direction,
            "patch_direction": patch_direction,
            "regularizer": regularizer,
            "patch_kept": keep.float().mean(),
        }


class PixelObjective(nn.Module):
    """Intensity-max L1 + gradient-max L1 + SSIM (NOT the paper's objective)."""

    def __init__(self, cfg: ObjectiveConfig):
        super().__init__()
        self.cfg = cfg

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        ir, vis = batch["ir"], batch["vis"]
        fused = model(_noisy(ir, cfg.input_noise, cfg.input_noise_clamp), _noisy(vis, cfg.input_noise, cfg.input_noise_clamp)).float()
        intensity = pixel.intensity_max_l1(fused, ir, vis)
        gradient = pixel.gradient_max_l1(fused, ir, vis)
        ssim = pixel.ssim_loss(fused, ir, vis)
        total = cfg.weight_intensity * intensity + cfg.weight_gradient * gradient + cfg.weight_ssim * ssim
        return {"total": total, "intensity": intensity, "gradient": gradient, "ssim": ssim}


@dataclass(frozen=True)
class ExternalWeights:
    """Validated local weight files a teacher run needs (None where not needed)."""

    clip: ClipWeights | None
    vgg: Path | None


def apply_overrides(recipe: dict, clip_model: str | None = None, clip_weights: str | None = None,
                    vgg_weights: str | None = None) -> dict:
    """Command-line overrides of the recipe's CLIP model, CLIP weights and VGG19 weights (None keeps the recipe's).

    UserError for an override the recipe's objective would ignore: any of them with a pixel objective,
    VGG19 weights with a regularizer other than ``vgg19``.
    """
    objective: ObjectiveConfig = recipe["objective"]
    given = [flag for flag, value in (("--clip-model", clip_model), ("--clip-weights", clip_weights), ("--vgg-weights", vgg_weights)) if value]
    if given and objective.kind == "pixel":
        raise UserError(f"{', '.join(given)}: the recipe's objective is \"pixel\", which uses no CLIP or VGG19 weights")
    if vgg_weights and objective.regularizer != "vgg19":
        raise UserError(f"--vgg-weights: the recipe's regularizer is \"{objective.regularizer}\", which uses no VGG19 weights "
                        "(only regularizer = \"vgg19\" does)")
    if clip_model:
        recipe["clip"].model = clip_model
    if clip_weights:
        recipe["clip"].weights = clip_weights
    if vgg_weights:
        recipe["objective"].vgg_weights = vgg_weights
    return recipe


def check_weights(recipe: dict) -> ExternalWeights:
    """Validate every external weights file the recipe needs, fast and before any output exists."""
    objective: ObjectiveConfig = recipe["objective"]
    if objective.kind == "pixel":
        return ExternalWeights(None, None)
    clip_weights = resolve_weights(recipe["clip"].model, recipe["clip"].weights)
    vgg = resolve_vgg_weights(objective.vgg_weights) if objective.regularizer == "vgg19" else None
    return ExternalWeights(clip_weights, vgg)


def build_objective(recipe: dict, weights: ExternalWeights) -> tuple[nn.Module, dict]:
    """(loss module, checkpoint metadata describing the objective)."""
    objective: ObjectiveConfig = recipe["objective"]
    if objective.kind == "pixel":
        log.warning("teacher objective: %s", PIXEL_OBJECTIVE_NOTE)
        return PixelObjective(objective), {"objective": PIXEL_OBJECTIVE_NOTE, "language_objective_meaningful": False}
    clip = load_clip(weights.clip)
    features = {"vgg19": lambda: VGGFeatures(weights.vgg, objective.vgg_imagenet_norm), "clip": lambda: ClipFeatures(clip), "none": lambda: None}[objective.regularizer]()
    meaningful = weights.clip.meaningful
    metadata = {
        "objective": "language",
        "language_objective_meaningful": meaningful,
        "clip_model": weights.clip.model,
        "clip_weights": weights.clip.tag or (os.path.basename(weights.clip.path) if weights.clip.path else "random"),
        "regularizer": objective.regularizer,
    }
    return LanguageObjective(clip, recipe["prompts"], objective, features), metadata


def build_teacher_stage(recipe: dict, data_dir: str | os.PathLike, weights: ExternalWeights, progress: bool = True) -> Stage:
    """The teacher :class:`Stage`: TeacherNet from ``[model]``, objective, augmented crops of ``data_dir``
    (``progress``: the pair check's bar, see :class:`PairCrops`)."""
    config = recipe_to_dict({"model": recipe["model"]})["model"]
    seed_all(recipe["train"].seed)  # reproducible initialization
    model = build_model("teacher", config)
    pairs = PairCrops(data_dir, recipe["data"], progress=progress)  # every pair checked before the objective loads (and warns)
    loss, metadata = build_objective(recipe, weights)
    return Stage("teacher", "teacher", config, model, loss, pairs, metadata)
