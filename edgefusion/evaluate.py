"""Score fusions of a paired dataset: per-image and mean metrics, reports and IR | visible | fused strips.

Scoring conventions (see :mod:`edgefusion.metrics`): sources and fused image
are reduced to rounded BT.601 luma on 0..255. 8-bit sources are scored as
stored; 16-bit IR frames are scored as the fusers see them, i.e. after the
thermal percentile stretch of :mod:`edgefusion.preprocess`, rounded to 8 bits.
The fused image is scored as written (uint8), never stretched, unless
``stretch_fused`` asks for the min-max stretch some papers apply.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgefusion import preprocess
from edgefusion.errors import UserError
from edgefusion.runtime.frame import PlaneFuser, fuse_arrays
from edgefusion.io.atomic import staged_folder, write_text
from edgefusion.io.images import write_image
from edgefusion.io.pairs import Pair, naming, read_pair

FusedFor = Callable[[Pair, np.ndarray, np.ndarray], np.ndarray]
"""Gives the fused uint8 image of a pair from its decoded (IR, visible) arrays."""

_GAP = 4  # white pixels between the panels of a grid strip


def fuse_pair(fuser: PlaneFuser, pair: Pair, ir: np.ndarray, vis: np.ndarray, stretch: preprocess.ThermalStretch) -> np.ndarray:
    """Fused uint8 image of a decoded pair (:func:`fuse_arrays`); input errors name the pair's files."""
    with naming(pair):
        return fuse_arrays(fuser, ir, vis, stretch)


def source_u8(image: np.ndarray, stretch: preprocess.ThermalStretch = preprocess.DEFAULT_STRETCH) -> np.ndarray:
    """A source image on the 8-bit scale: uint8 as stored, uint16 thermal-stretched and rounded."""
    if image.dtype == np.uint8:
        return image
    return preprocess.to_uint8(preprocess.to_unit_float(image, stretch))


def min_max_stretch(plane: np.ndarray) -> np.ndarray:
    """Map a plane's min..max to 0..255 (rounded); a constant plane is returned unchanged."""
    plane = np.asarray(plane, dtype=np.float64)
    lo, hi = plane.min(), plane.max()
    if hi <= lo:
        return plane
    return np.rint((plane - lo) * (255.0 / (hi - lo)))


def score(
    ir: np.ndarray,
    vis: np.ndarray,
    fused: np.ndarray,
    stretch: preprocess.ThermalStretch = preprocess.DEFAULT_STRETCH,
    stretch_fused: bool = False,
) -> dict[str, float]:
    """All metrics of one fusion (sources as decoded, fused as uint8)."""
    from edgefusion import metrics
    from edgefusion.io.color import luma_u8

    fused_plane = luma_u8(fused)
    if stretch_fused:
        fused_plane = min_max_stretch(fused_plane)
    return metrics.compute_all(source_u8(ir, stretch), source_u8(vis, stretch), fused_plane)


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def grid_strip(ir: np.ndarray, vis: np.ndarray, fused: np.ndarray, stretch: preprocess.ThermalStretch = preprocess.DEFAULT_STRETCH,
               more: tuple[np.ndarray, ...] = ()) -> np.ndarray:
    """IR | visible | fused (| each of ``more``) side by side as one uint8 RGB image, separated by white gaps."""
    panels = [_rgb(source_u8(ir, stretch)), _rgb(source_u8(vis, stretch)), _rgb(fused)] + [_rgb(m) for m in more]
    gap = np.full((panels[0].shape[0], _GAP, 3), 255, dtype=np.uint8)
    return np.concatenate([x for panel in panels for x in (panel, gap)][:-1], axis=1)


@dataclass
class Report:
    """Per-image metric values, in dataset order."""

    images: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Metric names, in the order of the first image."""
        return list(next(iter(self.images.values()), {}))

    @property
    def mean(self) -> dict[str, float]:
        """Mean of each metric over the images."""
        return {m: float(np.mean([values[m] for values in self.images.values()])) for m in self.names}

    def to_json(self) -> str:
        """``{"images": {name: {metric: value}}, "mean": {metric: value}}``."""
        return json.dumps({"images": self.images, "mean": self.mean}, indent=2) + "\n"

    def to_csv(self) -> str:
        """Header ``image,<metrics>``, one row per image, then a ``mean`` row."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["image", *self.names])
        for name, values in [*self.images.items(), ("mean", self.mean)]:
            writer.writerow([name, *(f"{values[m]:.6f}" for m in self.names)])
        return buffer.getvalue()

    def to_table(self) -> str:
        """Aligned text table: one row per image, a rule, then the mean row (4 decimals)."""
        rows = [(name, values) for name, values in self.images.items()] + [("mean", self.mean)]
        first = max(len("image"), *(len(name) for name, _ in rows))
        widths = {m: max(len(m), *(len(f"{v[m]:.4f}") for _, v in rows)) for m in self.names}
        header = "image".ljust(first) + "".join(f"  {m:>{widths[m]}}" for m in self.names)

        def line(name: str, values: dict[str, float]) -> str:
            return name.ljust(first) + "".join(f"  {values[m]:>{widths[m]}.4f}" for m in self.names)

        body = [line(name, values) for name, values in rows[:-1]]
        return "\n".join([header, *body, "-" * len(header), line(*rows[-1])]) + "\n"


def evaluate(
    pairs: list[Pair],
    fused_for: FusedFor,
    stretch: preprocess.ThermalStretch = preprocess.DEFAULT_STRETCH,
    stretch_fused: bool = False,
    grid_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Report:
    """Score every pair; grid strips (``<name>.png``) reach ``grid_dir`` only if all pairs succeed."""
    from edgefusion.progress import progress as progress_bar

    report = Report()
    with contextlib.ExitStack() as stack:
        stage = stack.enter_context(staged_folder(grid_dir)) if grid_dir is not None else None
        for pair in progress_bar(pairs, enabled=progress, desc="eval", unit="pair"):
            ir, vis = read_pair(pair)
            with naming(pair):
                check_scorable(ir)
                fused = fused_for(pair, ir, vis)
                if fused.shape[:2] != ir.shape[:2]:
                    raise UserError(f"fused image is {_size(fused)}, the sources are {_size(ir)} (WxH)")
            report.images[pair.name] = score(ir, vis, fused, stretch, stretch_fused)
            if stage is not None:
                write_image(stage / f"{pair.name}.png", grid_strip(ir, vis, fused, stretch))
    return report


def check_scorable(image: np.ndarray, who: str = "eval") -> None:
    """UserError when a source image is smaller than the metrics' SSIM window (``who``: the command, for the message)."""
    from edgefusion.metrics import SSIM_WINDOW

    if min(image.shape[:2]) < SSIM_WINDOW:
        raise UserError(f"the pair is {_size(image)} (WxH); {who} needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels (the SSIM window)")


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"


def write_report(report: Report, json_path: str | os.PathLike | None = None, csv_path: str | os.PathLike | None = None) -> None:
    """Write the JSON and/or CSV report atomically."""
    if json_path is not None:
        write_text(json_path, report.to_json())
    if csv_path is not None:
        write_text(csv_path, report.to_csv())
