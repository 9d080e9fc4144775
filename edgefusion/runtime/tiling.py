"""Overlapping tiles blended with smooth weights, for fixed-shape models and oversized frames.

A frame (already padded to the model's stride) is covered by tiles of the
model's shape. Tile starts are multiples of ``align`` (the model's stride, so
every tile sees the same pooling grid as the whole frame) and neighbours
overlap by at least ``overlap`` pixels.

Blending, per axis, inside the overlap ``[a, b)`` of two neighbours: the
first and last quarter of the overlap (the pixels next to a tile's own border,
where it lacks context) get weight 0 from that tile, the middle half a
raised-cosine ramp ``sin^2`` from one tile to the other, so the weights of
the two tiles sum to 1 there. 2-D weights are outer products, normalized by
their sum over all tiles. A model whose receptive-field radius is below
``overlap / 4`` therefore reproduces its untiled output exactly (up to float
rounding); larger receptive fields give smooth, seam-free transitions.

Inputs shared by every tile of a frame (a v2 student's frame statistics) are
bound into ``run`` by the caller (:class:`edgefusion.runtime.Fuser`), so each
tile sees the whole frame's context, not its own.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

#: ``run(ir, vis, out)`` on NCHW float32 (1, 1, th, tw) tiles.
TileRunner = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def axis_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Tile starts along one axis: multiples of ``align``, first 0, last ``length - tile``, gaps <= ``tile - overlap``."""
    if length <= tile:
        return [0]
    if tile - overlap < align:
        raise ValueError(f"tile {tile} minus overlap {overlap} must be at least the alignment {align}")
    if (length - tile) % align:
        raise ValueError(f"length {length} - tile {tile} is not a multiple of {align}")
    span = length - tile
    n = math.ceil(span / (tile - overlap)) + 1
    while True:
        starts = [align * round(i * span / (n - 1) / align) for i in range(n)]
        if max(b - a for a, b in zip(starts, starts[1:])) <= tile - overlap:
            return starts
        n += 1


def ramp(length: int) -> np.ndarray:
    """Weight of the *next* tile over an overlap of ``length``: 0 for the first quarter, sin^2 rise, 1 for the last quarter."""
    margin = length // 4
    inner = max(length - 2 * margin, 1)
    pos = (np.arange(length, dtype=np.float64) - margin + 0.5) / inner
    return np.sin(0.5 * np.pi * np.clip(pos, 0.0, 1.0)) ** 2


def axis_weights(starts: list[int], tile: int) -> list[np.ndarray]:
    """1-D blend weights (length ``tile``) of each tile along one axis."""
    weights = []
    for i, start in enumerate(starts):
        w = np.ones(tile, dtype=np.float64)
        if i > 0:
            shared = starts[i - 1] + tile - start
            w[:shared] *= ramp(shared)
        if i < len(starts) - 1:
            shared = start + tile - starts[i + 1]
            w[tile - shared :] *= 1.0 - ramp(shared)
        weights.append(w)
    return weights


class Tiler:
    """Runs a tile model over a (H, W) frame; all buffers allocated once for this frame shape.

    ``H >= th`` and ``W >= tw`` (pad smaller frames first). Not thread-safe.
    """

    def __init__(self, height: int, width: int, tile: tuple[int, int], overlap: int, align: int = 1) -> None:
        th, tw = tile
        if height < th or width < tw:
            raise ValueError(f"frame {height}x{width} is smaller than the tile {th}x{tw}")
        self.shape = (height, width)
        self.tile = (th, tw)
        ys, xs = axis_starts(height, th, overlap, align), axis_starts(width, tw, overlap, align)
        wy, wx = axis_weights(ys, th), axis_weights(xs, tw)
        total = np.zeros((height, width), dtype=np.float64)
        for y, a in zip(ys, wy):
            for x, b in zip(xs, wx):
                total[y : y + th, x : x + tw] += np.outer(a, b)
        self.tiles = [
            (y, x, (np.outer(a, b) / total[y : y + th, x : x + tw]).astype(np.float32))
            for y, a in zip(ys, wy)
            for x, b in zip(xs, wx)
        ]
        self._ir = np.empty((1, 1, th, tw), np.float32)
        self._vis = np.empty((1, 1, th, tw), np.float32)
        self._out = np.empty((1, 1, th, tw), np.float32)
        self._weighted = np.empty((th, tw), np.float32)

    def __call__(self, run: TileRunner, ir: np.ndarray, vis: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Fill ``out`` (H, W) with the blended tile outputs of ``run`` on planes ``ir``, ``vis`` (H, W)."""
        th, tw = self.tile
        out.fill(0.0)
        for y, x, weight in self.tiles:
            np.copyto(self._ir[0, 0], ir[y : y + th, x : x + tw])
            np.copyto(self._vis[0, 0], vis[y : y + th, x : x + tw])
            run(self._ir, self._vis, self._out)
            np.multiply(self._out[0, 0], weight, out=self._weighted)
            out[y : y + th, x : x + tw] += self._weighted
        return out
