"""Image fusion quality metrics, with the conventions of the widely copied Python evaluator.

The default conventions follow the evaluator that most infrared/visible fusion
papers copy (so numbers compare with published tables); every deviation from a
textbook definition is deliberate and noted in the function's docstring.

Common conventions
------------------
* Images are 2-D float64 planes on the 0..255 scale. :func:`compute_all`
  reduces its inputs to that form with :func:`edgefusion.io.color.luma_u8`
  (RGB -> BT.601 luma rounded to integers; gray unchanged).
* ``A`` is the infrared source, ``B`` the visible source, ``F`` the fused image.
* Histogram metrics (EN, MI) put the rounded values 0..255 into 256 bins.
* The fused image is scored as it is: it is never min-max stretched here.
* Reference-free metrics (EN, SD, SF, AG) read ``F`` only; the others compare
  ``F`` with both sources and add (or, for Qabf, gradient-weight) the two terms.

Names in :data:`METRICS` (and the keys of :func:`compute_all`): EN, SD, SF, AG,
MI, SCD, VIF, Qabf, SSIM. :func:`psnr` (model fidelity between two images)
is separate, since it is not a fusion metric.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from edgefusion import _filters
from edgefusion.io.color import luma_u8

_LEVELS = 256


def _plane(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"metrics expect a 2-D plane, got shape {image.shape}")
    return image


def _levels(image: np.ndarray) -> np.ndarray:
    """Values rounded to the integer levels 0..255 (histogram bins)."""
    return np.clip(np.rint(image), 0, _LEVELS - 1).astype(np.int64).ravel()


def _entropy_of(probabilities: np.ndarray, base: float) -> float:
    p = probabilities[probabilities > 0]
    return float(-(p * np.log(p)).sum() / math.log(base))


# --- reference-free metrics -------------------------------------------------------------------


def entropy(image: np.ndarray, base: float = 2.0) -> float:
    """EN: Shannon entropy of the 256-bin histogram of the rounded values, in bits (``base=2``)."""
    counts = np.bincount(_levels(_plane(image)), minlength=_LEVELS)
    return _entropy_of(counts / counts.sum(), base)


def standard_deviation(image: np.ndarray) -> float:
    """SD: population standard deviation (``np.std``, ddof=0) on the 0..255 scale."""
    return float(np.std(_plane(image)))


def spatial_frequency(image: np.ndarray) -> float:
    """SF = sqrt(RF^2 + CF^2).

    RF^2 is the mean of the squared horizontal differences ``I[:, 1:] - I[:, :-1]``
    (H*(W-1) of them) and CF^2 the mean of the squared vertical differences
    (W*(H-1) of them): means over the actual numbers of differences.
    """
    image = _plane(image)
    rf2 = np.mean(np.diff(image, axis=1) ** 2) if image.shape[1] > 1 else 0.0
    cf2 = np.mean(np.diff(image, axis=0) ** 2) if image.shape[0] > 1 else 0.0
    return float(np.sqrt(rf2 + cf2))


def average_gradient(image: np.ndarray) -> float:
    """AG = mean over all pixels of sqrt((gx^2 + gy^2) / 2).

    ``gx``, ``gy`` from ``np.gradient``: central differences inside, one-sided
    differences on the borders.
    """
    image = _plane(image)
    if min(image.shape) < 2:
        return 0.0
    gy, gx = np.gradient(image)
    return float(np.mean(np.sqrt((gx**2 + gy**2) / 2.0)))


# --- source-reference metrics, one term -------------------------------------------------------


def mutual_information(x: np.ndarray, y: np.ndarray, base: float = math.e) -> float:
    """MI(X;Y) from the 256x256 joint histogram of the rounded values; nats by default.

    ``base=2`` gives bits. MI(X;X) equals the entropy of X in the same base.
    """
    a, b = _levels(_plane(x)), _levels(_plane(y))
    joint = np.bincount(a * _LEVELS + b, minlength=_LEVELS * _LEVELS).reshape(_LEVELS, _LEVELS) / a.size
    return _entropy_of(joint.sum(axis=1), base) + _entropy_of(joint.sum(axis=0), base) - _entropy_of(joint.ravel(), base)


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; 0 when either input is constant (the evaluator would give NaN)."""
    dx, dy = x - x.mean(), y - y.mean()
    norm = np.sqrt((dx**2).sum() * (dy**2).sum())
    return float((dx * dy).sum() / norm) if norm > 0 else 0.0


