"""Pixel-level fusion terms (the ``objective.kind = "pixel"`` teacher; NOT the paper's objective).

Images are N×1×H×W in [0, 1]. Each function returns a scalar tensor.
The fused image is pulled towards the element-wise maximum of the sources in
intensity and in Sobel gradient magnitude, and towards structural similarity
(SSIM) with both sources.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """``|Gx| + |Gy|`` of 3×3 Sobel filters (replicate padding); same shape as ``x``."""
    kernel = torch.stack([_SOBEL_X, _SOBEL_X.T])[:, None].to(x)
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel)
    return g.abs().sum(dim=1, keepdim=True)


def intensity_max_l1(fused: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """``mean |F − max(ir, vis)|``."""
    return F.l1_loss(fused, torch.maximum(ir, vis))


def gradient_max_l1(fused: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """``mean | |∇F| − max(|∇ir|, |∇vis|) |`` with Sobel magnitudes."""
    return F.l1_loss(sobel_magnitude(fused), torch.maximum(sobel_magnitude(ir), sobel_magnitude(vis)))


def _gaussian_blur(x: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Normalized ``size``×``size`` Gaussian filter over the last two dims, valid region.

    Two 1-D passes of weighted shifted slices: on CPU about ten times faster to
    train than a single-channel convolution, which oneDNN handles poorly.
    """
    coords = torch.arange(size, dtype=x.dtype, device=x.device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    for dim in (-2, -1):
        n = x.shape[dim] - size + 1
        x = sum(g[i] * x.narrow(dim, i, n) for i in range(size))
    return x


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM per sample (Wang et al. 2004; Gaussian 11×11 σ=1.5, data range 1, valid region); shape (N,)."""
    c1, c2 = 0.01**2, 0.03**2
    n = len(a)
    mu_a, mu_b, aa, bb, ab = _gaussian_blur(torch.cat([a, b, a * a, b * b, a * b]), window, sigma).split(n)
    var_a = aa - mu_a**2
    var_b = bb - mu_b**2
    cov = ab - mu_a * mu_b
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return value.flatten(1).mean(dim=1)


def ssim_loss(fused: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """``1 − (SSIM(F, ir) + SSIM(F, vis)) / 2``, averaged over the batch."""
    return 1.0 - 0.5 * (ssim(fused, ir) + ssim(fused, vis)).mean()
