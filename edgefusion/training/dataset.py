"""Training crops of IR/visible pairs, reproducible from (seed, step, slot).

Pairs come from :func:`edgefusion.io.pairs.find_pairs` and are normalized by
:func:`edgefusion.preprocess.prepare_pair` (the same planes the deployed model
sees). Each item is a dict ``{"ir", "vis"}`` of float32 tensors (1, crop, crop)
in [0, 1]: a random square crop with mild affine jitter (zoom, rotation,
shear, translation) and flips, the same geometry for both planes; with
``min_std`` a crop where either plane's standard deviation is below it is
re-drawn (at most :data:`MAX_REDRAWS` draws).

Randomness never comes from global state: an item is requested as
``(pair_index, item_seed)`` and all its augmentation draws from a generator
seeded with ``item_seed``. :class:`StepBatchSampler` derives the indices and
seeds of step ``s`` from the run seed alone, so a resumed run sees exactly the
batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, DistributedSampler, Sampler

from edgefusion import preprocess
from edgefusion.errors import UserError
from edgefusion.io.pairs import Pair, find_pairs, read_pair
from edgefusion.progress import progress
from edgefusion.training.recipe import DataConfig


#: Crops drawn at most per item when ``min_std`` rejects them; the last one is used (flat images never loop forever).
MAX_REDRAWS = 20


class PairCrops(Dataset):
    """Augmented crops of the pairs under ``root`` (a folder with ``ir/`` and ``vi/``).

    ``progress``: show the bar of the pair check (callers pass ``place.main``: one bar per run, not per rank).
    """

    def __init__(self, root: str | os.PathLike, config: DataConfig, pairs: list[Pair] | None = None, progress: bool = True):
        self.pairs = pairs if pairs is not None else find_pairs(root)
        if not self.pairs:
            raise UserError(f"no training pairs in {root}")
        self.config = config
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._check_every_pair(progress)

    def _check_every_pair(self, bar: bool) -> None:
        """Read and prepare every pair once (kept when caching), so that a truncated image or a size mismatch
        stops the run before training starts, not at the step that first draws it."""
        for index in progress(range(len(self.pairs)), enabled=bar, desc="check pairs", unit="pair"):
            self.planes(index)

    def __len__(self) -> int:
        return len(self.pairs)

    def planes(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The prepared (ir, vis_y) float32 planes of pair ``index`` (cached when configured)."""
        if index in self._cache:
            return self._cache[index]
        prepared = preprocess.prepare_pair(*read_pair(self.pairs[index]))
        planes = (prepared.ir, prepared.vis_y)
        if self.config.cache:
            self._cache[index] = planes
        return planes

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key
        ir, vis = self.planes(index)
        gen = torch.Generator().manual_seed(int(seed))
        stack = torch.from_numpy(np.stack([ir, vis]))  # (2, H, W)
        for _ in range(MAX_REDRAWS):
            crop = augment_crop(stack, self.config, gen)
            if float(crop.std(dim=(1, 2)).min()) >= self.config.min_std:
                break
        return {"ir": crop[0:1].contiguous(), "vis": crop[1:2].contiguous()}


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def augment_crop(planes: torch.Tensor, config: DataConfig, gen: torch.Generator) -> torch.Tensor:
    """One augmented ``config.crop``-square crop of ``planes`` (C, H, W); all channels share geometry.

    An axis-aligned window position is drawn uniformly over the image, then the
    window is resampled through a small random affine map about its centre
    (zoom, rotation, shear, translation; bilinear, reflection beyond the image
    borders, which also covers images smaller than the crop), then flipped.
    """
    size = config.crop
    _, h, w = planes.shape
    left = int(torch.randint(0, max(w - size, 0) + 1, (), generator=gen))
    top = int(torch.randint(0, max(h - size, 0) + 1, (), generator=gen))
    angle = math.radians(_uniform(gen, -config.rotate_deg, config.rotate_deg))
    shear = math.radians(_uniform(gen, -config.shear_deg, config.shear_deg))
    zoom = _uniform(gen, 1 - config.scale_jitter, 1 + config.scale_jitter)
    tx, ty = (_uniform(gen, -config.translate, config.translate) for _ in range(2))
    # Window centre in pixel-edge units (centred on the image when it is smaller than the crop).
    cx = (left + size / 2 if w >= size else w / 2) + tx * size
    cy = (top + size / 2 if h >= size else h / 2) + ty * size
    # Output coords (normalized to the crop) -> pixel offsets -> image coords (normalized, align_corners=False).
    cos, sin = math.cos(angle), math.sin(angle)
    linear = torch.tensor([[cos, -sin], [sin, cos]], dtype=torch.float64) @ torch.tensor([[1.0, math.tan(shear)], [0.0, 1.0]], dtype=torch.float64)
    linear = linear * (size / zoom) / torch.tensor([[w], [h]], dtype=torch.float64)
    shift = torch.tensor([[2 * cx / w - 1], [2 * cy / h - 1]], dtype=torch.float64)
    theta = torch.cat([linear, shift], dim=1)[None].float()
    grid = F.affine_grid(theta, [1, planes.shape[0], size, size], align_corners=False)
    crop = F.grid_sample(planes[None], grid, mode="bilinear", padding_mode="reflection", align_corners=False)[0]

    if float(torch.rand((), generator=gen)) < config.hflip:
        crop = crop.flip(-1)
    if float(torch.rand((), generator=gen)) < config.vflip:
        crop = crop.flip(-2)
    return crop.clamp_(0.0, 1.0)


def item_seed(seed: int, step: int, slot: int) -> int:
    """The augmentation seed of global batch position ``slot`` at ``step`` (63-bit, deterministic)."""
    return int(np.random.SeedSequence([seed, step, slot]).generate_state(1, np.uint64)[0] >> np.uint64(1))


class StepBatchSampler(Sampler):
    """Batches of ``(pair_index, item_seed)`` for steps ``start_step .. steps-1`` of one rank.

    Pair order is :class:`torch.utils.data.DistributedSampler`'s (shuffled per
    epoch with ``seed + epoch``, partitioned over ranks), consumed as an endless
    stream: step ``s`` takes stream items ``s*b .. s*b+b-1`` where ``b`` is the
    per-rank batch. Nothing depends on earlier steps, so a run resumes at any step.
    """

    def __init__(self, dataset: Dataset, batch_per_rank: int, steps: int, seed: int, start_step: int = 0, rank: int = 0, world: int = 1):
        self.order = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.batch, self.steps, self.seed, self.start = batch_per_rank, steps, seed, start_step
        self.rank, self.world = rank, world
        self._epoch_cache: tuple[int, list[int]] | None = None

    def __len__(self) -> int:
        return max(0, self.steps - self.start)

    def _epoch(self, epoch: int) -> list[int]:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            self.order.set_epoch(epoch)
            self._epoch_cache = (epoch, list(iter(self.order)))
        return self._epoch_cache[1]

    def batch_at(self, step: int) -> list[tuple[int, int]]:
        """The (pair_index, item_seed) list of this rank at ``step``."""
        per_epoch = len(self.order)
        out = []
        for i in range(self.batch):
            position = step * self.batch + i
            index = self._epoch(position // per_epoch)[position % per_epoch]
            out.append((index, item_seed(self.seed, step, self.rank * self.batch + i)))
        return out

    def __iter__(self):
        for step in range(self.start, self.steps):
            yield self.batch_at(step)
