"""Where a student's fused image differs from its teacher's: numpy helpers for ``bench_ldlite_student.py --diagnose``.

Conventions: images are (H, W) arrays in gray levels 0..255 (8-bit fused luma
as float), ``s`` the student (or baseline) and ``t`` the teacher; the error is
``e = s - t``; PSNR uses a 255 peak (:func:`edgefusion.metrics.psnr_of_mse`). Low-pass
is a Gaussian blur of standard deviation ``sigma`` pixels, truncated at
4 sigma, reflected at the borders (``edgefusion._filters.gaussian_filter``).
"What-if" images (teacher low-pass put in, a fitted tone curve applied) are
scored unrounded and unclipped: they measure an error component, not a product.
"""

from __future__ import annotations

import math

import numpy as np

from edgefusion._filters import gaussian_filter
from edgefusion.io.atomic import atomic_path
from edgefusion.metrics import psnr_of_mse

#: Low-pass scales (pixels) of the frequency split.
SIGMAS = (2.0, 8.0, 32.0)
#: Edges (gray levels) of the local-contrast bins: max of the IR and visible local std (sigma 2).
CONTRAST_EDGES = (0.0, 2.0, 4.0, 8.0, 16.0, 32.0, math.inf)
#: Scale (pixels) of the local standard deviation and of the detail band.
LOCAL_SIGMA = 2.0


