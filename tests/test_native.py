"""C frame-path kernels (edgefusion/native/src/ef_kernels.c) against independent numpy expectations.

Every kernel is checked against numpy's own functions (np.percentile, np.pad,
np.rint), hand values, or the numpy runtime path it replaces
(preprocess, io.color, runtime.compose), at odd sizes; the frame path is
run with the kernels and with ``EDGEFUSION_NATIVE=0`` and must agree within
one gray level.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefusion import preprocess
from edgefusion.io import images
from edgefusion.io.color import rgb_to_ycbcr
from edgefusion.runtime import frame, native
from edgefusion.runtime.compose import Composer

SAMPLES = Path(__file__).resolve().parents[1] / "edgefusion" / "assets" / "samples"
ODD_SIZES = [(1, 1), (7, 5), (9, 13), (33, 18)]
SLOW_OK = settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="session")
def lib():
    found = native.kernels()
    if found is None:
        pytest.skip("native kernels unavailable (no C compiler, or EDGEFUSION_NATIVE=0)")
    return found


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _pad(h: int, w: int, m: int = 8) -> tuple[int, int]:
    return -(-h // m) * m, -(-w // m) * m


# ---------------------------------------------------------------- normalization


def test_u8_normalization_equals_numpy_division(lib):
    src = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = native.unit_u8(lib, src, np.empty((16, 16), np.float32))
    np.testing.assert_array_equal(out, src.astype(np.float32) / np.float32(255))


@SLOW_OK
@given(h=st.integers(1, 12), w=st.integers(1, 12), top=st.sampled_from([1, 7, 300, 65535]),
       low=st.floats(0, 49), high=st.floats(50, 100), seed=st.integers(0, 2**16))
def test_percentiles_equal_np_percentile(lib, h, w, top, low, high, seed):
    src = _rng(seed).integers(0, top + 1, (h, w), dtype=np.uint16)
    lo, hi = native.percentiles_u16(lib, src, low, high)
    assert (lo, hi) == tuple(np.percentile(src, [low, high]))


def test_percentiles_of_a_strided_view_and_rejected_bounds(lib):
    base = _rng(1).integers(0, 4000, (20, 30), dtype=np.uint16)
    view = base[3:17, 5:21]  # row stride 60 bytes, 16 samples per row
    assert native.percentiles_u16(lib, view, 0.5, 99.5) == tuple(np.percentile(view, [0.5, 99.5]))
    with pytest.raises(ValueError):
        native.percentiles_u16(lib, view, 60.0, 50.0)


@pytest.mark.parametrize("h,w", ODD_SIZES)
def test_uint16_stretch_matches_numpy(lib, h, w):
    src = _rng(h * w).integers(100, 16000, (h, w), dtype=np.uint16)
    out = native.stretch_u16(lib, src, 0.5, 99.5, np.empty((h, w), np.float32))
    np.testing.assert_allclose(out, preprocess.to_unit_float(src), atol=1e-7)


def test_constant_uint16_frame_maps_to_zero(lib):
    out = native.stretch_u16(lib, np.full((5, 4), 1234, np.uint16), 0.5, 99.5, np.ones((5, 4), np.float32))
    np.testing.assert_array_equal(out, 0.0)


# ---------------------------------------------------------------- color


@pytest.mark.parametrize("h,w", ODD_SIZES)
@pytest.mark.parametrize("order", [native.RGB, native.BGR])
def test_ycbcr_matches_io_color(lib, h, w, order):
    rgb = _rng(w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    y, cbcr = np.empty((h, w), np.float32), np.empty((2, h, w), np.float32)
    native.ycbcr_u8(lib, rgb if order == native.RGB else rgb[..., ::-1].copy(), order, y, cbcr)
    ref_y, ref_cbcr = rgb_to_ycbcr(rgb, scale=1.0 / 255.0)
    np.testing.assert_allclose(y, ref_y, atol=2e-7)
    np.testing.assert_allclose(cbcr, ref_cbcr, atol=2e-7)


def test_input_pass_luma_is_the_float32_formula_for_every_row_tail(lib):
    """The input pass's luma plane is (k0 p0 + k1 p1) + k2 p2 in float32 over the bytes p of a pixel in
    memory order, k = float32(BT.601 / 255) in that order, bit for bit, for widths 1..80 (every
    remainder of the 32- and 8-pixel steps) in both channel orders."""
    rgb_k = [np.float32(k / 255.0) for k in (0.299, 0.587, 0.114)]
    for w in range(1, 81):
        src = _rng(w).integers(0, 256, (3, w, 3), dtype=np.uint8)
        p0, p1, p2 = (src[..., i].astype(np.float32) for i in range(3))
        for order, k in ((native.RGB, rgb_k), (native.BGR, rgb_k[::-1])):
            planes = np.zeros((2, 8, w + 8), np.float32)
            native.prepare_u8(lib, None, src, planes[0], planes[1], with_stats=False, order=order)
            np.testing.assert_array_equal(planes[1, :3, :w], (k[0] * p0 + k[1] * p1) + k[2] * p2, err_msg=f"w={w} order={order}")


def test_identical_channels_are_detected(lib):
    gray = _rng(2).integers(0, 256, (6, 7), dtype=np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    assert native.channels_identical(lib, rgb)
    rgb[5, 6, 2] ^= 1  # one sample of the last pixel differs
    assert not native.channels_identical(lib, rgb)


# ---------------------------------------------------------------- frame statistics


def test_frame_stats_hand_values(lib):
    ir = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)  # mean 0.5, std 0.5, |dx| = |dy| = 1
    vis = np.array([[0.25, 0.25], [0.75, 0.75]], np.float32)  # mean 0.5, std 0.25, dx 0, dy 0.5
    np.testing.assert_allclose(native.frame_stats(lib, ir, vis), [0.5, 0.5, 0.5, 0.25, 2.0, 0.5], atol=1e-7)


def test_frame_stats_axes_of_length_one(lib):
    row = np.array([[0.0, 0.5, 1.0]], np.float32)  # no vertical term
    np.testing.assert_allclose(native.frame_stats(lib, row, row)[4:], [0.5, 0.5], atol=1e-7)
    one = np.array([[0.3]], np.float32)
    np.testing.assert_allclose(native.frame_stats(lib, one, one), [0.3, 0.0, 0.3, 0.0, 0.0, 0.0], atol=1e-7)


def _stats64(x: np.ndarray) -> list[float]:
    x = x.astype(np.float64)
    gx = np.abs(np.diff(x, axis=1)).mean() if x.shape[1] > 1 else 0.0
    gy = np.abs(np.diff(x, axis=0)).mean() if x.shape[0] > 1 else 0.0
    return [x.mean(), x.std(), gx + gy]


@pytest.mark.parametrize("h,w", ODD_SIZES + [(64, 97), (5, 300)])
def test_frame_stats_match_float64_numpy(lib, h, w):
    rng = _rng(h + w)
    ir = rng.random((h, w), dtype=np.float32)
    vis = (0.5 + 1e-3 * rng.standard_normal((h, w))).astype(np.float32)  # small std: no cancellation allowed
    (m_i, s_i, g_i), (m_v, s_v, g_v) = _stats64(ir), _stats64(vis)
    np.testing.assert_allclose(native.frame_stats(lib, ir, vis), [m_i, s_i, m_v, s_v, g_i, g_v], atol=1e-6, rtol=0)


@pytest.mark.parametrize("h,w", ODD_SIZES + [(64, 97), (5, 300), (2, 9000)])
def test_frame_stats_from_uint8_ir_match_float64_numpy(lib, h, w):
    rng = _rng(h * w)
    ir = rng.integers(0, 256, (h, w), dtype=np.uint8)
    ir[:, : w // 2] = ir[:, : w // 2] // 64 + 100  # a low-contrast half: small differences, small std
    vis = rng.random((h, w), dtype=np.float32)
    (m_i, s_i, g_i), (m_v, s_v, g_v) = _stats64(ir / 255.0), _stats64(vis)
    np.testing.assert_allclose(native.frame_stats_u8(lib, ir, vis), [m_i, s_i, m_v, s_v, g_i, g_v], atol=1e-6, rtol=0)


def test_frame_stats_from_uint8_ir_hand_values(lib):
    ir = np.array([[0, 255], [255, 0]], np.uint8)  # as test_frame_stats_hand_values
    vis = np.array([[0.25, 0.25], [0.75, 0.75]], np.float32)
    np.testing.assert_allclose(native.frame_stats_u8(lib, ir, vis), [0.5, 0.5, 0.5, 0.25, 2.0, 0.5], atol=1e-7)
    strided = np.full((3, 80), 7, np.uint8)[:, ::1][:, :40]  # row stride 80 bytes, 40 pixels
    np.testing.assert_allclose(native.frame_stats_u8(lib, strided, np.zeros((3, 40), np.float32))[:2], [7 / 255, 0.0],
                               atol=1e-7)


def test_frame_stats_match_the_contract_module(lib):
    contract = pytest.importorskip("edgefusion.runtime.frame_stats")
    pair = preprocess.prepare_pair(images.read_image(SAMPLES / "ir" / "tno_08.png"),
                                   images.read_image(SAMPLES / "vi" / "tno_08.png"))
    expected = contract.frame_stats(pair.ir, pair.vis_y)
    np.testing.assert_allclose(native.frame_stats(lib, pair.ir, pair.vis_y), expected, atol=1e-6, rtol=0)
    ir_u8 = images.read_image(SAMPLES / "ir" / "tno_08.png")
    if ir_u8.dtype == np.uint8 and ir_u8.ndim == 2:
        np.testing.assert_allclose(native.frame_stats_u8(lib, ir_u8, pair.vis_y), expected, atol=1e-6, rtol=0)


def _spy_stats(monkeypatch) -> list[str]:
    """Record which implementation :func:`native.frame_stats_auto` calls ("kernel" or "numpy")."""
    calls: list[str] = []
    kernel, numpy_stats = native.frame_stats, native.numpy_frame_stats
    monkeypatch.setattr(native, "frame_stats", lambda *a: calls.append("kernel") or kernel(*a))
    monkeypatch.setattr(native, "numpy_frame_stats", lambda *a: calls.append("numpy") or numpy_stats(*a))
    return calls


def test_frame_stats_auto_runs_the_kernel_when_built(lib, monkeypatch):
    """The statistics TorchFuser and the runtime Fuser take: with the kernels built, the C kernel, for a crop with
    contiguous rows (read in place), a column-strided view and float64 planes alike; within 1e-6 of float64 numpy."""
    calls = _spy_stats(monkeypatch)
    rng = _rng(7)
    ir, vis = rng.random((2, 41, 70), dtype=np.float32)
    for a, b in ((ir[3:, 5:66], vis[3:, 5:66]), (ir[:, ::2], vis[:, ::2]), (ir[3:].astype(np.float64), vis[3:])):
        calls.clear()
        (m_i, s_i, g_i), (m_v, s_v, g_v) = _stats64(a), _stats64(b)
        np.testing.assert_allclose(native.frame_stats_auto(a, b), [m_i, s_i, m_v, s_v, g_i, g_v], atol=1e-6, rtol=0)
        assert calls == ["kernel"]


def test_frame_stats_auto_falls_back_to_numpy(monkeypatch):
    """Without the kernels (EDGEFUSION_NATIVE=0; no compiler) numpy's definition, and its message for bad planes."""
    monkeypatch.setenv("EDGEFUSION_NATIVE", "0")
    calls = _spy_stats(monkeypatch)
    ir, vis = _rng(8).random((2, 23, 31), dtype=np.float32)
    (m_i, s_i, g_i), (m_v, s_v, g_v) = _stats64(ir), _stats64(vis)
    np.testing.assert_allclose(native.frame_stats_auto(ir, vis), [m_i, s_i, m_v, s_v, g_i, g_v], atol=1e-6, rtol=0)
    assert calls == ["numpy"]
    with pytest.raises(ValueError, match="non-empty"):
        native.frame_stats_auto(ir[:0], vis[:0])


