"""Terms of the language-driven fusion objective, each a small function.

Notation: ``e(.)`` is the CLIP image embedding, ``t(.)`` the role's text
embedding (:mod:`edgefusion.language.prompts`), ``norm`` L2 normalization,
``cos`` cosine similarity. Images are N×1×H×W in [0, 1] (luma). Per-sample
terms return shape (N,); callers average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F


def unit(x: torch.Tensor) -> torch.Tensor:
    """L2-normalize along the last dimension."""
    return F.normalize(x, dim=-1)


def directional_loss(fused_emb: torch.Tensor, source_emb: torch.Tensor, text_objective: torch.Tensor, text_source: torch.Tensor) -> torch.Tensor:
    """``1 − cos(norm(e(F)) − norm(e(s)), norm(t(obj)) − norm(t(s)))`` per sample.

    0 when the image moved from the source exactly along the text direction,
    1 when orthogonal (or when F's embedding equals the source's), 2 when opposite.
    """
    image_dir = unit(fused_emb) - unit(source_emb)
    text_dir = (unit(text_objective) - unit(text_source)).expand_as(image_dir)
    return 1.0 - F.cosine_similarity(image_dir, text_dir, dim=-1, eps=1e-8)


def similarity_loss(fused_emb: torch.Tensor, source_embs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over sources of ``1 − cos(e(F), e(s))`` per sample: 0 when F's embedding is parallel to every source's."""
    return torch.stack([1.0 - F.cosine_similarity(fused_emb, s, dim=-1, eps=1e-8) for s in source_embs]).mean(dim=0)


def feature_max_loss(fused_feats: Sequence[torch.Tensor], ir_feats: Sequence[torch.Tensor], vis_feats: Sequence[torch.Tensor], reduce: str = "mean") -> torch.Tensor:
    """Regularizer: ``MSE(f_F, max(f_ir, f_vis))`` per depth (element-wise max), summed or averaged over depths (scalar)."""
    terms = torch.stack([F.mse_loss(f, torch.maximum(a, b)) for f, a, b in zip(fused_feats, ir_feats, vis_feats, strict=True)])
    return {"sum": terms.sum, "mean": terms.mean}[reduce]()


def entropy_bits(images: torch.Tensor, bins: int = 256) -> torch.Tensor:
    """Shannon entropy (log2, bits) of each image's ``bins``-bin histogram over [0, 1]; shape (N,)."""
    flat = images.detach().reshape(images.shape[0], -1).float()
    index = (flat.clamp(0.0, 1.0) * bins).long().clamp_(max=bins - 1)
    counts = torch.zeros(flat.shape[0], bins, device=flat.device).scatter_add_(1, index, torch.ones_like(flat))
    p = counts / flat.shape[1]
    return -(p * torch.log2(p.clamp_min(1e-12))).sum(dim=1)


def keep_mask(ir_crops: torch.Tensor, vis_crops: torch.Tensor, threshold: float) -> torch.Tensor:
    """Patch filter: True where BOTH the IR and the visible crop have entropy > ``threshold`` bits."""
    return (entropy_bits(ir_crops) > threshold) & (entropy_bits(vis_crops) > threshold)


def clip_input(gray: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """N×1×H×W luma in [0, 1] -> N×3×size×size CLIP input: resized (bilinear, antialiased), replicated, normalized."""
    x = F.interpolate(gray.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x.expand(-1, 3, -1, -1) - mean_t) / std_t


def patch_average(losses: torch.Tensor, keep: torch.Tensor, over: str) -> torch.Tensor:
    """Mean of per-crop ``losses`` where ``keep``: over ``"all"`` crops (rejected ones count as 0) or the ``"kept"`` ones only (0 if none)."""
    kept = (losses * keep).sum()
    return kept / keep.numel() if over == "all" else kept / keep.sum().clamp_min(1)


@dataclass(frozen=True)
class PatchMaps:
    """Random patch crops (:func:`random_patch_maps`); coordinates are normalized ([-1, 1] across an image, ``align_corners=False``).

    ``image``: (K,) source image of each crop; ``window``: (K, 4) crop window
    ``(cx, cy, hx, hy)``, centre and half-sides; ``warp``: (K, 2, 3) affine map
    from output coordinates to window coordinates (inside the window: [-1, 1]).
    """

    image: torch.Tensor
    window: torch.Tensor
    warp: torch.Tensor

    def __getitem__(self, select: torch.Tensor) -> "PatchMaps":
        return PatchMaps(self.image[select], self.window[select], self.warp[select])


def random_patch_maps(images: int, per_image: int, size_hw: tuple[int, int], scale: tuple[float, float], scale_per_step: bool,
                      rotate_deg: float, shear_deg: float, translate: tuple[float, float], zoom: tuple[float, float], device=None) -> PatchMaps:
    """``per_image`` random crops of each of ``images`` images of size ``size_hw`` (image-major: image i, crop j at i·per_image + j).

    A square window of side ``U(scale)·min(H, W)`` (one side for all crops when
    ``scale_per_step``, else one per crop) at a uniform position inside the
    image, then an affine augmentation of the window's content about its
    centre: rotation U(±``rotate_deg``), x-shear U(±``shear_deg``), zoom
    U(``zoom``) (> 1 magnifies), shift U(±``translate``) (x, y; fractions of the
    window side). Uses torch's global RNG.
    """
    count = images * per_image
    u = torch.rand(count, 8, device=device)
    if scale_per_step:
        u[:, 0] = u[0, 0]
    s = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    h, w = size_hw
    hx, hy = s * min(h, w) / w, s * min(h, w) / h
    cx, cy = (1 - hx) * (2 * u[:, 1] - 1), (1 - hy) * (2 * u[:, 2] - 1)
    angle = math.radians(rotate_deg) * (2 * u[:, 3] - 1)
    shear = math.radians(shear_deg) * (2 * u[:, 4] - 1)
    z = zoom[0] + (zoom[1] - zoom[0]) * u[:, 5]
    tx, ty = 2 * translate[0] * (2 * u[:, 6] - 1), 2 * translate[1] * (2 * u[:, 7] - 1)
    # forward map of the content: p = z·R(angle)·Shear(shear)·q + t; the warp is its inverse q = Shear(-shear)·R(-angle)·(p - t) / z
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
    a = torch.stack([torch.stack([cos + tan * sin, sin - tan * cos], 1), torch.stack([-sin, cos], 1)], 1) / z[:, None, None]
    b = -(a @ torch.stack([tx, ty], 1)[:, :, None])
    image = torch.arange(images, device=device).repeat_interleave(per_image)
    return PatchMaps(image, torch.stack([cx, cy, hx, hy], 1), torch.cat([a, b], 2))


def apply_patches(images: torch.Tensor, maps: PatchMaps, size: int, fill: str) -> torch.Tensor:
    """Resample the crops ``maps`` of N×C×H×W ``images`` -> K×C×size×size (bilinear, differentiable w.r.t. ``images``).

    ``fill``: ``"zeros"``: outside the window is black (the window is cut out
    first, then augmented); ``"reflection"``: the image around the window shows
    through, reflected at the image borders.
    """
    src = images[maps.image]
    local = F.affine_grid(maps.warp.to(src.dtype), [src.shape[0], src.shape[1], size, size], align_corners=False)
    grid = maps.window[:, None, None, :2].to(src.dtype) + maps.window[:, None, None, 2:].to(src.dtype) * local
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros" if fill == "zeros" else "reflection", align_corners=False)
    if fill == "zeros":
        out = out * (local.abs() <= 1).all(dim=-1)[:, None].to(out.dtype)
    return out
