"""The student's full-resolution composition in numpy, for bundles whose model is only ``analyze``.

Math (identical to :meth:`edgefusion.models.student.Student.compose`)::

    fused = clip(A0 + A1 * ir + A2 * vis + A3 * relu(ir - vis), 0, 1),  Ak = up4(Mk)

where ``M`` are the model's four maps at 1/4 resolution and ``up4`` is x4
bilinear upsampling with ``align_corners=False`` and edge clamping: output
row ``4j + p`` blends low-res rows ``j - 1, j`` (p = 0, 1) or ``j, j + 1``
(p = 2, 3) with weights ``(0.375, 0.625), (0.125, 0.875), (0.875, 0.125),
(0.625, 0.375)``; columns likewise.

The frame is processed in horizontal strips of a few low-res rows so that
the upsampled maps and temporaries of one strip stay in the CPU cache: the
frame itself is read and written about once, instead of once per operation;
strips can run on several threads. All scratch memory is allocated once per
frame shape (:class:`Composer`).
"""

from __future__ import annotations

import numpy as np

N_MAPS = 4
SCALE = 4
#: Upsampling phase ``p`` of output row/column ``4j + p``: (offset into the edge-padded low-res axis,
#: weight of the next sample); it blends padded samples ``o`` and ``o + 1`` (= unpadded ``j - 1 + o``, ``j + o``)
#: as ``v[o] + w * (v[o + 1] - v[o])``. Shared with the PyTorch student (:mod:`edgefusion.models.student`).
PHASES = ((0, 0.625), (0, 0.875), (1, 0.125), (1, 0.375))


class _Scratch:
    """Temporaries of one strip (allocated once per worker)."""

    def __init__(self, strip: int, width: int) -> None:
        rows = strip * SCALE
        self.wide = np.empty((N_MAPS, strip + 2, width), np.float32)  # x-upsampled maps of a strip (+1 row each side)
        self.dy = np.empty((N_MAPS, strip + 1, width), np.float32)
        self.a = np.empty((N_MAPS, rows, width), np.float32)
        self.t = np.empty((rows, width), np.float32)
        self.d = np.empty((rows, width), np.float32)


class BandWorkers:
    """Threads that process bands of one frame (numpy and ctypes calls release the GIL); none for one worker."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = None
        if workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="edgefusion-frame")

    def map(self, run, bands: list[tuple]) -> list:
        """``run(*band)`` for every band, at once on the threads when there are any; the results in band order."""
        if self._pool is None or len(bands) == 1:
            return [run(*band) for band in bands]
        return [job.result() for job in [self._pool.submit(run, *band) for band in bands]]

    def close(self) -> None:
        """Stop the worker threads (also done when the object is garbage-collected)."""
        pool, self._pool = getattr(self, "_pool", None), None  # also safe after a failed __init__
        if pool is not None:
            pool.shutdown(wait=False)

    def __del__(self) -> None:
        self.close()


class Composer(BandWorkers):
    """Reusable numpy composition for one frame shape ``(H, W)`` (multiples of 4).

    ``workers`` > 1 splits the strips over that many threads (numpy releases
    the GIL). One Composer must not be called from two threads at once.
    """

    def __init__(self, height: int, width: int, strip_rows: int = 16, workers: int = 1) -> None:
        if height % SCALE or width % SCALE:
            raise ValueError(f"frame {height}x{width} is not a multiple of {SCALE}")
        self.shape = (height, width)
        self.h, self.w = height // SCALE, width // SCALE
        self.strip = max(1, min(strip_rows, self.h))  # low-res rows per strip (64 frame rows by default)
        self._padded = np.empty((N_MAPS, self.h + 2, self.w + 2), np.float32)
        self._dx = np.empty((N_MAPS, self.h + 2, self.w + 1), np.float32)
        starts = list(range(0, self.h, self.strip))
        workers = max(1, min(workers, len(starts)))
        self._bands = [starts[i::workers] for i in range(workers)]
        self._scratch = [_Scratch(self.strip, width) for _ in range(workers)]
        super().__init__(workers)

    def __call__(self, ir: np.ndarray, vis: np.ndarray, maps: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Compose ``out`` (H, W) from planes ``ir``, ``vis`` (H, W) and ``maps`` (4, H/4, W/4).

        Uses ``relu(ir - vis) = max(ir, vis) - vis``: the low-res map of ``vis``
        becomes ``M2 - M3`` (upsampling is linear), saving one full-res operation.
        """
        self._pad(maps)
        self.map(self._band, [(b, s, ir, vis, out) for b, s in zip(self._bands, self._scratch)])
        return out

    def _band(self, starts: list[int], scratch: _Scratch, ir: np.ndarray, vis: np.ndarray, out: np.ndarray) -> None:
        for j0 in starts:
            j1 = min(j0 + self.strip, self.h)
            n = j1 - j0
            wide, dy = scratch.wide[:, : n + 2], scratch.dy[:, : n + 1]
            self._upsample_columns(j0, j1, wide)
            np.subtract(wide[:, 1:], wide[:, :-1], out=dy)
            a, t, d = scratch.a[:, : n * SCALE], scratch.t[: n * SCALE], scratch.d[: n * SCALE]
            a4 = a.reshape(N_MAPS, n, SCALE, -1)
            for p, (o, weight) in enumerate(PHASES):
                np.multiply(dy[:, o : o + n], np.float32(weight), out=a4[:, :, p])
                np.add(a4[:, :, p], wide[:, o : o + n], out=a4[:, :, p])
            rows = slice(j0 * SCALE, j1 * SCALE)
            x, y = ir[rows], vis[rows]
            np.maximum(x, y, out=d)
            np.multiply(d, a[3], out=d)
            np.multiply(x, a[1], out=t)
            np.add(d, t, out=d)
            np.multiply(y, a[2], out=t)
            np.add(d, t, out=d)
            np.add(d, a[0], out=d)
            np.clip(d, 0.0, 1.0, out=out[rows])

    def _pad(self, maps: np.ndarray) -> None:
        """Edge-pad the low-res maps by one sample, fold ``M2 - M3``, and take column differences."""
        p = self._padded
        p[:, 1:-1, 1:-1] = maps
        p[2, 1:-1, 1:-1] -= maps[3]
        p[:, 1:-1, 0] = p[:, 1:-1, 1]
        p[:, 1:-1, -1] = p[:, 1:-1, -2]
        p[:, 0] = p[:, 1]
        p[:, -1] = p[:, -2]
        np.subtract(p[:, :, 1:], p[:, :, :-1], out=self._dx)

    def _upsample_columns(self, j0: int, j1: int, wide: np.ndarray) -> None:
        """x4 along columns of padded low-res rows ``j0 .. j1 + 1`` into ``wide``."""
        rows = slice(j0, j1 + 2)
        p, dx = self._padded[:, rows], self._dx[:, rows]
        wide4 = wide.reshape(N_MAPS, j1 - j0 + 2, self.w, SCALE)
        for q, (o, weight) in enumerate(PHASES):
            np.multiply(dx[:, :, o : o + self.w], np.float32(weight), out=wide4[..., q])
            wide4[..., q] += p[:, :, o : o + self.w]
