"""Separable correlation filters in numpy alone, with scipy.ndimage's conventions.

The base install (numpy + Pillow) must run the metrics and baselines, so the
few filters they need live here instead of coming from scipy. Conventions
follow ``scipy.ndimage.correlate1d`` with ``origin=0``: weights of odd length
``n`` are centred on their middle tap, ``out[i] = sum_k w[k] * x[i + k - n // 2]``
(correlation; a convolution passes reversed weights). Arithmetic is float64,
in scipy's order of operations (so results agree with scipy's to the last bit
or nearly); the result keeps a float32 or float64 input's dtype (float64
otherwise), so a multi-axis filter of a float32 image rounds to float32 after
every axis, as scipy does.

Border modes, by their scipy.ndimage names:

* ``"reflect"``: ``dcba|abcd|dcba`` (edge sample repeated; ``np.pad`` "symmetric");
* ``"mirror"``: ``dcb|abcd|cba`` (edge sample not repeated; ``np.pad`` "reflect");
* ``"constant"``: zeros outside;
* ``"valid"``: no padding; the axis shrinks by ``n - 1`` (to 0 at least).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

_NP_PAD_MODES = {"reflect": "symmetric", "mirror": "reflect", "constant": "constant"}
MODES = (*_NP_PAD_MODES, "valid")

_Taps = Callable[[int], np.ndarray]


def _along(x: np.ndarray, n: int, axis: int, mode: str, combine: Callable[[_Taps, int], np.ndarray]) -> np.ndarray:
    """Pad ``x`` for an ``n``-tap window on ``axis`` and return ``combine(tap, length)``.

    ``tap(k)`` is the float64 view whose element ``i`` is the window's ``k``-th
    sample for output ``i``; ``length`` is the output size along ``axis``.
    """
    x = np.asarray(x)
    if mode not in MODES:
        raise ValueError(f"unknown border mode {mode!r}; choose one of {', '.join(MODES)}")
    out_dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    data = x.astype(np.float64, copy=False)
    axis = axis % data.ndim
    if mode != "valid" and data.shape[axis] > 0:
        widths = [(0, 0)] * data.ndim
        widths[axis] = (n // 2, n // 2)
        data = np.pad(data, widths, mode=_NP_PAD_MODES[mode])
    length = max(data.shape[axis] - n + 1, 0)
    if length == 0:
        shape = list(data.shape)
        shape[axis] = 0
        return np.zeros(shape, dtype=out_dtype)

    return combine(lambda k: _part(data, axis, k, k + length), length).astype(out_dtype, copy=False)


def correlate1d(x: np.ndarray, weights: Sequence[float], axis: int, mode: str) -> np.ndarray:
    """Correlate ``x`` with odd-length ``weights`` along ``axis`` (see the module conventions)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size % 2 == 0:
        raise ValueError(f"weights must be 1-D of odd length, got shape {w.shape}")
    n, r = w.size, w.size // 2
    # scipy's shortcut for (anti)symmetric weights: combine the two samples of a pair, multiply once
    pair = np.add if np.array_equal(w[:r], w[:r:-1]) else np.subtract if np.array_equal(w[:r], -w[:r:-1]) else None

    def combine(tap: _Taps, length: int) -> np.ndarray:
        if pair is None:  # general weights: last tap first, then the others in order
            out = tap(n - 1) * w[n - 1]
            for k in range(n - 1):
                out += tap(k) * w[k]
            return out
        # (anti)symmetric weights: centre first, then each outer pair, outermost first
        out, term = tap(r) * w[r], np.empty_like(tap(r))
        for k in range(r):
            pair(tap(k), tap(n - 1 - k), out=term)
            term *= w[k]
            out += term
        return out

    return _along(x, n, axis, mode, combine)


def uniform_filter1d(x: np.ndarray, size: int, axis: int, mode: str = "reflect") -> np.ndarray:
    """Mean over ``size`` (odd) samples along ``axis``, like ``scipy.ndimage.uniform_filter1d``.

    A running sum, in scipy's order: the first window is summed sample by
    sample, each next sum adds ``entering - leaving``; every sum is divided by ``size``.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"uniform filter size must be odd and positive, got {size}")

    def combine(tap: _Taps, length: int) -> np.ndarray:
        sums = np.empty_like(tap(0))
        first = _part(sums, axis, 0, 1)
        first[...] = _part(tap(0), axis, 0, 1)
        for k in range(1, size):
            first += _part(tap(k), axis, 0, 1)
        np.subtract(_part(tap(size - 1), axis, 1, length), _part(tap(0), axis, 0, length - 1), out=_part(sums, axis, 1, length))
        _running_sum(sums, axis)
        sums /= size
        return sums

    return _along(x, size, axis, mode, combine)


def _running_sum(a: np.ndarray, axis: int) -> np.ndarray:
    """In-place sequential running sum along ``axis`` (``np.cumsum``'s order; faster on leading axes)."""
    if axis == a.ndim - 1:
        return np.cumsum(a, axis=axis, out=a)
    lines = np.moveaxis(a, axis, 0)
    for i in range(1, lines.shape[0]):
        lines[i] += lines[i - 1]
    return a


def _part(a: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    """``a[start:stop]`` along ``axis`` (a view)."""
    index = [slice(None)] * a.ndim
    index[axis] = slice(start, stop)
    return a[tuple(index)]


def correlate_separable(x: np.ndarray, weights: Sequence[Sequence[float]], mode: str) -> np.ndarray:
    """Correlate with ``weights[0]`` along axis 0, then ``weights[1]`` along axis 1, and so on."""
    for axis, w in enumerate(weights):
        x = correlate1d(x, w, axis, mode)
    return x


def uniform_filter(x: np.ndarray, size: int, mode: str = "reflect") -> np.ndarray:
    """Mean over a ``size`` x ... x ``size`` window, axis 0 first (``scipy.ndimage.uniform_filter``)."""
    for axis in range(np.ndim(x)):
        x = uniform_filter1d(x, size, axis, mode)
    return x


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Sampled Gaussian of standard deviation ``sigma``, radius ``int(truncate * sigma + 0.5)``, sum 1."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 / (sigma * sigma) * (x * x))
    return g / g.sum()


def gaussian_filter(x: np.ndarray, sigma: float, truncate: float = 4.0, mode: str = "reflect") -> np.ndarray:
    """Separable Gaussian blur on every axis (``scipy.ndimage.gaussian_filter`` with one ``sigma``)."""
    return correlate_separable(x, [gaussian_kernel1d(sigma, truncate)] * np.ndim(x), mode)