def lowpass(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low-pass (float64) of standard deviation ``sigma`` px."""
    return gaussian_filter(np.asarray(x, dtype=np.float64), sigma)


def frequency_split(s: np.ndarray, t: np.ndarray, sigmas=SIGMAS) -> dict:
    """Error energy below / above each ``sigma`` and the PSNR if the student's low-pass were the teacher's.

    Per sigma: ``mse_low`` = mean(G(e)^2), ``mse_high`` = mean((e - G(e))^2) and
    ``psnr_low_fixed`` = PSNR of ``s - G(s) + G(t)`` (= ``t + e - G(e)``) against ``t``.
    """
    e = np.asarray(s, dtype=np.float64) - np.asarray(t, dtype=np.float64)
    out = {"mse": float(np.mean(e * e))}
    for sigma in sigmas:
        low = lowpass(e, sigma)
        high = e - low
        mse_high = float(np.mean(high * high))
        out[f"{sigma:g}"] = {"mse_low": float(np.mean(low * low)), "mse_high": mse_high, "psnr_low_fixed": psnr_of_mse(mse_high)}
    return out


def affine_fit(s: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """Least-squares ``(a, b)`` with ``a * s + b ~ t`` over all pixels (``a = 0`` for a constant ``s``)."""
    s, t = np.asarray(s, dtype=np.float64).ravel(), np.asarray(t, dtype=np.float64).ravel()
    ds = s - s.mean()
    var = float(ds @ ds)
    a = float(ds @ (t - t.mean())) / var if var > 0 else 0.0
    return a, float(t.mean() - a * s.mean())


def isotonic(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares non-decreasing fit of ``y`` (pool adjacent violators); ``w > 0``."""
    values: list[float] = []
    weights: list[float] = []
    sizes: list[int] = []
    for yi, wi in zip(np.asarray(y, dtype=np.float64), np.asarray(w, dtype=np.float64)):
        values.append(float(yi)), weights.append(float(wi)), sizes.append(1)
        while len(values) > 1 and values[-2] > values[-1]:
            v2, w2, n2 = values.pop(), weights.pop(), sizes.pop()
            weights[-1], values[-1] = weights[-1] + w2, (values[-1] * weights[-1] + v2 * w2) / (weights[-1] + w2)
            sizes[-1] += n2
    return np.repeat(values, sizes)


def curve_fit(s8: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Best non-decreasing global tone curve: LUT (256,) float64 with ``lut[s8] ~ t`` in least squares.

    ``s8`` holds integers 0..255; the LUT is the isotonic fit of the mean of
    ``t`` per level, weighted by the level's pixel count, linearly interpolated
    over levels that do not occur.
    """
    levels = np.asarray(s8).astype(np.int64).ravel()
    if levels.min() < 0 or levels.max() > 255:
        raise ValueError("curve_fit needs 8-bit levels 0..255")
    counts = np.bincount(levels, minlength=256)
    sums = np.bincount(levels, weights=np.asarray(t, dtype=np.float64).ravel(), minlength=256)
    used = np.flatnonzero(counts)
    fitted = isotonic(sums[used] / counts[used], counts[used])
    return np.interp(np.arange(256), used, fitted)


def detail_gain(s: np.ndarray, t: np.ndarray, sigma: float = LOCAL_SIGMA) -> dict:
    """The detail bands ``d = x - G(x)``: best scalar gain ``k`` (``k * d_s ~ d_t``), their correlation,
    amplitude ratio ``rms(d_t) / rms(d_s)`` and the PSNR of ``G(s) + k * d_s`` against ``t``."""
    s, t = np.asarray(s, dtype=np.float64), np.asarray(t, dtype=np.float64)
    ls = lowpass(s, sigma)
    ds, dt = s - ls, t - lowpass(t, sigma)
    ss, tt, st = float(np.sum(ds * ds)), float(np.sum(dt * dt)), float(np.sum(ds * dt))
    k = st / ss if ss > 0 else 0.0
    fixed = ls + k * ds - t
    return {
        "gain": k,
        "corr": st / math.sqrt(ss * tt) if ss > 0 and tt > 0 else 0.0,
        "amplitude_ratio": math.sqrt(tt / ss) if ss > 0 else math.inf,
        "psnr_gain_fixed": psnr_of_mse(float(np.mean(fixed * fixed))),
    }


def local_std(x: np.ndarray, sigma: float = LOCAL_SIGMA) -> np.ndarray:
    """Gaussian-weighted local standard deviation (same units as ``x``)."""
    x = np.asarray(x, dtype=np.float64)
    mean = lowpass(x, sigma)
    return np.sqrt(np.maximum(lowpass(x * x, sigma) - mean * mean, 0.0))


def contrast_bins(e: np.ndarray, contrast: np.ndarray, edges=CONTRAST_EDGES) -> dict:
    """Pixel counts and squared-error sums of ``e`` per bin ``edges[i] <= contrast < edges[i + 1]`` (sums add over frames)."""
    index = np.digitize(np.asarray(contrast).ravel(), edges[1:-1])
    e2 = np.square(np.asarray(e, dtype=np.float64)).ravel()
    n = len(edges) - 1
    return {"pixels": np.bincount(index, minlength=n).tolist(), "sq_error": np.bincount(index, weights=e2, minlength=n).tolist()}


def diagnose_frame(s8: np.ndarray, t8: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> dict:
    """Every per-frame figure of one candidate ``s8`` against the teacher ``t8`` (8-bit, as float); ``ir``, ``vis`` in 0..255."""
    s, t = np.asarray(s8, dtype=np.float64), np.asarray(t8, dtype=np.float64)
    a, b = affine_fit(s, t)
    lut = curve_fit(s8, t)
    return {
        "psnr": psnr_of_mse(float(np.mean((s - t) ** 2))),
        "mean": {"student": float(s.mean()), "teacher": float(t.mean()), "psnr_matched": psnr_of_mse(float(np.mean((s - s.mean() + t.mean() - t) ** 2)))},
        "affine": {"a": a, "b": b, "psnr": psnr_of_mse(float(np.mean((a * s + b - t) ** 2)))},
        "curve_psnr": psnr_of_mse(float(np.mean((lut[np.asarray(s8).astype(np.int64)] - t) ** 2))),
        "frequency": frequency_split(s, t),
        "detail": detail_gain(s, t),
        "contrast": contrast_bins(s - t, np.maximum(local_std(ir), local_std(vis))),
    }


def _correlation(x, y) -> float:
    """Pearson correlation; NaN when either has no spread."""
    dx, dy = np.asarray(x, dtype=np.float64) - np.mean(x), np.asarray(y, dtype=np.float64) - np.mean(y)
    norm = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / norm if norm > 0 else math.nan


def summarize(frames: list[dict]) -> dict:
    """Means over frames (PSNRs averaged in dB, as the benchmark does), the spread (std over frames) of
    the frame mean brightness and its correlation between student and teacher, and pooled contrast bins."""
    mean = lambda values: float(np.mean(list(values)))  # noqa: E731
    out = {
        "psnr": mean(f["psnr"] for f in frames),
        "psnr_affine": mean(f["affine"]["psnr"] for f in frames),
        "affine_a": mean(f["affine"]["a"] for f in frames),
        "affine_b": mean(f["affine"]["b"] for f in frames),
        "psnr_curve": mean(f["curve_psnr"] for f in frames),
        "psnr_mean_matched": mean(f["mean"]["psnr_matched"] for f in frames),
        "teacher_mean": mean(f["mean"]["teacher"] for f in frames),
        "teacher_mean_spread": float(np.std([f["mean"]["teacher"] for f in frames])),
        "student_mean_spread": float(np.std([f["mean"]["student"] for f in frames])),
        "mean_corr": _correlation([f["mean"]["student"] for f in frames], [f["mean"]["teacher"] for f in frames]),
        "mse": mean(f["frequency"]["mse"] for f in frames),
    }
    for sigma in SIGMAS:
        key = f"{sigma:g}"
        out[f"share_low_{key}"] = mean(f["frequency"][key]["mse_low"] / f["frequency"]["mse"] for f in frames if f["frequency"]["mse"] > 0)
        out[f"psnr_low_fixed_{key}"] = mean(f["frequency"][key]["psnr_low_fixed"] for f in frames)
    for name in ("gain", "corr", "amplitude_ratio", "psnr_gain_fixed"):
        out[f"detail_{name}"] = mean(f["detail"][name] for f in frames)
    pixels = np.sum([f["contrast"]["pixels"] for f in frames], axis=0)
    sq = np.sum([f["contrast"]["sq_error"] for f in frames], axis=0)
    out["contrast_bins"] = [
        {"lo": lo, "hi": hi if math.isfinite(hi) else None, "pixel_share": float(p / pixels.sum()), "error_share": float(q / sq.sum()), "rmse": math.sqrt(q / p) if p else 0.0}
        for lo, hi, p, q in zip(CONTRAST_EDGES[:-1], CONTRAST_EDGES[1:], pixels, sq)
    ]
    return out


#: PSNR figures of :func:`summarize` drawn in the bar chart, with their labels.
BARS = (
    ("psnr", "as is"),
    ("psnr_affine", "+ affine tone"),
    ("psnr_curve", "+ monotone curve"),
    ("detail_psnr_gain_fixed", "+ detail gain (sigma 2)"),
    *((f"psnr_low_fixed_{s:g}", f"teacher low-pass, sigma {s:g}") for s in reversed(SIGMAS)),
)


def plot_bars(sets: dict, path, target_db: float = 30.0) -> None:
    """Bar chart: per set, the PSNR of each candidate as is and after each what-if (``sets[set][candidate]`` =
    :func:`summarize` output), and below it the pixel / error share per contrast bin of the first candidate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(sets), figsize=(6.5 * len(sets), 8), squeeze=False)
    for col, (name, candidates) in enumerate(sets.items()):
        ax = axes[0, col]
        width = 0.8 / len(BARS)
        for k, (key, label) in enumerate(BARS):
            values = [min(c[key], 60.0) for c in candidates.values()]
            ax.bar(np.arange(len(candidates)) + (k - (len(BARS) - 1) / 2) * width, values, width, label=label)
        ax.axhline(target_db, color="k", linestyle="--", linewidth=1)
        ax.set_xticks(np.arange(len(candidates)), list(candidates))
        ax.set_ylim(10, 45)
        ax.set_ylabel("PSNR vs LD-Lite (dB, mean over frames)")
        ax.set_title(f"{name}: what-if PSNR (dashed: 30 dB target)")
        if col == 0:
            ax.legend(fontsize=7, loc="upper left")
        first, bins = next(iter(candidates)), next(iter(candidates.values()))["contrast_bins"]
        ax = axes[1, col]
        x = np.arange(len(bins))
        ax.bar(x - 0.2, [b["pixel_share"] for b in bins], 0.4, label="pixel share")
        ax.bar(x + 0.2, [b["error_share"] for b in bins], 0.4, label="squared-error share")
        ax.set_xticks(x, [f"{b['lo']:g}-{b['hi']:g}" if b["hi"] is not None else f">{b['lo']:g}" for b in bins])
        ax.set_xlabel("local contrast: max(IR, visible) local std, sigma 2 (gray levels)")
        ax.set_title(f"{name}: where {first}'s error is (RMSE per bin above bars)")
        for xi, b in zip(x, bins):
            ax.text(xi + 0.2, b["error_share"], f"{b['rmse']:.1f}", ha="center", va="bottom", fontsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def plot_maps(rows: list[dict], path, sigma: float = 8.0, limit: float = 40.0) -> None:
    """Error maps side by side, one row per frame: IR, visible, teacher, student, error ``s - t``, its
    low-pass (``sigma``) and residual, and the teacher's own change when its input is shifted by
    (4, 4) pixels; ``rows`` items have ``title`` and 0..255 planes ``ir, vis, t, s, shifted`` (the
    shifted input's teacher output, aligned to ``t``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = ("IR", "visible", "LD-Lite", "student", "error s - t", f"error low-pass sigma {sigma:g}", "error residual", "LD-Lite shifted (4, 4) - LD-Lite")
    fig, axes = plt.subplots(len(rows), len(titles), figsize=(2.6 * len(titles), 2.2 * len(rows) + 0.4), squeeze=False)
    for r, row in enumerate(rows):
        e = np.asarray(row["s"], dtype=np.float64) - row["t"]
        low = lowpass(e, sigma)
        for c, (image, gray) in enumerate(((row["ir"], True), (row["vis"], True), (row["t"], True), (row["s"], True), (e, False), (low, False), (e - low, False), (np.asarray(row["shifted"], dtype=np.float64) - row["t"], False))):
            ax = axes[r, c]
            ax.imshow(image, cmap="gray", vmin=0, vmax=255) if gray else ax.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(titles[c] if r == 0 else "", fontsize=8)
        axes[r, 0].set_ylabel(row["title"], fontsize=7)
    fig.suptitle(f"student vs LD-Lite; error colour scale +-{limit:g} gray levels (red: student brighter)", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