def _gaussian_window_1d(n: int) -> np.ndarray:
    """1-D factor of the evaluator's n x n Gaussian window (sd n/5), normalized to sum 1."""
    sd = n / 5.0
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sd * sd))
    return g / g.sum()


def _filter_valid(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 2-D filtering with ``window`` x ``window``, 'valid' part only (no padding effects)."""
    return _filters.correlate_separable(image, (window, window), "valid")


def vif(reference: np.ndarray, distorted: np.ndarray, sigma_nsq: float = 2.0) -> float:
    """Pixel-domain multiscale VIF (Sheikh & Bovik) of ``distorted`` against ``reference``.

    Four scales s = 1..4 with Gaussian windows of N = 2^(4-s+1)+1 pixels
    (33, 17, 9, 5) and sd N/5; for s > 1 both images are filtered with that
    scale's window ('valid') and subsampled by 2 before the local statistics.
    Local statistics use 'valid' filtering, noise variance ``sigma_nsq`` = 2,
    and the evaluator's clamping of negative variances and gains (eps 1e-10).
    Returns sum of log10 information ratios over all scales; 1.0 when the
    image is too small for any valid window (the evaluator's NaN fallback).
    This is not Han et al.'s VIFF.
    """
    ref, dist = _plane(reference), _plane(distorted)
    eps = 1e-10
    num = den = 0.0
    for scale in range(1, 5):
        win = _gaussian_window_1d(2 ** (4 - scale + 1) + 1)
        if scale > 1:
            ref = _filter_valid(ref, win)[::2, ::2]
            dist = _filter_valid(dist, win)[::2, ::2]
        mu1, mu2 = _filter_valid(ref, win), _filter_valid(dist, win)
        sigma1_sq = _filter_valid(ref * ref, win) - mu1 * mu1
        sigma2_sq = _filter_valid(dist * dist, win) - mu2 * mu2
        sigma12 = _filter_valid(ref * dist, win) - mu1 * mu2
        sigma1_sq[sigma1_sq < 0] = 0
        sigma2_sq[sigma2_sq < 0] = 0

        g = sigma12 / (sigma1_sq + eps)
        sv_sq = sigma2_sq - g * sigma12
        flat_ref = sigma1_sq < eps
        g[flat_ref] = 0
        sv_sq[flat_ref] = sigma2_sq[flat_ref]
        sigma1_sq[flat_ref] = 0
        flat_dist = sigma2_sq < eps
        g[flat_dist] = 0
        sv_sq[flat_dist] = 0
        negative = g < 0
        sv_sq[negative] = sigma2_sq[negative]
        g[negative] = 0
        sv_sq[sv_sq <= eps] = eps

        num += float(np.sum(np.log10(1.0 + g * g * sigma1_sq / (sv_sq + sigma_nsq))))
        den += float(np.sum(np.log10(1.0 + sigma1_sq / sigma_nsq)))
    return num / den if den > 0 else 1.0


# Sobel kernels as separable correlation weights (axis 0, axis 1). Convolving with
# Sx = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] and Sy = [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]
# is correlating with the kernels flipped: [1, 2, 1] x [1, 0, -1] and [-1, 0, 1] x [1, 2, 1].
_SOBEL_X = ((1.0, 2.0, 1.0), (1.0, 0.0, -1.0))
_SOBEL_Y = ((-1.0, 0.0, 1.0), (1.0, 2.0, 1.0))


def _sobel_edges(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge strength and orientation (``arctan(Sy/Sx)``, pi/2 where Sx = 0).

    ``Sx``, ``Sy``: convolution with the Sobel kernels above, zero padding, 'same' size.
    """
    sx = _filters.correlate_separable(image, _SOBEL_X, "constant")
    sy = _filters.correlate_separable(image, _SOBEL_Y, "constant")
    strength = np.sqrt(sx * sx + sy * sy)
    angle = np.full(image.shape, math.pi / 2)
    nonzero = sx != 0
    angle[nonzero] = np.arctan(sy[nonzero] / sx[nonzero])
    return strength, angle


_QABF = {"Tg": 0.9994, "kg": -15.0, "Dg": 0.5, "Ta": 0.9879, "ka": -22.0, "Da": 0.8}


def _edge_preservation(g_src: np.ndarray, a_src: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    c = _QABF
    # Relative strength: the smaller over the larger; where equal the evaluator keeps g_f itself.
    ratio = g_f.copy()
    weaker_f = g_src > g_f
    ratio[weaker_f] = g_f[weaker_f] / g_src[weaker_f]
    stronger_f = g_src < g_f
    ratio[stronger_f] = g_src[stronger_f] / g_f[stronger_f]
    orientation = 1.0 - np.abs(a_src - a_f) / (math.pi / 2)
    q_g = c["Tg"] / (1.0 + np.exp(c["kg"] * (ratio - c["Dg"])))
    q_a = c["Ta"] / (1.0 + np.exp(c["ka"] * (orientation - c["Da"])))
    return q_g * q_a


def qabf(ir: np.ndarray, vis: np.ndarray, fused: np.ndarray) -> float:
    """Qabf (Xydeas & Petrovic) edge-information transfer, in [0, 1].

    Sobel edges (zero padding, 'same' size); orientation ``arctan(Sy/Sx)``;
    constants L = 1, Tg = 0.9994, kg = -15, Dg = 0.5, Ta = 0.9879, ka = -22,
    Da = 0.8; weights are the source edge strengths. As in the evaluator, the
    strength ratio where source and fused strengths are equal is the fused
    strength itself (not 1); 0 when the sources hold no edges at all.
    """
    g_a, a_a = _sobel_edges(_plane(ir))
    g_b, a_b = _sobel_edges(_plane(vis))
    g_f, a_f = _sobel_edges(_plane(fused))
    weight = g_a.sum() + g_b.sum()
    if weight == 0:
        return 0.0
    total = (_edge_preservation(g_a, a_a, g_f, a_f) * g_a + _edge_preservation(g_b, a_b, g_f, a_f) * g_b).sum()
    return float(total / weight)


_SSIM_K1, _SSIM_K2 = 0.01, 0.03
#: Side of the evaluator's SSIM window (:func:`ssim`): the smallest image it scores.
SSIM_WINDOW = 7
_TEXTBOOK_SIGMA, _TEXTBOOK_TRUNCATE = 1.5, 3.5
#: Side of the textbook SSIM window (``ssim(textbook=True)``, 11): the smallest image it scores.
TEXTBOOK_SSIM_WINDOW = 2 * int(_TEXTBOOK_TRUNCATE * _TEXTBOOK_SIGMA + 0.5) + 1


def _ssim_map_mean(x: np.ndarray, y: np.ndarray, blur: Callable[[np.ndarray], np.ndarray], radius: int,
                   cov_norm: float, data_range: float) -> float:
    """Mean of the SSIM map without a ``radius``-pixel border; local moments from ``blur``.

    Arithmetic stays in the inputs' dtype (float32 or float64) up to the final
    float64 mean, in scikit-image's order of operations.
    """
    if min(x.shape) < 2 * radius + 1:
        raise ValueError(f"SSIM needs images of at least {2 * radius + 1}x{2 * radius + 1} pixels, got {x.shape}")
    ux, uy = blur(x), blur(y)
    uxx, uyy, uxy = blur(x * x), blur(y * y), blur(x * y)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = (_SSIM_K1 * data_range) ** 2, (_SSIM_K2 * data_range) ** 2
    numerator = (2 * ux * uy + c1) * (2 * vxy + c2)
    denominator = (ux**2 + uy**2 + c1) * (vx + vy + c2)
    s = numerator / denominator
    return float(s[radius:-radius, radius:-radius].mean(dtype=np.float64))


def ssim(x: np.ndarray, y: np.ndarray, textbook: bool = False) -> float:
    """Mean SSIM of two planes, numerically as scikit-image's ``structural_similarity``.

    K1 = 0.01, K2 = 0.03; local moments from 'reflect'-padded filters
    (``dcba|abcd|dcba``); the mean leaves out the filter radius at every border.
    Default (the evaluator's quirk): 7x7 uniform window, sample covariance
    (factor 49/48), data range 2 (skimage's old float default, range -1..1)
    although the images span 0..255; computed in float32 like the evaluator,
    which reads images as float32 (the tiny constants C1, C2 make the result
    sensitive to that precision at the 1e-4 level).
    ``textbook=True``: Wang et al.'s Gaussian window (sigma 1.5, truncated at
    3.5 sigma: 11x11), population covariance, data_range 255, float64.
    Images smaller than the window raise ValueError.
    """
    x, y = _plane(x), _plane(y)
    if textbook:
        return _ssim_map_mean(x, y, lambda im: _filters.gaussian_filter(im, _TEXTBOOK_SIGMA, _TEXTBOOK_TRUNCATE, "reflect"),
                              TEXTBOOK_SSIM_WINDOW // 2, 1.0, 255.0)
    size = SSIM_WINDOW
    return _ssim_map_mean(x.astype(np.float32), y.astype(np.float32), lambda im: _filters.uniform_filter(im, size, "reflect"),
                          (size - 1) // 2, size * size / (size * size - 1), 2.0)


def psnr(x: np.ndarray, y: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB between two same-size images; ``inf`` when identical."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"PSNR needs equal shapes, got {x.shape} and {y.shape}")
    return psnr_of_mse(float(np.mean((x - y) ** 2)), data_range)


def psnr_of_mse(mse: float, data_range: float = 255.0) -> float:
    """PSNR in dB of a mean squared error ``mse`` (in squared units of ``data_range``); ``inf`` for 0."""
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


# --- fusion metrics: (A, B, F) -> value ----------------------------------------------------------


def scd(ir: np.ndarray, vis: np.ndarray, fused: np.ndarray) -> float:
    """SCD = corr(F - B, A) + corr(F - A, B), Pearson correlations (sum of correlations of differences).

    A correlation with a constant input counts 0 (e.g. F = max(A, B) with B >= A everywhere).
    """
    a, b, f = _plane(ir), _plane(vis), _plane(fused)
    return _correlation(f - b, a) + _correlation(f - a, b)


def fusion_mi(ir: np.ndarray, vis: np.ndarray, fused: np.ndarray, base: float = math.e) -> float:
    """MI = MI(F, A) + MI(F, B); nats by default, ``base=2`` for bits."""
    return mutual_information(fused, ir, base) + mutual_information(fused, vis, base)


def fusion_vif(ir: np.ndarray, vis: np.ndarray, fused: np.ndarray) -> float:
    """VIF = VIF(A -> F) + VIF(B -> F), pixel-domain (:func:`vif`)."""
    return vif(ir, fused) + vif(vis, fused)


def fusion_ssim(ir: np.ndarray, vis: np.ndarray, fused: np.ndarray, textbook: bool = False) -> float:
    """SSIM = SSIM(F, A) + SSIM(F, B) (:func:`ssim`)."""
    return ssim(fused, ir, textbook) + ssim(fused, vis, textbook)


MetricFn = Callable[..., float]

METRICS: dict[str, MetricFn] = {
    "EN": lambda a, b, f: entropy(f),
    "SD": lambda a, b, f: standard_deviation(f),
    "SF": lambda a, b, f: spatial_frequency(f),
    "AG": lambda a, b, f: average_gradient(f),
    "MI": fusion_mi,
    "SCD": scd,
    "VIF": fusion_vif,
    "Qabf": qabf,
    "SSIM": fusion_ssim,
}
"""Metric name -> function of the (IR, visible, fused) planes on the 0..255 scale."""

METRIC_NAMES = tuple(METRICS)


def compute_all(
    ir: np.ndarray,
    vis: np.ndarray,
    fused: np.ndarray,
    names: tuple[str, ...] = METRIC_NAMES,
    mi_base: float = math.e,
    textbook_ssim: bool = False,
) -> dict[str, float]:
    """All (or ``names``) metrics of one fusion; inputs on the 0..255 scale, gray or RGB.

    Each image is reduced with :func:`~edgefusion.io.color.luma_u8` (RGB ->
    rounded BT.601 luma). ``mi_base=2`` reports MI in bits; ``textbook_ssim``
    switches SSIM to the textbook settings of :func:`ssim`.
    """
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {', '.join(METRIC_NAMES)}")
    a, b, f = (luma_u8(image) for image in (ir, vis, fused))
    if not a.shape == b.shape == f.shape:
        raise ValueError(f"metric inputs differ in size: IR {a.shape}, visible {b.shape}, fused {f.shape}")
    options = {"MI": {"base": mi_base}, "SSIM": {"textbook": textbook_ssim}}
    return {name: float(METRICS[name](a, b, f, **options.get(name, {}))) for name in names}
