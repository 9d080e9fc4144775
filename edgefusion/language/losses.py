"""Terms of the language-driven fusion objective, each a small function.

Notation: ``e(.)`` is the CLIP image embedding, ``t(.)`` the role's text
embedding (:mod:`edgefusion.language.prompts`), ``norm`` L2 normalization,
``cos`` cosine similarity. Images are N×1×H×W in [0, 1] (luma). Per-sample
terms return shape (N,); callers average.
"""

from __future__ import annotations

import math
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


def feature_max_loss(fused_feats: Sequence[torch.Tensor], ir_feats: Sequence[torch.Tensor], vis_feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Regularizer: mean over depths of ``MSE(f_F, max(f_ir, f_vis))`` (element-wise max; scalar)."""
    terms = [F.mse_loss(f, torch.maximum(a, b)) for f, a, b in zip(fused_feats, ir_feats, vis_feats, strict=True)]
    return torch.stack(terms).mean()


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


def random_crop_geometry(count: int, scale: tuple[float, float], rotate_deg: float, shear_deg: float, translate: float, device=None) -> torch.Tensor:
    """``count`` random affine crop maps as (count, 2, 3) thetas for :func:`torch.nn.functional.affine_grid`.

    Each crop covers ``scale`` (side fraction, uniform in the range) of the
    image, rotated by ±``rotate_deg``, sheared by ±``shear_deg``, centred at a
    uniform position that keeps the unrotated window inside, plus
    ±``translate`` (fraction of the image side). Uses torch's global RNG.
    """
    u = torch.rand(count, 7, device=device)
    s = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    angle = math.radians(rotate_deg) * (2 * u[:, 1] - 1)
    shear = math.radians(shear_deg) * (2 * u[:, 2] - 1)
    cx = (1 - s) * (2 * u[:, 3] - 1) + translate * 2 * (2 * u[:, 5] - 1)
    cy = (1 - s) * (2 * u[:, 4] - 1) + translate * 2 * (2 * u[:, 6] - 1)
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
    return torch.stack(
        [
            torch.stack([s * cos, s * (cos * tan - sin), cx], dim=1),
            torch.stack([s * sin, s * (sin * tan + cos), cy], dim=1),
        ],
        dim=1,
    )


def apply_crops(images: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """Resample N images through N·k crop maps -> (N·k)×C×size×size (image-major: image i, crop j at i·k + j).

    Bilinear, reflection at the borders, differentiable w.r.t. ``images``.
    """
    per_image = theta.shape[0] // images.shape[0]
    src = images.repeat_interleave(per_image, dim=0)
    grid = F.affine_grid(theta.to(src.dtype), [src.shape[0], src.shape[1], size, size], align_corners=False)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