def test_input_pass_stats_of_a_large_nearly_constant_frame_equal_hand_values(lib):
    """4000x3000 (12 M pixels: float32 running sums would lose the small std): the input pass's
    statistics against values worked out by hand from the two levels of each plane."""
    h, w = 3000, 4000
    yy, xx = np.indices((h, w))
    ir = np.where((yy + xx) % 2 == 0, 100, 200).astype(np.uint8)  # checkerboard: every difference is 100
    vis = np.empty((h, w, 3), np.uint8)
    vis[:] = (120, 130, 140)
    vis[:, -1] = (121, 130, 140)  # the last column one red level up: std ~2e-5, grad only there
    a, b = (float(v) for v in rgb_to_ycbcr(np.array([[[120, 130, 140], [121, 130, 140]]], np.uint8), scale=1 / 255)[0][0])
    planes = np.empty((2, h, w), np.float32)
    stats = native.prepare_u8(lib, ir, vis, planes[0], planes[1], with_stats=True)
    p = 1.0 / w  # share of the last column
    expected = [150 / 255, 50 / 255, a + p * (b - a), abs(b - a) * np.sqrt(p * (1 - p)), 2 * 100 / 255, abs(b - a) / (w - 1)]
    np.testing.assert_allclose(stats, expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(stats[3], expected[3], rtol=1e-3)  # the small std itself, not just within 1e-6 of 0


@pytest.mark.parametrize("h,w,workers,vis_channels,ir_bits", [(70, 23, 2, 3, 8), (70, 23, 3, 1, 8), (33, 18, 2, 3, 16),
                                                               (17, 9, 2, 3, 8), (100, 41, 4, 3, 8)])
def test_input_pass_in_bands_on_threads(lib, h, w, workers, vis_channels, ir_bits):
    """Bands of rows on threads (strips of 16, a band's first strip finished after its neighbour): the planes numpy
    makes (IR / 255 or the stretched plane, BT.601 luma, edge padding), the statistics of frame_stats.py, and the
    bytes of one pass, for any number of bands (h = 17: fewer strips than threads)."""
    from edgefusion.runtime.frame_stats import frame_stats

    rng = _rng(h + workers)
    ph, pw = _pad(h, w)
    ir = rng.integers(0, 256, (h, w), dtype=np.uint8)
    vis = rng.integers(0, 256, (h, w, 3) if vis_channels == 3 else (h, w), dtype=np.uint8)
    ir_plane = ir.astype(np.float32) / np.float32(255)
    if ir_bits == 16:  # a stretched 16-bit IR plane is given in place (ir None)
        ir_plane = rng.random((h, w), dtype=np.float32)
    luma = rgb_to_ycbcr(vis, scale=1 / 255)[0] if vis_channels == 3 else vis.astype(np.float32) / np.float32(255)
    results = []
    for pool in (None, native.Composer(lib, ph, pw, workers=workers)):
        planes = np.full((2, ph, pw), np.nan, np.float32)
        planes[0, :h, :w] = ir_plane
        stats = native.prepare_u8(lib, ir if ir_bits == 8 else None, vis, planes[0], planes[1], with_stats=True, workers=pool)
        np.testing.assert_array_equal(planes[0], np.pad(ir_plane, ((0, ph - h), (0, pw - w)), mode="edge"))
        np.testing.assert_allclose(planes[1], np.pad(luma, ((0, ph - h), (0, pw - w)), mode="edge"), atol=1e-6, rtol=0)
        np.testing.assert_allclose(stats, frame_stats(ir_plane, luma), atol=1e-6, rtol=0)
        results.append((planes, stats))
        without = np.full((2, ph, pw), np.nan, np.float32)  # v1 bundles: no statistics, the same planes
        without[0, :h, :w] = ir_plane
        assert native.prepare_u8(lib, ir if ir_bits == 8 else None, vis, without[0], without[1], with_stats=False, workers=pool) is None
        np.testing.assert_array_equal(without, planes)
        if pool is not None:
            pool.close()
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_kernels_isa_follows_the_loader_flags(lib):
    """The loaded kernels run AVX2 exactly when the loader's flags make the compiler target AVX2 (its predefined macros)."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    macros = subprocess.run([compiler, *native._flags(), "-dM", "-E", "-x", "c", os.devnull], capture_output=True, text=True).stdout
    assert native.kernels_isa() == ("avx2" if "#define __AVX2__ 1" in macros else "portable")


def test_band_rows_share_whole_strips():
    assert native.band_rows(70, 2, 16) == [(0, 32), (32, 70)]
    assert native.band_rows(70, 3, 16) == [(0, 16), (16, 48), (48, 70)]
    assert native.band_rows(17, 4, 16) == [(0, 16), (16, 17)]
    assert native.band_rows(8, 2, 4) == [(0, 4), (4, 8)]
    assert native.band_rows(5, 1, 4) == [(0, 5)]


# ---------------------------------------------------------------- padding


@pytest.mark.parametrize("h,w", ODD_SIZES)
def test_pad_edge_equals_np_pad(lib, h, w):
    ph, pw = _pad(h, w)
    plane = _rng(3).random((h, w), dtype=np.float32)
    buf = np.full((ph, pw), np.nan, np.float32)
    buf[:h, :w] = plane
    native.pad_edge(lib, buf, w, h)
    np.testing.assert_array_equal(buf, np.pad(plane, ((0, ph - h), (0, pw - w)), mode="edge"))


# ---------------------------------------------------------------- composition and color restore


def _maps(ph: int, pw: int, seed: int) -> np.ndarray:
    return (0.6 * _rng(seed).standard_normal((4, ph // 4, pw // 4))).astype(np.float32)


@pytest.mark.parametrize("h,w", ODD_SIZES + [(40, 56)])
def test_composition_matches_numpy_composer(lib, h, w):
    ph, pw = _pad(h, w)
    rng = _rng(h * 31 + w)
    ir, vis = rng.random((ph, pw), dtype=np.float32), rng.random((ph, pw), dtype=np.float32)
    maps = _maps(ph, pw, h)
    expected = Composer(ph, pw)(ir, vis, maps, np.empty((ph, pw), np.float32))
    out = np.full((ph + 2, pw + 3), -1.0, np.float32)  # a wider buffer: its row stride differs from the planes'
    native.Composer(lib, ph, pw)(ir, vis, maps, out[:h, :w])
    np.testing.assert_allclose(out[:h, :w], expected[:h, :w], atol=1e-6)
    assert (out[h:] == -1).all() and (out[:, w:] == -1).all()  # nothing written outside the crop


@pytest.mark.parametrize("h,w,workers", [(37, 53, 2), (37, 53, 3), (9, 13, 2), (64, 24, 4)])
def test_composition_in_bands_on_threads_equals_one_pass(lib, h, w, workers):
    ph, pw = _pad(h, w)
    rng = _rng(workers)
    ir, vis = rng.random((ph, pw), dtype=np.float32), rng.random((ph, pw), dtype=np.float32)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    maps = _maps(ph, pw, w)
    one, many = native.Composer(lib, ph, pw), native.Composer(lib, ph, pw, workers=workers)
    np.testing.assert_array_equal(many(ir, vis, maps, np.empty((h, w), np.float32)), one(ir, vis, maps, np.empty((h, w), np.float32)))
    color = native.chroma(src=rgb)
    np.testing.assert_array_equal(many.to_u8(ir, vis, maps, color, np.empty((h, w, 3), np.uint8)),
                                  one.to_u8(ir, vis, maps, color, np.empty((h, w, 3), np.uint8)))
    many.close()


def test_uint8_rounding_is_half_to_even(lib):
    values = np.arange(511, dtype=np.float32) / np.float32(510)  # every half step of 1/255
    y = np.concatenate([values, [-0.5, 1.5, 0.0]]).astype(np.float32)[None]
    out = native.restore_u8(lib, y, None, np.empty(y.shape, np.uint8))
    np.testing.assert_array_equal(out, preprocess.to_uint8(np.clip(y, 0, 1)))


@pytest.mark.parametrize("h,w", ODD_SIZES)
def test_restore_from_planes_and_from_source_match_numpy(lib, h, w):
    rng = _rng(h + 5 * w)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    y = rng.random((h, w), dtype=np.float32)
    _, cbcr = rgb_to_ycbcr(rgb, scale=1.0 / 255.0)
    expected = preprocess.to_uint8(preprocess.restore_color(y, cbcr))
    from_planes = native.restore_u8(lib, y, native.chroma(cbcr=cbcr), np.empty((h, w, 3), np.uint8))
    from_source = native.restore_u8(lib, y, native.chroma(src=rgb), np.empty((h, w, 3), np.uint8))
    bgr = native.restore_u8(lib, y, native.chroma(src=rgb[..., ::-1].copy(), order=native.BGR),
                            np.empty((h, w, 3), np.uint8), order=native.BGR)
    for got in (from_planes, from_source, bgr[..., ::-1]):
        assert np.abs(got.astype(int) - expected).max() <= 1
    np.testing.assert_array_equal(from_planes, expected)


def test_gray_fused_copied_to_color_output(lib):
    y = np.array([[0.0, 0.5, 1.0]], np.float32)
    out = native.restore_u8(lib, y, None, np.zeros((1, 3, 3), np.uint8))
    np.testing.assert_array_equal(out, [[[0, 0, 0], [128, 128, 128], [255, 255, 255]]])


def test_invalid_arguments_are_errors_not_crashes(lib):
    with pytest.raises(ValueError):
        native.Composer(lib, 6, 8)(*(np.zeros((6, 8), np.float32),) * 2, np.zeros((4, 1, 2), np.float32),
                                   np.zeros((6, 8), np.float32))  # 6 rows: not a multiple of 4
    with pytest.raises(ValueError):
        native.unit_u8(lib, np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.float64))
    with pytest.raises(ValueError):  # an output smaller than the source
        native.unit_u8(lib, np.zeros((4, 4), np.uint8), np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError):  # a chroma source smaller than the output
        native.restore_u8(lib, np.zeros((4, 4), np.float32), native.chroma(src=np.zeros((3, 4, 3), np.uint8)),
                          np.zeros((4, 4, 3), np.uint8))


def test_wrappers_refuse_read_only_outputs_and_views_the_kernels_cannot_walk(lib):
    """A read-only output (a read-only memmap crashed the process), 2 of 3 channels (the kernel read or wrote the third,
    outside the view), negative or zero row strides (wrapped by the kernels' unsigned strides): one-line ValueErrors,
    the memory untouched."""
    src = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = np.zeros((3, 4), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        native.unit_u8(lib, src, out)
    assert not out.any()
    rgb = np.zeros((3, 4, 3), np.uint8)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) arrays"):
        native.restore_u8(lib, np.ones((3, 4), np.float32), None, rgb[:, :, :2])
    assert not rgb.any()
    for view in (src[::-1], np.broadcast_to(src[:1], src.shape)):
        with pytest.raises(ValueError, match="increasing memory order"):
            native.unit_u8(lib, view, np.zeros((3, 4), np.float32))


def test_frame_stats_auto_copies_planes_the_kernel_cannot_walk(lib):
    rng = _rng(4)
    ir, vis = rng.random((2, 9, 13), dtype=np.float32)
    for a, b in ((ir[::-1], vis[::-1]), (np.broadcast_to(ir[:1], ir.shape), np.broadcast_to(vis[:1], vis.shape))):
        np.testing.assert_array_equal(native.frame_stats_auto(a, b), native.frame_stats(lib, a.copy(), b.copy()))


# ---------------------------------------------------------------- the frame path, C versus numpy


def _pairs(shared: Path | None):
    for name in ("tno_07.png", "tno_08.png"):
        yield images.read_image(SAMPLES / "ir" / name), images.read_image(SAMPLES / "vi" / name)
    if shared is not None:
        for folder in ("RoadScene", "MSRS"):
            for ir_path in sorted((shared / folder / "ir").iterdir())[:2]:
                yield images.read_image(ir_path), images.read_image(shared / folder / "vi" / ir_path.name)
    rng = _rng(7)
    for h, w in ODD_SIZES:
        yield rng.integers(0, 60000, (h, w), dtype=np.uint16), rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        yield rng.integers(0, 256, (h, w), dtype=np.uint8), rng.integers(0, 4096, (h, w), dtype=np.uint16)


@pytest.fixture(scope="module")
def pairs(request):
    try:
        shared = request.getfixturevalue("shared_data")
    except pytest.skip.Exception:
        shared = None
    return list(_pairs(shared))


class _Analyze:
    """A fixed analysis 'network' in numpy: maps from 4x4 means of the planes (deterministic, input dependent)."""

    def __init__(self) -> None:
        self.stats = []

    def __call__(self, ir: np.ndarray, vis: np.ndarray, stats: np.ndarray | None = None) -> np.ndarray:
        self.stats.append(stats)
        h, w = ir.shape[2:]
        pool = lambda a: a[0, 0].reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3))  # noqa: E731
        i, v = pool(ir), pool(vis)
        return np.stack([0.1 * (i - v), 0.4 + i, 0.3 - 0.2 * i, 0.5 * v])[None].astype(np.float32)


def _numpy_reference(ir, vis, analyze, stride=8):
    pair = preprocess.prepare_pair(ir, vis)
    h, w = pair.ir.shape
    ir_p, vis_p = preprocess.model_inputs(pair, stride)
    ph, pw = ir_p.shape[2:]
    fused = Composer(ph, pw)(ir_p[0, 0], vis_p[0, 0], analyze(ir_p, vis_p)[0], np.empty((ph, pw), np.float32))
    return preprocess.to_uint8(preprocess.restore_color(fused[:h, :w], pair.vis_cbcr))


def test_one_pass_frame_path_matches_numpy_within_one_level(lib, pairs):
    analyze = _Analyze()
    frames = frame.NativeFrame(lib, 8)
    for ir, vis in pairs:
        expected = _numpy_reference(ir, vis, analyze)
        _, ir_c, vis_c = frame.native_frame(ir, vis)
        got = frames.fuse(ir_c, vis_c, preprocess.DEFAULT_STRETCH, analyze)
        assert got.shape == expected.shape and got.dtype == np.uint8
        assert np.abs(got.astype(int) - expected).max() <= 1, ir.shape


def test_one_pass_frame_path_gives_the_unpadded_frames_stats(lib):
    rng = _rng(11)
    ir, vis = rng.integers(0, 256, (13, 21), dtype=np.uint8), rng.integers(0, 256, (13, 21, 3), dtype=np.uint8)
    analyze = _Analyze()
    frame.NativeFrame(lib, 8).fuse(ir, vis, preprocess.DEFAULT_STRETCH, analyze, with_stats=True)
    pair = preprocess.prepare_pair(ir, vis)  # 13x21, not the 16x24 padded planes
    (m_i, s_i, g_i), (m_v, s_v, g_v) = _stats64(pair.ir), _stats64(pair.vis_y)
    assert analyze.stats[-1].shape == (1, 6)
    np.testing.assert_allclose(analyze.stats[-1][0], [m_i, s_i, m_v, s_v, g_i, g_v], atol=1e-6, rtol=0)
    frame.NativeFrame(lib, 8).fuse(ir, vis, preprocess.DEFAULT_STRETCH, analyze)
    assert analyze.stats[-1] is None


def test_prepare_and_finish_agree_with_numpy(lib, pairs, monkeypatch):
    for ir, vis in pairs:
        c = frame.prepare_pair(ir, vis)
        n = preprocess.prepare_pair(ir, vis)
        np.testing.assert_allclose(c.ir, n.ir, atol=1e-6)
        np.testing.assert_allclose(c.vis_y, n.vis_y, atol=1e-6)
        assert (c.vis_cbcr is None) == (n.vis_cbcr is None)
        with_c = frame.finish(n.vis_y, n.vis_cbcr)
        monkeypatch.setenv("EDGEFUSION_NATIVE", "0")
        assert native.kernels() is None
        with_numpy = frame.finish(n.vis_y, n.vis_cbcr)
        monkeypatch.delenv("EDGEFUSION_NATIVE")
        assert np.abs(with_c.astype(int) - with_numpy).max() <= 1


def test_finish_with_mismatched_chroma_is_numpys_error_not_a_bad_read(lib):
    with pytest.raises(ValueError):
        frame.finish(np.zeros((4, 5), np.float32), np.zeros((2, 3, 5), np.float32))


def test_identical_channel_rgb_is_fused_as_gray(lib):
    gray = _rng(4).integers(0, 256, (9, 13), dtype=np.uint8)
    pair = frame.prepare_pair(gray, np.repeat(gray[..., None], 3, axis=2))
    assert pair.vis_cbcr is None
    np.testing.assert_array_equal(pair.vis_y, gray.astype(np.float32) / np.float32(255))


# ---------------------------------------------------------------- a bundle through Fuser.fuse


def _analyze_onnx(path: Path) -> Path:
    """ONNX analyze-only model: maps = 4x4 average pools of (ir, vis, ir, vis) scaled per map."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    dims = [1, 1, "h", "w"]
    scale = helper.make_tensor("k", TensorProto.FLOAT, [1, 4, 1, 1], [0.05, 0.5, 0.4, 0.3])
    nodes = [
        helper.make_node("Concat", ["ir", "vis", "ir", "vis"], ["c"], axis=1),
        helper.make_node("AveragePool", ["c"], ["p"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Mul", ["p", "k"], ["maps"]),
    ]
    graph = helper.make_graph(nodes, "analyze", [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims) for n in ("ir", "vis")],
                              [helper.make_tensor_value_info("maps", TensorProto.FLOAT, [1, 4, "h4", "w4"])], initializer=[scale])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), str(path))
    return path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A compose = runtime bundle (onnxruntime) around :func:`_analyze_onnx`, made once for the module."""
    pytest.importorskip("onnxruntime")
    from runtime_models import make_bundle

    folder = tmp_path_factory.mktemp("analyze-bundle")
    return make_bundle(folder / "b", _analyze_onnx(folder / "a.onnx"), stride=8, compose="runtime",
                       outputs=[{"name": "maps", "shape": [1, 4, "H/4", "W/4"], "dtype": "float32"}])


@pytest.mark.parametrize("threads", [1, 2])
def test_fuser_with_and_without_kernels_agree(lib, bundle, pairs, monkeypatch, threads):
    from edgefusion.runtime import Fuser

    assert json.loads((bundle / "manifest.json").read_text())["compose"] == "runtime"
    fast = Fuser.open(bundle, threads=threads)
    monkeypatch.setenv("EDGEFUSION_NATIVE", "0")
    slow = Fuser.open(bundle, threads=1)
    for ir, vis in pairs[:4] + pairs[-4:]:
        monkeypatch.delenv("EDGEFUSION_NATIVE", raising=False)
        a = fast.fuse(ir, vis)
        monkeypatch.setenv("EDGEFUSION_NATIVE", "0")
        b = slow.fuse(ir, vis)
        assert a.shape == b.shape and np.abs(a.astype(int) - b).max() <= 1, ir.shape


def _stream_frames(pairs):
    """Mixed sizes and pixel types, with a frame outside the one-pass C path (16-bit RGB) in the middle."""
    odd = (np.full((6, 10), 40, np.uint8), _rng(9).integers(0, 4096, (6, 10, 3), dtype=np.uint16))
    return pairs[:3] + [pairs[0], odd] + pairs[-3:] + [pairs[-1]]


def test_fuse_stream_equals_fuse_and_results_stay_the_callers(lib, bundle, pairs):
    from edgefusion.runtime import Fuser

    fuser = Fuser.open(bundle, threads=1)
    frames = _stream_frames(pairs)
    assert frame.native_frame(*frames[4]) is None  # really a frame for the generic path
    streamed = [(out, out.copy()) for out in fuser.fuse_stream(iter(frames), pipeline=True)]
    single = [fuser.fuse(ir, vis) for ir, vis in frames]  # frame by frame, sizes changing between calls
    assert len(streamed) == len(frames)
    for (out, kept), expected, (ir, vis) in zip(streamed, single, frames):
        np.testing.assert_array_equal(out, kept)  # not overwritten by later frames
        np.testing.assert_array_equal(out, expected)
        assert out.shape == vis.shape[:2] + vis.shape[2:]
    np.testing.assert_array_equal(single[0], single[3])  # the same frame again after other sizes
    assert list(fuser.fuse_stream([], pipeline=True)) == []
    assert all(np.array_equal(a, b) for a, b in zip(fuser.fuse_stream(frames, pipeline=False), single))


def test_frame_folders_go_through_the_pipelined_stream(lib, bundle, tmp_path, monkeypatch):
    from edgefusion.runtime import Fuser, video

    fuser = Fuser.open(bundle, threads=1)
    rng = _rng(5)
    frames = [(rng.integers(0, 256, (21, 30), dtype=np.uint8), rng.integers(0, 256, (21, 30, 3), dtype=np.uint8)) for _ in range(4)]
    for role, k in (("ir", 0), ("vi", 1)):
        (tmp_path / role).mkdir()
        for i, pair in enumerate(frames):
            images.write_image(tmp_path / role / f"{i:03d}.png", pair[k])
    streams, original = [], Fuser.fuse_stream

    def spy(self, pairs, stretch=None):
        streams.append(stretch)
        yield from original(self, pairs, stretch, pipeline=True)

    monkeypatch.setattr(Fuser, "fuse_stream", spy)
    assert video.fuse_streams(fuser, tmp_path / "ir", tmp_path / "vi", tmp_path / "out") == 4
    assert streams == [fuser.stretch]
    for i, (ir, vis) in enumerate(frames):
        np.testing.assert_array_equal(images.read_image(tmp_path / "out" / f"frame_{i:06d}.png"), fuser.fuse(ir, vis))


# ---------------------------------------------------------------- building the library


def test_build_is_cached_by_hash_and_race_safe(monkeypatch, tmp_path):
    if native.kernels() is None:
        pytest.skip("no C compiler")
    monkeypatch.setenv("EDGEFUSION_NATIVE_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_state", {})
    results = []
    threads = [threading.Thread(target=lambda: results.append(native._load())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None for r in results)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("libef_kernels-")] and not list(tmp_path.glob(".build-*"))


def test_no_compiler_falls_back_to_numpy(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEFUSION_NATIVE_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setattr(native, "_state", {})
    assert native.kernels() is None
    ir = np.full((3, 4), 51, np.uint8)
    assert frame.prepare_pair(ir, ir).ir.dtype == np.float32  # numpy path still works


# ---------------------------------------------------------------- sanitizers


def _sanitized_check(tmp_path: Path, extra: list[str]) -> str:
    """Build tests/native_kernels_check.c with ASan + UBSan (and ``extra`` flags), run it, return its stdout."""
    import shutil
    import subprocess

    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        pytest.skip("no C compiler")
    exe = tmp_path / f"kernels_check{len(extra)}"
    flags = ["-O1", "-g", "-std=c99", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", *extra]
    built = subprocess.run([compiler, *flags, f"-I{native.SOURCES}", str(Path(__file__).parent / "native_kernels_check.c"),
                            str(native.SOURCES / "ef_kernels.c"), "-lm", "-o", str(exe)], capture_output=True, text=True)
    if built.returncode:
        pytest.skip(f"cannot build with sanitizers here: {built.stderr.strip().splitlines()[-1:]}")
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    return run.stdout


def test_kernels_clean_under_address_and_undefined_behavior_sanitizers(tmp_path):
    assert len(_sanitized_check(tmp_path, []).splitlines()) == 13  # one output hash per size


def _require_avx2() -> None:
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64") or not native.X86_64_V3 <= native._cpu_flags():
        pytest.skip("this CPU cannot run x86-64-v3 (AVX2) code")


@pytest.mark.parametrize("fma", ["0", "1"])
def test_avx2_kernels_write_the_portable_kernels_bytes(tmp_path, fma):
    """The AVX2 paths (built with -march=x86-64-v3) are bit-identical to the portable C99 reference, sanitizer-clean,
    with the composition's multiply-adds rounded twice (EF_FMA=0, the default) or once (EF_FMA=1: fmaf, opt-in)."""
    _require_avx2()
    portable = _sanitized_check(tmp_path, [f"-DEF_FMA={fma}"])
    avx2 = _sanitized_check(tmp_path, ["-march=x86-64-v3", f"-DEF_FMA={fma}"])
    assert avx2.splitlines() == portable.splitlines()
    if fma == "0":  # the default on every target, x86-64-v3 included
        assert _sanitized_check(tmp_path, ["-march=x86-64-v3"]).splitlines() == avx2.splitlines()


def test_avx2_kernels_clean_under_valgrind(tmp_path):
    """No invalid or uninitialized reads in the AVX2 paths (memcheck understands AVX2; ASan misses uninitialized bytes)."""
    import shutil
    import subprocess

    _require_avx2()
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None or shutil.which("valgrind") is None:
        pytest.skip("needs a C compiler and valgrind")
    exe = tmp_path / "kernels_check_avx2"
    subprocess.run([compiler, "-O1", "-g", "-std=c99", "-march=x86-64-v3", f"-I{native.SOURCES}",
                    str(Path(__file__).parent / "native_kernels_check.c"), str(native.SOURCES / "ef_kernels.c"), "-lm",
                    "-o", str(exe)], check=True)
    run = subprocess.run(["valgrind", "--error-exitcode=9", "-q", str(exe)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
